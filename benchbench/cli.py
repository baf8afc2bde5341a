"""The ``benchbench`` command line: thin Typer commands over keyword-only core functions.

Nothing heavy is imported at module level, so ``benchbench --help`` never imports torch.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from benchbench.errors import BenchbenchError, one_line

try:  # typer carries its own click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import ClickException


class OneLineErrors(TyperGroup):
    """Usage errors (an unknown option, a missing argument, a bad value) print one line,
    ``error: benchbench run: No such option: --bogus ...``, and exit 2, like every other error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help, already shown: not an error
                text = exc.format_message()  # (empty when rich printed it)
                if text:
                    typer.echo(text)
                rv = exc.exit_code
            else:
                ctx = getattr(exc, "ctx", None)
                where = f"{ctx.command_path}: " if ctx is not None else ""
                hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
                typer.echo(one_line(f"error: {where}{exc.format_message()}{hint}"), err=True)
                rv = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            rv = 1
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(help="Benchmark attacks and training regimes on classifiers.", cls=OneLineErrors,
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Manage datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _show_version(value: bool) -> None:
    if value:
        from benchbench.cli_info import version_text

        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool | None, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Show benchbench's version (and torch's, the plugins') and exit.")] = None) -> None:
    """Benchmark attacks and training regimes on classifiers."""


def fail(exc: BenchbenchError) -> typer.Exit:
    """Print the error (with its fix) to stderr on one line; the Exit to raise."""
    typer.echo(one_line(f"error: {exc}"), err=True)
    return typer.Exit(exc.exit_code)


def check_dir_option(flag: str, path: Path | None) -> None:
    """Refuse a directory option that names a file, or a path under a file (before any work)."""
    if path is None:
        return
    for existing in (path, *path.parents):
        if os.path.exists(existing):  # (False, not an exception, where a parent is unreadable)
            if not os.path.isdir(existing):
                what = "is a file" if existing == path else f"is under {existing}, a file"
                raise BenchbenchError(f"{flag} {path}: {what}; pass a directory (it is created "
                                      "when missing)")
            return


def _registry():
    from benchbench.plugins import load_registry

    return load_registry()


@app.command()
def run(
    suite: Annotated[Path, typer.Argument(help="Suite file (TOML).")],
    out: Annotated[Path | None, typer.Option(help="Run directory [default: runs/<suite name>]")]
    = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    data_dir: Annotated[Path | None, typer.Option(
        help="Dataset cache [default: $BENCHBENCH_DATA or ~/.cache/benchbench].")] = None,
    force: Annotated[bool, typer.Option(
        help="Archive and redo what is not this suite measured by the installed code: the "
             "whole directory if it holds another version of the suite (or a damaged store), "
             "else the cells other versions of benchbench, torch or a plugin measured.")]
    = False,
    update: Annotated[bool, typer.Option(
        help="The suite file changed since this directory's last run: keep the stored cells "
             "both versions have (same training and measurements), archive the ones it no "
             "longer has, and run what is new.")] = False,
    engine: Annotated[str, typer.Option(
        help="auto: train a cell's seeds as one stacked model where the model can; "
             "sequential: every cell alone.")] = "auto",
    executor: Annotated[str | None, typer.Option(
        help="Where cells run: inline (this process), local (a process pool here, see "
             "--workers), ray (Ray tasks, locally or on a cluster) or a plugin's executor "
             "[default: inline, or local with --workers].")] = None,
    workers: Annotated[int | None, typer.Option(
        help="local: worker processes [default: one per core]; implies --executor local.")]
    = None,
    ray_address: Annotated[str | None, typer.Option(
        help="ray: the cluster to join (auto: the one this node is in) [default: start a "
             "local Ray instance].")] = None,
    cpus_per_unit: Annotated[float | None, typer.Option(
        help="ray: CPUs each unit asks for (torch's threads in it) [default: 1].")] = None,
    gpus_per_unit: Annotated[float | None, typer.Option(
        help="ray: GPUs each unit asks for [default: 1 with --device cuda, else 0].")] = None,
    retries: Annotated[int, typer.Option(
        help="Times a unit whose worker process dies is run again (it resumes from its last "
             "checkpoint) before it is stored as failed.")] = 2,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress: only warnings, errors and the final lines.")]
    = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Plain progress lines for every epoch and evaluation step "
                                "(also on a terminal).")] = False,
    tensorboard: Annotated[Path | None, typer.Option(
        help="Also log every stored number to TensorBoard event files under DIR, one run per "
             "cell (needs benchbench[tensorboard]).", metavar="DIR")] = None,
    mlflow: Annotated[str | None, typer.Option(
        help="Also log each cell as an MLflow run (params and metrics) to this tracking URI: a "
             "directory or file: URI for a local file store, or a server (needs "
             "benchbench[mlflow]).", metavar="URI")] = None,
) -> None:
    """Run a suite end to end: train, checkpoint, attack, store every number, write the report.

    Cells already stored in the run directory are skipped, so an interrupted run resumes (an
    unfinished cell from its last checkpoint).
    """
    from benchbench.cli_progress import Tee, make_events
    from benchbench.cli_tables import print_summary
    from benchbench.engine.memory import keep_freed_memory
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite
    from benchbench.tracking import check_extras, make_trackers

    run_dir: Path | None = None  # known once the suite is read
    try:
        terminate_as_interrupt()  # kill, Slurm's preemption: as Ctrl-C, state kept
        check_dir_option("--data-dir", data_dir)
        check_dir_option("--tensorboard", tensorboard)
        check_extras(tensorboard=tensorboard, mlflow=mlflow, quiet=quiet, verbose=verbose)
        registry = _registry()
        spec = load_suite(suite, registry)
        run_dir = out or Path("runs") / spec.name
        trackers = make_trackers(tensorboard=tensorboard, mlflow=mlflow, suite=spec.name,
                                 run_dir=run_dir)
        keep_freed_memory()  # this process is ours: recycle freed blocks (engine/memory.py)
        with make_events(quiet=quiet, verbose=verbose) as display:
            events = Tee(display, *trackers) if trackers else display
            summary = run_suite(
                spec, registry=registry, out_dir=run_dir, device=device, data_dir=data_dir,
                force=force, update=update, events=events, engine=engine, retries=retries,
                executor=executor or ("local" if workers is not None else "inline"),
                executor_options=dict(workers=workers, address=ray_address,
                                      cpus_per_unit=cpus_per_unit, gpus_per_unit=gpus_per_unit),
                command=" ".join(["benchbench", *sys.argv[1:]]))
    except BenchbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        if run_dir is None:
            typer.echo(f"{how} before the run started: nothing was written", err=True)
        else:
            typer.echo(f"{how}: finished cells are stored in {run_dir}; run the same command "
                       "again to go on (unfinished cells resume from their last checkpoint)",
                       err=True)
        raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
    print_summary(summary, tables=not quiet)
    if summary.stale:
        from benchbench.store.versions import describe_stale

        typer.echo(one_line(f"warning: {describe_stale(summary.stale)}; pass --force to measure "
                            "them again (the old numbers are archived)"), err=True)
    if summary.failed:
        raise typer.Exit(1)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main process is, so a run stops as on Ctrl-C: the unit in
    hand stops at once, finished cells stay stored, the run row says interrupted, and the next
    run resumes from the last checkpoint."""


def _terminated(signum, frame) -> None:
    raise Terminated


def terminate_as_interrupt() -> None:
    """Take SIGTERM as an interrupt in this (main) process; worker processes keep the default."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)


plugins_app = typer.Typer(help="List and check plugins.", invoke_without_command=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.callback()
def plugins(ctx: typer.Context,
            json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
            = False) -> None:
    """List every registered model, dataset, attack and regime, and where it comes from."""
    if ctx.invoked_subcommand is not None:
        return
    from benchbench.cli_tables import print_plugins

    try:
        print_plugins(_registry(), as_json=json_)
    except BenchbenchError as exc:
        raise fail(exc) from None


@plugins_app.command("show")
def plugins_show(
    name: Annotated[str, typer.Argument(help="A registered name, e.g. pgd or trades.")],
    kind: Annotated[str | None, typer.Option(help="model, dataset, attack, regime, executor or "
                                                  "verifier [default: every kind with this "
                                                  "name]")]
    = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one plugin: its kind, source, summary, every suite key (type, default and
    documentation) and what it declares."""
    from benchbench.cli_info import find, plugin_info, render_info

    try:
        registry = _registry()
        infos = [plugin_info(registry, entry) for entry in find(registry, name, kind)]
    except BenchbenchError as exc:
        raise fail(exc) from None
    if json_:
        typer.echo(json.dumps({"plugins": infos}, indent=2, default=str))
    else:
        typer.echo("\n\n".join(render_info(info) for info in infos))


@plugins_app.command("check")
def plugins_check(
    name: Annotated[str, typer.Argument(help="A registered attack, regime or model, e.g. "
                                              "fgsm.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="A parameter as key=value (the value in TOML syntax); repeatable.")]
    = None,
    kind: Annotated[str | None, typer.Option(
        help="attack, regime or model, where a name is registered as several")] = None,
) -> None:
    """Run the conformance checks of the plugin's kind (benchbench.testing: the attack, regime
    and model kits) on a registered plugin."""
    import tomllib

    from benchbench.cli_info import run_checks
    from benchbench.cli_tables import print_checks

    try:
        params = {}
        for item in param or []:
            key, sep, value = item.partition("=")
            try:
                parsed = tomllib.loads(f"{key.strip()} = {value}") if sep else None
            except tomllib.TOMLDecodeError:
                parsed = None
            if parsed is None:
                raise BenchbenchError(f"--param {item!r}: write key=value with a TOML value, "
                                      "e.g. --param steps=10 or --param \"loss='margin'\"")
            params.update(parsed)
        entry, checks = run_checks(_registry(), name, kind=kind, params=params)
    except BenchbenchError as exc:
        raise fail(exc) from None
    print_checks(name, checks, kind=entry.kind)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command()
def validate(
    suite: Annotated[Path, typer.Argument(help="Suite file (TOML).")],
    out: Annotated[Path | None, typer.Option(
        help="The run directory to plan for [default: runs/<suite name>]")] = None,
    engine: Annotated[str, typer.Option(help="auto or sequential, as for run.")] = "auto",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    executor: Annotated[str | None, typer.Option(
        help="As for run [default: inline, or local with --workers].")] = None,
    workers: Annotated[int | None, typer.Option(help="As for run.")] = None,
) -> None:
    """Check a suite as run does before it starts (every key, every plugin built once, the
    options) and show the plan: the units of cells it would run, each with its engine
    (stacked xN, sequential or self-driven). Nothing is written."""
    from benchbench.cli_info import render_plan
    from benchbench.cli_info import validate as plan_suite

    try:
        plan = plan_suite(suite, registry=_registry(), out=out, engine=engine, device=device,
                          executor=executor or ("local" if workers is not None else "inline"),
                          executor_options=dict(workers=workers))
    except BenchbenchError as exc:
        raise fail(exc) from None
    typer.echo(render_plan(plan))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out: Annotated[Path | None, typer.Option(help="Where to write [default: DIR/report.md]")]
    = None,
) -> None:
    """Re-render the markdown report and its figures (figures/<suite>/*.png beside it) from
    the stored results alone."""
    from benchbench.report.write import write_report
    from benchbench.store.results import read_store
    from benchbench.store.versions import describe_stale, stale_cells

    try:
        with read_store(run_dir) as store:
            stale = stale_cells(store)
            target = write_report(store, run_dir, out=out, stale=stale)
            total = len(store.done_cells())
    except BenchbenchError as exc:
        raise fail(exc) from None
    typer.echo(f"wrote {target}")
    if stale:  # the numbers are what the stored versions measured: say so, as run does
        typer.echo(one_line(f"warning: {describe_stale(stale, total=total)}; pass --force to "
                            f"benchbench run to measure them again"), err=True)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    format: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write [default: stdout]")] = None,
) -> None:
    """Export every stored number as tidy long-format rows (one per measurement)."""
    from benchbench.report.export import FORMATS, export_results
    from benchbench.store.results import read_store

    try:
        if format not in FORMATS:  # before the store is read: the flag is what is wrong
            raise BenchbenchError(f"--format {format!r} is not allowed; use one of "
                                  f"{', '.join(FORMATS)}")
        with read_store(run_dir) as store:
            text = export_results(store, fmt=format, out=out)
    except BenchbenchError as exc:
        raise fail(exc) from None
    if out is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {out}", err=True)


@data_app.command("fetch")
def data_fetch(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. mnist.")],
    data_dir: Annotated[Path | None, typer.Option(
        help="Dataset cache [default: $BENCHBENCH_DATA or ~/.cache/benchbench].")] = None,
) -> None:
    """Materialise a dataset ahead of time (downloads or converts it into the cache)."""
    try:
        check_dir_option("--data-dir", data_dir)
        dataset = _registry().get("dataset", name).obj()
        source = dataset.prepare(data_dir=data_dir, log=lambda m: typer.echo(m, err=True))
    except BenchbenchError as exc:
        raise fail(exc) from None
    typer.echo(f"{name}: ready ({source})")


def _add_command_modules() -> None:
    """Commands kept in their own small modules (each imports nothing heavy at module level)."""
    from benchbench import cli_compare, cli_leaderboard, cli_zoo

    for module in (cli_compare, cli_leaderboard, cli_zoo):
        module.register(app)


_add_command_modules()


def main() -> None:
    app()
