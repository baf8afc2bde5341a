"""What a store's verdicts and the rows derived from them must satisfy (``benchbench.store.
invariants`` calls these on every open, and on a resume file's records).

- no example is both proved robust and refuted (``verdicts.contradiction``);
- a verifier's ``accuracy`` is its proved fraction and a complete one's ``unknown`` its
  undecided count (the same integers the engine divided);
- every ``certified_<norm>`` and ``exact_<norm>`` row is what the stored bits and verdicts give
  (``verdicts.derived_rows``), none missing and none extra;
- certified <= exact <= worst case, and certified <= exact <= clean, where each pair is over
  the same examples (the worst case may exceed the clean accuracy: not checked).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from benchbench.store.verdicts import (
    CERTIFIED,
    EXACT,
    UNKNOWN,
    cell_bits,
    cell_verdicts,
    check_packed,
    contradiction,
    derived_rows,
    has_table,
    is_verdict_row,
    verdicts_of,
    verifier_caps,
    verifier_norm,
)


def records_problem(records: Sequence) -> str | None:
    """A verifier's records that break what their verdicts imply: its ``accuracy`` is the
    proved fraction, its ``unknown`` the undecided count (the same integers)."""
    try:
        found = verdicts_of(records)
    except (ValueError, TypeError):
        return "a verifier's record holds malformed per-example verdicts"
    numbers = {(int(e), s, a, float(x), m): v for e, s, a, x, m, v in records
               if m in ("accuracy", UNKNOWN)}
    for v in found:
        where = f"epoch {v.epoch}, {v.split} {v.method} eps={v.eps:g}"
        for metric, due in (("accuracy", v.certified), (UNKNOWN, float(v.unknown))):
            got = numbers.get((v.epoch, v.split, v.method, v.eps, metric))
            if got is not None and got != due:
                return f"{where} {metric} is {got!r}, but its stored verdicts give {due!r}"
    return None


def _cell_numbers(conn: sqlite3.Connection, cell_id: str) -> dict[tuple, float]:
    return {(e, s, a, float(x), m): v for e, s, a, x, m, v in conn.execute(
        "SELECT epoch, split, attack, eps, metric, value FROM results WHERE cell_id = ?",
        (cell_id,))}


def store_problem(conn: sqlite3.Connection) -> str | None:
    """The first broken invariant among a store's verdicts and the rows they give, or None:
    malformed verdicts, a proof meeting a refutation, a verifier's numbers or a ``certified_``
    or ``exact_`` row other than its verdicts give (missing or extra ones too), and an order
    the definitions imply broken (``_order_problem``)."""
    from benchbench.store.examples import attack_norms

    if not has_table(conn):
        return None
    norms, caps = attack_norms(conn), verifier_caps(conn)
    cells = [r[0] for r in conn.execute("SELECT DISTINCT cell_id FROM verdicts")]
    for cell in cells:
        try:
            found = cell_verdicts(conn, cell)
            for v in found:
                check_packed(v.n, v.robust, v.not_robust)
        except (ValueError, TypeError):
            return f"cell {cell}: its per-example verdicts are malformed"
        bits, numbers = cell_bits(conn, cell), _cell_numbers(conn, cell)
        problem = contradiction(bits, found, norms, caps)
        if problem:
            return f"cell {cell}: {problem}"
        due = {(e, s, a, x, m): v for e, s, a, x, m, v in derived_rows(bits, found, norms, caps)}
        for v in found:
            due[(v.epoch, v.split, v.method, v.eps, "accuracy")] = v.certified
            if (caps.get(v.method) or {}).get("complete"):
                due[(v.epoch, v.split, v.method, v.eps, UNKNOWN)] = float(v.unknown)
        stored = {k for k in numbers if is_verdict_row(k[2]) and k[2] not in norms}
        for key in sorted(set(due) | stored, key=str):
            got, want = numbers.get(key), due.get(key)
            if got != want:
                e, s, a, x, m = key
                return (f"cell {cell}: epoch {e}, {s} {a} eps={x:g} {m} is {got!r}, but its "
                        f"stored verdicts give {want!r}")
        problem = _order_problem(cell, bits, found, numbers, norms, caps)
        if problem:
            return problem
    return None


def _order_problem(cell, bits, found, numbers, norms, caps) -> str | None:
    """certified <= exact <= worst, and certified <= exact <= clean, where each pair is over
    the same examples (the worst case may exceed the clean accuracy: not checked)."""
    keys = {(v.epoch, v.split, verifier_norm(caps, v.method), v.eps) for v in found}
    for epoch, split, norm, eps in sorted(keys, key=str):
        if not norm:
            continue
        verifier_n = min(v.n for v in found if (v.epoch, v.split, v.eps) == (epoch, split, eps)
                         and verifier_norm(caps, v.method) == norm)
        attack_ns = [n for e, s, a, x, n, _ in bits if (e, s, x) == (epoch, split, eps)
                     and a != "none" and norms.get(a) == norm]
        clean_n = [n for e, s, a, _, n, _ in bits if (e, s, a) == (epoch, split, "none")]
        sizes = {f"{CERTIFIED}{norm}": verifier_n,
                 f"{EXACT}{norm}": min([verifier_n, *attack_ns, *clean_n]),
                 f"worst_{norm}": min(attack_ns) if attack_ns else None,
                 "none": clean_n[0] if clean_n else None}
        value = {name: numbers.get((epoch, split, name, 0.0 if name == "none" else eps,
                                    "accuracy")) for name in sizes}
        c, x, w = f"{CERTIFIED}{norm}", f"{EXACT}{norm}", f"worst_{norm}"
        for low, high in ((c, x), (x, w), (c, w), (c, "none"), (x, "none")):
            n_low, v_low, n_high, v_high = sizes[low], value[low], sizes[high], value[high]
            if (None not in (n_low, v_low, n_high, v_high) and n_low == n_high
                    and v_low > v_high):
                return (f"cell {cell}: epoch {epoch}, {split} eps={eps:g}: {low} is "
                        f"{v_low!r}, above {'clean' if high == 'none' else high}'s "
                        f"{v_high!r} (over the same examples it is at most that)")
    return None
