"""The numbers in reports/certified_mnist.md, from a run directory's stored results.

    python reports/certified_tables.py runs/certified_mnist

One seed per dtype (the regimes' labels say which), so no intervals: each number is one model's
fraction of test images. Attacks, IBP and CROWN saw the first 1,000 test images; MIP the first
200, where ``certified_linf`` (proved by IBP, CROWN or the MIP), ``exact_linf`` (not refuted by
an attack, a MIP counterexample or the clean pass), its ``unknown`` count and ``gap_frac`` (no
attack broke it and nothing proved it) are over the same 200 images, so the worst attack on
those 200 is ``certified + gap``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchbench.store.results import read_store

EPS = 0.05


def lookup(test, eps: float):
    """``value(regime, epoch, attack, metric="accuracy")``: the one stored test number (None
    where there is none) at ``eps`` (clean rows at eps 0)."""

    def value(regime, epoch, attack, metric="accuracy"):
        sel = test[(test.regime == regime) & (test.epoch == epoch) & (test.attack == attack)
                   & (test.metric == metric)]
        if attack != "none":
            sel = sel[(sel.eps - eps).abs() < 1e-9]
        if sel.empty:
            return None
        (v,) = sel.value
        return float(v)

    return value


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


def main(run_dir: str) -> None:
    with read_store(Path(run_dir)) as store:
        tidy = store.tidy()
        cells = {c["regime"]: c for c in store.cells()}
    test = tidy[tidy.split == "test"]
    value = lookup(test, EPS)

    regimes = list(dict.fromkeys(test.regime))
    spec = json.loads(next(iter(cells.values()))["spec"])
    n = min(v.get("rows") or 10_000 for v in spec["verifiers"])  # the MIP's rows
    print(f"### Attacked and certified on the first 1,000 test images (eps {EPS})\n")
    print("| dtype | epoch | clean (10,000) | FGSM | PGD-CE 50x3 | PGD-margin 50x3 | worst "
          "attack | IBP-certified | CROWN-certified | wall time of the cell |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for regime in regimes:
        wall = cells[regime]["wall_s"]
        for epoch in sorted(set(test[test.regime == regime].epoch)):
            row = [value(regime, epoch, a) for a in ("none", "fgsm", "pgd_ce", "pgd_margin",
                                                     "worst_linf", "ibp", "crown")]
            print(f"| {regime.removeprefix('standard_')} | {epoch} | "
                  + " | ".join(pct(v) for v in row) + f" | {wall / 60:.0f} min |")
    print(f"\n### Certified, exact and attacked on the first {n} test images (eps {EPS})\n")
    print("| dtype | epoch | certified (IBP, CROWN or MIP) | exact: not refuted | MIP "
          f"unknown | worst attack (same {n}) | attacks miss at least | decided |")
    print("|---|---|---|---|---|---|---|---|")
    for regime in regimes:
        for epoch in sorted(set(test[test.regime == regime].epoch)):
            cert = value(regime, epoch, "certified_linf")
            gap = value(regime, epoch, "certified_linf", "gap_frac")
            exact = value(regime, epoch, "exact_linf")
            unknown = value(regime, epoch, "exact_linf", "unknown")
            worst = None if cert is None or gap is None else cert + gap
            miss = None if worst is None or exact is None else worst - exact
            print(f"| {regime.removeprefix('standard_')} | {epoch} | {pct(cert)} | "
                  f"{pct(exact)} | {'n/a' if unknown is None else int(unknown)} | "
                  f"{pct(worst)} | {pct(miss)} | "
                  f"{'n/a' if unknown is None else f'{n - int(unknown)} of {n}'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/certified_mnist")
