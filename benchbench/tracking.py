"""Experiment trackers for ``benchbench run``: TensorBoard (``--tensorboard DIR``) and MLflow
(``--mlflow URI``), optional extras (``benchbench[tensorboard]``, ``benchbench[mlflow]``).

A tracker is an ``Events`` that the CLI hands the runner beside the progress display. It is
fed in the main process, from ``cell_finished``, which the runner calls in ``store_unit`` with
the outcome whose records it is about to store: the same numbers the results store receives,
whatever executor ran the cell (inline, ``--workers``, Ray), written by the one process that
writes. A cell's numbers reach a tracker when the cell is stored (a stack of seeds: when the
stack is); cells already stored by an earlier run are not sent again. Records are named as in
``benchbench.engine.progress.record_name`` (``fit/loss``, ``test/accuracy``,
``test/fgsm/eps_0.05/accuracy``), with the epoch as the step. A tracker that fails mid-run
(a server gone) says so once and stops; the run and its store go on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from benchbench.errors import BenchbenchError, one_line

EXTRAS = {"--tensorboard": ("tensorboard", "tensorboard"), "--mlflow": ("mlflow", "mlflow")}


def require(flag: str) -> None:
    """A one-line error naming the extra to install when ``flag``'s library is missing."""
    module, extra = EXTRAS[flag]
    if importlib.util.find_spec(module) is None:
        raise BenchbenchError(f"{flag} needs the {module} package, which is not installed: "
                              f"pip install 'benchbench[{extra}]'")


def check_extras(*, tensorboard, mlflow, quiet: bool = False, verbose: bool = False) -> None:
    """The ``run`` flags' own problems, before anything is loaded or run: a tracker whose extra
    is missing, ``--quiet`` with ``--verbose``."""
    if quiet and verbose:
        raise BenchbenchError("--quiet and --verbose: give one or the other")
    for flag, value in (("--tensorboard", tensorboard), ("--mlflow", mlflow)):
        if value is not None:
            require(flag)


def numeric(records) -> list:
    """The records that are numbers (not per-example bits), in epoch order (a best epoch
    evaluated after the last one comes back to its place: TensorBoard drops steps that go
    backwards)."""
    from benchbench.store.examples import CORRECT
    from benchbench.store.verdicts import VERDICTS

    return sorted((r for r in records if r.metric not in (CORRECT, VERDICTS)),
                  key=lambda r: r.epoch)


def _safe(text: str, keep: str = "") -> str:
    """A label as a path part (letters, digits and ``_-. :`` kept), or with ``keep="/"`` an
    MLflow key."""
    return re.sub(rf"[^\w\-. :{keep}]", "_", str(text)).strip() or "_"


class _Tracker:
    """What both trackers share: a failure mid-run is said once, then the tracker stops."""

    flag = ""

    def __init__(self) -> None:
        self.broken = False

    def log(self, message): ...
    def planned(self, units): ...
    def cell_started(self, spec, epochs, index, total): ...
    def epoch_metrics(self, spec, epoch, metrics): ...
    def epoch_done(self, spec, epoch): ...
    def evaluating(self, spec, epoch, what): ...
    def checkpoint_done(self, spec, epoch, metrics): ...

    def cell_finished(self, spec, outcome) -> None:
        if self.broken:
            return
        try:
            self.write(spec, outcome)
        except Exception as exc:  # noqa: BLE001 - the store, not the tracker, must not fail
            self.broken = True
            print(one_line(f"warning: {self.flag}: {type(exc).__name__}: {exc}; nothing more is "
                           "sent to it in this run (the results store is unaffected)"),
                  file=sys.stderr, flush=True)

    def write(self, spec, outcome) -> None:
        raise NotImplementedError


class TensorBoard(_Tracker):
    """One TensorBoard run per cell, ``DIR/<suite>/<model>/<regime>/seed_<seed>``: every stored
    number as a scalar against the epoch (training records per epoch, checkpoint metrics at
    each checkpoint) and the cell's spec as text."""

    flag = "--tensorboard"

    def __init__(self, log_dir: Path, *, suite: str) -> None:
        super().__init__()
        require(self.flag)
        from torch.utils.tensorboard import SummaryWriter

        self.writer_class = SummaryWriter
        self.root = Path(log_dir) / _safe(suite)

    def run_dir(self, spec) -> Path:
        return self.root / _safe(spec.model.label) / _safe(spec.regime.label) / \
            f"seed_{spec.seed}"

    def write(self, spec, outcome) -> None:
        from benchbench.engine.progress import record_name

        writer = self.writer_class(log_dir=str(self.run_dir(spec)))
        try:
            if not outcome.error:  # a failed cell's numbers are not stored: not sent either
                for r in numeric(outcome.records):
                    writer.add_scalar(record_name(r.split, r.attack, r.eps, r.metric),
                                      float(r.value), global_step=r.epoch)
            writer.add_text("benchbench/cell", f"cell {spec.cell_id}, engine {outcome.engine}, "
                            f"{outcome.error or 'ok'}\n\n    {spec.to_json()}")
        finally:
            writer.close()


def tracking_uri(uri: str) -> str:
    """An MLflow tracking URI: a path (``./mlruns``) or ``file:`` URI is a local file store
    (allowed for this process: MLflow 3 keeps it in maintenance mode behind
    ``MLFLOW_ALLOW_FILE_STORE``); anything else (``http://``, ``sqlite:///``) as given."""
    if "://" in uri and not uri.startswith("file:"):
        return uri
    path = Path(uri.removeprefix("file://") if uri.startswith("file://")
                else uri.removeprefix("file:"))
    if path.exists() and not path.is_dir():
        raise BenchbenchError(f"--mlflow {uri}: is a file; pass a directory for a local MLflow "
                              "file store (created when missing) or a tracking server's URI")
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return path.absolute().as_uri()


def mlflow_params(spec) -> dict[str, str]:
    """The cell's spec as MLflow params: ``model``, ``model.hidden``, ``regime.lr``, ``seed``,
    ``attack.<label>.eps``, ... (values as JSON where they are not text)."""
    def text(value) -> str:
        out = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        return out if len(out) <= 6000 else out[:5997] + "..."

    out = {"suite": spec.suite, "seed": spec.seed, "dataset": spec.dataset.name,
           "dataset.train": spec.dataset.train, "dataset.test": spec.dataset.test,
           **{f"dataset.{k}": v for k, v in spec.dataset.params.items()},
           "attacks": ",".join(a.label for a in spec.attacks)}
    for kind, ref in (("model", spec.model), ("regime", spec.regime)):
        out[kind], out[f"{kind}.label"] = ref.name, ref.label
        out.update({f"{kind}.{k}": v for k, v in ref.params.items()})
    for a in spec.attacks:
        out.update({f"attack.{a.label}.name": a.name, f"attack.{a.label}.eps": list(a.eps),
                    f"attack.{a.label}.split": a.split,
                    **{f"attack.{a.label}.{k}": v for k, v in a.params.items()}})
    return {_safe(k, "/"): text(v) for k, v in out.items()}


def _ms(stamp: str | None) -> int | None:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000) if stamp else None


class MLflow(_Tracker):
    """One MLflow run per cell in the experiment named after the suite: the spec as params,
    every stored number as a metric with the epoch as its step, provenance as tags."""

    flag = "--mlflow"

    def __init__(self, uri: str, *, suite: str, run_dir: Path) -> None:
        super().__init__()
        require(self.flag)
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.suite, self.run_dir = suite, Path(run_dir).absolute()
        self._experiment: str | None = None

    def experiment(self) -> str:
        if self._experiment is None:
            found = self.client.get_experiment_by_name(self.suite)
            self._experiment = (found.experiment_id if found is not None
                                else self.client.create_experiment(self.suite))
        return self._experiment

    def write(self, spec, outcome) -> None:
        from mlflow.entities import Metric, Param

        from benchbench import __version__
        from benchbench.engine.progress import record_name

        tags = {"benchbench.cell_id": spec.cell_id, "benchbench.run_dir": str(self.run_dir),
                "benchbench.engine": outcome.engine, "benchbench.device": outcome.device,
                "benchbench.dtype": outcome.dtype, "benchbench.version": __version__}
        if outcome.error:
            tags["benchbench.error"] = outcome.error[:8000]
        run = self.client.create_run(self.experiment(), start_time=_ms(outcome.started),
                                     run_name=spec.describe(), tags=tags)
        run_id = run.info.run_id
        params = [Param(k, v) for k, v in mlflow_params(spec).items()]
        when = _ms(outcome.finished) or 0
        metrics = [] if outcome.error else [
            Metric(_safe(record_name(r.split, r.attack, r.eps, r.metric), "/"), float(r.value),
                   when, r.epoch) for r in numeric(outcome.records)]
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i:i + 1000])
        self.client.set_terminated(run_id, status="FAILED" if outcome.error else "FINISHED",
                                   end_time=_ms(outcome.finished))


def make_trackers(*, tensorboard: Path | None, mlflow: str | None, suite: str,
                  run_dir: Path) -> list:
    """The trackers the ``run`` flags ask for (each checks its extra is installed)."""
    out: list = []
    if tensorboard is not None:
        out.append(TensorBoard(tensorboard, suite=suite))
    if mlflow is not None:
        out.append(MLflow(mlflow, suite=suite, run_dir=run_dir))
    return out
