"""What reports say about verifiers and the rows derived from verdicts.

A verifier's rows (its label, metric ``accuracy``: the fraction it proved robust; ``unknown``
for a complete one), ``certified_<norm>`` (``accuracy``, and ``gap_frac``: worst case minus
certified over the same examples) and ``exact_<norm>`` (``accuracy``, ``unknown``) are ordinary
result rows (``benchbench.store.verdicts``), so tables, ``compare`` and ``export`` show them as
they show attacks. This module gives their headings, which labels are verifiers (from the
stored cell specs: no flag reads a verifier as an attack) and the flag for a large gap.
"""

from __future__ import annotations

import json

from benchbench.report.mdtext import code, md
from benchbench.store.verdicts import CERTIFIED, EXACT, GAP, derived_norm, is_verdict_row

#: a gap (worst case minus certified, over the same examples) above this is flagged "G"
GAP_LARGE = 0.10
LEGEND_G = ("the worst case over attacks is over 10 points above the certified accuracy at "
            "some eps: robust accuracy is not pinned down there (the attacks may be weak, the "
            "verifiers loose, or both)")
NORMS = {"linf": "L∞", "l2": "L2"}


def verifier_info(cells: list[dict], meta: dict | None = None) -> dict[str, dict]:
    """Verifier label -> ``{name, params, norm, rows, at}`` from the stored cell specs (the
    norm as the run's ``verifier_capabilities`` metadata states it, where ``meta`` has it)."""
    try:
        caps = json.loads((meta or {}).get("verifier_capabilities") or "{}")
    except ValueError:
        caps = {}
    out: dict[str, dict] = {}
    for cell in cells:
        try:
            spec = json.loads(cell.get("spec") or "{}")
        except ValueError:
            continue
        for v in spec.get("verifiers", []):
            params = v.get("params", {})
            out.setdefault(v.get("label"), {"name": v.get("name"), "params": params,
                                            "norm": (caps.get(v.get("label")) or {}).get(
                                                "norm", params.get("norm")),
                                            "complete": bool((caps.get(v.get("label")) or {})
                                                             .get("complete")),
                                            "rows": v.get("rows"), "at": v.get("at", "all")})
    return out


def is_verifier_row(attack: str, verifiers: dict) -> bool:
    """Whether a row's ``attack`` is a verifier's label or a row derived from verdicts."""
    return attack in verifiers or is_verdict_row(attack)


def _scope(entry: dict) -> str:
    rows = entry.get("rows")
    where = f" on the test split's first {rows:,} rows" if rows else " on the test split"
    return where + (", at the last checkpoint only" if entry.get("at") == "last" else "")


def heading(name: str, verifiers: dict[str, dict]) -> str | None:
    """The report's line above the table of ``name``'s columns, or None if ``name`` is
    neither a verifier nor a derived row."""
    if name in verifiers:
        entry = verifiers[name]
        params = md(", ".join(f"{k}={v}" for k, v in entry.get("params", {}).items()))
        undecided = ("; `unknown`: how many examples it left undecided (out of time)"
                     if entry.get("complete") else "")
        return (f"Proved robust by {code(name)} ({md(entry.get('name') or '?')}"
                f"{': ' + params if params else ''}){_scope(entry)}{undecided}:")
    if not is_verdict_row(name):
        return None
    norm = derived_norm(name)
    members = ", ".join(code(label) for label, v in verifiers.items() if v.get("norm") == norm)
    ball = md(NORMS.get(norm, norm))
    if name.startswith(CERTIFIED):
        return (f"Certified {ball} robust accuracy ({code(name)}: an input counts as robust "
                f"where some verifier proved it, a lower bound; verifiers: "
                f"{members or 'none declared'}); `{GAP}`: the fraction that no attack broke "
                "and no verifier proved, over the examples both saw (the worst case minus "
                "certified):")
    assert name.startswith(EXACT)
    return (f"Exact {ball} robust accuracy ({code(name)}: the fraction no attack, "
            f"counterexample or clean misclassification refuted; exact where `unknown`, the "
            f"count of examples neither proved nor refuted, is 0, else an upper bound; "
            f"verifiers: {members or 'none declared'}):")


def large_gap(mean) -> bool:
    """Whether some ``certified_<norm>`` ``gap_frac`` among ``mean`` (a Series indexed by
    ``(split, attack, eps, metric)``, one checkpoint's means over seeds) exceeds GAP_LARGE."""
    return any(metric == GAP and str(attack).startswith(CERTIFIED) and value > GAP_LARGE
               for (_, attack, _, metric), value in mean.items())


def certified_notes(rows, a_facts: dict | None, b_facts: dict | None) -> list[str]:
    """A note for each compared ``certified_``/``exact_`` row name whose two runs took it over
    different verifiers (``compare.run_facts``' ``verifier`` labels of its norm)."""
    if a_facts is None or b_facts is None or "attack" not in getattr(rows, "columns", ()):
        return []
    out = []
    for name in sorted({a for a in rows["attack"] if is_verdict_row(a)}):
        norm = derived_norm(name)
        sides = [sorted(label for label, v in facts.get("verifier", {}).items()
                        if v.get("norm", "linf") == norm) for facts in (a_facts, b_facts)]
        if sides[0] != sides[1]:
            out.append(f"{name} is over different verifiers: {', '.join(sides[0]) or 'none'} "
                       f"(A) vs {', '.join(sides[1]) or 'none'} (B)")
    return out
