"""Rendering for the CLI: progress (rich bars on a terminal, plain timestamped lines in a log);
the summary tables and plugin lists are ``cli_tables``."""

from __future__ import annotations

import sys
import time
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from benchbench.engine.cell import Events

console = Console(stderr=True)


class RichEvents(Events):
    """Progress bars: the run's cells, and the epochs of each unit training now (several at
    once with a parallel executor: each unit's bar is keyed by its first cell)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.cells = None
        self.epochs: dict[str, int] = {}  # first cell id -> its bar
        self.finished: set[str] = set()
        self.started = False

    def __enter__(self) -> RichEvents:
        return self  # the bars start with the first event: an error before any prints alone

    def __exit__(self, *exc) -> None:
        if self.started:
            self.progress.stop()

    @property
    def bars(self) -> Progress:
        if not self.started:
            self.progress.start()
            self.started = True
        return self.progress

    def log(self, message: str) -> None:  # literal (a path's [x] is no markup), one line
        self.bars.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def cell_started(self, spec, epochs, index, total) -> None:
        if self.cells is None:
            self.cells = self.bars.add_task("cells", total=total)
        for key in [k for k in self.epochs if k in self.finished]:  # done: make room
            self.bars.remove_task(self.epochs.pop(key))
        if spec.cell_id in self.epochs:  # started again (a retried unit)
            self.bars.remove_task(self.epochs.pop(spec.cell_id))
        self.finished.discard(spec.cell_id)
        self.epochs[spec.cell_id] = self.bars.add_task(f"  {spec.describe()}: epochs",
                                                       total=epochs)

    def epoch_done(self, spec, epoch) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], completed=epoch)

    def evaluating(self, spec, epoch, what) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], description=(
                f"  {spec.describe()}: epoch {epoch}, evaluating {what}"))

    def cell_finished(self, spec, outcome) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], description=(
                f"  {spec.describe()}: done in {outcome.wall_s:.1f}s"))
            self.finished.add(spec.cell_id)
        if self.cells is not None:
            self.bars.advance(self.cells)


#: at most one epoch line per unit every this many seconds (besides the lines that always come)
PLAIN_INTERVAL_S = 20.0
MAX_NUMBERS = 12  # numbers on one checkpoint line; the rest are counted


def stamp(clock=datetime.now) -> str:
    """Local time as ``2026-12-02 22:15:03``: the start of every plain progress line."""
    return clock().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 07m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def number(name: str, value: float) -> str:
    """One progress number, named briefly: ``test acc 95.3%``, ``fgsm@0.05 71.2%``,
    ``loss 0.4123`` (a training record's), from a ``benchbench.engine.progress.record_name``."""
    parts = name.split("/")
    split, metric = parts[0], parts[-1]
    percent = metric == "accuracy" or metric.endswith(("_accuracy", "_frac"))
    shown = f"{value * 100:.1f}%" if percent else f"{value:.4g}"
    if len(parts) == 4:  # an attack's: split/attack/eps_x/metric
        where = "" if split in ("test", "fit") else f"({split})"
        what = "" if metric == "accuracy" else f" {metric}"
        return f"{parts[1]}@{parts[2].removeprefix('eps_')}{where}{what} {shown}"
    if split == "fit":
        return f"{metric} {shown}"
    return f"{split} {'acc' if metric == 'accuracy' else metric} {shown}"


def numbers(metrics: dict[str, float]) -> str:
    shown = [number(k, v) for k, v in list(metrics.items())[:MAX_NUMBERS]]
    more = len(metrics) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


class _Unit:
    """What the plain lines know about a running unit (keyed by its first cell)."""

    def __init__(self, label: str, epochs: int, size: int, started: float) -> None:
        self.label, self.epochs, self.size, self.started = label, epochs, size, started
        self.first: int | None = None  # the epoch before the first one seen (resumed units)
        self.epoch = 0
        self.fit: dict[str, float] = {}
        self.said = -1e300  # when its last epoch line was printed


class PlainEvents(Events):
    """Plain timestamped progress lines for a log (stderr not a terminal: nohup, SLURM, CI).

    Always: a line when a unit starts, when a checkpoint has been evaluated (its clean and
    attack accuracies), when a cell finishes, and every message. Epoch lines (the epoch, the
    training numbers the regime records, seconds per epoch, the unit's and the run's ETA): after
    a unit's first epoch, then at most one every ``interval`` seconds per unit. ``verbose``:
    every epoch and every evaluation step."""

    def __init__(self, *, stream=None, verbose: bool = False,
                 interval: float = PLAIN_INTERVAL_S, clock=time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbose, self.interval, self.clock = verbose, interval, clock
        self.units: dict[str, _Unit] = {}
        self.plan: dict[int, tuple[int, bool]] = {}  # first cell's index -> (cells, stacked)
        self.total: int | None = None
        self.done = 0
        self.absorbed = 0  # members of a finished stack still to arrive (counted already)
        self.t0: float | None = None

    def __enter__(self) -> PlainEvents:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def say(self, text: str) -> None:
        print(f"{stamp()} {text}", file=self.stream, flush=True)

    def log(self, message: str) -> None:
        self.say(message)

    def planned(self, units) -> None:
        self.plan = {index: (size, stack) for index, size, stack in units}
        cells = sum(size for _, size, _ in units)
        stacks = sum(1 for _, size, _ in units if size > 1)
        self.say(f"run: {cells} cell(s) to run in {len(units)} unit(s)"
                 + (f", {stacks} of them stacks of seeds trained as one model" if stacks else ""))

    def _where(self, index: int, size: int) -> str:
        total = self.total or "?"
        return f"[{index + 1}/{total}]" if size == 1 else f"[{index + 1}-{index + size}/{total}]"

    def cell_started(self, spec, epochs, index, total) -> None:
        now = self.clock()
        self.total, self.t0 = total, self.t0 if self.t0 is not None else now
        size = self.plan.get(index, (1, False))[0]
        again = spec.cell_id in self.units
        label = f"{self._where(index, size)} {spec.describe()}" + (
            f" (+{size - 1} seed(s), one stack)" if size > 1 else "")
        self.units[spec.cell_id] = _Unit(label, epochs, size, now)
        self.say(f"{label}: {'started again' if again else 'started'}, {epochs} epoch(s)")

    def epoch_metrics(self, spec, epoch, metrics) -> None:
        unit = self.units.get(spec.cell_id)
        if unit is not None:
            unit.fit = dict(metrics)

    def _run_eta(self, now: float) -> str:
        if not self.total or self.t0 is None:
            return ""
        running = sum(u.size * u.epoch / u.epochs for u in self.units.values() if u.epochs)
        fraction = min(1.0, (self.done + running) / self.total)
        if fraction <= 0:
            return ""
        return f", run ETA {duration((now - self.t0) * (1 - fraction) / fraction)}"

    def epoch_done(self, spec, epoch) -> None:
        unit = self.units.get(spec.cell_id)
        if unit is None:
            return
        now = self.clock()
        if unit.first is None:
            unit.first = epoch - 1
        unit.epoch = epoch
        due = self.verbose or now - unit.said >= self.interval
        if not due:
            return
        unit.said = now
        per = (now - unit.started) / max(1, epoch - unit.first)
        fit = f", {numbers(unit.fit)}" if unit.fit else ""
        self.say(f"{unit.label}: epoch {epoch}/{unit.epochs}{fit}, {per:.3g} s/epoch, ETA "
                 f"{duration(per * (unit.epochs - epoch))}{self._run_eta(now)}")

    def evaluating(self, spec, epoch, what) -> None:
        unit = self.units.get(spec.cell_id)
        if self.verbose and unit is not None:
            self.say(f"{unit.label}: epoch {epoch}, evaluating {what}")

    def checkpoint_done(self, spec, epoch, metrics) -> None:
        unit = self.units.get(spec.cell_id)
        if unit is not None:
            self.say(f"{unit.label}: checkpoint {epoch} evaluated: {numbers(metrics)}")

    def cell_finished(self, spec, outcome) -> None:
        """One line per unit, when its first cell arrives (a stack's members arrive together,
        in order, each failed one with a message of the runner's own)."""
        unit = self.units.pop(spec.cell_id, None)
        if unit is None:  # a later member of a stack already said done
            if self.absorbed:
                self.absorbed -= 1
            else:
                self.done += 1
            return
        self.done += unit.size
        self.absorbed += unit.size - 1
        if outcome.error and unit.size == 1:
            return
        total = f"/{self.total}" if self.total else ""
        now = self.clock()
        self.say(f"{unit.label}: done in {duration(now - unit.started)} ({self.done}{total} "
                 f"cells done{self._run_eta(now)})")


class QuietEvents(Events):
    """``run --quiet``: no progress at all; a message that is a warning (``warning: ...``: a
    resume file ignored, stale cells) still goes to stderr, plain; failures come in the final
    lines."""

    def __init__(self, *, stream=None) -> None:
        self.stream = stream

    def log(self, message: str) -> None:
        if message.startswith("warning:"):
            print(message, file=self.stream if self.stream is not None else sys.stderr,
                  flush=True)

    def __enter__(self) -> QuietEvents:
        return self

    def __exit__(self, *exc) -> None:
        pass


class Tee(Events):
    """Every event to each of ``targets`` (the display, then the trackers), in order."""

    def __init__(self, *targets) -> None:
        self.targets = targets

    def _each(self, name: str, *args) -> None:
        for target in self.targets:
            getattr(target, name)(*args)

    def log(self, message):
        self._each("log", message)

    def planned(self, units):
        self._each("planned", units)

    def cell_started(self, spec, epochs, index, total):
        self._each("cell_started", spec, epochs, index, total)

    def epoch_metrics(self, spec, epoch, metrics):
        self._each("epoch_metrics", spec, epoch, metrics)

    def epoch_done(self, spec, epoch):
        self._each("epoch_done", spec, epoch)

    def evaluating(self, spec, epoch, what):
        self._each("evaluating", spec, epoch, what)

    def checkpoint_done(self, spec, epoch, metrics):
        self._each("checkpoint_done", spec, epoch, metrics)

    def cell_finished(self, spec, outcome):
        self._each("cell_finished", spec, outcome)


def make_events(*, quiet: bool = False, verbose: bool = False, stream=None):
    """The display for ``benchbench run``: nothing with ``quiet``; plain lines with ``verbose``
    or where stderr is not a terminal; else rich progress bars."""
    if quiet:
        return QuietEvents()
    target = stream if stream is not None else sys.stderr
    if verbose or not (hasattr(target, "isatty") and target.isatty()):
        return PlainEvents(stream=target, verbose=verbose)
    return RichEvents()
