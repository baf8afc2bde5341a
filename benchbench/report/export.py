"""Exporting stored results as tidy long-format rows (CSV or JSON)."""

from __future__ import annotations

from pathlib import Path

from benchbench.errors import BenchbenchError
from benchbench.store.results import ResultsStore

FORMATS = ("csv", "json")


def export_results(store: ResultsStore, *, fmt: str, out: Path | None = None) -> str:
    """The tidy rows in ``fmt``; written to ``out`` when given. Returns the text."""
    if fmt not in FORMATS:
        raise BenchbenchError(f"--format {fmt!r} is not allowed; use one of {', '.join(FORMATS)}")
    tidy = store.tidy()
    text = tidy.to_csv(index=False) if fmt == "csv" else tidy.to_json(orient="records", indent=1)
    if out is not None:
        from benchbench.engine.files import write_atomic

        write_atomic(Path(out), text)
    return text
