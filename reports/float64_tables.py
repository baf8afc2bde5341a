"""The float64 numbers in reports/overfit_mnist_diagnosis.md and reports/overfit_mnist_float64.md.

    python reports/float64_tables.py runs/overfit_mnist_float64 runs/overfit_mnist_diagnosis

The first run is the founding study trained and attacked in float64 (the seed's precision), the
second the same study in float32 (same seeds, data order and checkpoints). Means over seeds with
95% t-intervals; float64 - float32 differences are paired by seed (same seed: same initial
weights, drawn in float32 and widened, and the same batches).
"""

from __future__ import annotations

import sys
from pathlib import Path

from diagnosis_tables import ci

from benchbench.store.results import read_store

ATTACKS = ("fgsm_ce", "fgsm_stable", "fgsm_margin", "pgd_ce", "pgd_stable")


def frames(run_dir: str) -> dict:
    with read_store(Path(run_dir)) as store:
        tidy = store.tidy()
    test = tidy[tidy.split == "test"]

    def series(attack, metric="accuracy", eps=0.05):
        sel = test[(test.attack == attack) & (test.metric == metric)
                   & ((test.eps - eps).abs() < 1e-9 if attack != "none" else True)]
        return sel.pivot(index="epoch", columns="seed", values="value")

    out = {a: series(a) for a in ATTACKS}
    out |= {f"{a}@0.1": series(a, eps=0.1) for a in ("fgsm_ce", "fgsm_stable", "pgd_stable")}
    out |= {f"{a}@0.3": series(a, eps=0.3) for a in ("fgsm_ce", "fgsm_stable")}
    out |= {"clean": series("none"), "saturated": series("none", "saturated_frac"),
            "zero_grad": series("none", "zero_grad_frac")}
    return out


def main(f64_dir: str, f32_dir: str | None) -> None:
    f64 = frames(f64_dir)
    cols = ["clean", "saturated", "zero_grad", *ATTACKS]
    print("float64, eps 0.05 (%):\n")
    print("| epoch | clean | p_y = 1.0 | zero grad | FGSM ce | FGSM ce_stable | FGSM margin | "
          "PGD ce | PGD ce_stable |")
    print("|---:|---|---|---|---|---|---|---|---|")
    for epoch in f64["fgsm_ce"].index:
        print(f"| {epoch} | " + " | ".join(ci(f64[c].loc[epoch].values) for c in cols) + " |")
    first, last = f64["fgsm_ce"].index[0], f64["fgsm_ce"].index[-1]
    print(f"\nfloat64, rise from epoch {first} to {last} (paired by seed):")
    for name in (*ATTACKS, "fgsm_ce@0.1", "fgsm_stable@0.1", "pgd_stable@0.1"):
        frame = f64[name]
        print(f"- {name}: {ci(frame.loc[last] - frame.loc[first])}")
    print("\nfloat64, paired differences at eps 0.05:")
    for epoch in sorted({first, 21, last} & set(f64["fgsm_ce"].index)):
        rounding = f64["fgsm_ce"].loc[epoch] - f64["fgsm_stable"].loc[epoch]
        step = f64["fgsm_stable"].loc[epoch] - f64["pgd_stable"].loc[epoch]
        print(f"- epoch {epoch}: FGSM ce - ce_stable {ci(rounding)}; FGSM ce_stable - PGD "
              f"ce_stable {ci(step)}")
    print(f"\nfloat64 at eps 0.3, epoch {last}: FGSM ce {ci(f64['fgsm_ce@0.3'].loc[last])}, "
          f"FGSM ce_stable {ci(f64['fgsm_stable@0.3'].loc[last])}")
    if f32_dir is None:
        return
    f32 = frames(f32_dir)
    print("\nfloat64 - float32, paired by seed (percentage points):\n")
    names = ["clean", "saturated", "zero_grad", "fgsm_ce", "fgsm_stable", "pgd_stable",
             "fgsm_ce@0.1", "pgd_stable@0.1"]
    print("| epoch | " + " | ".join(names) + " |")
    print("|---:|" + "---|" * len(names))
    for epoch in f64["fgsm_ce"].index:
        diffs = [f64[n].loc[epoch] - f32[n].loc[epoch] for n in names]
        print(f"| {epoch} | " + " | ".join(ci(d.values) for d in diffs) + " |")
    print("\nfloat32 (the second run), for reference, at the first and last checkpoint:")
    for epoch in (first, last):
        print(f"- epoch {epoch}: " + "; ".join(f"{n} {ci(f32[n].loc[epoch].values)}"
                                               for n in names))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
