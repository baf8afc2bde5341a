"""One writer per run directory: an OS file lock, released by the kernel when its process dies.

``benchbench run`` holds ``<run dir>/.benchbench-lock`` (``filelock``: ``flock`` on Unix) for
the whole run and writes who holds it (host, pid, since when, command) next to it, in
``.benchbench-lock.json``; both are removed when the run ends. A second run on the same
directory is refused at once, naming the holder. A ``kill -9``ed holder leaves both files behind
but not the lock: the kernel drops a dead process's ``flock``, so the next run takes it and
rewrites the holder file. Neither file is archived or counts as content of the directory
(``benchbench.store.rundir``). Either one as a symbolic link is refused with one line, never
followed (``SymlinkError``), and so is any error taking the lock (``ELOOP``, ``EACCES``).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from benchbench.errors import RunDirError

LOCK = ".benchbench-lock"
HOLDER = ".benchbench-lock.json"
NAMES = (LOCK, HOLDER)


def holder(run_dir: Path) -> dict:
    """What the holder of ``run_dir``'s lock wrote about itself ({} if unreadable)."""
    try:
        return json.loads((Path(run_dir) / HOLDER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def hold_run_dir(run_dir: Path, *, command: str = "") -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block (creating the directory if needed), or
    refuse at once with one line naming the process that holds it."""
    from filelock import FileLock, Timeout

    from benchbench.engine.files import disk_full, full_error, refuse_links, write_atomic
    from benchbench.store.rundir import check_claimable

    run_dir = Path(run_dir)
    check_claimable(run_dir)  # a file, unwritable, another program's, a link: refused
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(run_dir / LOCK), timeout=0)
    for _ in range(3):
        for name in NAMES:  # at the point of use: filelock and the holder file would follow
            refuse_links(run_dir / name)
        try:
            lock.acquire()
        except Timeout:
            who = holder(run_dir)
            by = (f"pid {who.get('pid', '?')} on {who.get('host', '?')}, running since "
                  f"{who.get('since', '?')}"
                  + (f": {who['command']}" if who.get("command") else "") if who
                  else "another process")
            raise RunDirError(f"{run_dir}: another benchbench run is writing here ({by}); wait "
                              "for it to finish or stop it, or pass --out another directory"
                              ) from None
        except OSError as exc:  # ELOOP (a link made in between), EACCES, a full disk
            if created:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
            if disk_full(exc):
                raise full_error(run_dir / LOCK, exc) from None
            raise RunDirError(f"{run_dir / LOCK}: cannot take the run lock "
                              f"({exc.strerror or exc}); remove the file if it is not a plain "
                              "file benchbench made, or pass --out another directory") from None
        if (run_dir / LOCK).exists():
            break
        lock.release()  # won a file its holder had just removed: take the new one
    try:
        write_atomic(run_dir / HOLDER, json.dumps({
            "host": socket.gethostname(), "pid": os.getpid(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"), "command": command}))
        yield
    finally:
        for name in (HOLDER, LOCK):  # removed while held, so the directory is left as it was
            with contextlib.suppress(OSError):
                (run_dir / name).unlink()
        lock.release()
        if created:
            with contextlib.suppress(OSError):  # refused before anything was written
                run_dir.rmdir()
