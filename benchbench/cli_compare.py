"""The ``benchbench compare`` command (its own module; registered by ``benchbench.cli``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``compare`` to ``app``."""
    app.command("compare")(compare)


def compare(
    runs: Annotated[list[Path], typer.Argument(
        help="RUN_A RUN_B (two run directories), or one run directory with --a/--b "
             "choosing its cells.")],
    a: Annotated[list[str] | None, typer.Option(
        "--a", "-a", help="Side A's cells as key=value (model, regime, epoch, split, attack, "
                          "eps); repeatable.")] = None,
    b: Annotated[list[str] | None, typer.Option(
        "--b", "-b", help="Side B's cells, the same keys as --a.")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        help="Only this metric (accuracy, loss, zero_grad_frac, ...); repeatable "
             "(default: all).")] = None,
    epoch: Annotated[list[str] | None, typer.Option(
        help="Only this checkpoint epoch, or 'last' (the last both sides hold); repeatable "
             "(default: all).")] = None,
    confidence: Annotated[float, typer.Option(help="Confidence level of the intervals.")]
    = 0.95,
    unpaired: Annotated[bool, typer.Option(
        "--unpaired", help="Welch's interval even where both sides have the same seeds (when "
                           "a seed does not tie A's and B's randomness together).")] = False,
    format: Annotated[str, typer.Option(
        "--format", help="text (80 columns), md, csv or json.")] = "text",
    out: Annotated[Path | None, typer.Option(help="File to write (default: stdout).")] = None,
) -> None:
    """B minus A for every measurement both sides hold, with a confidence interval over seeds.

    Paired t by seed where both sides have the same seeds, Welch's t otherwise.

    A difference is marked significant (*) when its interval excludes 0.

    Runs on different data or threat models are refused.

    Example: benchbench compare runs/x --a regime=standard --b regime=trades --epoch last
    """
    from benchbench.cli import fail
    from benchbench.errors import BenchbenchError

    try:
        text = compare_runs(runs=runs, a=a or [], b=b or [], metrics=metric or [],
                            epochs=epoch or [], confidence=confidence, pair=not unpaired,
                            fmt=format)
        if out is not None:
            from benchbench.engine.files import write_atomic

            write_atomic(out, text)
    except BenchbenchError as exc:
        raise fail(exc) from None
    if out is None:
        sys.stdout.write(text)
    else:
        typer.echo(f"wrote {out}", err=True)


def compare_runs(*, runs: list[Path], a: list[str], b: list[str], metrics: list[str],
                 epochs: list[str], confidence: float, fmt: str, pair: bool = True) -> str:
    """Read the run directories and render their comparison (``report.compare``)."""
    from benchbench.report.compare import CompareError, compare, parse_selection, run_facts
    from benchbench.report.compare_render import FORMATS, render
    from benchbench.store.results import read_store

    if fmt not in FORMATS:  # before any store is read: the flag is what is wrong
        raise CompareError(f"--format {fmt!r} is not allowed; use one of {', '.join(FORMATS)}")
    if not 1 <= len(runs) <= 2:
        raise CompareError(f"compare takes one or two run directories; got {len(runs)}")
    a_where, b_where = parse_selection(a, flag="--a"), parse_selection(b, flag="--b")
    sides = []
    for run in runs:
        with read_store(run) as store:
            sides.append((store.tidy(), run_facts(meta=store.meta(), cells=store.cells())))
    (a_tidy, a_facts), (b_tidy, b_facts) = sides[0], sides[-1]
    result = compare(a=a_tidy, b=b_tidy, a_run=str(runs[0]),
                     b_run=str(runs[1]) if len(runs) == 2 else None, a_where=a_where,
                     b_where=b_where, a_facts=a_facts, b_facts=b_facts, metrics=metrics,
                     epochs=epochs, confidence=confidence, pair=pair)
    return render(result, fmt=fmt)
