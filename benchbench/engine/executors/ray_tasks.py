"""The ``ray`` executor: one Ray task per unit, on a local Ray instance or a cluster.

``--ray-address`` joins a running cluster (``auto``: the one this node belongs to); without it,
``ray.init()`` starts a local instance for the run and stops it afterwards. Each task asks Ray
for ``--cpus-per-unit`` CPUs (default 1, also torch's thread count in the task) and
``--gpus-per-unit`` GPUs (default 1 with ``--device cuda``, else 0; Ray sets
``CUDA_VISIBLE_DEVICES`` for the task). A task whose worker dies is retried by Ray itself
(``max_retries``), resuming from the unit's last checkpoint. Progress travels through a
``ray.util.queue.Queue``. Ray is an optional extra: ``pip install 'benchbench[ray]'``.
"""

from __future__ import annotations

import importlib.util
import sys
import time

from benchbench.engine.units import UnitDone, run_caught
from benchbench.errors import BenchbenchError

MISSING = ("--executor ray needs Ray, which is not installed; install it with: "
           "pip install 'benchbench[ray]'")


def _work(unit, queue, threads: int, sys_path: list[str]):
    import os

    import torch

    for path in sys_path:  # a local instance: the driver's import path (test plugins, say)
        if path not in sys.path and os.path.isdir(path):
            sys.path.append(path)
    torch.set_num_threads(threads)
    return run_caught(unit, lambda progress: queue.actor.put_nowait.remote(progress))


class RayTasks:
    """Run each unit as a Ray task, locally or on a Ray cluster (--ray-address); Ray retries a
    task whose worker dies."""

    def __init__(self, *, address: str | None = None, cpus_per_unit: float | None = None,
                 gpus_per_unit: float | None = None) -> None:
        if importlib.util.find_spec("ray") is None:
            raise BenchbenchError(MISSING)
        for flag, value in (("--cpus-per-unit", cpus_per_unit),
                            ("--gpus-per-unit", gpus_per_unit)):
            if value is not None and not value >= 0:
                raise ValueError(f"{flag} must be a number of at least 0; got {value}")
        if cpus_per_unit is not None and cpus_per_unit <= 0:
            raise ValueError(f"--cpus-per-unit must be more than 0; got {cpus_per_unit}")
        self.address, self.cpus, self.gpus = address, cpus_per_unit, gpus_per_unit

    def run(self, units, *, emit, retries: int):
        import ray
        from ray.util.queue import Empty, Queue

        ours = not ray.is_initialized()
        if ours:
            ray.init(address=self.address, include_dashboard=False, logging_level="WARNING")
        try:
            cpus = self.cpus if self.cpus is not None else 1
            gpus = self.gpus if self.gpus is not None else (
                1 if units and units[0].device == "cuda" else 0)
            queue = Queue(actor_options={"num_cpus": 0})
            task = ray.remote(_work).options(num_cpus=cpus, num_gpus=gpus,
                                             max_retries=retries, retry_exceptions=False)
            path = list(sys.path) if self.address is None else []
            refs = {task.remote(unit, queue, max(1, int(cpus)), path): unit for unit in units}

            def drain() -> None:
                while True:
                    try:
                        emit(queue.get_nowait())
                    except Empty:
                        return

            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.1)
                drain()
                for ref in ready:
                    unit = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        text = " ".join(str(exc).split())[:300]
                        yield UnitDone(unit.uid, error=(
                            f"its Ray task failed after {retries} retries: "
                            f"{type(exc).__name__}: {text}"))
            time.sleep(0.05)
            drain()
            ray.kill(queue.actor)
        finally:
            if ours:
                ray.shutdown()
