"""The numbers in reports/cnn_mnist.md, from the run directories' stored results.

    python reports/cnn_tables.py runs/cnn_mnist runs/cnn_fashion_mnist runs/wong_mnist_published
    python reports/cnn_tables.py --one runs/cnn_mnist_small_cnn 0.3  # cnn_mnist_small_cnn.md

Per regime, the mean and standard deviation over the seeds the regime ran (the count is
shown); accuracies in percent of the test images each measurement saw: clean and FGSM all
10,000, the last checkpoint's PGD, margin-loss PGD, APGD-CE/DLR and their worst case per example
the first 1,000 (the published checkpoints: all 10,000 for every attack). A missing run
directory or regime prints as "not run".
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from benchbench.store.results import read_store

ATTACKS = (("none", "clean"), ("fgsm", "FGSM"), ("pgd50x10", "PGD-50x10"),
           ("pgd_margin", "PGD-margin 50x3"), ("apgd_ce_dlr", "APGD-CE+DLR"),
           ("worst_linf", "worst"))


def _load(run_dir: Path):
    if not (run_dir / "results.sqlite").exists():
        return None, []
    with read_store(run_dir) as store:
        tidy = store.tidy()
        order = list(dict.fromkeys(c["regime"] for c in store.cells() if c["status"] == "ok"))
        walls = {c["cell_id"]: c["wall_s"] for c in store.cells()}
    tidy["wall_s"] = tidy.cell_id.map(walls)
    return tidy, order


def _fmt(values) -> str:
    values = [100 * v for v in values]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}"


def _values(tidy, regime, epoch, attack, eps, split="test", metric="accuracy"):
    sel = tidy[(tidy.regime == regime) & (tidy.split == split) & (tidy.attack == attack)
               & (tidy.metric == metric)]
    sel = sel[sel.epoch == (sel.epoch.max() if epoch == "last" else epoch)]
    if attack != "none":
        sel = sel[(sel.eps - eps).abs() < 1e-9]
    return sel.sort_values("seed").value.tolist()


def study(run_dir: str, eps: float) -> None:
    tidy, order = _load(Path(run_dir))
    print(f"### {Path(run_dir).name}: the last checkpoint (epoch 10) at eps {eps}\n")
    if tidy is None:
        print("not run\n")
        return
    print("| regime | seeds | " + " | ".join(name for _, name in ATTACKS)
          + " | PGD-10 monitor, last epoch | wall time per cell |")
    print("|---|---|" + "---|" * len(ATTACKS) + "---|---|")
    for regime in order:
        seeds = sorted(set(tidy[tidy.regime == regime].seed))
        row = [_fmt(_values(tidy, regime, "last", a, eps)) for a, _ in ATTACKS]
        monitor = _values(tidy, regime, "last", "pgd_monitor", eps, split="fit")
        walls = tidy[tidy.regime == regime].drop_duplicates("cell_id").wall_s
        print(f"| {regime} | {len(seeds)} | " + " | ".join(row)
              + f" | {_fmt(monitor)} | {walls.mean() / 60:.1f} min |")
    print()


def overfitting(run_dir: str, eps: float) -> None:
    """Per adversarially trained seed (every regime with the harness's monitor) and epoch: the
    PGD monitor (10 steps on 1,000 training images) and FGSM on the test set: catastrophic
    overfitting is the monitor collapsing while FGSM accuracy stays high."""
    tidy, order = _load(Path(run_dir))
    if tidy is None:
        return
    print(f"### {Path(run_dir).name}: adversarial training epoch by epoch at eps {eps} "
          "(PGD-10 monitor on 1,000 training images / FGSM on the test set, %)\n")
    epochs = sorted(set(tidy[tidy.split == "test"].epoch))
    print("| regime | seed | " + " | ".join(str(e) for e in epochs)
          + " | clean, last | PGD-50x10, last | worst, last |")
    print("|---|---|" + "---|" * (len(epochs) + 3))
    monitored = set(tidy[(tidy.split == "fit") & (tidy.attack == "pgd_monitor")].regime)
    for regime in [r for r in order if r in monitored]:
        for seed in sorted(set(tidy[tidy.regime == regime].seed)):
            mine = tidy[(tidy.regime == regime) & (tidy.seed == seed)]
            cells = []
            for e in epochs:
                mon = _values(mine, regime, e, "pgd_monitor", eps, split="fit")
                fgsm = _values(mine, regime, e, "fgsm", eps)
                cells.append(f"{_fmt(mon)} / {_fmt(fgsm)}")
            last = [_fmt(_values(mine, regime, "last", a, eps)) for a in ("none", "pgd50x10",
                                                                        "worst_linf")]
            print(f"| {regime} | {seed} | " + " | ".join(cells + last) + " |")
    print()


def published(run_dir: str) -> None:
    tidy, order = _load(Path(run_dir))
    print("### Wong et al.'s published checkpoints on all 10,000 MNIST test images (eps 0.3)\n")
    if tidy is None:
        print("not run\n")
        return
    print("| checkpoint | clean | FGSM 0.1 | FGSM 0.2 | FGSM 0.3 | PGD-50x10 | PGD-margin 50x3 "
          "| APGD-CE+DLR | worst | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for model in dict.fromkeys(tidy.model):
        mine = tidy[tidy.model == model]
        regime = mine.regime.iloc[0]
        row = [_fmt(_values(mine, regime, 0, "none", 0)),
               *(_fmt(_values(mine, regime, 0, "fgsm", e)) for e in (0.1, 0.2, 0.3)),
               *(_fmt(_values(mine, regime, 0, a, 0.3))
                 for a in ("pgd50x10", "pgd_margin", "apgd_ce_dlr", "worst_linf"))]
        wall = mine.drop_duplicates("cell_id").wall_s.iloc[0]
        print(f"| {model} | " + " | ".join(row) + f" | {wall / 60:.1f} min |")
    print()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:  # one run directory at one eps: --one runs/X 0.3
        study(sys.argv[2], float(sys.argv[3]))
        overfitting(sys.argv[2], float(sys.argv[3]))
        sys.exit()
    mnist, fashion, wong = (sys.argv[1:] + ["runs/cnn_mnist", "runs/cnn_fashion_mnist",
                                            "runs/wong_mnist_published"][len(sys.argv) - 1:])[:3]
    study(mnist, 0.3)
    overfitting(mnist, 0.3)
    published(wong)
    study(fashion, 0.1)
    overfitting(fashion, 0.1)
