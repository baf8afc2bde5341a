"""The numbers in the regimes section of reports/certified_mnist.md, from a run directory.

    python reports/certified_regimes_tables.py runs/certified_regimes_mnist

One seed per regime, so no intervals: each number is one model's fraction of test images at
eps 0.1. Attacks, IBP and CROWN saw the first 1,000 test images at every checkpoint; the MIP
the first 200 at the last, where ``certified_linf`` (proved by IBP, CROWN or the MIP),
``exact_linf`` (not refuted by an attack, a MIP counterexample or the clean pass), its
``unknown`` count and ``gap_frac`` are over the same 200 images, so the worst attack on those
200 is ``certified + gap``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from certified_tables import lookup, pct  # reports/: the founding study's tables

from benchbench.store.results import read_store

EPS = 0.1


def main(run_dir: str) -> None:
    with read_store(Path(run_dir)) as store:
        tidy = store.tidy()
        listed = store.cells()
        cells = {c["regime"]: c for c in listed}
    test = tidy[tidy.split == "test"]

    value = lookup(test, EPS)

    regimes = list(dict.fromkeys(c["regime"] for c in listed))  # the suite's order
    spec = json.loads(next(iter(cells.values()))["spec"])
    n = min(v.get("rows") or 10_000 for v in spec["verifiers"])  # the MIP's rows
    print(f"### Attacked and certified on the first 1,000 test images (eps {EPS})\n")
    print("| regime | epoch | clean (10,000) | FGSM | PGD-CE 50x3 | PGD-margin 50x3 | worst "
          "attack | IBP-certified | CROWN-certified | gap (worst - certified) | wall time of "
          "the cell |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for regime in regimes:
        wall = cells[regime]["wall_s"]
        for epoch in sorted(set(test[test.regime == regime].epoch)):
            row = [value(regime, epoch, a) for a in ("none", "fgsm", "pgd_ce", "pgd_margin",
                                                     "worst_linf", "ibp", "crown")]
            best = max((v for v in row[5:] if v is not None), default=None)
            gap = None if row[4] is None or best is None else row[4] - best
            print(f"| {regime} | {epoch} | " + " | ".join(pct(v) for v in row)
                  + f" | {pct(gap)} | {wall / 60:.1f} min |")
    print(f"\n### Certified, exact and attacked on the first {n} test images, last checkpoint "
          f"(eps {EPS})\n")
    print("| regime | epoch | certified (IBP, CROWN or MIP) | exact: not refuted | MIP "
          f"unknown | worst attack (same {n}) | attacks miss at least | decided |")
    print("|---|---|---|---|---|---|---|---|")
    for regime in regimes:
        epoch = max(set(test[test.regime == regime].epoch))
        cert = value(regime, epoch, "certified_linf")
        gap = value(regime, epoch, "certified_linf", "gap_frac")
        exact = value(regime, epoch, "exact_linf")
        unknown = value(regime, epoch, "exact_linf", "unknown")
        worst = None if cert is None or gap is None else cert + gap
        miss = None if worst is None or exact is None else worst - exact
        print(f"| {regime} | {epoch} | {pct(cert)} | {pct(exact)} | "
              f"{'n/a' if unknown is None else int(unknown)} | {pct(worst)} | {pct(miss)} | "
              f"{'n/a' if unknown is None else f'{n - int(unknown)} of {n}'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/certified_regimes_mnist")
