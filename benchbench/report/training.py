"""What a regime recorded while training (split ``fit``), and catastrophic overfitting.

Adversarial regimes store per epoch and seed their mean training loss, their accuracy on the
inputs they crafted and, with ``monitor``, PGD accuracy on a fixed training batch
(``pgd_monitor``). FGSM adversarial training is known to overfit catastrophically (Wong, Rice and
Kolter 2020): within an epoch, PGD accuracy collapses while accuracy on the FGSM inputs it trains
on stays high or rises. ``collapses`` finds that epoch per seed from the stored numbers alone.
"""

from __future__ import annotations

import pandas as pd

FIT = "fit"
MONITOR = "pgd_monitor"
# a collapse: monitored PGD accuracy falls below half its best so far, and by at least this much
COLLAPSE_DROP = 0.2
LABELS = {("none", "loss"): "training loss", ("none", "adv_accuracy"): "acc on crafted %",
          (MONITOR, "accuracy"): "PGD monitor %"}


def split_fit(tidy: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(checkpoint rows, fit rows)`` of a tidy frame."""
    fit = tidy["split"] == FIT
    return tidy[~fit], tidy[fit]


def collapses(fit: pd.DataFrame) -> dict[int, int]:
    """Seed -> the first epoch whose monitored PGD accuracy fell below half the best of the
    epochs before it, and by at least ``COLLAPSE_DROP`` (seeds that never collapsed are absent).
    """
    out: dict[int, int] = {}
    monitor = fit[(fit["attack"] == MONITOR) & (fit["metric"] == "accuracy")]
    for seed, rows in monitor.groupby("seed"):
        best = None
        for epoch, value in rows.sort_values("epoch")[["epoch", "value"]].itertuples(
                index=False):
            if best is not None and value < best / 2 and best - value >= COLLAPSE_DROP:
                out[int(seed)] = int(epoch)
                break
            best = value if best is None else max(best, value)
    return out


def training_section(fit: pd.DataFrame) -> list[str]:
    """Markdown: per-epoch training records (mean ± std over seeds) and the collapse finding,
    for one (model, regime, dataset); empty when the regime recorded nothing."""
    if fit.empty:
        return []
    frame = pd.DataFrame(index=sorted(fit["epoch"].unique()))
    frame.index.name = "epoch"
    for (attack, metric), rows in fit.groupby(["attack", "metric"], sort=False):
        if metric == "best_epoch":
            continue
        stats = rows.groupby("epoch")["value"].agg(["mean", "std"])
        scale, digits = (1.0, 4) if metric == "loss" else (100.0, 2)
        label = LABELS.get((attack, metric), f"{attack} {metric}")
        if attack == MONITOR:
            label += f" (ε={rows['eps'].iloc[0]:g})"
        frame[label] = [f"{m * scale:.{digits}f}" + ("" if pd.isna(s) else
                                                      f" ± {s * scale:.{digits}f}")
                        for m, s in zip(stats["mean"], stats["std"], strict=True)]
    seeds = sorted(fit["seed"].unique().tolist())
    out = ["Recorded while training (split `fit`, every epoch; accuracy on crafted inputs is on "
           "the training batches, the PGD monitor on the first 1,000 training images):", "",
           frame.to_markdown(), ""]
    if (fit["attack"] == MONITOR).any():
        found = collapses(fit)
        if found:
            where = ", ".join(f"seed {s} at epoch {e}" for s, e in sorted(found.items()))
            out += [f"**O** catastrophic overfitting: the monitored PGD accuracy collapsed "
                    f"(below half its best so far, by at least {COLLAPSE_DROP:.0%}) in "
                    f"{len(found)} of {len(seeds)} seeds: {where}.", ""]
        else:
            out += ["No catastrophic overfitting: the monitored PGD accuracy never fell below "
                    "half its best so far.", ""]
    best = fit[fit["metric"] == "best_epoch"]
    if not best.empty:
        epochs = ", ".join(f"seed {int(s)}: {int(v)}"
                           for s, v in best[["seed", "value"]].itertuples(index=False))
        out += [f"Early stopping kept each seed's best monitored epoch ({epochs}).", ""]
    return out
