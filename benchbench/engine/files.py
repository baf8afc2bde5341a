"""Writing files so a reader never sees half of one, and a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from benchbench.errors import BenchbenchError


class OutputError(BenchbenchError):
    """A file benchbench was asked to write cannot be written there (a directory, say)."""


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, renamed over
    ``path`` once complete. A directory, a path under a file or an unwritable place is refused
    with ``OutputError`` naming the path; the temporary file never outlives the call."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; name a file to write, e.g. "
                          f"{path / 'report.md'}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"{path}: {parent} is a file, so nothing can be written under it; "
                          "name a file in a directory")
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o666 & ~_umask())  # mkstemp's 0600 is not what open() makes
            f.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise OutputError(f"{path}: cannot write it ({exc.strerror or exc}); name a file in a "
                          "directory you can write") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
