"""The regimes side by side: one figure per (model, dataset) of a suite with several regimes.

Accuracy against epoch, one line per regime (the mean over seeds with a band of one standard
deviation, the tables' ``±``), one panel per measurement: clean test accuracy, then every attack
at every eps in the suite's order, the worst case over attacks after them. Where that would be
more than ``CROWDED_PANELS`` panels, only the worst case over each norm's attacks is drawn at
each eps (a norm with a single attack: that attack, its worst case); every attack's own curves
are in each regime's figures. Planned from stored rows with pandas alone, drawn by
``plots.draw``.
"""

from __future__ import annotations

import pandas as pd

from benchbench.report.order import SuiteOrder
from benchbench.report.plots import (
    NORM_LABEL,
    FigureSpec,
    Panel,
    attack_keys,
    curve_label,
    drop_lone_worst,
    norm_of,
    pick,
    seed_stats,
    series_of,
    slug,
)
from benchbench.store.worst import is_worst, worst_norm

CROWDED_PANELS = 8  # attack panels before only the worst case is drawn


def _title(split: str, attack: str, eps: float) -> str:
    if is_worst(attack):
        norm = worst_norm(attack)
        return (f"worst case {NORM_LABEL.get(norm, norm)} ε={eps:g}"
                + ("" if split == "test" else f" ({split})"))
    return curve_label(split, attack, eps)


def _panel_keys(keys: list[tuple[str, str, float]], info: dict[str, dict]
                ) -> tuple[list[tuple[str, str, float]], bool]:
    """The (split, attack, eps) that get a panel, and whether only the worst cases do: every
    one, or (more than ``CROWDED_PANELS``) the worst-case rows and the attacks of a norm with
    a single attack (its worst case); all of them again if that leaves none."""
    if len(keys) <= CROWDED_PANELS:
        return keys, False
    members: dict[str | None, set[str]] = {}
    for _, attack, _ in keys:
        if not is_worst(attack):
            members.setdefault(norm_of(attack, info), set()).add(attack)
    kept = [k for k in keys if is_worst(k[1]) or (
        norm_of(k[1], info) is not None and len(members[norm_of(k[1], info)]) == 1)]
    return (kept, True) if kept else (keys, False)


def plan_regime_figures(rows: pd.DataFrame, info: dict[str, dict], *, order: SuiteOrder,
                        used: set[str]) -> tuple[list[FigureSpec], list[str]]:
    """One figure per (model, dataset) of checkpoint ``rows`` (no ``fit`` rows) that hold
    more than one regime, and a note for each that cannot be drawn (one checkpoint). ``info``
    is ``flags.attack_info``; ``used`` the figure names taken (a name gets ``_`` until it is
    free, and is added)."""
    figures, notes = [], []
    groups = sorted(rows.groupby(["model", "dataset"], sort=False),
                    key=lambda item: order.group_key(item[0][0], "", item[0][1]))
    for (model, dataset), group in groups:
        regimes = sorted(group["regime"].unique(), key=lambda r: order.group_key(model, r))
        if len(regimes) < 2:
            continue
        title = f"{model} · {dataset}"
        if group["epoch"].nunique() < 2:
            notes.append(f"No regimes-side-by-side figure for {title}: one checkpoint only "
                         "(the tables hold it).")
            continue
        stats = {r: seed_stats(drop_lone_worst(group[group["regime"] == r], info))
                 for r in regimes}
        keys = attack_keys(pd.concat(stats.values()), order)
        keys, worst_only = _panel_keys(keys, info)
        panels = [Panel("clean (test)", "epoch (checkpoint)", tuple(
            s for r in regimes if (s := series_of(pick(stats[r], split="test", attack="none",
                                                      metric="accuracy"), "epoch", r,
                                                "attack")) is not None))]
        for split, attack, eps in keys:
            panels.append(Panel(_title(split, attack, eps), "epoch (checkpoint)", tuple(
                s for r in regimes
                if (s := series_of(pick(stats[r], split=split, attack=attack, eps=eps,
                                       metric="accuracy"), "epoch", r, "attack")) is not None)))
        seeds = group["seed"].nunique()
        name = slug(f"{model}-{dataset}-regimes")
        while name in used:
            name += "_"
        used.add(name)
        figures.append(FigureSpec(
            f"{name}.png",
            f"Regimes side by side, {title}: accuracy against epoch, one line per regime "
            f"(mean over {seeds} seed(s)" + (", band ± one standard deviation" if seeds > 1
                                              else "")
            + "), clean accuracy first, then "
            + ("the worst case over each norm's attacks at each ε (every attack's own curves "
               "are in each regime's figures)." if worst_only
               else "one panel per attack and ε, in the suite's order."),
            f"regimes side by side: {title}", tuple(panels)))
    return figures, notes
