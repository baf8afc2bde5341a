"""A unit of work and what travels back from it: plain data in, plain data out.

The runner plans *what* runs (``Unit``: cells that train together, as JSON specs, plus where
their data and checkpoints are); an executor (``benchbench.engine.executors``) decides *where*.
Whatever the executor, a unit runs through ``execute`` in some process, which sends small
``Progress`` events while it trains and returns its ``CellOutcome`` list (dataclasses of plain
data and ``Record`` tuples: picklable, "suitable for sending over the wire", like pytest's
``pytest_report_to_serializable``). Only the main process writes the results store.

A unit names its plugins by a recipe (``Registry.recipe``: entry points or not, the
``BENCHBENCH_DISABLE_PLUGINS`` setting, extra plugin modules), so a worker builds the same
registry; in the main process (the ``inline`` executor) ``hosted`` lends the runner's own
registry and data cache, so nothing is rebuilt and nothing changes from running in-process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from benchbench.errors import BenchbenchError
from benchbench.suite.cells import CellSpec

if TYPE_CHECKING:
    from benchbench.engine.cell import CellOutcome, Events


@dataclass(frozen=True)
class Unit:
    """Cells that train together (one stack, or one cell), and everything a process needs to
    run them: plain data only."""

    uid: int  # its place in the plan (0, 1, ...)
    cells: tuple[str, ...]  # CellSpec JSON, in plan order
    stack: bool  # --engine auto: train as one stacked model where the model can
    index: int  # how many cells of the run come before it (progress)
    total: int  # cells in the run (progress)
    device: str
    checkpoint_dir: str
    data_dir: str | None
    plugins: dict  # Registry.recipe

    @property
    def specs(self) -> list[CellSpec]:
        return [CellSpec.from_json(text) for text in self.cells]


@dataclass(frozen=True)
class Progress:
    """One progress event from a running unit: ``kind`` is an ``Events`` method (``log``,
    ``cell_started``, ``epoch_done``, ``evaluating``, ``epoch_metrics``, ``checkpoint_done``,
    or ``unit_started``, which an executor may use to learn which units a worker had begun),
    ``args`` its arguments as plain data."""

    uid: int
    kind: str
    args: tuple = ()
    pid: int = field(default_factory=os.getpid)


@dataclass
class UnitDone:
    """What comes back for a unit: its outcomes, or the error that stopped the whole unit."""

    uid: int
    outcomes: list[CellOutcome] | None = None
    error: str | None = None
    #: a ``RunFault`` (a full disk, a symbolic link in the run directory): not the unit's
    #: failure; the runner stops the run with this line and stores nothing for the unit
    fault: str | None = None
    #: the unit stopped at its time limit: what it saved to resume from is kept for the next
    #: run (any other error spends it: the unit would fail the same way again)
    keep_resume: bool = False


class Forward:
    """The ``Events`` a unit sees in any process: each call becomes a ``Progress`` passed to
    ``emit``. ``cell_finished`` is not forwarded: the runner announces a cell when its outcome
    arrives, the same way on every executor."""

    def __init__(self, uid: int, emit: Callable[[Progress], None]) -> None:
        self.uid, self.emit = uid, emit

    def log(self, message):
        self.emit(Progress(self.uid, "log", (message,)))

    def cell_started(self, spec, epochs, index, total):
        self.emit(Progress(self.uid, "cell_started", (spec, epochs, index, total)))

    def epoch_done(self, spec, epoch):
        self.emit(Progress(self.uid, "epoch_done", (spec, epoch)))

    def evaluating(self, spec, epoch, what):
        self.emit(Progress(self.uid, "evaluating", (spec, epoch, what)))

    def epoch_metrics(self, spec, epoch, metrics):
        self.emit(Progress(self.uid, "epoch_metrics", (spec, epoch, metrics)))

    def checkpoint_done(self, spec, epoch, metrics):
        self.emit(Progress(self.uid, "checkpoint_done", (spec, epoch, metrics)))

    def cell_finished(self, spec, outcome):
        pass


REPLAYED = ("log", "cell_started", "epoch_done", "evaluating", "epoch_metrics",
            "checkpoint_done")


def replay(event: Progress, events: Events) -> None:
    """Show a ``Progress`` from any process on the main process's ``events`` (an ``Events``
    without a newer method, e.g. ``epoch_metrics``, simply does not get it)."""
    method = getattr(events, event.kind, None)
    if method is not None and event.kind in REPLAYED:
        method(*event.args)


# --- where a unit finds its plugins and data ------------------------------------------------
_HOSTED: dict[str, tuple] = {}  # token -> (registry, DataCache): lent by the main process
_WORKER: dict[str, tuple] = {}  # recipe -> (registry, DataCache): built once per worker
_tokens = itertools.count()


@contextlib.contextmanager
def hosted(registry, data) -> Iterator[str]:
    """Lend ``registry`` and the ``DataCache`` ``data`` to units run in this process, for the
    ``with`` block; yields the token the units' recipe carries."""
    token = f"{os.getpid()}:{next(_tokens)}"
    _HOSTED[token] = (registry, data)
    try:
        yield token
    finally:
        _HOSTED.pop(token, None)


def portable(recipe: dict) -> str | None:
    """Why a registry with this recipe cannot be rebuilt in another process, or None."""
    local = recipe.get("in_memory") or []
    if local:
        return (f"plugins passed in memory ({', '.join(local)}) cannot be loaded by another "
                "process; install them as entry points, or pass them as importable modules")
    return None


def _context(unit: Unit):
    token = unit.plugins.get("token")
    if token in _HOSTED:
        return _HOSTED[token]
    key = repr(sorted((k, v) for k, v in unit.plugins.items() if k != "token"))
    key += repr(unit.data_dir)
    if key not in _WORKER:
        from benchbench.engine.data import DataCache
        from benchbench.plugins import registry_from_recipe

        problem = portable(unit.plugins)
        if problem:
            raise BenchbenchError(problem)
        registry = registry_from_recipe(unit.plugins)
        _WORKER.clear()  # one suite's data per worker at a time
        _WORKER[key] = (registry, DataCache(registry, Path(unit.data_dir) if unit.data_dir
                                            else None))
    return _WORKER[key]


def execute(unit: Unit, emit: Callable[[Progress], None]) -> list[CellOutcome]:
    """Run ``unit`` here: the same code in the main process, a pool worker or a Ray task.
    Raises what the unit raises; an executor turns it into ``UnitDone.error``."""
    from benchbench.engine import stacked
    from benchbench.engine.cell import CellContext
    from benchbench.engine.timeouts import TimedOut, time_limit

    registry, data = _context(unit)
    if unit.device == "cuda":
        from benchbench.engine.device import reproducible_cuda

        reproducible_cuda()  # in a pool worker or Ray task too
    emit(Progress(unit.uid, "unit_started"))
    ctx = CellContext(registry, data, unit.device, Path(unit.checkpoint_dir),
                      Forward(unit.uid, emit))
    specs = unit.specs
    limit = specs[0].timeout and specs[0].timeout * len(specs)  # the suite's, per cell
    what = (f"cell {specs[0].describe()}" if len(specs) == 1 else
            f"unit {specs[0].describe()} (+{len(specs) - 1} seed(s), {len(specs)} x the suite's "
            "timeout)")
    with time_limit(limit, what) as mine:
        try:
            return stacked.run_unit(specs, ctx, stack=unit.stack, index=unit.index,
                                    total=unit.total)
        except TimedOut as exc:
            if exc.token is not mine:
                raise
            raise UnitTimeout(f"{exc} (suite.timeout; what it checkpointed resumes on the "
                              "next run)") from None


class UnitTimeout(Exception):
    """A unit ran past the suite's ``timeout``: each of its cells fails with this message."""


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_caught(unit: Unit, emit: Callable[[Progress], None]) -> UnitDone:
    """``execute``, with an exception of the unit's own (a plugin's bug, a bad value) turned
    into ``UnitDone.error``: the others go on. What a worker runs."""
    from benchbench.errors import RunFault

    try:
        return UnitDone(unit.uid, outcomes=execute(unit, emit))
    except RunFault as exc:  # the machine's or the run directory's, not the unit's
        return UnitDone(unit.uid, fault=str(exc))
    except UnitTimeout as exc:
        return UnitDone(unit.uid, error=error_text(exc), keep_resume=True)
    except Exception as exc:  # noqa: BLE001 - one broken unit must not lose the others
        return UnitDone(unit.uid, error=error_text(exc))
