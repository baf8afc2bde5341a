"""What every stored number must satisfy, checked where numbers come from outside the harness.

A results store or a resume file may have been edited, or written by something else: before
benchbench uses either, it checks what the definitions imply, and refuses (one line, naming the
row) what breaks it:

- every number is finite; every eps >= 0; every epoch a whole number >= 0;
- accuracies and fractions (``accuracy``, ``*_accuracy``, ``*_frac``) lie in [0, 1]; a clean
  cross-entropy ``loss`` is >= 0; times (``wall_s``, a resume file's ``elapsed_s``) are >= 0;
- where per-example bits are stored (``benchbench.store.examples``), an accuracy is exactly
  their count over their number (the same two integers the harness divided);
- a worst case (``worst_<norm>``) is at most each attack of its norm at the same checkpoint,
  split and eps that saw as many examples (an example counts as robust only if every attack left
  it correct);
- where verdicts are stored (``benchbench.store.verdicts``): no example is both proved robust
  and refuted; a verifier's accuracy and unknown count, and every ``certified_<norm>`` and
  ``exact_<norm>`` row, are what the verdicts give; certified <= exact <= worst case, and
  certified <= exact <= clean, over the same examples.

Not implied, so not checked: an attack's accuracy below the clean one (the harness counts an
input as robust when the model classifies the attack's input correctly, which it may do for an
input it got wrong clean).
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable

from benchbench.store import verdict_checks
from benchbench.store.examples import CORRECT, count, decode
from benchbench.store.verdicts import VERDICTS, decode_codes
from benchbench.store.worst import PREFIX, is_worst, worst_norm

FIT = "fit"


def is_fraction(metric: str) -> bool:
    return metric == "accuracy" or metric.endswith(("_accuracy", "_frac"))


def _where(epoch, split, attack, eps, metric) -> str:
    what = metric if attack == "none" else f"{attack} eps={eps:g} {metric}"
    return f"epoch {epoch}, {split} {what}"


def _is_real(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_problem(epoch, split, attack, eps, metric, value) -> str | None:
    """What is wrong with one stored number, or None."""
    if not (_is_real(epoch) and int(epoch) == epoch and epoch >= 0):
        return f"epoch {epoch!r} is not a whole number >= 0"
    if not (_is_real(eps) and math.isfinite(eps) and eps >= 0):
        return f"epoch {epoch}, {split} {attack}: eps {eps!r} is not a finite number >= 0"
    where = _where(epoch, split, attack, eps, metric)
    if metric == CORRECT:
        try:
            decode(value)
        except (ValueError, TypeError):
            return f"{where}: not packed per-example bits"
        return None
    if metric == VERDICTS:
        try:
            decode_codes(value)
        except (ValueError, TypeError):
            return f"{where}: not packed per-example verdicts"
        return None
    if not _is_real(value) or not math.isfinite(value):
        return f"{where} is {value!r}, not a finite number"
    if is_fraction(metric) and not 0.0 <= value <= 1.0:
        return f"{where} is {value!r}, outside [0, 1]"
    if metric == "loss" and attack == "none" and split != FIT and value < 0:
        return f"{where} is {value!r}: a cross-entropy is >= 0"
    if metric == "best_epoch" and value < 0:
        return f"{where} is {value!r}: an epoch is >= 0"
    return None


def bits_problem(where: str, value: float, n: int, packed: bytes) -> str | None:
    """An accuracy that is not its stored bits' count over their number."""
    if n <= 0 or len(packed) != (n + 7) // 8:
        return f"{where}: its per-example bits are malformed"
    if value != count(packed) / n:
        return (f"{where} is {value!r}, but its stored per-example bits give "
                f"{count(packed)}/{n} = {count(packed) / n!r}")
    return None


def time_problem(what: str, seconds) -> str | None:
    if seconds is None:
        return None
    if not _is_real(seconds) or not math.isfinite(seconds) or seconds < 0:
        return f"{what} is {seconds!r}, not a time >= 0 seconds"
    return None


def records_problem(records: Iterable) -> str | None:
    """The first broken invariant among one cell's records (``Record`` tuples), or None."""
    records = list(records)
    numbers: dict[tuple, float] = {}
    for r in records:
        if len(r) != 6 or not all(isinstance(r[i], str) for i in (1, 2, 4)):
            return f"a record is not (epoch, split, attack, eps, metric, value): {r!r:.80}"
        problem = value_problem(*r)
        if problem:
            return problem
        if r[4] == "accuracy":
            numbers[(r[0], r[1], r[2], float(r[3]))] = r[5]
    for r in records:
        key = (r[0], r[1], r[2], float(r[3]))
        if r[4] == CORRECT and key in numbers:
            n, packed = decode(r[5])
            problem = bits_problem(_where(*key, "accuracy"), numbers[key], n, packed)
            if problem:
                return problem
    return verdict_checks.records_problem(records)


_FRACTION_SQL = ("(metric = 'accuracy' OR metric LIKE '%\\_accuracy' ESCAPE '\\' "
                 "OR metric LIKE '%\\_frac' ESCAPE '\\')")
_BAD_ROW_SQL = f"""
SELECT cell_id, epoch, split, attack, eps, metric, value FROM results
WHERE typeof(value) NOT IN ('real', 'integer') OR typeof(eps) NOT IN ('real', 'integer')
   OR typeof(epoch) != 'integer' OR epoch < 0
   OR NOT (value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308)
   OR NOT (eps BETWEEN 0 AND 1.7976931348623157e308)
   OR ({_FRACTION_SQL} AND (value < 0 OR value > 1))
   OR (metric = 'loss' AND attack = 'none' AND split != 'fit' AND value < 0)
   OR (metric = 'best_epoch' AND value < 0)
LIMIT 1"""


def _has(conn: sqlite3.Connection, table: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (table,)).fetchone() is not None


def store_problem(conn: sqlite3.Connection) -> str | None:
    """The first broken invariant in a results store (any schema version), or None."""
    row = conn.execute(_BAD_ROW_SQL).fetchone()
    if row is not None:
        problem = value_problem(*row[1:]) or "a number out of range"
        return f"cell {row[0]}: {problem}"
    for table, key in (("cells", "cell_id"), ("runs", "run_id")):
        bad = conn.execute(f"SELECT {key}, wall_s FROM {table} WHERE wall_s IS NOT NULL AND ("
                           "typeof(wall_s) NOT IN ('real', 'integer') OR wall_s < 0 OR NOT "
                           "(wall_s <= 1.7976931348623157e308)) LIMIT 1").fetchone()
        if bad is not None:
            return time_problem(f"{table[:-1]} {bad[0]}: wall_s", bad[1]) or "bad wall_s"
    bits = _has(conn, "examples")
    if bits:
        for cell, epoch, split, attack, eps, n, packed, value in conn.execute(
                "SELECT e.cell_id, e.epoch, e.split, e.attack, e.eps, e.n, e.correct, r.value "
                "FROM examples e JOIN results r ON r.cell_id = e.cell_id AND "
                "r.epoch = e.epoch AND r.split = e.split AND r.attack = e.attack AND "
                "r.eps = e.eps AND r.metric = 'accuracy'"):
            if not isinstance(packed, bytes) or not isinstance(n, int):
                return f"cell {cell}: {_where(epoch, split, attack, eps, 'accuracy')}: its " \
                       "per-example bits are malformed"
            problem = bits_problem(_where(epoch, split, attack, eps, "accuracy"), value, n,
                                   packed)
            if problem:
                return f"cell {cell}: {problem}"
    return _worst_problem(conn, bits) or verdict_checks.store_problem(conn)


def _norms(conn: sqlite3.Connection) -> dict:
    row = conn.execute("SELECT value FROM meta WHERE key = 'attack_norms'").fetchone()
    try:
        norms = json.loads(row[0]) if row else {}
    except (TypeError, ValueError):
        return {}
    return norms if isinstance(norms, dict) else {}


def _worst_problem(conn: sqlite3.Connection, bits: bool) -> str | None:
    """A worst case above an attack of its norm that saw as many examples."""
    norms = _norms(conn)
    n_of = "(SELECT n FROM examples e WHERE e.cell_id = a.cell_id AND e.epoch = a.epoch AND " \
           "e.split = a.split AND e.attack = a.attack AND e.eps = a.eps)" if bits else "NULL"
    groups: dict[tuple, tuple[float, list]] = {}
    for cell, epoch, split, worst, eps, w, attack, a, n in conn.execute(
            "SELECT w.cell_id, w.epoch, w.split, w.attack, w.eps, w.value, a.attack, a.value, "
            f"{n_of} FROM results w JOIN results a ON a.cell_id = w.cell_id AND "
            "a.epoch = w.epoch AND a.split = w.split AND a.eps = w.eps AND "
            "a.metric = 'accuracy' WHERE w.metric = 'accuracy' AND "
            f"substr(w.attack, 1, {len(PREFIX)}) = '{PREFIX}' AND a.attack != 'none'"):
        if is_worst(attack) or norms.get(attack) != worst_norm(worst):
            continue
        groups.setdefault((cell, epoch, split, worst, eps), (w, []))[1].append((attack, a, n))
    for (cell, epoch, split, worst, eps), (w, members) in groups.items():
        ns = {n for _, _, n in members}
        if len(ns) != 1:  # attacks that saw different rows: the worst case is over the fewest
            continue
        for attack, a, _ in members:
            if w > a:
                return (f"cell {cell}: epoch {epoch}, {split} eps={eps:g}: {worst} is {w!r}, "
                        f"above {attack}'s {a!r} (the worst case is at most every attack)")
    return None
