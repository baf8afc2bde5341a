"""The ``inline`` executor: every unit in this process, one after another (the default)."""

from __future__ import annotations

from benchbench.engine.units import run_caught


class Inline:
    """Run units one after another in this process (the default; no retries: a process that
    dies takes the run with it, and the next run resumes)."""

    in_process = True  # units use the runner's own registry and data cache

    def __init__(self) -> None:
        pass

    def run(self, units, *, emit, retries: int):
        for unit in units:
            yield run_caught(unit, emit)
