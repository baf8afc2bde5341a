"""The numbers in reports/overfit_mnist_diagnosis.md, from a run directory's stored results.

    python reports/diagnosis_tables.py runs/overfit_mnist_diagnosis

Means over seeds with 95% t-intervals (seeds are the replicates); differences between attacks
and between epochs are paired by seed (same model, same checkpoint).
"""

from __future__ import annotations

import sys
from pathlib import Path

from benchbench.store.results import read_store

T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306}


def ci(values) -> str:
    values = list(values)
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return f"{100 * mean:.2f}"
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = T975.get(n - 1, 1.96) * sd / n ** 0.5
    return f"{100 * mean:.2f} ± {100 * half:.2f}"


def main(run_dir: str) -> None:
    with read_store(Path(run_dir)) as store:
        tidy = store.tidy()
    test = tidy[tidy.split == "test"]

    def series(attack, metric="accuracy", eps=0.05):
        sel = test[(test.attack == attack) & (test.metric == metric)
                   & ((test.eps - eps).abs() < 1e-9 if attack != "none" else True)]
        return sel.pivot(index="epoch", columns="seed", values="value")

    acc = {a: series(a) for a in ("fgsm_ce", "fgsm_stable", "fgsm_margin", "pgd_ce",
                                  "pgd_stable")}
    sat, zero = series("none", "saturated_frac"), series("none", "zero_grad_frac")
    clean = series("none", "accuracy")
    print("| epoch | clean | p_y = 1.0 | zero grad | FGSM ce | FGSM ce_stable | FGSM margin | "
          "PGD ce | PGD ce_stable |")
    print("|---:|---|---|---|---|---|---|---|---|")
    for epoch in acc["fgsm_ce"].index:
        cells = [clean.loc[epoch], sat.loc[epoch], zero.loc[epoch]] + [
            acc[a].loc[epoch] for a in acc]
        print(f"| {epoch} | " + " | ".join(ci(c.values) for c in cells) + " |")
    first, last = acc["fgsm_ce"].index[0], acc["fgsm_ce"].index[-1]
    print("\nPaired differences at eps 0.05 (percentage points, 95% CI over seeds):")
    for epoch in sorted({first, 21, last} & set(acc["fgsm_ce"].index)):
        rounding = acc["fgsm_ce"].loc[epoch] - acc["fgsm_stable"].loc[epoch]
        loss = acc["fgsm_stable"].loc[epoch] - acc["fgsm_margin"].loc[epoch]
        step = acc["fgsm_stable"].loc[epoch] - acc["pgd_stable"].loc[epoch]
        print(f"- epoch {epoch}: FGSM ce - ce_stable {ci(rounding)}; ce_stable - margin "
              f"{ci(loss)}; FGSM ce_stable - PGD ce_stable {ci(step)}")
    print(f"\nRise from epoch {first} to {last} (paired by seed):")
    for name, frame in acc.items():
        print(f"- {name}: {ci(frame.loc[last] - frame.loc[first])}")
    sweep = test[(test.attack.isin(["fgsm_ce", "fgsm_stable", "pgd_stable"]))
                 & (test.metric == "accuracy") & (test.epoch.isin([first, last]))]
    print("\nEps sweep (mean over seeds, %):")
    table = sweep.groupby(["attack", "epoch", "eps"]).value.mean().unstack("eps") * 100
    print(table.round(2).to_markdown())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/overfit_mnist_diagnosis")
