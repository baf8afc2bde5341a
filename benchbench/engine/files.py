"""Writing files so a reader never sees half of one, and a failure leaves nothing behind.

Also the two checks every write into a run directory makes: no path benchbench owns is a
symbolic link (``refuse_links``: ``lstat``, never followed), and a write that fails for want of
space says so (``disk_full``, ``DiskFullError``) instead of passing for a cell's failure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchbench.errors import DiskFullError, OutputError, RunFault, SymlinkError

__all__ = ["DiskFullError", "OutputError", "atomic_file", "disk_full", "refuse_links",
           "write_atomic", "write_bytes_atomic"]
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL: "database or disk is full"


# symbolic links -------------------------------------------------------------------------------
def is_link(path: Path) -> bool:
    """Whether ``path`` itself is a symbolic link (dangling or not); never follows it."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def link_error(path: Path) -> SymlinkError:
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return SymlinkError(f"{path}: is a symbolic link{target}; benchbench never follows a link "
                        "among the files it owns in a run directory: remove the link (or copy "
                        "the real files there), or pass --out a new directory")


def refuse_links(path: Path, *, depth: int = 1) -> None:
    """Refuse (``SymlinkError``) if ``path`` or any of its ``depth - 1`` nearest parents is a
    symbolic link: ``depth = 3`` checks ``checkpoints/<cell>/<file>`` up to ``checkpoints``."""
    path = Path(path)
    for _ in range(depth):
        if is_link(path):
            raise link_error(path)
        if path.parent == path:
            return
        path = path.parent


def walk_links(root: Path) -> Path | None:
    """The first symbolic link inside the directory ``root`` (never entering one), or None."""
    todo = [Path(root)]
    while todo:
        folder = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_symlink():
                return Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                todo.append(Path(entry.path))
    return None


# a full disk -------------------------------------------------------------------------------------
def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a write failing for want of space: ``OSError``
    ENOSPC or EDQUOT, SQLite's SQLITE_FULL, or torch's short-write ``unexpected pos`` (what
    ``torch.save`` raises when the disk fills under it)."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == SQLITE_FULL:
            return True
        text = str(e)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        if type(e).__name__ == "RuntimeError" and "unexpected pos" in text:
            return True
    return False


def full_error(path: Path, exc: BaseException) -> DiskFullError:
    """The one line for a write to ``path`` that failed because the disk is full."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()),
                 type(exc).__name__)
    return DiskFullError(f"{path}: the disk is full ({first[:200]}); the run stopped and no "
                         "cell was recorded as failed: free space and run the same command "
                         "again (unfinished cells resume from their last checkpoint)")


def write_failed(path: Path, exc: BaseException) -> RunFault:
    """``DiskFullError`` when ``exc`` says the disk is full, else ``OutputError``."""
    if disk_full(exc):
        return full_error(path, exc)
    strerror = getattr(exc, "strerror", None) or (str(exc).splitlines()
                                                   or [type(exc).__name__])[0]
    return OutputError(f"{path}: cannot write it ({strerror}); name a file in a directory you "
                       "can write")


# atomic writes -----------------------------------------------------------------------------------
def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; name a file to write, e.g. "
                          f"{path / 'report.md'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, so nothing can be written under it; "
                          "name a file in a directory")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[object]:
    """A binary file object to fill; renamed over ``path`` once the block ends without error.
    The temporary file (``mkstemp``: created exclusively, so never through a link) never
    outlives the block; a failed write raises ``DiskFullError`` (no space) or ``OutputError``
    naming ``path``."""
    path = Path(path)
    _check_target(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 is not what open() makes
            yield f
        os.replace(tmp, path)
        tmp = None
    except RunFault:
        raise
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and not disk_full(exc):
            raise
        raise write_failed(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed over it (``atomic_file``)."""
    with atomic_file(path) as f:
        f.write(data)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same directory,
    renamed over ``path`` once complete. A directory, a path under a file or an unwritable place
    is refused with ``OutputError`` naming the path, a full disk with ``DiskFullError``; the
    temporary file never outlives the call."""
    write_bytes_atomic(path, text.encode("utf-8"))
