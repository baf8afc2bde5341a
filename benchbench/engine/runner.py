"""Running a whole suite into a run directory: validate, resume, store, report.

Layout of a run directory::

    results.sqlite      every number, with provenance (see benchbench.store.results)
    report.md           rendered from results.sqlite alone
    checkpoints/<cell_id>/epoch_0001.safetensors
    checkpoints/resume/<digest>.pt   an unfinished unit's state at its last checkpoint
    .benchbench-run     the mark of a directory benchbench made (benchbench.store.rundir)
    archive/<timestamp>/  what --force (or a damaged or missing store) moved aside
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
from benchbench.engine.cell import CellContext, Events, build_model, now, plugin_versions
from benchbench.engine.data import DataCache, build
from benchbench.engine.device import resolve_device
from benchbench.engine.files import write_atomic
from benchbench.engine.resume import discard_resume, resume_path
from benchbench.engine.stacked import plan_units, run_unit
from benchbench.errors import BenchbenchError, SuiteError
from benchbench.report.markdown import render_report
from benchbench.store.results import open_store
from benchbench.store.rundir import claim_run_dir
from benchbench.suite.load import Suite

ENGINES = ("auto", "sequential")


@dataclass
class RunSummary:
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0


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


def validate_suite(suite: Suite, registry) -> dict[str, str | None]:
    """Build every dataset, regime, attack and model once, so bad values fail before any work.

    Returns each attack label's norm as the built attack states it (``None`` if it names none):
    the report's flags read it from the store, since a plugin's default norm is not in the spec.
    """
    def where(key: str, i: int, items: tuple) -> str:
        return key if len(items) == 1 and key != "attacks" else f"{key}[{i}]"

    norms: dict[str, str | None] = {}
    for kind, key, ref in [("dataset", "dataset", suite.dataset)] + [
            ("regime", where("regime", i, suite.regimes), r)
            for i, r in enumerate(suite.regimes)] + [
            ("attack", where("attacks", i, suite.attacks), a)
            for i, a in enumerate(suite.attacks)]:
        try:
            built = build(registry, kind, ref.name, ref.params)
        except Exception as exc:  # any plugin failure: the suite's problem, named
            raise _plugin_error(suite, key, ref.name, exc) from None
        if kind == "attack":
            norms[ref.label] = getattr(built, "norm", None)
    dataset = build(registry, "dataset", suite.dataset.name, suite.dataset.params)
    for i, model in enumerate(suite.models):
        try:
            build_model(registry, model, 0, dataset)
        except Exception as exc:
            raise _plugin_error(suite, where("model", i, suite.models), model.name,
                                exc) from None
    return norms


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


def run_suite(suite: Suite, *, registry, out_dir: Path, device: str = "auto",
              data_dir: Path | None = None, force: bool = False, events: Events | None = None,
              command: str = "", engine: str = "auto") -> RunSummary:
    """Run every cell of ``suite`` not yet stored under ``out_dir``; write the report.

    ``engine = "auto"`` trains cells that differ only in seed as one stacked model where the
    model plugin can stack; ``"sequential"`` trains every cell alone.
    """
    import torch

    if engine not in ENGINES:
        raise BenchbenchError(f"--engine {engine!r} is not allowed; use one of "
                              f"{', '.join(ENGINES)}")
    events = events or Events()
    device = resolve_device(device)
    norms = validate_suite(suite, registry)
    claim_run_dir(Path(out_dir), suite_name=suite.name, suite_hash=suite.hash, force=force,
                  log=events.log)
    summary = RunSummary(Path(out_dir))
    cells = suite.cells()
    with open_store(Path(out_dir) / "results.sqlite") as store:
        for run_id in store.mark_interrupted():  # killed (kill -9, power loss) while running
            events.log(f"run {run_id} ended without recording how (its process is gone): "
                       "marked interrupted")
        store.set_meta(suite_name=suite.name, suite_hash=suite.hash, suite_toml=suite.text,
                       suite_path=suite.path, suite_description=suite.description,
                       attack_norms=json.dumps(norms))
        done = store.done_cells()
        todo = [c for c in cells if c.cell_id not in done]
        summary.skipped = [c.cell_id for c in cells if c.cell_id in done]
        dataset = build(registry, "dataset", suite.dataset.name, suite.dataset.params)
        store.set_meta(num_classes=str(dataset.num_classes),
                       bounds=json.dumps(list(dataset.bounds)))
        if todo:
            events.log(f"data: {dataset.prepare(data_dir=data_dir, log=events.log)}")
            t0 = time.perf_counter()
            run_id = store.begin_run(
                started=now(), command=command, device=device, machine=machine_description(),
                benchbench_version=__version__, torch_version=torch.__version__,
                python_version=platform.python_version(), commit_sha=commit_sha() or "")
            ctx = CellContext(registry, DataCache(registry, data_dir), device,
                              Path(out_dir) / "checkpoints", events)
            status = "interrupted"
            try:
                index = 0
                stack = engine == "auto"
                for unit in plan_units(todo, registry, stack=stack):
                    info = {c.cell_id: dict(
                        run_id=run_id, spec=c.to_json(), model=c.model.label,
                        regime=c.regime.label, dataset=c.dataset.name, seed=c.seed,
                        suite_hash=suite.hash, benchbench_version=__version__,
                        torch_version=torch.__version__, plugins=plugin_versions(registry, c))
                        for c in unit}
                    try:
                        outcomes = run_unit(unit, ctx, stack=stack, index=index,
                                            total=len(todo))
                    except Exception as exc:  # one broken unit must not lose the others
                        error = f"{type(exc).__name__}: {exc}"
                        for cell in unit:
                            summary.failed[cell.cell_id] = error
                            events.log(f"cell {cell.describe()} failed: {error}")
                        store.add_cells([dict(cell_id=c.cell_id, records=[], status="failed",
                                              error=error, device=device, finished=now(),
                                              **info[c.cell_id]) for c in unit])
                        continue
                    finally:
                        index += len(unit)
                    # a member that failed alone (diverged, or an attack raised on it) is
                    # stored as failed with its own error; its stack-mates' numbers are kept
                    for o in outcomes:
                        if o.error:
                            summary.failed[o.spec.cell_id] = o.error
                            events.log(f"cell {o.spec.describe()} failed: {o.error}")
                    store.add_cells([dict(
                        cell_id=o.spec.cell_id, records=[] if o.error else o.records,
                        status="failed" if o.error else "ok", error=o.error, dtype=o.dtype,
                        device=o.device, started=o.started, finished=o.finished,
                        wall_s=o.wall_s, engine=o.engine, **info[o.spec.cell_id])
                        for o in outcomes])
                    summary.ran += [o.spec.cell_id for o in outcomes if not o.error]
                    # stored: what an interrupted run saved to resume them is spent (the unit
                    # trained as one stack, or cell by cell)
                    for cells in [unit, *([c] for c in unit if len(unit) > 1)]:
                        discard_resume(resume_path(ctx.checkpoint_dir, cells))
                status = "failed" if summary.failed else "ok"
            finally:
                summary.wall_s = time.perf_counter() - t0
                store.finish_run(run_id, finished=now(), wall_s=summary.wall_s, status=status)
        if not summary.failed:  # every cell stored: left-overs (of another grouping, say a
            # stack interrupted and then run with --engine sequential, or torn writes) are spent
            shutil.rmtree(Path(out_dir) / "checkpoints" / "resume", ignore_errors=True)
        write_atomic(Path(out_dir) / "report.md", render_report(store))
    return summary

