"""The ``local`` executor: a pool of worker processes on this machine (``--workers N``).

``concurrent.futures.ProcessPoolExecutor`` with the ``spawn`` start method (no forked copy of
the main process's threads or CUDA state). Each worker sets torch's threads to
``cores // workers`` so the pool does not oversubscribe the cores; with ``--device cuda`` and
several GPUs, worker ``i`` sees only GPU ``i mod count`` (``CUDA_VISIBLE_DEVICES``, set before
torch loads). Progress travels back through a ``multiprocessing`` manager queue (a worker killed
mid-write cannot wedge it). A worker that dies (``kill -9``, out of memory) breaks the pool,
and every unfinished unit is rerun in a fresh pool, resuming from its last checkpoint. The pool
does not say which worker died: if one unit alone was running, it is charged one attempt;
if several were, none is charged and each of them next runs alone (a pool of one), where a
death can only be its own. So a unit that keeps dying fails after ``retries`` retries, and the
units that happened to run beside it never do.
"""

from __future__ import annotations

import os
import queue as queue_module

from benchbench.engine.units import Progress, UnitDone, run_caught

_QUEUE = None


def _die_with_parent() -> None:
    """Linux: this process gets SIGKILL when the process that started it dies, so a worker
    never outlives a ``kill -9``ed runner (and never writes into a directory a rerun owns)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own pipes end the worker
        pass


def _init(queue, threads: int, gpus: list[str], counter) -> None:
    global _QUEUE
    _die_with_parent()
    _QUEUE = queue
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if gpus:  # before torch loads: this worker sees one GPU
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_for(index, gpus)
    import torch

    torch.set_num_threads(threads)


def gpu_for(index: int, gpus: list[str]) -> str:
    """The one GPU worker ``index`` (0, 1, ... in start order, replacements counted on) sees:
    round robin over the visible ones."""
    return gpus[index % len(gpus)]


def visible_gpus(device: str, env: dict | None = None, count=None) -> list[str]:
    """The GPU ids workers are spread over: ``CUDA_VISIBLE_DEVICES``'s (as the user narrowed
    them) or every device torch counts; none on the CPU or with a single GPU (nothing to
    spread)."""
    if device != "cuda":
        return []
    visible = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v.strip() for v in visible.split(",") if v.strip()]
    else:
        if count is None:
            import torch

            count = torch.cuda.device_count()
        ids = [str(i) for i in range(count)]
    return ids if len(ids) > 1 else []


def _emit(progress) -> None:
    _QUEUE.put(progress)


def _work(unit):
    return run_caught(unit, _emit)


class LocalPool:
    """Run units in a pool of worker processes on this machine (--workers N, default: one per
    core); a worker that dies is replaced and its unit resumed."""

    def __init__(self, *, workers: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                    or workers < 1):
            raise ValueError(f"--workers must be a whole number of at least 1; got {workers!r}")
        self.workers = workers or os.cpu_count() or 1

    def _gpus(self, units) -> list[str]:
        return visible_gpus(units[0].device) if units else []

    def run(self, units, *, emit, retries: int):
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool
        from multiprocessing.managers import SyncManager

        mp = multiprocessing.get_context("spawn")
        workers = min(self.workers, max(1, len(units)))
        threads = max(1, (os.cpu_count() or 1) // workers)
        gpus = self._gpus(units)
        attempts = {u.uid: 0 for u in units}
        suspects: set[int] = set()  # running when a pool of several broke: next run alone
        pending = list(units)
        manager = SyncManager(ctx=mp)
        manager.start(_die_with_parent)  # the queue's server, too, ends with this process
        with manager:
            queue = manager.Queue()
            started: set[int] = set()

            def drain() -> None:
                while True:
                    try:
                        event = queue.get_nowait()
                    except queue_module.Empty:
                        return
                    if event.kind == "unit_started":
                        started.add(event.uid)
                    emit(event)

            while pending:
                started.clear()
                alone = next((u for u in pending if u.uid in suspects), None)
                batch = [alone] if alone is not None else pending
                pending = [u for u in pending if u not in batch]
                size = 1 if alone is not None else workers
                pool = ProcessPoolExecutor(size, mp_context=mp, initializer=_init,
                                           initargs=(queue, threads, gpus, mp.Value("i", 0)))
                try:
                    futures = {pool.submit(_work, unit): unit for unit in batch}
                    died = []
                    while futures:
                        done, _ = wait(futures, timeout=0.1, return_when=FIRST_COMPLETED)
                        drain()
                        for future in done:
                            unit = futures.pop(future)
                            try:
                                yield future.result()
                            except BrokenProcessPool as exc:
                                died.append((unit, exc))
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
                drain()
                running = [u for u, _ in died if u.uid in started] or [u for u, _ in died]
                if alone is not None or len(running) == 1:
                    charged = running  # it ran alone: the death was its own
                else:  # several ran: nobody is charged, each runs alone next
                    charged = []
                    suspects.update(u.uid for u in running)
                    for unit in running:
                        emit(Progress(unit.uid, "log", (
                            f"a worker died while unit {unit.uid + 1} ran beside others: "
                            "rerunning it alone (no attempt charged)",)))
                for unit, exc in died:
                    if unit in charged:
                        attempts[unit.uid] += 1
                    if attempts[unit.uid] > retries:
                        yield UnitDone(unit.uid, error=(
                            f"its worker process died {attempts[unit.uid]} times (killed, or "
                            f"out of memory?); gave up after {retries} retries: "
                            f"{type(exc).__name__}: {exc}"))
                    else:
                        pending.append(unit)
                for unit in pending:
                    if unit in charged:
                        emit(Progress(unit.uid, "log", (
                            f"a worker died running unit {unit.uid + 1}: retrying it (attempt "
                            f"{attempts[unit.uid] + 1} of {retries + 1})",)))
