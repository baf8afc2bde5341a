"""An entry's certified robust accuracy and its gap to the worst case, from the stored rows.

Where the run's suite names ``[[verifiers]]``, its store holds ``certified_<norm>`` rows
(``benchbench.store.verdicts``): ``accuracy``, the fraction of test examples some verifier of
the norm proved robust, and ``gap_frac``, over the examples both the verifiers and the attacks
saw, the fraction no attack broke and no verifier proved (the worst case minus certified there).
An entry takes both at its threat model's norm and eps and its checkpoint, per seed; ``None``
where the run has no certified row there.
"""

from __future__ import annotations


def certified_entry(group, *, norm: str, eps: float, epoch: int, verifiers: dict,
                    summary) -> dict | None:
    """``{mean, std, ci95, n, values, verifiers, gap}`` (``gap`` a summary too, or ``None``)
    for one (model, regime) ``group`` of tidy rows, or ``None``; ``summary`` is
    ``entries.summary``."""
    from benchbench.leaderboard.runs import eps_key
    from benchbench.store.verdicts import CERTIFIED, GAP

    rows = group[(group["split"] == "test") & (group["attack"] == f"{CERTIFIED}{norm}")
                 & (group["epoch"] == epoch)]
    rows = rows[rows["eps"].map(eps_key) == eps]

    def per_seed(metric: str) -> list[float]:
        picked = rows[rows["metric"] == metric].sort_values("seed")
        return [float(v) for v in picked["value"]]

    values = per_seed("accuracy")
    if not values:
        return None
    gap = per_seed(GAP)
    names = sorted(label for label, v in verifiers.items() if v.get("norm") == norm)
    return {**summary(values), "verifiers": names,
            "gap": summary(gap) if len(gap) == len(values) else None}
