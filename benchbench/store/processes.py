"""Which process a run row belongs to, and whether it still runs: host, pid and the pid's
start time, so a run killed with ``kill -9`` is told from one still going, and from a later
process that reused its pid (``benchbench.store.results`` records them with every run)."""

from __future__ import annotations

import os
import socket


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, where there is a /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_identity() -> dict:
    """This process: host name, pid and (on Linux) its start time in clock ticks since boot,
    which tells a live process from a later one that reused the pid."""
    stat = _proc_stat(os.getpid())
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "pid_started": stat[19] if stat else None}


def process_alive(pid: int, pid_started: str | None) -> bool:
    """Whether the process ``pid`` (started at ``pid_started``, if known) still runs here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return True
    return stat[0] != "Z" and (pid_started is None or stat[19] == pid_started)


def run_is_stale(run: dict, host: str | None = None) -> bool:
    """A run row still "running" whose process is gone: it was killed (``kill -9``, power
    loss) before it could record how it ended. Only decidable on the host that ran it."""
    if run.get("status") != "running" or not isinstance(run.get("pid"), int) or run["pid"] <= 0:
        return False
    return (run.get("host") == (host or socket.gethostname())
            and not process_alive(int(run["pid"]), run.get("pid_started")))
