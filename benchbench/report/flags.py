"""Gradient-masking flags per checkpoint, derived from stored numbers only.

Each flag is a letter with a one-line reason (``LEGEND``). They are read off the mean over seeds
at each checkpoint epoch; the attacks' names and parameters come from the cell specs stored with
the results, what each attack declares (its norm, whether it is iterative: see
``benchbench.attacks.attack_capabilities``) from the run's ``attack_capabilities`` metadata, and
the dataset's class count and bounds from the run's metadata. Worst-case rows (``worst_linf``,
``worst_l2``) are not attacks and no flag reads them.
"""

from __future__ import annotations

import json

import pandas as pd

from benchbench.report.verdicts import LEGEND_G, is_verifier_row, large_gap
from benchbench.store.worst import is_worst

LEGEND = {
    "Z": "some test inputs have an exactly zero input gradient: gradient attacks cannot move them",
    "S": "some test inputs have true-class probability exactly 1.0 in the run's dtype: plain "
         "cross-entropy gradients lose their true-class term",
    "I": "an iterative attack is weaker than a single-step attack of the same norm at the same "
         "eps: masked gradients or a broken attack",
    "M": "accuracy rises with eps for some attack: the gradient misleads at small eps",
    "C": "accuracy stays above chance at a large L-inf eps (30% of the data range): the attack "
         "does not reach the decision boundary",
    "L": "a single-step attack with plain cross-entropy is weaker than the same attack with "
         "ce_stable or margin by over 1 point: rounding or the loss choice inflates robustness",
    "G": LEGEND_G,
}
# Stores written before attacks declared ``iterative`` (no ``attack_capabilities`` metadata):
# benchbench's own attacks by name, as the flags read them then; any other attack is undeclared.
LEGACY_ITERATIVE = {"pgd": True, "bim": True, "fgsm": False}
CORE = ("fgsm", "pgd", "bim")  # benchbench's own attacks: L-inf unless their spec says "norm"
MARGIN = 0.001  # one point in a thousand: below this, differences are noise on 10k images


def attack_info(cells: list[dict], norms: dict[str, str | None] | None = None,
                capabilities: dict[str, dict] | None = None) -> dict[str, dict]:
    """Label -> {name, params, norm, iterative, rows, at} from the stored cell specs.

    ``capabilities`` is the run's ``attack_capabilities`` metadata: what each label's built
    attack declared (``norm``, ``iterative``). ``norms`` is the older ``attack_norms``
    metadata (each label's norm alone). A store without either falls back to the spec's
    ``norm`` parameter, then to L-inf for benchbench's own attacks (``CORE``), else ``None``
    (unknown: the L-inf-only rule "C" does not apply); one without ``capabilities`` takes
    ``iterative`` from ``LEGACY_ITERATIVE`` (benchbench's own attacks by name; others
    undeclared, so the "I" and "L" checks skip them).
    """
    info = {}
    for cell in cells:
        for attack in json.loads(cell["spec"])["attacks"]:
            label, name, params = attack["label"], attack["name"], attack["params"]
            declared = (capabilities or {}).get(label)
            if declared is not None:
                norm, iterative = declared.get("norm"), declared.get("iterative")
            else:
                norm = (norms[label] if norms is not None and label in norms
                        else params.get("norm", "linf" if name in CORE else None))
                iterative = None if capabilities is not None else LEGACY_ITERATIVE.get(name)
            info[label] = {"name": name, "params": params, "norm": norm,
                           "iterative": iterative, "rows": attack.get("rows"),
                           "at": attack.get("at", "all")}
    return info


def stored_attack_info(meta: dict[str, str], cells: list[dict]) -> dict[str, dict]:
    """``attack_info`` for a store's ``meta`` and (finished) ``cells``."""
    norms = json.loads(meta["attack_norms"]) if "attack_norms" in meta else None
    capabilities = (json.loads(meta["attack_capabilities"]) if "attack_capabilities" in meta
                    else None)
    return attack_info(cells, norms, capabilities)


def flags_by_epoch(group: pd.DataFrame, info: dict[str, dict], *, chance: float | None,
                   span: float | None, verifiers: dict | None = None) -> dict[int, str]:
    """Flag letters per epoch for one (model, regime, dataset) group of tidy rows;
    ``verifiers`` (``report.verdicts.verifier_info``) are not attacks and no attack flag reads
    them (nor ``certified_``/``exact_`` rows); "G" reads the certified rows' gap."""
    mean = group.groupby(["epoch", "split", "attack", "eps", "metric"])["value"].mean()
    out = {}
    for epoch in sorted(group["epoch"].unique()):
        m = mean.loc[epoch]
        found = set()
        for metric, letter in (("zero_grad_frac", "Z"), ("saturated_frac", "S")):
            if m.get(("test", "none", 0.0, metric), 0.0) > 0:
                found.add(letter)
        acc = {(a, eps): v for (split, a, eps, metric), v in m.items()
               if a != "none" and not is_worst(a) and not is_verifier_row(a, verifiers or {})
               and metric == "accuracy" and split == "test"}
        by_attack: dict[str, list[tuple[float, float]]] = {}
        for (label, eps), value in acc.items():
            by_attack.setdefault(label, []).append((eps, value))
        single = {label: info[label] for label in by_attack
                  if info.get(label, {}).get("iterative") is False}
        for label, points in by_attack.items():
            points.sort()
            if any(b > a + MARGIN for (_, a), (_, b) in zip(points, points[1:], strict=False)):
                found.add("M")
            meta = info.get(label, {})
            if (chance is not None and span and meta.get("norm") == "linf"
                    and any(e >= 0.3 * span and v > chance + 0.05 for e, v in points)):
                found.add("C")
            if meta.get("iterative") is True and meta.get("norm") is not None:
                peers = [f for f, other in single.items() if other["norm"] == meta["norm"]]
                for eps, value in points:
                    if any(acc.get((f, eps), 1.0) + MARGIN < value for f in peers):
                        found.add("I")
        for f, meta in single.items():  # plain cross-entropy against a stable loss
            if meta["params"].get("loss", "ce") != "ce":
                continue
            better = [b for b, other in single.items() if other["name"] == meta["name"]
                      and other["norm"] == meta["norm"]
                      and other["params"].get("loss") in ("ce_stable", "margin")]
            for (label, eps), value in acc.items():
                if label == f and any(acc.get((b, eps), 1.0) < value - 0.01 for b in better):
                    found.add("L")
        if large_gap(m):
            found.add("G")
        out[int(epoch)] = "".join(sorted(found))
    return out
