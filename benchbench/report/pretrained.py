"""Report lines for given weights: "pretrained, not trained here" and, for a zoo entry,
"reported (RobustBench) vs measured here". From the stored cells' specs and numbers alone."""

from __future__ import annotations

import json
import math

from benchbench.report.mdtext import code, md
from benchbench.store.worst import worst_name


def given_weights(cells: list[dict], model: str, regime: str) -> dict | None:
    """The weights of the stored cells of ``model`` / ``regime`` (labels), None if they have
    none; with them the first cell's spec (the table's cells share their model table)."""
    for c in cells:
        if c["model"] == model and c["regime"] == regime:
            spec = json.loads(c["spec"] or "{}")
            weights = spec.get("model", {}).get("weights")
            if weights:
                return {"weights": weights, "spec": spec}
    return None


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}%"


def _measured(group, *, attack: str, eps: float) -> float | None:
    """The seeds' mean test accuracy at epoch 0 under ``attack`` at ``eps`` (percent)."""
    rows = group[(group["split"] == "test") & (group["metric"] == "accuracy")
                 & (group["attack"] == attack) & (group["epoch"] == 0)]
    rows = rows[[math.isclose(e, eps, rel_tol=1e-6, abs_tol=1e-12) for e in rows["eps"]]]
    return None if rows.empty else 100 * float(rows["value"].mean())


def pretrained_lines(cells: list[dict], group, model: str, regime: str) -> list[str]:
    """The lines under a table of given weights (none for a trained model): the file, and a
    zoo entry's reported numbers beside the same measurements made here."""
    given = given_weights(cells, model, regime)
    if given is None:
        return []
    weights, spec = given["weights"], given["spec"]
    out = [f"Pretrained, not trained here: epoch 0 is the given weights, {code(weights['path'])} "
           f"({md(weights.get('format', '?'))}, sha256 {code(weights['sha256'][:16])}).", ""]
    zoo = weights.get("zoo")
    if not zoo:
        return out
    test = spec.get("dataset", {}).get("test", "test")
    clean = _measured(group, attack="none", eps=0.0)
    eps, norm = zoo.get("eps_value"), zoo.get("norm", "linf")
    robust = None if eps is None else _measured(group, attack=worst_name(norm), eps=eps)
    label = "L-inf" if norm == "linf" else "L2" if norm == "l2" else norm
    attacked = (f"worst case over the suite's {label} attacks at eps {eps:.4g}: {_pct(robust)}"
                if robust is not None else
                f"no {label} attack at eps {zoo.get('eps')} in this suite")
    out += [f"Reported (RobustBench, {code(zoo['name'])}, {md(zoo['dataset'])} "
            f"{md(zoo['threat_model'])} eps {md(zoo.get('eps'))}): clean "
            f"{_pct(zoo.get('clean_acc'))}, AutoAttack {_pct(zoo.get('autoattack_acc'))}. "
            f"Measured here (mean over seeds, test split {code(test)}): clean {_pct(clean)}, "
            f"{attacked}. Reported numbers: {md(zoo.get('source', '?'))}.", ""]
    return out
