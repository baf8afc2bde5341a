"""Write benchbench/zoo_entries.py from a RobustBench checkout (github.com/RobustBench/robustbench).

    python scripts/robustbench_zoo.py /path/to/robustbench > benchbench/zoo_entries.py

Reads ``robustbench/model_zoo/cifar10.py`` and ``cifar100.py`` with ``ast`` (nothing is
imported or run) for the L-inf and L2 entries whose network benchbench builds: RobustBench's
``WideResNet`` itself, or a subclass of it whose ``forward`` only normalises per channel
(``(x - self.mu) / self.sigma``, or ``2. * x - 1.``, which is ``(x - 0.5) / 0.5`` bit for bit),
and their ``model_info/<dataset>/<threat_model>/<Name>.json`` (reported clean and AutoAttack
accuracy, eps, architecture, paper). RobustBench's ``PreActResNet`` entries are not taken: they
are built without the last BatchNorm (``bn_before_fc=False``) that benchbench's
``preact_resnet18`` (fast_adversarial's network) has, or with other blocks.
"""

from __future__ import annotations

import ast
import json
import pprint
import subprocess
import sys
from pathlib import Path

DATASETS = {"cifar10": 10, "cifar100": 100}
THREAT_MODELS = ("linf", "l2")  # the module's OrderedDicts; RobustBench's names: Linf, L2
RB_NAMES = {"linf": "Linf", "l2": "L2"}
WRN_ARGS = ("depth", "num_classes", "widen_factor", "sub_block1", "dropRate", "bias_last")
WRN_DEFAULTS = {"depth": 28, "num_classes": 10, "widen_factor": 10, "sub_block1": False,
                "dropRate": 0.0, "bias_last": True}


def wrn_call(call: ast.Call, defaults: dict) -> dict | None:
    """The keyword values of a ``WideResNet(...)`` call (``defaults`` filled in), or None
    where a value is not a constant."""
    out = dict(WRN_DEFAULTS, **defaults)
    for name, arg in zip(WRN_ARGS, call.args, strict=False):
        if not isinstance(arg, ast.Constant):
            return None
        out[name] = arg.value
    for kw in call.keywords:
        if not isinstance(kw.value, ast.Constant):
            if isinstance(kw.value, ast.Name) and kw.value.id in defaults:
                continue  # ``depth=depth``: the __init__ default
            return None
        out[kw.arg] = kw.value.value
    return out


def buffer_values(cls: ast.ClassDef, name: str) -> list[float] | None:
    for node in ast.walk(cls):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "register_buffer" and node.args
                and isinstance(node.args[0], ast.Constant) and node.args[0].value == name):
            tensor = node.args[1]
            while isinstance(tensor, ast.Call) and isinstance(tensor.func, ast.Attribute) \
                    and tensor.func.attr == "view":
                tensor = tensor.func.value
            values = ast.literal_eval(tensor.args[0])
            return [float(v) for v in (values if isinstance(values, list) else [values])]
    return None


def subclass_network(cls: ast.ClassDef, src: str) -> dict | None:
    """``{depth, widen_factor, sub_block1, num_classes, mean?, std?}`` of a WideResNet
    subclass that only normalises, else None."""
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    forward = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "forward")
    args = init.args
    defaults = {a.arg: ast.literal_eval(d) for a, d in
                zip(args.args[len(args.args) - len(args.defaults):], args.defaults, strict=True)}
    sup = next(n for n in ast.walk(init) if isinstance(n, ast.Call)
               and isinstance(n.func, ast.Attribute) and n.func.attr == "__init__")
    net = wrn_call(sup, defaults)
    if net is None:
        return None
    first = " ".join(ast.get_source_segment(src, forward.body[0]).split())
    if first == "x = (x - self.mu) / self.sigma":
        mean, std = buffer_values(cls, "mu"), buffer_values(cls, "sigma")
        if mean is None or std is None:
            return None
        return {**net, "mean": mean, "std": std}
    if first == "x = 2. * x - 1.":
        return {**net, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
    return None


def networks(path: Path) -> dict[tuple[str, str], dict]:
    """(threat model, name) -> the WideResNet keys of every entry benchbench can build."""
    src = path.read_text()
    tree = ast.parse(src)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)
               and any(isinstance(b, ast.Name) and b.id == "WideResNet" for b in n.bases)}
    out = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id in THREAT_MODELS):
            continue
        for item in node.value.args[0].elts:
            name, info = item.elts[0].value, item.elts[1]
            model = dict(zip((k.value for k in info.keys), info.values, strict=True))["model"]
            net = None
            if isinstance(model, ast.Lambda) and isinstance(model.body, ast.Call) \
                    and isinstance(model.body.func, ast.Name) \
                    and model.body.func.id == "WideResNet":
                net = wrn_call(model.body, {})
            elif isinstance(model, ast.Name) and model.id in classes:
                net = subclass_network(classes[model.id], src)
            if net is not None and net["bias_last"] and not net["dropRate"]:
                out[(node.targets[0].id, name)] = net
    return out


def number(text) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def main(root: Path) -> None:
    commit = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%H %cs"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    rows = []
    for dataset, classes in DATASETS.items():
        for (tm, name), net in networks(root / "robustbench" / "model_zoo"
                                        / f"{dataset}.py").items():
            assert net["num_classes"] == classes, (dataset, name)
            info_path = root / "model_info" / dataset / RB_NAMES[tm] / f"{name}.json"
            if not info_path.is_file():
                print(f"# no {info_path.relative_to(root)}: {name} left out", file=sys.stderr)
                continue
            info = json.loads(info_path.read_text())
            params = {"depth": net["depth"], "widen_factor": net["widen_factor"],
                      "sub_block1": net["sub_block1"]}
            params.update({k: net[k] for k in ("mean", "std") if k in net})
            rows.append({"name": name, "dataset": dataset, "threat_model": RB_NAMES[tm],
                         "model": "wide_resnet", "params": params, "eps": info.get("eps"),
                         "clean_acc": number(info.get("clean_acc")),
                         "autoattack_acc": number(info.get("autoattack_acc")),
                         "architecture": info.get("architecture"),
                         "paper": info.get("name"), "link": info.get("link")})
    print(f'"""RobustBench entries benchbench builds: written by scripts/robustbench_zoo.py from\n'
          f"RobustBench/robustbench {commit}: do not edit.\n\n"
          "Each entry's network is from robustbench/model_zoo/<dataset>.py, its reported numbers "
          "from\nmodel_info/<dataset>/<threat_model>/<Name>.json.\n\"\"\"\n")
    print(f"SOURCE = {('RobustBench/robustbench ' + commit)!r}")
    print("ENTRIES = (")
    for row in rows:
        text = pprint.pformat(row, width=95, sort_dicts=False)
        print("    " + text.replace("\n", "\n    ") + ",")
    print(")")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
