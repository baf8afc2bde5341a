"""The report's figures, planned from stored numbers alone and drawn with matplotlib (Agg, PNG).

Per (model, regime, dataset) a report draws what its tables hold (mean over seeds, with a band of
one standard deviation, the tables' ``±``): accuracy against epoch (clean and every attack at
every eps; one figure per attack when a single one would hold more than ``CROWDED`` curves),
accuracy against eps at the first and the last checkpoint (one figure per norm: the curve that
exposes gradient masking, which must reach zero), and the gradient-masking fractions against
epoch. Worst-case rows (``worst_linf``, ``worst_l2``) are drawn dashed, in black or grey beside
the attacks (not at all for a norm with one attack: they would repeat its curve). A figure with
nothing to draw (one checkpoint, one eps per attack) is not made; ``plan_figures`` says why in a
note instead.

Planning (``plan_figures``) needs pandas only, so the markdown can link the figures without
drawing them; ``draw`` imports matplotlib. Every text is drawn literally (``RC``: no mathtext,
no TeX), so a label such as ``net $\\frac{a}$`` is drawn as written instead of failing to parse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchbench.report.order import SuiteOrder
from benchbench.store.verdicts import derived_norm, is_verdict_row
from benchbench.store.worst import is_worst, worst_norm

CROWDED = 6  # attack curves (attack x eps) in one accuracy-vs-epoch figure before it splits
NORM_LABEL = {"linf": "L∞", "l2": "L2", None: "norm not declared"}
MASKING = {"zero_grad_frac": "zero input gradient",
           "saturated_frac": "p(true class) = 1.0 exactly"}
MIN_SPAN = 1.0  # percentage points: the masking figure's y axis is at least this tall
MAX_COLUMNS = 4  # panels in a row; more wrap onto further rows


@dataclass(frozen=True)
class Series:
    """One curve: ``mean``/``std`` are fractions (drawn in percent); ``std`` NaN: one seed."""

    label: str
    kind: str  # "clean", "train" (clean, training split), "attack" or "worst"
    x: tuple[float, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    series: tuple[Series, ...]
    ylabel: str = "accuracy (%)"
    chance: float | None = None  # a dotted line at chance accuracy
    ylim: tuple[float, float] | None = None  # in percent; None: the whole 0-100% axis


@dataclass(frozen=True)
class FigureSpec:
    """One PNG: ``name`` (a file name), the ``caption`` the report prints, its panels."""

    name: str
    caption: str  # figures of one kind share it (one per attack: the report prints it once)
    alt: str
    panels: tuple[Panel, ...]


def slug(text: str) -> str:
    """A file-name-safe form of a label."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-.") or "x"


def seed_stats(group: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds (as the tables compute them), one flat row per
    (split, attack, eps, metric, epoch)."""
    return group.groupby(["split", "attack", "eps", "metric", "epoch"])["value"].agg(
        ["mean", "std"]).reset_index()


def pick(stats: pd.DataFrame, **where) -> pd.DataFrame:
    sel = pd.Series(True, index=stats.index)
    for column, value in where.items():
        sel &= stats[column] == value
    return stats[sel]


def series_of(rows: pd.DataFrame, x: str, label: str, kind: str) -> Series | None:
    """The curve of ``rows`` (one per ``x`` value), or None when there are none."""
    if rows.empty:
        return None
    rows = rows.sort_values(x)
    return Series(label, kind, tuple(float(v) for v in rows[x]), tuple(rows["mean"]),
                  tuple(rows["std"]))


def attack_keys(stats: pd.DataFrame, order: SuiteOrder | None = None
                ) -> list[tuple[str, str, float]]:
    """(split, attack, eps) of every attack (and worst-case) accuracy, attacks first: in the
    suite's ``order`` when given (``benchbench.report.order``), else by label and eps."""
    rows = stats[(stats["attack"] != "none") & (stats["metric"] == "accuracy")]
    keys = {(s, a, float(e)) for s, a, e in rows[["split", "attack", "eps"]].itertuples(
        index=False)}
    if order is None:
        return sorted(keys, key=lambda k: (is_worst(k[1]), k[1], k[0] != "test", k[0], k[2]))
    return sorted(keys, key=lambda k: (order.attack_key(k[1]), k[0] != "test", k[0],
                                       order.eps_key(k[1], k[2])))


def curve_label(split: str, attack: str, eps: float) -> str:
    """As the tables name the column (``pgd ε=0.1``, ``... (train)`` off the test split)."""
    return f"{attack} ε={eps:g}" + ("" if split == "test" else f" ({split})")


def norm_of(attack: str, info: dict[str, dict]) -> str | None:
    if is_verdict_row(attack):  # certified_<norm>, exact_<norm>
        return derived_norm(attack)
    return worst_norm(attack) if is_worst(attack) else info.get(attack, {}).get("norm")


def _epoch_figures(stats: pd.DataFrame, base: str, title: str, seeds: int,
                   order: SuiteOrder | None) -> list[FigureSpec]:
    clean = [c for c in (
        series_of(pick(stats, split=split, attack="none", metric="accuracy"), "epoch", label,
                kind) for split, label, kind in (("test", "clean (test)", "clean"),
                                                 ("train", "clean (train)", "train")))
        if c is not None]
    keys = attack_keys(stats, order)
    curves = [series_of(pick(stats, split=s, attack=a, eps=e, metric="accuracy"), "epoch",
                      curve_label(s, a, e), "worst" if is_worst(a) else "attack")
              for s, a, e in keys]
    caption = (f"Accuracy against epoch, {title}: mean over {seeds} seed(s)"
               + (", band ± one standard deviation" if seeds > 1 else "")
               + "; clean accuracy in grey"
               + (", worst case over attacks dashed." if any(
                   c is not None and c.kind == "worst" for c in curves) else "."))
    xlabel = "epoch (checkpoint)"
    if len(curves) <= CROWDED:
        return [FigureSpec(f"{base}-epoch.png", caption, "accuracy against epoch",
                           (Panel(title, xlabel, tuple(clean + curves)),))]
    caption = caption.replace(": mean", " (one figure per attack): mean")
    by_attack: dict[str, list[Series]] = {}
    for (_, attack, _), curve in zip(keys, curves, strict=True):
        by_attack.setdefault("worst case" if is_worst(attack) else attack, []).append(curve)
    out, used = [], set()
    for attack, group in by_attack.items():
        name = slug(attack)
        while name in used:
            name += "_"
        used.add(name)
        out.append(FigureSpec(f"{base}-epoch-{name}.png", caption,
                              f"accuracy against epoch: {attack}",
                              (Panel(f"{title}: {attack}", xlabel, tuple(clean[:1] + group)),)))
    return out


def _eps_figures(stats: pd.DataFrame, info: dict[str, dict], base: str, title: str,
                 chance: float | None, order: SuiteOrder | None) -> list[FigureSpec]:
    epochs = sorted(int(e) for e in stats["epoch"].unique())
    checkpoints = [(epochs[0], "first checkpoint"), (epochs[-1], "last checkpoint")]
    if len(epochs) == 1:
        checkpoints = [(epochs[0], "only checkpoint")]
    by_norm: dict[str | None, list[tuple[str, str]]] = {}
    for split, attack, _ in attack_keys(stats, order):
        pairs = by_norm.setdefault(norm_of(attack, info), [])
        if (split, attack) not in pairs:
            pairs.append((split, attack))
    out = []
    for norm, pairs in by_norm.items():
        panels = []
        for epoch, which in checkpoints:
            at = pick(stats, epoch=epoch, metric="accuracy")
            series = [series_of(pick(at, split="test", attack="none"), "eps",
                              "clean (test), ε=0", "clean")]
            series += [series_of(pick(at, split=split, attack=attack), "eps",
                               attack + ("" if split == "test" else f" ({split})"),
                               "worst" if is_worst(attack) else "attack")
                       for split, attack in pairs]
            panels.append(Panel(f"epoch {epoch} ({which})",
                                f"ε ({NORM_LABEL.get(norm, norm)} radius, input units)",
                                tuple(s for s in series if s is not None), chance=chance))
        if any(len(s.x) > 1 for p in panels for s in p.series if s.kind != "clean"):
            name = slug(norm or "undeclared")
            out.append(FigureSpec(
                f"{base}-eps-{name}.png",
                f"Accuracy against ε, {title}, at the first and the last checkpoint (one "
                "figure per norm): a curve that levels off above zero (or rises) as ε grows "
                "suggests gradient masking; dotted: chance.",
                f"accuracy against ε ({NORM_LABEL.get(norm, norm)})", tuple(panels)))
    return out


def fitted_ylim(series, *, min_span: float = MIN_SPAN) -> tuple[float, float]:
    """A y range (percent) that fits ``series``' means and bands: from 0 (a share of inputs:
    none is what the checks hope for) to the highest value, at least ``min_span`` points
    tall, with 5% of the span free above and below, never past 100% by more than that."""
    tops = [100 * (m + (0.0 if s is None or math.isnan(s) else s))
            for series_ in series for m, s in zip(series_.mean, series_.std, strict=True)]
    top = min(max([*tops, min_span]), 100.0)
    pad = 0.05 * top
    return (-pad, top + pad)


def _masking_figure(stats: pd.DataFrame, base: str, title: str, seeds: int
                    ) -> list[FigureSpec]:
    series = [s for metric, label in MASKING.items()
              if (s := series_of(pick(stats, split="test", attack="none", metric=metric),
                               "epoch", label, "attack")) is not None]
    if not series:
        return []
    return [FigureSpec(f"{base}-masking.png",
                       f"Gradient-masking checks against epoch, {title}: the share of test "
                       "inputs whose cross-entropy input gradient is exactly zero, and whose "
                       f"true-class probability is exactly 1.0 (mean over {seeds} seed(s)).",
                       "gradient-masking checks against epoch",
                       (Panel(title, "epoch (checkpoint)", tuple(series),
                              ylabel="test inputs (%)", ylim=fitted_ylim(series)),))]


def drop_lone_worst(group: pd.DataFrame, info: dict[str, dict]) -> pd.DataFrame:
    """Without the worst-case rows of a norm that has one attack: they repeat its curve."""
    attacks = [a for a in group["attack"].unique() if a != "none" and not is_worst(a)]
    lone = [a for a in group["attack"].unique() if is_worst(a)
            and sum(norm_of(b, info) == worst_norm(a) for b in attacks) <= 1]
    return group[~group["attack"].isin(lone)] if lone else group


def plan_figures(group: pd.DataFrame, info: dict[str, dict], *, base: str, title: str,
                 chance: float | None = None, order: SuiteOrder | None = None
                 ) -> tuple[list[FigureSpec], list[str]]:
    """The figures of one (model, regime, dataset) group of checkpoint rows (no ``fit``
    rows), and a note for each figure not made (nothing to draw). ``base`` starts every file
    name; ``info`` is ``flags.attack_info`` (each attack's norm); ``order`` the suite's
    (attacks and eps as the suite lists them; else by label)."""
    if group.empty:
        return [], []
    stats, seeds = seed_stats(drop_lone_worst(group, info)), group["seed"].nunique()
    figures, notes = [], []
    if group["epoch"].nunique() > 1:
        figures += _epoch_figures(stats, base, title, seeds, order)
        figures += _masking_figure(stats, base, title, seeds)
    else:
        notes.append("No figures against epoch: one checkpoint only (the tables hold it).")
    eps = _eps_figures(stats, info, base, title, chance, order)
    if eps:
        figures += eps
    else:
        notes.append("No accuracy-against-ε figure: every attack ran at one ε only.")
    return figures, notes


# drawing ------------------------------------------------------------------------------------
#: fixed style, whatever the user's matplotlibrc says; no timestamps or versions in the files.
#: Labels come from suites: drawn literally, never as mathtext or TeX (a ``$`` is a dollar sign)
RC = {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
      "axes.spines.right": False, "svg.hashsalt": "benchbench", "path.simplify": True,
      "text.parse_math": False, "text.usetex": False}
PNG_METADATA = {"Software": None}
DPI = 110


TAB = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
       "#17becf")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">")


def _styles(spec: FigureSpec) -> dict[str, dict]:
    """One style per series label across the figure's panels: attacks in colours, each with
    its marker; worst-case rows dashed, black (dark greys when there are several) beside
    attacks, in colours in a figure of their own; clean rows grey."""
    labels: dict[str, list[str]] = {"attack": [], "worst": []}
    for panel in spec.panels:
        for s in panel.series:
            if s.kind in labels and s.label not in labels[s.kind]:
                labels[s.kind].append(s.label)
    out = {}
    for i, label in enumerate(labels["attack"]):
        out[label] = dict(color=TAB[i % len(TAB)], lw=1.5, ls="-", marker=MARKERS[i % 9], ms=4)
    worst = labels["worst"]
    for i, label in enumerate(worst):
        colour = (TAB[i % len(TAB)] if not labels["attack"] else "black" if len(worst) == 1
                  else str(round(0.5 * i / (len(worst) - 1), 3)))
        out[label] = dict(color=colour, lw=2.2, ls="--", marker=MARKERS[i % 9], ms=4)
    out["clean"] = dict(color="0.35", lw=2.0, ls="-", marker="o", ms=3)
    out["train"] = dict(color="0.6", lw=1.2, ls=":", marker=".", ms=3)
    return out


def _draw_series(ax, s: Series, style: dict):
    """Draw one curve (a point with an error bar when it has one x); its legend handle."""
    x = list(s.x)
    y = [100 * v for v in s.mean]
    sd = [100 * v if not (v is None or math.isnan(v)) else 0.0 for v in s.std]
    if len(x) == 1:
        return ax.errorbar(x, y, yerr=[sd], fmt=style["marker"], color=style["color"],
                           ms=style["ms"] + 3, capsize=3, label=s.label)
    (line,) = ax.plot(x, y, label=s.label, **style)
    if any(sd):
        ax.fill_between(x, [a - b for a, b in zip(y, sd, strict=True)],
                        [a + b for a, b in zip(y, sd, strict=True)], color=style["color"],
                        alpha=0.15, lw=0)
    return line


def draw(spec: FigureSpec, path: Path) -> None:
    """Draw ``spec`` into the PNG ``path`` (the same bytes for the same numbers)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        figure(spec).savefig(path, format="png", dpi=DPI, metadata=PNG_METADATA)


def figure(spec: FigureSpec):
    """``spec`` as a matplotlib ``Figure`` (no pyplot, no global state)."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from benchbench.report.mdtext import visible

    with matplotlib.rc_context(RC):
        n = len(spec.panels)
        cols, rows = min(n, MAX_COLUMNS), math.ceil(n / MAX_COLUMNS)
        fig = Figure(figsize=(4.6 * cols + 0.6, 3.6 + 3.2 * (rows - 1)), layout="constrained")
        grid = fig.subplots(rows, cols, sharey=True, squeeze=False)
        axes = [ax for row in grid for ax in row][:n]
        for ax in [ax for row in grid for ax in row][n:]:
            fig.delaxes(ax)
        styles = _styles(spec)
        handles: dict[str, object] = {}
        for ax, panel in zip(axes, spec.panels, strict=True):
            for s in panel.series:
                style = styles[s.kind] if s.kind in ("clean", "train") else styles[s.label]
                handles.setdefault(s.label, _draw_series(ax, s, style))
            if panel.chance is not None:
                handles.setdefault("chance", ax.axhline(100 * panel.chance, color="0.5",
                                                        ls=":", lw=1))
            ax.set_ylim(*(panel.ylim or (-3, 103)))
            if panel.xlabel.startswith("epoch"):
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(visible(panel.title))  # a control character (an old store's) shown
            ax.set_xlabel(visible(panel.xlabel))
        for row in range(rows):
            axes[row * cols].set_ylabel(spec.panels[row * cols].ylabel)
        fig.legend(list(handles.values()), [visible(label) for label in handles],
                   loc="outside right upper",
                   fontsize=8, frameon=False)
    return fig
