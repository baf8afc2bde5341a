"""Running a whole suite into a run directory: validate, plan, run, store, report.

``run_suite`` validates the suite, takes the run directory's lock (one writer), claims the
directory, records the suite, plans units (``plan``: stacks of cells, as plain data), hands them
to an executor (``benchbench.engine.executors``: where they run) and stores each unit in one
transaction as it comes back (``store_unit``), then renders the report.

Layout of a run directory::

    results.sqlite      every number, with provenance (see benchbench.store.results)
    report.md           rendered from results.sqlite alone
    checkpoints/<cell_id>/epoch_0001.safetensors
    checkpoints/resume/<digest>.pt   an unfinished unit's state at its last checkpoint
    .benchbench-run     the mark of a directory benchbench made (benchbench.store.rundir)
    .benchbench-lock(.json)  held while a run writes (benchbench.store.lock)
    archive/<timestamp>/  what --force (or a damaged or missing store) moved aside, or a copy
                          of the store from before --force measured stale cells again

Cells stored by other versions of benchbench, torch or their plugins than the installed ones
(``benchbench.store.versions``) are named in a warning; with ``force`` they are archived and
measured again (``benchbench.store.remeasure``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchbench import __version__
from benchbench.attacks import attack_capabilities
from benchbench.attacks.params import suite_effective_params
from benchbench.engine.cell import Events, build_model, now, plugin_versions
from benchbench.engine.data import DataCache, build
from benchbench.engine.device import resolve_device
from benchbench.engine.executors import make_executor
from benchbench.engine.resume import discard_resume, resume_path
from benchbench.engine.stacked import plan_units
from benchbench.engine.units import Unit, UnitDone, hosted, portable, replay
from benchbench.engine.verdicts import check_verifiers, suite_capabilities
from benchbench.errors import BenchbenchError, RunFault, SuiteError
from benchbench.report.write import write_report
from benchbench.store.lock import hold_run_dir
from benchbench.store.remeasure import archive_stale
from benchbench.store.results import open_store
from benchbench.store.rundir import claim_run_dir
from benchbench.store.versions import describe_stale, installed_versions, stale_cells
from benchbench.store.worst import is_worst
from benchbench.suite.cells import CellSpec
from benchbench.suite.load import Suite

ENGINES = ("auto", "sequential")


@dataclass
class RunSummary:
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0
    stale: list = field(default_factory=list)  # StaleCell: stored by other versions, kept
    remeasured: list[str] = field(default_factory=list)  # stale cells archived, measured again
    archive: Path | None = None  # where the remeasured (or --update's dropped) cells' numbers are
    dropped: list[str] = field(default_factory=list)  # --update: cells the suite no longer has


def machine_description() -> str:
    """OS, architecture, core count and CPU model (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}"


def commit_sha() -> str | None:
    """The git commit of the benchbench checkout, when it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def validate_suite(suite: Suite, registry) -> dict[str, dict]:
    """Build every dataset, regime, attack and model once, so bad values fail before any work.

    Returns each attack label's declared capabilities as the built attack states them
    (``attack_capabilities``: ``norm`` and ``iterative``, ``None`` where it declares none): the
    report's flags and the worst-case rows read them from the store, since a plugin's defaults
    are not in the spec.
    """
    def where(key: str, i: int, items: tuple) -> str:
        return key if len(items) == 1 and key != "attacks" else f"{key}[{i}]"

    caps: dict[str, dict] = {}
    for kind, key, ref in [("dataset", "dataset", suite.dataset)] + [
            ("regime", where("regime", i, suite.regimes), r)
            for i, r in enumerate(suite.regimes)] + [
            ("attack", where("attacks", i, suite.attacks), a)
            for i, a in enumerate(suite.attacks)]:
        try:
            built = build(registry, kind, ref.name, ref.params)
            if kind == "attack":
                caps[ref.label] = attack_capabilities(built)
        except Exception as exc:  # any plugin failure: the suite's problem, named
            raise _plugin_error(suite, key, ref.name, exc) from None
        if kind == "attack" and is_worst(ref.label):
            raise SuiteError(suite.path, f"{key}.label", f"{ref.label!r} is reserved for "
                             "the worst case over attacks; label the attack otherwise")
    dataset = build(registry, "dataset", suite.dataset.name, suite.dataset.params)
    for i, model in enumerate(suite.models):
        try:
            net = build_model(registry, model, 0, dataset)
        except Exception as exc:
            raise _plugin_error(suite, where("model", i, suite.models), model.name,
                                exc) from None
        if model.weights is not None:  # the file loads into it, every key matched
            from benchbench.models.weights import WeightsError, load_weights

            try:
                load_weights(net, model.weights, model_name=model.name)
            except WeightsError as exc:
                key = "zoo" if "zoo" in model.weights else "weights"
                raise SuiteError(suite.path, f"{where('model', i, suite.models)}.{key}",
                                 exc.problem) from None
    check_verifiers(suite, registry)  # a layer a verifier cannot bound: refused, named
    return caps


def _plugin_error(suite: Suite, key: str, plugin: str, exc: Exception) -> BenchbenchError:
    """A ``SuiteError`` on one line for ``exc``, raised while building ``plugin`` at ``key``.

    ``ValueError`` and ``TypeError`` are a plugin's way of saying a value is wrong: their
    message is the problem. Anything else is the plugin failing: named, with the error's type
    and the first line of its message (a C++ stack dump has many)."""
    if isinstance(exc, BenchbenchError):
        return exc
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else "no message"
    text = text if len(text) <= 300 else text[:300] + "..."
    if not isinstance(exc, ValueError | TypeError):
        text = f"plugin {plugin!r} raised {type(exc).__name__}: {text}"
    return SuiteError(suite.path, key, text)


def check_run_options(*, engine: str, retries: int) -> None:
    if engine not in ENGINES:
        raise BenchbenchError(f"--engine {engine!r} is not allowed; use one of "
                              f"{', '.join(ENGINES)}")
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 100:
        raise BenchbenchError(f"--retries must be a whole number from 0 to 100; got {retries!r}")


def run_suite(suite: Suite, *, registry, out_dir: Path, device: str = "auto",
              data_dir: Path | None = None, force: bool = False, events: Events | None = None,
              command: str = "", engine: str = "auto", executor: str = "inline",
              executor_options: dict | None = None, retries: int = 2,
              update: bool = False) -> RunSummary:
    """Run every cell of ``suite`` not yet stored under ``out_dir``; write the report.

    ``engine = "auto"`` trains cells that differ only in seed as one stacked model where the
    model plugin can stack; ``"sequential"`` trains every cell alone. ``executor`` names where
    the units run (a registered executor, built with ``executor_options``); a unit whose
    process dies is run again up to ``retries`` times. Only this process writes the store, one
    transaction per unit as it arrives; what runs where never changes a number.

    ``force`` archives and starts over a directory holding another version of the suite or a
    damaged store, and archives and measures again the cells that other versions of
    benchbench, torch or the plugins measured (kept, with a warning, without it).
    """
    check_run_options(engine=engine, retries=retries)
    events = events or Events()
    device = resolve_device(device)
    caps = validate_suite(suite, registry)
    runner = make_executor(registry, executor, executor_options or {})
    problem = None if getattr(runner, "in_process", False) else portable(registry.recipe)
    if problem:
        raise BenchbenchError(f"--executor {executor}: {problem}")
    out_dir = Path(out_dir)
    summary = RunSummary(out_dir)
    with hold_run_dir(out_dir, command=command):
        changed = claim_run_dir(out_dir, suite_name=suite.name, suite_hash=suite.hash,
                                force=force, log=events.log, update=update)
        with open_store(out_dir / "results.sqlite") as store:
            if changed:
                summary.dropped, summary.archive = archive_dropped(
                    store, out_dir, suite, old_hash=changed, log=events.log)
            todo = _todo(store, suite, registry, caps, summary, events, force=force)
            if todo:
                dataset = _dataset(suite, registry)
                events.log(f"data: {dataset.prepare(data_dir=data_dir, log=events.log)}")
                _run_units(store, todo, suite=suite, registry=registry, device=device,
                           data_dir=data_dir, out_dir=out_dir, engine=engine, runner=runner,
                           retries=retries, events=events, summary=summary, command=command)
            if not summary.failed:  # every cell stored: left-overs (of another grouping, say
                # a stack interrupted and then run with --engine sequential, or torn writes)
                shutil.rmtree(out_dir / "checkpoints" / "resume", ignore_errors=True)
            write_report(store, out_dir, stale=summary.stale)
    return summary


def archive_dropped(store, out_dir: Path, suite: Suite, *, old_hash: str,
                    log) -> tuple[list[str], Path | None]:
    """``run --update``: the store holds another version of the suite. Cells both versions
    have (the same id: the same training and measurements) stay; the stored cells and the
    checkpoints of cells this version no longer has are archived (``store.remeasure``) and
    leave the live store. The dropped cell ids and the archive (None: nothing dropped)."""
    from benchbench.store.remeasure import archive_cells

    keep = {c.cell_id for c in suite.cells()}
    stored = {row["cell_id"] for row in store.cells()}
    root = Path(out_dir) / "checkpoints"
    partial = {p.name for p in root.iterdir() if p.is_dir() and p.name != "resume"} \
        if root.is_dir() else set()
    dropped = sorted((stored | partial) - keep)
    kept = len(stored & keep)
    if not dropped:
        log(f"--update: suite {suite.name!r} changed (stored hash {old_hash}, now "
            f"{suite.hash}); all {kept} stored cell(s) are still in it")
        return [], None
    archive = archive_cells(store, out_dir, dropped,
                            why=f"run --update: suite {suite.name!r} changed from hash "
                                f"{old_hash} to {suite.hash}; {len(dropped)} cell(s) it no "
                                "longer has left the live store",
                            doing="updating the suite", instead="pass --out DIR")
    log(f"--update: suite {suite.name!r} changed (stored hash {old_hash}, now {suite.hash}): "
        f"kept {kept} stored cell(s); {len(dropped)} it no longer has "
        f"({len(stored - keep)} stored, {len(partial - stored - keep)} unfinished) moved to "
        f"{archive}")
    return dropped, archive


def _dataset(suite: Suite, registry):
    return build(registry, "dataset", suite.dataset.name, suite.dataset.params)


def _todo(store, suite: Suite, registry, caps: dict, summary: RunSummary,
          events: Events, *, force: bool = False) -> list[CellSpec]:
    """Record the suite in the store; the cells it does not hold yet (stale ones too, with
    ``force``), in suite order."""
    for run_id in store.mark_interrupted():  # killed (kill -9, power loss) while running
        events.log(f"run {run_id} ended without recording how (its process is gone): "
                   "marked interrupted")
    dataset = _dataset(suite, registry)
    store.set_meta(suite_name=suite.name, suite_hash=suite.hash, suite_toml=suite.text,
                   suite_path=suite.path, suite_description=suite.description,
                   # every cell of the suite: the report names those not finished yet
                   suite_cells=json.dumps([[c.cell_id, c.describe()] for c in suite.cells()]),
                   attack_norms=json.dumps({k: c["norm"] for k, c in caps.items()}),
                   attack_capabilities=json.dumps(caps, sort_keys=True),
                   verifier_capabilities=json.dumps(suite_capabilities(suite, registry),
                                                    sort_keys=True),
                   attack_params=json.dumps(suite_effective_params(suite.attacks, registry)),
                   num_classes=str(dataset.num_classes),
                   bounds=json.dumps(list(dataset.bounds)))
    _check_versions(store, registry=registry, run_dir=Path(store.path).parent, force=force,
                    summary=summary, events=events)
    done, cells = store.done_cells(), suite.cells()
    summary.skipped = [c.cell_id for c in cells if c.cell_id in done]
    return [c for c in cells if c.cell_id not in done]


def _check_versions(store, *, registry, run_dir: Path, force: bool, summary: RunSummary,
                    events: Events) -> None:
    """Warn about stored cells other versions measured; with ``force``, archive them and take
    them out of the store, so this run measures them again."""
    stale = stale_cells(store, installed=installed_versions(registry))
    if not stale:
        return
    line = describe_stale(stale, total=len(store.done_cells()))
    if not force:
        summary.stale = stale
        events.log(f"warning: {line}; their numbers may not be what the installed code "
                   "measures: pass --force to measure them again (the old numbers are archived)")
        return
    summary.archive = archive_stale(store, run_dir, stale)
    summary.remeasured = [cell.cell_id for cell in stale]
    events.log(f"{line}; --force: measuring them again (the numbers as stored are kept in "
               f"{summary.archive / 'results.sqlite'})")


def plan(todo: list[CellSpec], registry, *, engine: str, device: str, out_dir: Path,
         data_dir: Path | None, plugins: dict) -> list[Unit]:
    """The units to run: stacks of cells (``plan_units``), as plain data any process can run.
    Stacking is decided here, never by an executor, so every executor runs the same units."""
    stack, units, index = engine == "auto", [], 0
    for uid, cells in enumerate(plan_units(todo, registry, stack=engine == "auto")):
        units.append(Unit(uid=uid, cells=tuple(c.to_json() for c in cells), stack=stack,
                          index=index, total=len(todo), device=device,
                          checkpoint_dir=str(Path(out_dir).absolute() / "checkpoints"),
                          data_dir=str(Path(data_dir).absolute()) if data_dir else None,
                          plugins=plugins))
        index += len(cells)
    return units


def engine_lines(units: list[Unit], registry) -> list[str]:
    """One line per reason some of ``units``' cells train one by one, e.g. ``engine: 3 cell(s)
    one by one: model 'small_cnn' declares no stack (...)``; nothing when all stack."""
    from benchbench.engine.cell import memory_format
    from benchbench.engine.stacked import alone_because, can_stack

    why: dict[str, int] = {}
    for unit in units:
        specs = unit.specs
        if unit.stack and can_stack(registry, specs[0]):
            continue
        reason = alone_because(registry, specs[0], stack=unit.stack)
        if memory_format(registry, specs[0].model, unit.device) == "channels_last":
            reason += f"; model {specs[0].model.name!r} runs channels_last (declared)"
        why[reason] = why.get(reason, 0) + len(specs)
    return [f"engine: {n} cell(s) one by one: {reason}" for reason, n in why.items()]


def provenance(cell: CellSpec, *, run_id: int, suite: Suite, registry) -> dict:
    """What the store keeps with a cell besides its numbers (see ``store.results``)."""
    import torch

    return dict(run_id=run_id, spec=cell.to_json(), model=cell.model.label,
                regime=cell.regime.label, dataset=cell.dataset.name, seed=cell.seed,
                suite_hash=suite.hash, benchbench_version=__version__,
                torch_version=torch.__version__, plugins=plugin_versions(registry, cell))


def _run_units(store, todo: list[CellSpec], *, suite, registry, device, data_dir, out_dir,
               engine, runner, retries, events, summary, command) -> None:
    """Run ``todo`` on ``runner`` and store each unit as it comes back, under one run row."""
    import torch

    t0 = time.perf_counter()
    run_id = store.begin_run(
        started=now(), command=command, device=device, machine=machine_description(),
        benchbench_version=__version__, torch_version=torch.__version__,
        python_version=platform.python_version(), commit_sha=commit_sha() or "")
    status = "interrupted"
    try:
        with hosted(registry, DataCache(registry, data_dir)) as token:
            units = plan(todo, registry, engine=engine, device=device, out_dir=out_dir,
                         data_dir=data_dir, plugins={**registry.recipe, "token": token})
            by_uid = {u.uid: u for u in units}
            events.planned([(u.index, len(u.cells), u.stack) for u in units])
            for line in engine_lines(units, registry):
                events.log(line)
            for done in runner.run(units, emit=lambda p: replay(p, events), retries=retries):
                unit = by_uid.pop(done.uid)
                store_unit(store, unit, done, {c.cell_id: provenance(
                    c, run_id=run_id, suite=suite, registry=registry) for c in unit.specs},
                    device=device, summary=summary, events=events)
            if by_uid:  # an executor that lost units must not pass for a finished run
                raise BenchbenchError(f"executor {type(runner).__name__} returned no result for "
                                      f"{len(by_uid)} unit(s); rerun to go on")
        status = "failed" if summary.failed else "ok"
    finally:
        summary.wall_s = time.perf_counter() - t0
        store.finish_run(run_id, finished=now(), wall_s=summary.wall_s, status=status)


def store_unit(store, unit: Unit, done: UnitDone, info: dict[str, dict], *, device: str,
               summary: RunSummary, events: Events) -> None:
    """Store one unit's cells in one transaction: each its numbers, or failed with its error
    (the whole unit's, or a member's own: diverged, an attack raised on it; its stack-mates'
    numbers are kept). Then what an interrupted run saved to resume the unit is spent."""
    specs = unit.specs
    if done.fault is not None:  # a full disk, a link: the run stops, no cell fails for it
        raise RunFault(done.fault)
    if done.error is not None:
        for cell in specs:
            summary.failed[cell.cell_id] = done.error
            events.log(f"cell {cell.describe()} failed: {done.error}")
        store.add_cells([dict(cell_id=c.cell_id, records=[], status="failed", error=done.error,
                              device=device, finished=now(), **info[c.cell_id]) for c in specs])
    else:
        for o in done.outcomes:
            events.cell_finished(o.spec, o)
            if o.error:
                summary.failed[o.spec.cell_id] = o.error
                events.log(f"cell {o.spec.describe()} failed: {o.error}")
        store.add_cells([dict(
            cell_id=o.spec.cell_id, records=[] if o.error else o.records,
            status="failed" if o.error else "ok", error=o.error, dtype=o.dtype,
            device=o.device, started=o.started, finished=o.finished, wall_s=o.wall_s,
            engine=o.engine, **info[o.spec.cell_id]) for o in done.outcomes])
        summary.ran += [o.spec.cell_id for o in done.outcomes if not o.error]
    if done.keep_resume:  # stopped at its time limit: the next run trains on from there
        return
    # the unit trained as one stack, or cell by cell
    for cells in [specs, *([c] for c in specs if len(specs) > 1)]:
        discard_resume(resume_path(Path(unit.checkpoint_dir), cells))
