"""A zoo of models people already have: RobustBench's checkpoints, in RobustBench's layout.

RobustBench (github.com/RobustBench/robustbench) keeps each leaderboard entry's checkpoint at
``<model_dir>/<dataset>/<threat_model>/<Name>.pt`` (``robustbench.utils.load_model`` downloads it
there; ``model_dir`` defaults to ``./models``) and its reported numbers in
``model_info/<dataset>/<threat_model>/<Name>.json`` (``clean_acc``, ``autoattack_acc``, ``eps``).
benchbench never downloads at run time: it reads the files that are there.

``ENTRIES`` (``benchbench.zoo_entries``, written by ``scripts/robustbench_zoo.py`` from a
RobustBench checkout, commit in ``SOURCE``) are the CIFAR-10 and CIFAR-100 L-inf and L2 entries
whose network benchbench builds: RobustBench's ``WideResNet`` (benchbench's ``wide_resnet``,
whose state-dict layout is RobustBench's), with the per-channel normalisation some entries put
in front of it as ``mean``/``std``. A suite names one with ``[model] zoo = "Name"``
(``benchbench.suite.given``); ``benchbench zoo list`` shows them, and which files are present.
The reported numbers travel with the cell's spec (``weights["zoo"]``) into the store, so reports
show "reported (RobustBench) vs measured here".
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from benchbench.errors import BenchbenchError

DEFAULT_MODEL_DIR = "models"  # RobustBench's load_model default (./models)
THREAT_MODELS = ("Linf", "L2")  # RobustBench's names; benchbench's attack norms linf, l2
NORMS = {"Linf": "linf", "L2": "l2"}
DATASETS = ("cifar10", "cifar100")  # RobustBench's and benchbench's names alike
FETCH_HINT = ("fetch it on a machine with a network with RobustBench: python -c \"from "
              "robustbench.utils import load_model; load_model('{name}', model_dir='MODEL_DIR', "
              "dataset='{dataset}', threat_model='{threat_model}')\", then copy MODEL_DIR here")


class ZooError(BenchbenchError):
    """A zoo entry that is not there or does not fit; ``problem`` says what is allowed."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    dataset: str
    threat_model: str
    model: str  # the benchbench model that builds the network
    params: dict = field(default_factory=dict)  # its keys
    eps: str | None = None  # as RobustBench writes it: "8/255", "0.5", "0.031"
    clean_acc: float | None = None  # percent, as reported
    autoattack_acc: float | None = None
    architecture: str | None = None
    paper: str | None = None
    link: str | None = None

    def path(self, model_dir: str | Path) -> Path:
        """Where RobustBench keeps its checkpoint under ``model_dir``."""
        return Path(model_dir) / self.dataset / self.threat_model / f"{self.name}.pt"

    def reported(self, source: str) -> dict:
        """What the store keeps about the entry (plain data): where its numbers come from,
        its eps (as written, and as a number) and the reported accuracies in percent."""
        return {"source": source, "name": self.name, "dataset": self.dataset,
                "threat_model": self.threat_model, "norm": NORMS[self.threat_model],
                "eps": self.eps, "eps_value": eps_value(self.eps),
                "clean_acc": self.clean_acc, "autoattack_acc": self.autoattack_acc,
                "architecture": self.architecture, "paper": self.paper, "link": self.link}


def eps_value(text) -> float | None:
    """RobustBench's eps as a number: ``"8/255"`` -> 0.0313..., ``"0.5"`` -> 0.5; None if it
    is neither."""
    try:
        value = float(Fraction(str(text).replace(" ", "")))
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def entries() -> tuple[ZooEntry, ...]:
    from benchbench.zoo_entries import ENTRIES

    return tuple(ZooEntry(**row) for row in ENTRIES)


def source() -> str:
    from benchbench.zoo_entries import SOURCE

    return SOURCE


def find(name: str, *, dataset: str, threat_model: str = "Linf",
         table: tuple[ZooEntry, ...] | None = None) -> ZooEntry:
    """The entry ``name`` for ``dataset`` and ``threat_model``, or ZooError saying which names
    are close, or which dataset and threat model ``name`` has."""
    table = entries() if table is None else table
    if threat_model not in THREAT_MODELS:
        raise ZooError(f"threat_model must be one of {', '.join(THREAT_MODELS)} (RobustBench's "
                       f"names); got {threat_model!r}")
    same = [e for e in table if e.name == name]
    for entry in same:
        if (entry.dataset, entry.threat_model) == (dataset, threat_model):
            return entry
    if same:
        where = ", ".join(f"{e.dataset}/{e.threat_model}" for e in same)
        raise ZooError(f"{name!r} is a RobustBench {where} entry, not {dataset}/{threat_model}: "
                       f"set threat_model, or use a [dataset] it was trained on")
    names = sorted({e.name for e in table if e.dataset == dataset}) or sorted(
        {e.name for e in table})
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ZooError(f"no zoo entry {name!r} for {dataset}/{threat_model}; {hint}benchbench zoo "
                   "list shows the RobustBench entries benchbench builds (WideResNets; other "
                   "architectures are not listed)")


def read_model_info(info_dir: str | Path, entry: ZooEntry, source_name: str) -> dict:
    """``entry.reported`` with the numbers of ``<info_dir>/<dataset>/<threat_model>/<Name>.json``
    (a RobustBench checkout's ``model_info``) instead of the shipped ones."""
    path = Path(info_dir) / entry.dataset / entry.threat_model / f"{entry.name}.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ZooError(f"no {path}; model_info is the model_info folder of a RobustBench "
                       "checkout (<dataset>/<threat_model>/<Name>.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ZooError(f"cannot read {path} as RobustBench's model info JSON ({exc})") from None
    if not isinstance(info, dict):
        raise ZooError(f"{path} is not RobustBench's model info (a JSON object)")

    def number(key):
        value = info.get(key)
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None
        return out if math.isfinite(out) else None

    reported = entry.reported(f"{source_name} ({path})")
    reported.update(clean_acc=number("clean_acc"), autoattack_acc=number("autoattack_acc"))
    if info.get("eps") is not None:
        reported.update(eps=str(info["eps"]), eps_value=eps_value(info["eps"]))
    return reported


def list_rows(model_dir: str | Path, *, dataset: str | None = None,
              threat_model: str | None = None) -> list[dict]:
    """One row per entry (of ``dataset`` and ``threat_model`` where given): its network, its
    reported numbers and whether its file is under ``model_dir`` (not read: listing is cheap)."""
    if dataset is not None and dataset not in DATASETS:
        raise ZooError(f"--dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    if threat_model is not None and threat_model not in THREAT_MODELS:
        raise ZooError(f"--threat-model must be one of {', '.join(THREAT_MODELS)}; got "
                       f"{threat_model!r}")
    rows = []
    for e in entries():
        if dataset not in (None, e.dataset) or threat_model not in (None, e.threat_model):
            continue
        path = e.path(model_dir)
        present = path.is_file()
        rows.append({"name": e.name, "dataset": e.dataset, "threat_model": e.threat_model,
                     "architecture": e.architecture, "model": e.model, "params": e.params,
                     "eps": e.eps, "clean_acc": e.clean_acc, "autoattack_acc": e.autoattack_acc,
                     "path": str(path), "present": present,
                     "bytes": path.stat().st_size if present else None})
    return rows
