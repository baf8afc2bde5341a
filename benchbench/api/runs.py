"""``benchbench.run``, ``benchbench.load`` and ``benchbench.load_model``: a suite run from
Python, through the keyword-only core the ``benchbench run`` command calls (``run_suite``), its
stored numbers as the export's rows, and a stored checkpoint as a model."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from benchbench.errors import ArgumentError, one_line


def _fail(where: str, problem: str) -> ArgumentError:
    return ArgumentError(one_line(f"{where}: {problem}"))


def run(suite: str | Path, *, out: str | Path | None = None, device: str = "auto",
        data_dir: str | Path | None = None, force: bool = False, update: bool = False,
        engine: str = "auto",
        executor: str | None = None, workers: int | None = None, ray_address: str | None = None,
        cpus_per_unit: float | None = None, gpus_per_unit: float | None = None,
        retries: int = 2, progress: bool = False, verbose: bool = False,
        tensorboard: str | Path | None = None, mlflow: str | None = None, registry=None):
    """Run the suite file ``suite`` into ``out`` (default ``runs/<suite name>``) as ``benchbench
    run SUITE --out OUT ...`` does, with the same options (``progress``: the command's progress
    lines on stderr, else none; ``verbose``: every epoch; ``update``: ``--update``, the suite
    file changed since ``out``'s last run: keep the cells both versions have, archive those it
    no longer has, run what is new). Returns the ``RunSummary``:
    ``run_dir``, the cells ``ran``, ``skipped`` (stored before) and ``failed`` (cell id ->
    error; each also warned about), ``wall_s``. Bad input raises the command's one-line
    ``BenchbenchError`` before anything is written."""
    from benchbench.cli import check_dir_option
    from benchbench.cli_progress import Tee, make_events
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite
    from benchbench.tracking import check_extras, make_trackers

    data_dir = Path(data_dir) if data_dir is not None else None
    tensorboard = Path(tensorboard) if tensorboard is not None else None
    for flag, value in (("progress", progress), ("verbose", verbose), ("force", force),
                        ("update", update)):
        if not isinstance(value, bool):
            raise _fail("benchbench.run", f"{flag} must be True or False; got {value!r}")
    check_dir_option("--data-dir", data_dir)
    check_dir_option("--tensorboard", tensorboard)
    quiet = not (progress or verbose)
    check_extras(tensorboard=tensorboard, mlflow=mlflow, quiet=quiet, verbose=verbose)
    if registry is None:
        from benchbench.plugins import load_registry

        registry = load_registry()
    spec = load_suite(suite, registry)
    run_dir = Path(out) if out is not None else Path("runs") / spec.name
    trackers = make_trackers(tensorboard=tensorboard, mlflow=mlflow, suite=spec.name,
                             run_dir=run_dir)
    command = f"benchbench.run({str(suite)!r}, out={str(run_dir)!r})"
    with make_events(quiet=quiet, verbose=verbose) as display:
        events = Tee(display, *trackers) if trackers else display
        summary = run_suite(
            spec, registry=registry, out_dir=run_dir, device=device, data_dir=data_dir,
            force=force, update=update, events=events, engine=engine, retries=retries,
            executor=executor or ("local" if workers is not None else "inline"),
            executor_options=dict(workers=workers, address=ray_address,
                                  cpus_per_unit=cpus_per_unit, gpus_per_unit=gpus_per_unit),
            command=command)
    if summary.stale:
        from benchbench.store.versions import describe_stale

        warnings.warn(one_line(f"{describe_stale(summary.stale)}; pass force=True to measure "
                               "them again (the old numbers are archived)"), stacklevel=2)
    for cell_id, error in summary.failed.items():
        warnings.warn(one_line(f"cell {cell_id} failed: {error}"), stacklevel=2)
    return summary


def load(run_dir: str | Path):
    """Every stored number of ``run_dir`` as a DataFrame: the rows and columns ``benchbench
    export RUN_DIR --format csv`` writes (``benchbench.report.export.full_rows``)."""
    from benchbench.report.export import full_rows
    from benchbench.store.results import read_store

    with read_store(Path(run_dir)) as store:
        return full_rows(store)


def _pick(cells: list, *, model: str | None, regime: str | None, seed: int | None):
    """The one stored cell (id, spec) the labels select, or the error listing the choices."""
    chosen = [(cid, spec) for cid, spec in cells
              if (model is None or spec.model.label == model)
              and (regime is None or spec.regime.label == regime)
              and (seed is None or spec.seed == seed)]
    if len(chosen) == 1:
        return chosen[0]
    choices = "; ".join(f"model={s.model.label!r}, regime={s.regime.label!r}, seed={s.seed}"
                        for _, s in cells) or "none"
    what = "no stored cell matches" if not chosen else f"{len(chosen)} stored cells match"
    raise _fail("benchbench.load_model", f"{what} model={model!r}, regime={regime!r}, "
                f"seed={seed!r}; the finished cells: {choices}")


def load_model(run_dir: str | Path, *, model: str | None = None, regime: str | None = None,
               seed: int | None = None, epoch: int | str = "last", device: str = "cpu",
               registry=None) -> Any:
    """The checkpoint a run stored for one finished cell, as its model in eval mode, in the
    dtype its regime trained in: the cell the labels ``model``, ``regime`` and ``seed``
    select (each may be left out where only one cell fits), at ``epoch`` (``"last"``: its
    last checkpoint). The model is built from the cell's stored spec by the installed plugin,
    seeded with the cell's seed, then the weights are loaded (``benchbench.store.checkpoints``).
    A ``pretrained`` cell's checkpoint is its given weights file (epoch 0), read again and
    checked against the sha256 the cell was measured with.
    """
    from benchbench.engine.device import DEVICES, resolve_device
    from benchbench.store.checkpoints import checkpoint_path, load_checkpoint
    from benchbench.store.results import read_store
    from benchbench.suite.cells import CellSpec

    if device not in DEVICES:
        raise _fail("benchbench.load_model", f"device must be one of {', '.join(DEVICES)}; got "
                    f"{device!r}")
    run_dir = Path(run_dir)
    with read_store(run_dir) as store:
        done = store.done_cells()
        cells = [(c["cell_id"], CellSpec.from_json(c["spec"])) for c in store.cells()
                 if c["cell_id"] in done and c["spec"]]
    cell_id, spec = _pick(cells, model=model, regime=regime, seed=seed)
    if spec.model.weights is not None:  # pretrained: the given file is its only checkpoint
        if epoch not in ("last", 0) or isinstance(epoch, bool):
            raise _fail("benchbench.load_model", f"epoch {epoch!r}: cell {cell_id} "
                        f"({spec.describe()}) evaluated given weights, its epoch 0 only")
        from benchbench.models.weights import load_weights

        net = _built(spec, registry)  # the file read again: WeightsError if it is another now
        load_weights(net, spec.model.weights, model_name=spec.model.name)
        return net.to(resolve_device(device)).eval()
    folder = run_dir / "checkpoints" / cell_id
    stored = sorted(int(p.stem.split("_")[1]) for p in folder.glob("epoch_*.safetensors")
                    if p.stem.split("_")[1].isdigit())
    if epoch == "last" and stored:
        epoch = stored[-1]
    if isinstance(epoch, bool) or epoch not in stored:
        raise _fail("benchbench.load_model", f"epoch {epoch!r}: cell {cell_id} "
                    f"({spec.describe()}) has checkpoints at epochs "
                    f"{', '.join(map(str, stored)) or 'none'} in {folder}")
    net = _built(spec, registry)
    load_checkpoint(checkpoint_path(run_dir / "checkpoints", cell_id, epoch), net)
    return net.to(resolve_device(device)).eval()


def _built(spec, registry) -> Any:
    """``spec``'s model as its cell built it (the installed plugin, the cell's seed), in the
    dtype its regime trained or measured in."""
    import torch

    from benchbench.engine.cell import build_model
    from benchbench.engine.data import build

    if registry is None:
        from benchbench.plugins import load_registry

        registry = load_registry()
    dataset = build(registry, "dataset", spec.dataset.name, spec.dataset.params)
    net = build_model(registry, spec.model, spec.seed, dataset)
    regime = build(registry, "regime", spec.regime.name, spec.regime.params)
    return net.to(dtype=getattr(torch, regime.dtype))
