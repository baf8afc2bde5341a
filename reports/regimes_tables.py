"""The numbers in reports/regimes_mnist.md, from a run directory's stored results.

    python reports/regimes_tables.py runs/regimes_mnist

Means over seeds with 95% t-intervals (seeds are the replicates). "worst" is, per seed, the
lowest accuracy any attack reached at the checkpoint: an upper bound on the per-example worst
case (an input counts as robust there if it survives the attack that did best overall, not
every attack), and the attacks ran on nested test subsets (FGSM on all 10,000 images, PGD on
the first 5,000, AutoAttack on the first 1,000).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from benchbench.report.flags import attack_info, flags_by_epoch
from benchbench.report.training import collapses, split_fit
from benchbench.store.results import read_store

ATTACKS = ("fgsm", "pgd40", "pgd40_margin", "autoattack")


def ci(values, scale: float = 100.0, digits: int = 1) -> str:
    values = [v for v in values if pd.notna(v)]
    if not values:
        return "n/a"
    n, mean = len(values), sum(values) / len(values)
    if n < 2:
        return f"{scale * mean:.{digits}f}"
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = stats.t.ppf(0.975, n - 1) * sd / n ** 0.5
    return f"{scale * mean:.{digits}f} ± {scale * half:.{digits}f}"


def main(run_dir: str) -> None:
    with read_store(Path(run_dir)) as store:
        checkpoints, fit = split_fit(store.tidy())
        cells = [c for c in store.cells() if c["status"] == "ok"]
        meta, runs = store.meta(), store.runs()
    regimes = list(dict.fromkeys(c["regime"] for c in cells))
    test = checkpoints[checkpoints.split == "test"]
    last = int(test.epoch.max())

    def acc(regime, attack, epoch):
        rows = test[(test.regime == regime) & (test.attack == attack)
                    & (test.metric == "accuracy") & (test.epoch == epoch)]
        return rows.set_index("seed").value

    print(f"## Last checkpoint (epoch {last}), accuracy in %, mean ± 95% CI over seeds\n")
    print("| regime | clean | FGSM | PGD-40 | PGD-40 margin | AutoAttack | worst | "
          "wall time (s, all seeds) |")
    print("|---|---|---|---|---|---|---|---|")
    for regime in regimes:
        clean = acc(regime, "none", last)
        robust = pd.DataFrame({a: acc(regime, a, last) for a in ATTACKS})
        worst = robust.min(axis=1)
        wall = sum(c["wall_s"] or 0.0 for c in cells if c["regime"] == regime)
        print(f"| {regime} | {ci(clean)} | "
              + " | ".join(ci(robust[a]) for a in ATTACKS)
              + f" | {ci(worst)} | {wall:.0f} |")

    print("\n## PGD-40 accuracy (%) per checkpoint\n")
    epochs = sorted(test.epoch.unique())
    print("| regime | " + " | ".join(f"epoch {e}" for e in epochs) + " |")
    print("|---|" + "---|" * len(epochs))
    for regime in regimes:
        print(f"| {regime} | " + " | ".join(ci(acc(regime, "pgd40", e)) for e in epochs) + " |")

    print("\n## FGSM minus PGD-40 (points, paired by seed) per checkpoint\n")
    print("| regime | " + " | ".join(f"epoch {e}" for e in epochs) + " |")
    print("|---|" + "---|" * len(epochs))
    for regime in regimes:
        print(f"| {regime} | " + " | ".join(
            ci(acc(regime, "fgsm", e) - acc(regime, "pgd40", e)) for e in epochs) + " |")

    print("\n## Training records: PGD monitor accuracy (%) on the first 1,000 training images\n")
    fit_epochs = sorted(fit.epoch.unique())
    print("| regime | " + " | ".join(str(e) for e in fit_epochs) + " | collapsed (seed: epoch) |")
    print("|---|" + "---|" * (len(fit_epochs) + 1))
    for regime in regimes:
        mine = fit[(fit.regime == regime) & (fit.attack == "pgd_monitor")]
        if mine.empty:
            continue
        cols = [ci(mine[mine.epoch == e].value) for e in fit_epochs]
        found = collapses(mine)
        said = ", ".join(f"{s}: {e}" for s, e in sorted(found.items())) or "none"
        print(f"| {regime} | " + " | ".join(cols) + f" | {said} |")
    print("\nPer seed, PGD monitor / accuracy on crafted training inputs (%):\n")
    for regime in regimes:
        mine = fit[fit.regime == regime]
        if mine.empty:
            continue
        for seed, rows in mine.groupby("seed"):
            mon = rows[rows.attack == "pgd_monitor"].set_index("epoch").value
            adv = rows[rows.metric == "adv_accuracy"].set_index("epoch").value
            print(f"- {regime} seed {seed}: " + ", ".join(
                f"{e}: {100 * mon[e]:.0f}/{100 * adv[e]:.0f}" for e in mon.index))

    print("\n## Gradient-masking flags per checkpoint (mean over seeds)\n")
    norms = json.loads(meta["attack_norms"]) if "attack_norms" in meta else None
    info = attack_info(cells, norms)
    bounds = json.loads(meta.get("bounds", "null"))
    chance = 1 / int(meta["num_classes"]) if meta.get("num_classes") else None
    for regime in regimes:
        group = checkpoints[checkpoints.regime == regime]
        flags = flags_by_epoch(group, info, chance=chance,
                               span=bounds[1] - bounds[0] if bounds else None)
        said = ", ".join(f"epoch {e}: {f}" for e, f in sorted(flags.items()) if f) or "none"
        print(f"- {regime}: {said}")

    wall = sum(r["wall_s"] or 0.0 for r in runs)
    print(f"\nRuns: {len(runs)}, total wall time {wall:.0f} s; machine: "
          f"{runs[-1]['machine'] if runs else '?'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/regimes_mnist")
