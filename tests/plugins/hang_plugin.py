"""Plugins that never finish (issue 16: "an attack that never returns: the run hangs"): an
attack that sleeps forever, one that spins in a Python loop and swallows ``Exception``, and a
regime whose epochs sleep. The time limits (benchbench.engine.timeouts) must stop each."""

from __future__ import annotations

import time

from benchbench import hookimpl
from benchbench.regimes.standard import StandardTraining

SCALE = {"pause": 1.0}  # a test sets 0 to rerun the same cells (same ids) without the pauses


class Sleeps:
    """Sleeps forever."""

    norm = "linf"

    def __init__(self, **_: object) -> None:
        pass

    def perturb(self, model, x, y, *, eps, bounds):
        while True:
            time.sleep(3600)


class Spins(Sleeps):
    """Spins in a Python loop and catches every ``Exception`` it sees."""

    def perturb(self, model, x, y, *, eps, bounds):
        while True:
            try:
                sum(range(1000))
            except Exception:  # noqa: BLE001, S112 - the point: a plugin that swallows errors
                continue


class SlowEpochs(StandardTraining):
    """Standard training that sleeps ``pause`` seconds before each batch."""

    def __init__(self, *, pause: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pause = pause

    def craft(self, ctx, model, x, y):
        time.sleep(self.pause * SCALE["pause"])
        return x


@hookimpl
def register_attacks(register):
    register("hang_sleep", Sleeps)
    register("hang_spin", Spins)


@hookimpl
def register_regimes(register):
    register("slow_epochs", SlowEpochs)
