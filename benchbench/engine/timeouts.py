"""Time limits on what a suite runs: an attack at one checkpoint, and a whole unit of work.

A suite's ``[[attacks]] timeout`` and ``[suite] timeout`` (seconds) become ``time_limit``
blocks here. They work like pytest-timeout's ``signal`` method: a ``SIGALRM`` timer
(``signal.setitimer``) whose handler raises ``TimedOut`` in the running code, so a plugin stuck
in a Python loop, in ``time.sleep`` or between torch calls is stopped and its cell fails with a
message saying which limit it ran past. Limits nest (an attack's inside its unit's): the timer
is always armed for the earliest deadline, and each block restores what it found: the
``SIGALRM`` handler and a timer the caller had armed (what was left of it, less the time the
blocks took; one that came due meanwhile fires as the last block ends).

``TimedOut`` derives from ``BaseException``, as ``KeyboardInterrupt`` does, so a plugin's own
``except Exception`` cannot swallow it; the engine catches it where the limit was set.

What it cannot do: stop a single native call that never returns to Python (a C loop that does
not check signals); the limit then takes effect when that call returns. A timer needs the main
thread of its process (benchbench's executors run units there: the CLI, pool workers and Ray
tasks); elsewhere a limit is refused with a clear error rather than silently not enforced.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class TimedOut(BaseException):
    """A ``time_limit`` block ran past its limit; ``str()`` says which and by how much."""

    def __init__(self, message: str, token: object) -> None:
        super().__init__(message)
        self.token = token


_ACTIVE: list[tuple[float, str, object]] = []  # (deadline, message, token), outermost first
_SAVED: list = []  # the SIGALRM handler found when the first limit was set


def _arm() -> None:
    """Set the timer for the earliest active deadline (at least 1 ms from now)."""
    if not _ACTIVE:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return
    due = min(d for d, _, _ in _ACTIVE)
    signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 0.001))


def _fire(signum, frame) -> None:
    now = time.monotonic()
    expired = [entry for entry in _ACTIVE if entry[0] <= now + 0.001]
    if not expired:  # early by the timer's granularity: wait for the rest
        _arm()
        return
    _, message, token = min(expired, key=lambda entry: entry[0])
    raise TimedOut(message, token)


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[object]:
    """Run the block with at most ``seconds`` of wall time (``None``: no limit); past it,
    ``TimedOut`` is raised in the block with the message ``f"{what} ran past its timeout of
    {seconds:g} s"``. Yields the token that the raised ``TimedOut`` carries, so a caller can tell
    its own limit from an enclosing one."""
    token = object()
    if seconds is None:
        yield token
        return
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"{what} has a timeout, which needs the main thread of its process "
                           "(a SIGALRM timer); run it there, or remove the timeout")
    if not _ACTIVE:  # the caller's handler and timer (pytest-timeout's, an alarm()), kept
        outer = signal.getitimer(signal.ITIMER_REAL)
        _SAVED.append((signal.signal(signal.SIGALRM, _fire), outer, time.monotonic()))
    entry = (time.monotonic() + seconds, f"{what} ran past its timeout of {seconds:g} s", token)
    _ACTIVE.append(entry)
    try:
        _arm()
        yield token
    finally:
        _ACTIVE.remove(entry)
        _arm()
        if not _ACTIVE:
            handler, (left, interval), since = _SAVED.pop()
            signal.signal(signal.SIGALRM, handler)
            if left > 0:  # the caller's timer goes on (due meanwhile: it fires at once)
                signal.setitimer(signal.ITIMER_REAL,
                                 max(left - (time.monotonic() - since), 0.001), interval)
