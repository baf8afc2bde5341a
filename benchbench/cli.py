"""The ``benchbench`` command line: thin Typer commands over keyword-only core functions.

Nothing heavy is imported at module level, so ``benchbench --help`` never imports torch.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from benchbench.errors import BenchbenchError

app = typer.Typer(help="Benchmark attacks and training regimes on classifiers.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
data_app = typer.Typer(help="Manage datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def fail(exc: BenchbenchError) -> typer.Exit:
    """Print the error (with its fix) to stderr on one line; the Exit to raise."""
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(exc.exit_code)


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
        help="If the run directory holds another version of the suite, archive it and rerun.")]
    = False,
    engine: Annotated[str, typer.Option(
        help="auto: train a cell's seeds as one stacked model where the model can; "
             "sequential: every cell alone.")] = "auto",
) -> None:
    """Run a suite end to end: train, checkpoint, attack, store every number, write the report.

    Cells already stored in the run directory are skipped, so an interrupted run resumes (an
    unfinished cell from its last checkpoint).
    """
    from benchbench.cli_progress import RichEvents, print_summary
    from benchbench.engine.memory import keep_freed_memory
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    try:
        registry = _registry()
        spec = load_suite(suite, registry)
        run_dir = out or Path("runs") / spec.name
        keep_freed_memory()  # this process is ours: recycle freed blocks (engine/memory.py)
        with RichEvents() as events:
            summary = run_suite(spec, registry=registry, out_dir=run_dir, device=device,
                                data_dir=data_dir, force=force, events=events, engine=engine,
                                command=" ".join(["benchbench", *sys.argv[1:]]))
    except BenchbenchError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted: finished cells are stored in {run_dir}; run the same command "
                   "again to go on (unfinished cells resume from their last checkpoint)",
                   err=True)
        raise typer.Exit(130) from None
    print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


plugins_app = typer.Typer(help="List and check plugins.", invoke_without_command=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.callback()
def plugins(ctx: typer.Context,
            json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
            = False) -> None:
    """List every registered model, dataset, attack and regime, and where it comes from."""
    if ctx.invoked_subcommand is not None:
        return
    from benchbench.cli_progress import print_plugins

    try:
        print_plugins(_registry(), as_json=json_)
    except BenchbenchError as exc:
        raise fail(exc) from None


@plugins_app.command("check")
def plugins_check(
    name: Annotated[str, typer.Argument(help="A registered attack, e.g. fgsm.")],
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="A parameter as key=value (the value in TOML syntax); repeatable.")]
    = None,
) -> None:
    """Run the attack conformance checks (benchbench.testing) on a registered attack."""
    import tomllib

    from benchbench.cli_progress import print_checks
    from benchbench.testing import conformance

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
        checks = conformance(_registry().get("attack", name).obj, **params)
    except BenchbenchError as exc:
        raise fail(exc) from None
    print_checks(name, checks)
    if not all(c.passed for c in checks):
        raise typer.Exit(1)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    out: Annotated[Path | None, typer.Option(help="Where to write [default: DIR/report.md]")]
    = None,
) -> None:
    """Re-render the markdown report from the stored results alone."""
    from benchbench.engine.files import write_atomic
    from benchbench.report.markdown import render_report
    from benchbench.store.results import read_store

    try:
        with read_store(run_dir) as store:
            text = render_report(store)
    except BenchbenchError as exc:
        raise fail(exc) from None
    target = out or run_dir / "report.md"
    write_atomic(target, text)
    typer.echo(f"wrote {target}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    format: Annotated[str, typer.Option("--format", help="csv or json.")] = "csv",
    out: Annotated[Path | None, typer.Option(help="File to write [default: stdout]")] = None,
) -> None:
    """Export every stored number as tidy long-format rows (one per measurement)."""
    from benchbench.report.export import export_results
    from benchbench.store.results import read_store

    try:
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
        dataset = _registry().get("dataset", name).obj()
        source = dataset.prepare(data_dir=data_dir, log=lambda m: typer.echo(m, err=True))
    except BenchbenchError as exc:
        raise fail(exc) from None
    typer.echo(f"{name}: ready ({source})")


def main() -> None:
    app()
