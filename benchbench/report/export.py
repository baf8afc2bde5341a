"""Exporting stored results as tidy long-format rows (CSV or JSON), keeping everything.

Every row carries, beside the tidy columns and the cell's provenance, what its labels stand for,
read from the cell's stored spec and JSON-encoded (keys sorted) so one column holds one value:
``model_name``/``model_params``, ``regime_name``/``regime_params``, ``dataset_params`` (its
``train``/``test`` splits and parameters) and, for attack rows, ``attack_name``/
``attack_params`` and ``attack_rows`` (how many test rows it ran on; empty: all). Clean and
worst-case rows have no attack of their own: their attack columns are empty.

Floats keep full precision: CSV and JSON both write the shortest text that reads back as the
same double (JSON through :mod:`json`, not pandas, which rounds to 10 digits; NaN becomes null).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchbench.errors import BenchbenchError
from benchbench.store.results import ResultsStore

FORMATS = ("csv", "json")
SPEC_COLUMNS = ("model_name", "model_params", "regime_name", "regime_params", "dataset_params",
                "attack_name", "attack_params", "attack_rows")


def _encode(value) -> str:
    return json.dumps(value, sort_keys=True)


def spec_columns(cells: list[dict]) -> tuple[dict[str, dict], dict[tuple[str, str], dict]]:
    """From ``ResultsStore.cells()``: cell id -> its model/regime/dataset columns, and
    (cell id, attack label) -> that attack's columns."""
    per_cell: dict[str, dict] = {}
    per_attack: dict[tuple[str, str], dict] = {}
    for cell in cells:
        try:
            spec = json.loads(cell["spec"] or "{}")
        except json.JSONDecodeError:
            spec = {}
        model, regime = spec.get("model", {}), spec.get("regime", {})
        dataset = spec.get("dataset", {})
        per_cell[cell["cell_id"]] = {
            "model_name": model.get("name"), "model_params": _encode(model.get("params", {})),
            "regime_name": regime.get("name"),
            "regime_params": _encode(regime.get("params", {})),
            "dataset_params": _encode({"train": dataset.get("train"),
                                       "test": dataset.get("test"),
                                       **dataset.get("params", {})})}
        for attack in spec.get("attacks", []):
            per_attack[(cell["cell_id"], attack.get("label"))] = {
                "attack_name": attack.get("name"),
                "attack_params": _encode(attack.get("params", {})),
                "attack_rows": attack.get("rows")}
    return per_cell, per_attack


def full_rows(store: ResultsStore):
    """The tidy rows with their provenance and ``SPEC_COLUMNS``, as a DataFrame."""
    import pandas as pd

    tidy = store.tidy()
    per_cell, per_attack = spec_columns(store.cells())
    empty = dict.fromkeys(SPEC_COLUMNS)
    extra = [{**empty, **per_cell.get(cell_id, {}), **per_attack.get((cell_id, attack), {})}
             for cell_id, attack in zip(tidy["cell_id"], tidy["attack"], strict=True)]
    extra_frame = pd.DataFrame(extra, columns=list(SPEC_COLUMNS), index=tidy.index)
    extra_frame["attack_rows"] = extra_frame["attack_rows"].astype("Int64")
    return pd.concat([tidy, extra_frame], axis=1)


def json_records(frame) -> list[dict]:
    """``frame``'s rows as dicts of plain values for :mod:`json` (NaN and NA as ``None``)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def to_json_text(frame) -> str:
    """Records as JSON with every float's shortest round-trip repr; NaN and NA as null."""
    return json.dumps(json_records(frame), indent=1, allow_nan=False) + "\n"


def export_results(store: ResultsStore, *, fmt: str, out: Path | None = None) -> str:
    """The tidy rows in ``fmt``; written to ``out`` when given. Returns the text."""
    if fmt not in FORMATS:
        raise BenchbenchError(f"--format {fmt!r} is not allowed; use one of {', '.join(FORMATS)}")
    frame = full_rows(store)
    text = frame.to_csv(index=False) if fmt == "csv" else to_json_text(frame)
    if out is not None:
        from benchbench.engine.files import write_atomic

        write_atomic(Path(out), text)
    return text
