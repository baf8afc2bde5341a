"""Run directories: which ones benchbench made, and what in them is benchbench's.

A run directory is benchbench's when it holds the marker file ``.benchbench-run`` (written when
``run`` creates the directory or takes an empty one) or a valid results store (a directory an
older benchbench made; the marker is added). ``run`` refuses any other non-empty directory,
``--force`` or not, and checks ``--out`` before it creates anything. Archiving (``--force``, a
damaged store, checkpoints left without their store) moves only ``OWNED`` names into
``archive/<timestamp>/``: whatever else is in the directory is never touched.

benchbench never follows a symbolic link among the paths it owns in a run directory (``LINKS``,
and everything under ``checkpoints/`` and ``figures/``): ``refuse_owned_links`` checks them with
``lstat`` whenever a run starts and claims the directory, and each write checks its own path
again where it is made (``benchbench.engine.files.refuse_links``). A link is refused with one
line naming it (``SymlinkError``, exit 2); the run directory itself may be a link (``--out``
names it).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path

from benchbench.engine.files import (
    disk_full,
    full_error,
    is_link,
    link_error,
    refuse_links,
    walk_links,
    write_failed,
)
from benchbench.errors import RunDirError
from benchbench.store.results import StoreDamagedError, inspect_store

MARKER = ".benchbench-run"
STORE = "results.sqlite"
#: every name benchbench writes into a run directory, and the only ones it ever moves
OWNED = (STORE, f"{STORE}-journal", "report.md", "checkpoints", "figures")
#: what is checked for symbolic links (besides the lock's files); the folders' whole trees too
LINKS = (*OWNED, f"{STORE}-wal", f"{STORE}-shm", "archive", MARKER)
TREES = ("checkpoints", "figures")
MARKER_TEXT = ("This directory was made by benchbench (benchbench run). benchbench writes only "
               "results.sqlite (and its journal), report.md, figures/, checkpoints/, archive/ "
               "and its lock files here; --force and --update move only the first four into "
               "archive/<timestamp>/.\n")


def check_out_dir(run_dir: Path) -> None:
    """Refuse a run directory that is a file, lies under a file or cannot be written; writes
    nothing."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: is a file, not a directory; pass --out a new directory, "
                          "an empty one, or one benchbench made")
    existing = run_dir
    while not existing.exists():
        if existing.is_symlink():
            raise RunDirError(f"{run_dir}: {existing} is a broken symbolic link; pass --out a "
                              "directory that can be created")
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"{run_dir}: {existing} is a file, so no directory can be made under "
                          "it; pass --out a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == run_dir else f"cannot be made: {existing} is " \
                                                              "not writable"
        raise RunDirError(f"{run_dir}: {what}; pass --out a directory you can write")


def is_marked(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds the marker, a regular file (a link is refused, never read)."""
    marker = Path(run_dir) / MARKER
    try:
        mode = os.lstat(marker).st_mode
    except OSError:
        return False
    if stat.S_ISLNK(mode):
        raise link_error(marker)
    return stat.S_ISREG(mode)


def refuse_owned_links(run_dir: Path) -> None:
    """``SymlinkError`` naming the first path benchbench owns in ``run_dir`` that is a symbolic
    link: the store and SQLite's files beside it, the report, the marker, the lock's files,
    ``archive/``, and ``checkpoints/`` and ``figures/`` with everything under them."""
    from benchbench.store.lock import NAMES

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return
    for name in (*LINKS, *NAMES):
        refuse_links(run_dir / name)
    for tree in TREES:
        found = walk_links(run_dir / tree)
        if found is not None:
            raise link_error(found)


def write_marker(run_dir: Path) -> None:
    """Write ``.benchbench-run`` (a new file: never through a link, never over a file)."""
    marker = Path(run_dir) / MARKER
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o666)
    except FileExistsError:
        if is_link(marker):
            raise link_error(marker) from None
        return
    except OSError as exc:
        raise write_failed(marker, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(MARKER_TEXT)
    except OSError as exc:
        marker.unlink(missing_ok=True)
        raise write_failed(marker, exc) from None


def _others(run_dir: Path) -> list[str]:
    """What is in ``run_dir``, leaving out the run lock (``benchbench.store.lock``): ``run``
    takes it before it claims the directory."""
    from benchbench.store.lock import NAMES

    return sorted(p.name for p in run_dir.iterdir()
                  if p.name not in NAMES) if run_dir.is_dir() else []


def new_archive(run_dir: Path) -> Path:
    """A new, empty ``archive/<timestamp>/`` in ``run_dir`` (two in one second get
    ``<timestamp>``, ``<timestamp>-1``, ...). Raises ``OSError``."""
    stamp, attempt = time.strftime("%Y%m%dT%H%M%S"), 0
    refuse_links(Path(run_dir) / "archive")  # else --force would move the store into its target
    while True:
        archive = Path(run_dir) / "archive" / (f"{stamp}-{attempt}" if attempt else stamp)
        try:
            archive.mkdir(parents=True)
        except FileExistsError:
            attempt += 1
            continue
        refuse_links(archive, depth=2)
        return archive


def archive_owned(run_dir: Path, *, why: str, log: Callable[[str], None]) -> Path | None:
    """Move what benchbench wrote in ``run_dir`` (``OWNED``) into ``archive/<timestamp>/``;
    logs one line and returns the archive, or ``None`` when there was nothing to move."""
    names = [n for n in OWNED if (run_dir / n).exists() or (run_dir / n).is_symlink()]
    if not names:
        return None
    try:
        archive = new_archive(run_dir)
        for name in names:
            shutil.move(str(run_dir / name), str(archive / name))
    except OSError as exc:
        if disk_full(exc):
            raise full_error(run_dir / "archive", exc) from None
        raise RunDirError(f"{run_dir}: cannot move {', '.join(names)} into archive/ "
                          f"({exc.strerror or exc}); free space or fix permissions, or move "
                          "them aside yourself") from None
    log(f"{why}: moved {', '.join(names)} to {archive}")
    return archive


def check_claimable(run_dir: Path) -> tuple[dict | None, StoreDamagedError | None]:
    """Refuse, writing nothing, a path ``run`` may not use: a file, under a file, unwritable,
    or a non-empty directory benchbench did not make (``--force`` or not). Returns the store's
    meta (None without a store) and its damage, if any, for ``claim_run_dir``."""
    check_out_dir(run_dir)
    refuse_owned_links(run_dir)
    store = run_dir / STORE
    meta, damage = None, None
    if store.exists() or store.is_symlink():
        try:
            meta = inspect_store(store)
        except StoreDamagedError as exc:
            damage = exc
    if not is_marked(run_dir) and meta is None and _others(run_dir):
        if damage is not None:
            raise RunDirError(f"{run_dir}: not a benchbench run directory (no {MARKER}) and "
                              f"its {STORE} is not a readable benchbench store "
                              f"({damage.problem}); benchbench moves nothing it did not "
                              "write: move the file aside, or pass --out a new directory")
        raise RunDirError(f"{run_dir}: exists, is not empty and is not a benchbench run "
                          f"directory (no {MARKER}, no results store); benchbench writes only "
                          "into directories it made: pass --out a new or empty directory")
    return meta, damage


def claim_run_dir(run_dir: Path, *, suite_name: str, suite_hash: str, force: bool,
                  log: Callable[[str], None] = lambda message: None,
                  update: bool = False) -> str | None:
    """Make ``run_dir`` a benchbench run directory for this suite, or refuse with one line.

    Refused, with nothing written: a path that is a file, under a file or unwritable; a
    non-empty directory benchbench did not make (``--force`` or not); a damaged store or one of
    another suite version (``--force`` archives it and starts over; ``update`` keeps it, and
    the caller archives the cells this version no longer has: ``engine.runner``). A marked
    directory whose store is gone while checkpoints or a report remain has those archived,
    with a log line. Returns the stored suite hash when ``update`` accepted another version.
    """
    changed = None
    run_dir = Path(run_dir)
    meta, damage = check_claimable(run_dir)
    store = run_dir / STORE
    if damage is not None:
        if not force:
            raise damage
        archive_owned(run_dir, why=f"{store} is damaged ({damage.problem}); --force", log=log)
    elif meta is not None and meta.get("suite_hash") not in (None, suite_hash) and update:
        changed = meta["suite_hash"]
    elif meta is not None and meta.get("suite_hash") not in (None, suite_hash):
        if not force:
            raise RunDirError(
                f"{run_dir}: holds results of a different version of suite {suite_name!r} "
                f"(hash {meta['suite_hash']}, the file now hashes to {suite_hash}); pass "
                "--update to keep the cells both versions have, --out DIR for a fresh "
                "directory, or --force to archive the old results and start over")
        archive_owned(run_dir, why=f"{run_dir} held another version of suite {suite_name!r}; "
                                   "--force", log=log)
    elif meta is None:
        archive_owned(run_dir, why=f"{run_dir} has no {STORE} but holds what an earlier run "
                                   "wrote: starting over without overwriting it", log=log)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not is_marked(run_dir):
        write_marker(run_dir)
    return changed
