"""Aggregating stored results over seeds into one comparison table per (model, regime, dataset)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchbench.report.order import SuiteOrder

CLEAN_ORDER = {("train", "accuracy"): 0, ("test", "accuracy"): 1, ("train", "loss"): 2,
               ("test", "loss"): 3, ("test", "zero_grad_frac"): 4, ("test", "saturated_frac"): 5}
SHORT = {"accuracy": "acc", "zero_grad_frac": "zero-grad", "saturated_frac": "p_y=1"}


def is_percent(metric: str) -> bool:
    """Accuracies and fractions: shown in percent."""
    return metric == "accuracy" or metric.endswith("_frac")


def mean_std_cells(mean, std, *, scale: float, digits: int, sep: str, seeds: int) -> list[str]:
    """``mean{sep}std`` per row, scaled (just the mean with fewer than 2 seeds or no std;
    empty where there is no mean)."""
    return ["" if pd.isna(m) else f"{m * scale:.{digits}f}" if seeds < 2 or pd.isna(s)
            else f"{m * scale:.{digits}f}{sep}{s * scale:.{digits}f}"
            for m, s in zip(mean, std, strict=True)]


@dataclass(frozen=True)
class SummaryTable:
    """Mean and std over seeds, one row per checkpoint epoch, one column per measurement."""

    model: str
    regime: str
    dataset: str
    seeds: tuple[int, ...]
    mean: pd.DataFrame
    std: pd.DataFrame
    percent: tuple[str, ...]  # columns that hold accuracies and fractions
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ("clean" or attack label, columns)

    @property
    def title(self) -> str:
        return f"{self.model} · {self.regime} · {self.dataset}"

    def formatted(self) -> pd.DataFrame:
        """Strings ``mean ± std`` (accuracies in percent), index = epoch."""
        out = pd.DataFrame(index=self.mean.index)
        for col in self.mean.columns:
            scale, digits = (100.0, 2) if col in self.percent else (1.0, 4)
            out[col] = mean_std_cells(self.mean[col], self.std[col], scale=scale,
                                      digits=digits, sep=" ± ", seeds=len(self.seeds))
        out.index.name = "epoch"
        return out


def column_label(split: str, attack: str, eps: float, metric: str) -> str:
    if attack == "none":
        return f"{split} {SHORT.get(metric, metric)}"
    where = "" if split == "test" else f" ({split})"
    name = f"{attack} ε={eps:g}{where}"
    return name if metric == "accuracy" else f"{name} {metric}"


def column_order(split: str, attack: str, eps: float, metric: str,
                 order: SuiteOrder | None = None) -> tuple:
    """Sort key of a measurement: clean rows first (``CLEAN_ORDER``), then attacks (in the
    suite's ``order`` when given, worst-case rows after them; else by label), split and
    metric, and eps (in the suite's order when given)."""
    if attack == "none":
        return (0, CLEAN_ORDER.get((split, metric), 9), split, metric, (0, 0.0))
    if order is None:
        return (1, 0, attack, split + metric, (0, eps))
    return (1, order.attack_key(attack), attack, split + metric, order.eps_key(attack, eps))


def summary_tables(tidy: pd.DataFrame, order: SuiteOrder | None = None) -> list[SummaryTable]:
    """One ``SummaryTable`` per (model, regime, dataset) in ``tidy`` (``ResultsStore.tidy``):
    in the suite's ``order`` (``benchbench.report.order.suite_order``) when given, its
    sections, attacks and eps as the suite file lists them; else as ``tidy`` holds them."""
    tables = []
    groups = list(tidy.groupby(["model", "regime", "dataset"], sort=False))
    if order is not None:
        groups.sort(key=lambda item: order.group_key(*item[0]))
    for (model, regime, dataset), group in groups:
        keys = sorted({tuple(k) for k in group[["split", "attack", "eps", "metric"]]
                       .drop_duplicates().itertuples(index=False)},
                      key=lambda k: column_order(*k, order=order))
        labels = {k: column_label(*k) for k in keys}
        group = group.assign(column=[labels[k] for k in zip(
            group["split"], group["attack"], group["eps"], group["metric"], strict=True)])
        stats = group.groupby(["epoch", "column"])["value"].agg(["mean", "std"]).unstack("column")
        ordered = [labels[k] for k in keys]
        percent = tuple(labels[k] for k in keys if is_percent(k[3]))
        by_group: dict[str, list[str]] = {}
        for key in keys:
            by_group.setdefault("clean" if key[1] == "none" else key[1], []).append(labels[key])
        tables.append(SummaryTable(model, regime, dataset,
                                   tuple(sorted(group["seed"].unique().tolist())),
                                   stats["mean"][ordered], stats["std"][ordered], percent,
                                   tuple((g, tuple(cols)) for g, cols in by_group.items())))
    return tables


def terminal_columns(table: SummaryTable) -> list[tuple[str, list[str]]]:
    """``(header, cells)`` per column of ``table`` for a narrow terminal: a two-line header
    (what, then which: ``fgsm`` / ``ε=0.05 %``), and ``mean±std`` with fewer decimals (one for
    percentages, three otherwise), no spaces. The report keeps ``formatted()``'s full form."""
    owner = {col: name for name, cols in table.groups for col in cols}
    out = []
    for col in table.mean.columns:
        group = owner.get(col, "clean")
        if group == "clean":
            first, _, rest = col.partition(" ")
        else:
            first, rest = group, col[len(group):].strip()
        percent = col in table.percent
        scale, digits = (100.0, 1) if percent else (1.0, 3)
        cells = mean_std_cells(table.mean[col], table.std[col], scale=scale, digits=digits,
                               sep="±", seeds=len(table.seeds))
        out.append((f"{first}\n{rest}{' %' if percent else ''}".strip(), cells))
    return out
