"""The ``benchbench leaderboard`` command (its own module; registered by ``benchbench.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def leaderboard(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Run directories; none: re-render --out from its entries/*.json alone.")] = None,
    out: Annotated[Path, typer.Option(help="Directory to write (created when missing; an "
                                      "existing one must be empty or a board benchbench made).")]
    = ...,  # type: ignore[assignment]
    eps: Annotated[float | None, typer.Option(
        help="The eps to rank at. Default: the only one every run shares.")] = None,
    norm: Annotated[str | None, typer.Option(
        help="linf or l2. Default: the only norm every run shares.")] = None,
    checkpoint: Annotated[str, typer.Option(
        help="last: the final checkpoint; best: the checkpoint with the highest worst-case "
             "robust accuracy (mean over seeds; chosen on the test split, so optimistic).")]
    = "last",
    report_dir: Annotated[Path | None, typer.Option(
        help="Link each entry to REPORT_DIR/<suite name>.md. Default: RUN/report.md.")]
    = None,
    protocol: Annotated[str | None, typer.Option(
        help="Rank only the entries evaluated under this protocol, by its number "
             "(autoattack-standard: AutoAttack, version standard, on the whole test split). "
             "Default: every entry, by its worst case, in groups of the same attacks.")]
    = None,
) -> None:
    """Rank every (model, regime) of the runs by worst-case robust accuracy at one threat model.

    Writes one JSON entry per (model, regime) to OUT/entries/, then renders leaderboard.md,
    leaderboard.json, index.html (self-contained) and leaderboard.png from those files alone.
    Runs that differ in dataset, norm or eps are refused; entries evaluated with different
    attacks (or parameters) are ranked in separate groups, with a warning, unless --protocol
    picks the entries to rank.
    """
    from benchbench.cli import check_dir_option, fail
    from benchbench.errors import BenchbenchError
    from benchbench.leaderboard.build import build_leaderboard

    try:
        check_dir_option("--out", out)
        written = build_leaderboard(runs=list(runs or []), out=out, eps=eps, norm=norm,
                                    checkpoint=checkpoint, report_dir=report_dir,
                                    protocol=protocol,
                                    warn=lambda message: typer.echo(message, err=True))
    except BenchbenchError as exc:
        raise fail(exc) from None
    entries = sum(1 for path in written if path.parent.name == "entries")
    made = (f" and {entries} entr{'y' if entries == 1 else 'ies'} in" if entries else " from")
    typer.echo(f"wrote {out / 'index.html'}, leaderboard.md, leaderboard.json, leaderboard.png"
               f"{made} {out / 'entries'}")


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` to ``app``."""
    app.command("leaderboard")(leaderboard)
