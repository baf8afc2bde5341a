"""The ``benchbench zoo`` commands (their own module; registered by ``benchbench.cli``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add ``zoo list`` to ``app``."""
    zoo_app = typer.Typer(help="RobustBench checkpoints benchbench can evaluate.",
                          no_args_is_help=True)
    zoo_app.command("list")(zoo_list)
    app.add_typer(zoo_app, name="zoo")


def zoo_list(
    model_dir: Annotated[Path, typer.Option(
        help="RobustBench's model_dir: <dataset>/<threat_model>/<Name>.pt under it.")]
    = Path("models"),
    dataset: Annotated[str | None, typer.Option(help="Only cifar10 or cifar100.")] = None,
    threat_model: Annotated[str | None, typer.Option(help="Only Linf or L2.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List the RobustBench entries benchbench builds (their network, reported clean and
    AutoAttack accuracy) and whether each one's file is under --model-dir. A suite evaluates
    one with [model] zoo = "Name" and [regime] name = "pretrained"."""
    from benchbench.cli import fail
    from benchbench.errors import BenchbenchError
    from benchbench.zoo import list_rows, source

    try:
        rows = list_rows(model_dir, dataset=dataset, threat_model=threat_model)
    except BenchbenchError as exc:
        raise fail(exc) from None
    if json_:
        typer.echo(json.dumps({"source": source(), "model_dir": str(model_dir),
                               "entries": rows}, indent=2))
        return
    typer.echo(render_rows(rows, model_dir=model_dir, source=source()))


def _pct(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_rows(rows: list[dict], *, model_dir: Path, source: str) -> str:
    """The entries as an aligned table, then how many files are present and where the
    numbers come from."""
    head = ("name", "dataset", "threat", "network", "eps", "clean %", "AA %", "file")
    table = [head] + [(r["name"], r["dataset"], r["threat_model"], r["architecture"] or r["model"],
                       r["eps"] or "-", _pct(r["clean_acc"]), _pct(r["autoattack_acc"]),
                       "present" if r["present"] else "missing") for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    lines = ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in table]
    present = sum(r["present"] for r in rows)
    lines += ["", f"{present} of {len(rows)} file(s) present under {model_dir} "
                  "(<dataset>/<threat_model>/<Name>.pt); reported numbers: " + source,
              "get a missing file with RobustBench on a machine with a network "
              "(robustbench.utils.load_model(name, model_dir=..., dataset=..., threat_model=...)) "
              "and copy it here: benchbench downloads nothing"]
    return "\n".join(lines)
