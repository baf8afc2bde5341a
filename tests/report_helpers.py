"""Small results stores written directly (no training), for report tests that need a shape a
real run would take minutes to make: several models and regimes in a chosen order, chosen
numbers. Each cell is stored as ``benchbench run`` stores one (``ResultsStore.add_cell``, its
spec, model, regime and dataset), with the store's metadata set as a run sets it."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

from benchbench.store.results import open_store

Rec = namedtuple("Rec", "epoch split attack eps metric value")
CLEAN = (("test", "accuracy", 0.9), ("train", "accuracy", 0.95), ("test", "loss", 0.3),
         ("train", "loss", 0.2), ("test", "zero_grad_frac", 0.0), ("test", "saturated_frac", 0.0))


def suite_text(models, regimes, attacks) -> str:
    """A suite's TOML for these entries (``[[model]]``, ``[[regime]]``, ``[[attacks]]``),
    each ``(label, name, params)`` (attacks: ``(label, name, eps, params)``)."""
    out = ['[suite]\nname = "made"\nseeds = [0, 1]\n',
           '[dataset]\nname = "digits"\ntrain = "train"\ntest = "test"\n']
    for table, items in (("model", models), ("regime", regimes)):
        for label, name, _ in items:
            out.append(f'[[{table}]]\nname = "{name}"\nlabel = "{label}"\n')
    for label, name, eps, _ in attacks:
        out.append(f'[[attacks]]\nname = "{name}"\nlabel = "{label}"\neps = {list(eps)}\n')
    return "\n".join(out)


def write_store(run_dir: Path, *, models=(("mlp", "mlp", {}),),
                regimes=(("standard", "standard", {}),),
                attacks=(("fgsm", "fgsm", (0.1,), {}),), seeds=(0, 1), epochs=(1, 2),
                value=None, clean=CLEAN, meta: dict | None = None,
                cell_order=None) -> Path:
    """A run directory holding ``results.sqlite`` with every (model, regime, seed) cell and,
    at every epoch, the ``clean`` rows and each attack's accuracy at each eps:
    ``value(model, regime, seed, epoch, attack, eps)`` (default 0.5). ``cell_order`` (a
    function of the list of ``(model, regime, seed)``) chooses the order cells are stored in
    (default: the suite's). ``meta`` adds to (or, with None values, removes from) the metadata
    a run stores."""
    value = value or (lambda *_: 0.5)
    run_dir.mkdir(parents=True, exist_ok=True)
    cells = [(m, r, s) for m in models for r in regimes for s in seeds]
    if cell_order is not None:
        cells = cell_order(cells)
    specs = [{"label": a[0], "name": a[1], "eps": list(a[2]), "params": a[3], "split": "test"}
             for a in attacks]
    info = {"suite_name": "made", "suite_hash": "0" * 16,
            "suite_toml": suite_text(models, regimes, attacks), "suite_path": "made.toml",
            "suite_description": "", "num_classes": "10", "bounds": "[0.0, 1.0]",
            "attack_norms": json.dumps({a[0]: "linf" for a in attacks}),
            "attack_capabilities": json.dumps({a[0]: {"norm": "linf", "iterative": None}
                                               for a in attacks})}
    for key, v in (meta or {}).items():
        info.pop(key, None) if v is None else info.__setitem__(key, v)
    with open_store(run_dir / "results.sqlite") as store:
        store.set_meta(**info)
        for i, ((model, mname, mparams), (regime, rname, rparams), seed) in enumerate(cells):
            spec = {"suite": "made", "seed": seed,
                    "dataset": {"name": "digits", "train": "train", "test": "test",
                                "params": {}},
                    "model": {"label": model, "name": mname, "params": mparams},
                    "regime": {"label": regime, "name": rname, "params": rparams},
                    "attacks": specs}
            records = [Rec(e, split, "none", 0.0, metric, v) for e in epochs
                       for split, metric, v in clean]
            records += [Rec(e, "test", a[0], float(eps), "accuracy",
                            value(model, regime, seed, e, a[0], eps))
                        for e in epochs for a in attacks for eps in a[2]]
            store.add_cell(cell_id=f"c{i:03d}", status="ok", spec=json.dumps(spec),
                           model=model, regime=regime, dataset="digits", seed=seed, run_id=1,
                           dtype="float32", plugins={}, records=records)
    return run_dir
