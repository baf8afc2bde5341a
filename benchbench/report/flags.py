"""Gradient-masking flags per checkpoint, derived from stored numbers only.

Each flag is a letter with a one-line reason (``LEGEND``). They are read off the mean over seeds
at each checkpoint epoch; the attacks' names and parameters come from the cell specs stored with
the results, and the dataset's class count and bounds from the run's metadata.
"""

from __future__ import annotations

import json

import pandas as pd

LEGEND = {
    "Z": "some test inputs have an exactly zero input gradient: gradient attacks cannot move them",
    "S": "some test inputs have true-class probability exactly 1.0 in the run's dtype: plain "
         "cross-entropy gradients lose their true-class term",
    "I": "an iterative attack (pgd, bim) is weaker than FGSM at the same eps: masked gradients or "
         "a broken attack",
    "M": "accuracy rises with eps for some attack: the gradient misleads at small eps",
    "C": "accuracy stays above chance at a large L-inf eps (30% of the data range): the attack "
         "does not reach the decision boundary",
    "L": "FGSM with plain cross-entropy is weaker than with ce_stable or margin by over 1 point: "
         "rounding or the loss choice inflates robustness",
}
ITERATIVE = ("pgd", "bim")
CORE = ("fgsm", "pgd", "bim")  # benchbench's own attacks: L-inf unless their spec says "norm"
MARGIN = 0.001  # one point in a thousand: below this, differences are noise on 10k images


def attack_info(cells: list[dict], norms: dict[str, str | None] | None = None
                ) -> dict[str, dict]:
    """Label -> {name, params, norm} from the stored cell specs.

    ``norms`` is the run's ``attack_norms`` metadata: each label's norm as the built attack
    stated it (a plugin's default is not in the spec). Runs stored before benchbench kept it fall
    back to the spec's ``norm`` parameter, then to L-inf for benchbench's own attacks (``CORE``);
    otherwise the norm is unknown (``None``) and the L-inf-only rule ("C") does not apply.
    """
    info = {}
    for cell in cells:
        for attack in json.loads(cell["spec"])["attacks"]:
            label, name, params = attack["label"], attack["name"], attack["params"]
            if norms is not None and label in norms:
                norm = norms[label]
            else:
                norm = params.get("norm", "linf" if name in CORE else None)
            info[label] = {"name": name, "params": params, "norm": norm,
                           "rows": attack.get("rows"), "at": attack.get("at", "all")}
    return info


def flags_by_epoch(group: pd.DataFrame, info: dict[str, dict], *, chance: float | None,
                   span: float | None) -> dict[int, str]:
    """Flag letters per epoch for one (model, regime, dataset) group of tidy rows."""
    mean = group.groupby(["epoch", "split", "attack", "eps", "metric"])["value"].mean()
    out = {}
    for epoch in sorted(group["epoch"].unique()):
        m = mean.loc[epoch]
        found = set()
        for metric, letter in (("zero_grad_frac", "Z"), ("saturated_frac", "S")):
            if m.get(("test", "none", 0.0, metric), 0.0) > 0:
                found.add(letter)
        acc = {(a, eps): v for (split, a, eps, metric), v in m.items()
               if a != "none" and metric == "accuracy" and split == "test"}
        by_attack: dict[str, list[tuple[float, float]]] = {}
        for (label, eps), value in acc.items():
            by_attack.setdefault(label, []).append((eps, value))
        fgsm = {label: info[label] for label in by_attack if info.get(label, {}).get("name")
                == "fgsm"}
        for label, points in by_attack.items():
            points.sort()
            if any(b > a + MARGIN for (_, a), (_, b) in zip(points, points[1:], strict=False)):
                found.add("M")
            meta = info.get(label, {})
            if (chance is not None and span and meta.get("norm") == "linf"
                    and any(e >= 0.3 * span and v > chance + 0.05 for e, v in points)):
                found.add("C")
            if meta.get("name") in ITERATIVE:
                for eps, value in points:
                    if any(acc.get((f, eps), 1.0) + MARGIN < value for f in fgsm):
                        found.add("I")
        plain = [f for f, meta in fgsm.items() if meta["params"].get("loss", "ce") == "ce"]
        better = [f for f, meta in fgsm.items() if meta["params"].get("loss") in
                  ("ce_stable", "margin")]
        for f in plain:
            for (label, eps), value in acc.items():
                if label == f and any(acc.get((b, eps), 1.0) < value - 0.01 for b in better):
                    found.add("L")
        out[int(epoch)] = "".join(sorted(found))
    return out
