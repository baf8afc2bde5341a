"""Rendering a ``Comparison`` (``benchbench.report.compare``): a plain table for an
80-column terminal, Markdown for papers, CSV and JSON with full precision.

Every format states the sign convention: B - A. Text and Markdown show accuracies and fractions
in percent (differences in percentage points); CSV and JSON keep the stored fractions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pandas as pd

from benchbench.report.compare import ROW_COLUMNS, CompareError, Comparison
from benchbench.report.export import json_records
from benchbench.report.tables import SHORT, is_percent

FORMATS = ("text", "md", "csv", "json")


def header(c: Comparison) -> list[str]:
    """The sign convention, the statistics and the notes, one paragraph per item."""
    level = f"{c.confidence * 100:g}%"
    return [f"B - A, where B = {c.b} and A = {c.a}.",
            f"Mean over seeds with the {level} confidence interval of the difference: "
            + ("Welch's t interval (--unpaired)" if not c.paired else "a paired t interval "
               "where both sides have the same seeds, Welch's otherwise") + "; * marks an "
            "interval that excludes 0 (no correction for multiple comparisons). Accuracies and "
            "fractions in percent, their differences in percentage points.",
            *(f"Note: {n}." for n in c.notes)]


def _measure(row: dict) -> str:
    split, attack, eps, metric = (row.get(k) for k in ("split", "attack", "eps", "metric"))
    if attack == "none":
        return " ".join(b for b in (split, SHORT.get(metric, metric)) if b)
    bits = [attack] if attack else []
    bits += [f"ε={eps:g}"] if eps is not None else []
    bits += [f"({split})"] if split not in (None, "test") else []
    bits += [] if metric == "accuracy" else [metric]
    return " ".join(bits)


def _cells(row: dict, on: Sequence[str]) -> list[str]:
    """Display strings: A, B, B-A, CI, p, test, significance."""
    scale, digits = (100.0, 2) if is_percent(row["metric"]) else (1.0, 4)
    have_ci = not math.isnan(row["ci_low"])
    p = row["p_value"]
    return [f"{row['mean_a'] * scale:.{digits}f}", f"{row['mean_b'] * scale:.{digits}f}",
            f"{row['b_minus_a'] * scale:+.{digits}f}",
            f"[{row['ci_low'] * scale:+.{digits}f}, {row['ci_high'] * scale:+.{digits}f}]"
            if have_ci else "n/a",
            "n/a" if math.isnan(p) else "<0.001" if p < 0.001 else f"{p:.3f}",
            "paired" if row["test"] == "paired" else "Welch",
            {True: "*", False: "", None: "?"}[row["significant"]]]


def _columns(c: Comparison) -> list[str]:
    return [f"{c.confidence * 100:g}% CI" if h == "CI" else h
            for h in ("A", "B", "B-A", "CI", "p", "test", "")]


def render_text(c: Comparison) -> str:
    """A plain table grouped by cell, for an 80-column terminal (``?``: too few seeds)."""
    import textwrap

    out = ["B - A, where", f"  A = {c.a}", f"  B = {c.b}", ""]  # paths unbroken
    out += [line for para in header(c)[1:] for line in (
        *textwrap.wrap(para, 80, break_on_hyphens=False), "")]
    cell_keys = [k for k in ("model", "regime", "dataset") if k in c.on]
    epoch = ["ep"] if "epoch" in c.on else []
    records = c.rows.to_dict("records")
    body = [([str(r["epoch"])] if epoch else []) + [_measure(r)] + _cells(r, c.on)
            for r in records]
    head = [*epoch, "measure", *_columns(c)]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    left = len(epoch) + 1  # the measure column and those before it are left-aligned

    def line(cells: list[str]) -> str:
        return " ".join(x.ljust(w) if i == left - 1 else x.rjust(w)
                        for i, (x, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    last = None
    for record, cells in zip(records, body, strict=True):
        group = tuple(str(record[k]) for k in cell_keys)
        if group != last:
            seeds = (f"seeds A {record['seeds_a']}; B {record['seeds_b']}")
            out += ([""] if last is not None else []) + [" · ".join([*group, seeds]),
                                                         line(head)]
            last = group
        out.append(line(cells))
    if any(r["significant"] is None for r in records):
        out += ["", "?: no interval (a side has fewer than 2 seeds)."]
    return "\n".join(out) + "\n"


def render_markdown(c: Comparison) -> str:
    """One Markdown table (the header as a paragraph), for pasting into a paper or README."""
    cell_keys = [k for k in ("model", "regime", "dataset", "epoch") if k in c.on]
    head = [*cell_keys, "measure", "seeds A", "seeds B", *_columns(c)[:-1], "significant"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in c.rows.to_dict("records"):
        cells = _cells(r, c.on)
        cells[-1] = {True: "yes", False: "no", None: "n/a"}[r["significant"]]
        lines.append("| " + " | ".join([*(str(r[k]) for k in cell_keys), _measure(r),
                                        r["seeds_a"], r["seeds_b"], *cells]) + " |")
    return "\n\n".join(header(c)) + "\n\n" + "\n".join(lines) + "\n"


def comparison_frame(c: Comparison) -> pd.DataFrame:
    """The rows with full precision and the sides named (``a``, ``b``, ``confidence``)."""
    return c.rows.assign(a=c.a, b=c.b, confidence=c.confidence)[
        ["a", "b", *c.on, *ROW_COLUMNS, "confidence"]]


def render(c: Comparison, *, fmt: str) -> str:
    """``c`` as ``text``, ``md``, ``csv`` or ``json`` (csv and json: fractions, full
    precision, B - A in ``b_minus_a``)."""
    if fmt == "text":
        return render_text(c)
    if fmt == "md":
        return render_markdown(c)
    if fmt == "csv":
        return comparison_frame(c).to_csv(index=False)
    if fmt == "json":
        return json.dumps({"convention": "b_minus_a = mean(B) - mean(A)", "a": c.a, "b": c.b,
                           "confidence": c.confidence, "notes": list(c.notes),
                           "rows": json_records(c.rows)},
                          indent=1, allow_nan=False) + "\n"
    raise CompareError(f"--format {fmt!r} is not allowed; use one of {', '.join(FORMATS)}")
