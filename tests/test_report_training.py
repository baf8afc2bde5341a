"""The report's training records and its catastrophic-overfitting finding, from stored rows."""

from __future__ import annotations

import pandas as pd

from benchbench.report.training import collapses, split_fit, training_section


def fit_rows(monitor: dict[int, list[float]], best: dict[int, int] | None = None):
    rows = []
    for seed, values in monitor.items():
        for epoch, value in enumerate(values, start=1):
            rows += [dict(model="mlp", regime="fgsm_at", dataset="d", seed=seed, epoch=epoch,
                          split="fit", attack="pgd_monitor", eps=0.1, metric="accuracy",
                          value=value),
                     dict(model="mlp", regime="fgsm_at", dataset="d", seed=seed, epoch=epoch,
                          split="fit", attack="none", eps=0.0, metric="loss", value=1.0 / epoch)]
    for seed, epoch in (best or {}).items():
        rows.append(dict(model="mlp", regime="fgsm_at", dataset="d", seed=seed,
                         epoch=len(monitor[seed]), split="fit", attack="none", eps=0.0,
                         metric="best_epoch", value=float(epoch)))
    return pd.DataFrame(rows)


def test_a_collapse_is_the_first_epoch_below_half_the_best_so_far():
    fit = fit_rows({0: [0.5, 0.7, 0.72, 0.1, 0.05], 1: [0.5, 0.6, 0.65, 0.6, 0.62],
                    2: [0.3, 0.12, 0.5, 0.2, 0.0]})
    # seed 1 never halves; seed 2 halves at epoch 2 but by only 18 points, then at 4 by 30
    assert collapses(fit) == {0: 4, 2: 4}
    text = "\n".join(training_section(fit))
    assert "**O** catastrophic overfitting" in text and "2 of 3 seeds" in text
    assert "seed 0 at epoch 4, seed 2 at epoch 4" in text
    assert "PGD monitor % (ε=0.1)" in text and "training loss" in text


def test_no_collapse_and_early_stopping_are_said():
    fit = fit_rows({0: [0.5, 0.6, 0.55], 1: [0.4, 0.45, 0.5]}, best={0: 2, 1: 3})
    text = "\n".join(training_section(fit))
    assert "No catastrophic overfitting" in text
    assert "Early stopping kept each seed's best monitored epoch (seed 0: 2, seed 1: 3)" in text
    assert "best_epoch" not in text.split("Early stopping")[0]


def test_split_fit_keeps_checkpoint_rows_apart():
    fit = fit_rows({0: [0.5]})
    other = fit.assign(split="test")
    checkpoint, training = split_fit(pd.concat([fit, other]))
    assert set(checkpoint.split) == {"test"} and set(training.split) == {"fit"}
    assert training_section(training.iloc[0:0]) == []
