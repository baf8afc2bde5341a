"""The pure, serialisable unit of work: one (model, regime, seed) cell of a suite.

A ``CellSpec`` holds only plain data (names, parameters, seeds), round-trips through JSON and is
identified by a hash of that JSON, so the same cell can run in-process, in a pool or on a cluster
and its results can be recognised on resume.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from benchbench.suite.verifiers import VerifierRef


@dataclass(frozen=True)
class ComponentRef:
    """A registered model or regime with the parameters the suite gives it."""

    name: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)
    # a model's given weights (benchbench.models.weights.describe: path, sha256, format, bytes;
    # a zoo entry's reported numbers under "zoo"), None: built from the seed
    weights: dict[str, Any] | None = None

    def to_dict(self, *, identity: bool = False) -> dict[str, Any]:
        """Plain data; ``weights`` only when set (so that suites without it keep their cell
        ids), and with ``identity`` only its sha256: the file's contents make the cell, not
        where the file is or what a zoo reports about it."""
        out = asdict(self)
        if self.weights is None:
            del out["weights"]
        elif identity:
            out["weights"] = {"sha256": self.weights["sha256"]}
        return out


@dataclass(frozen=True)
class DatasetRef:
    name: str
    train: str
    test: str
    params: dict[str, Any] = field(default_factory=dict)
    # training-batch augmentation (benchbench.engine.augment), None: none
    augment: dict[str, Any] | None = None

    def split(self, role: str) -> str:
        return {"train": self.train, "test": self.test}[role]

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``augment`` only when set, so that suites written before it existed keep
        their cell ids."""
        out = asdict(self)
        if self.augment is None:
            del out["augment"]
        return out


@dataclass(frozen=True)
class AttackRef:
    name: str
    label: str
    eps: tuple[float, ...]
    split: str = "test"
    params: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # attack only the split's first ``rows`` rows (None: all)
    at: str = "all"  # "all" checkpoints, or the "last" one only
    # seconds one checkpoint's measurement may take per cell (benchbench.engine.timeouts);
    # how long to wait, not what is measured: not part of the cell's identity
    timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``rows``, ``at`` and ``timeout`` only when set, so that suites written
        before they existed keep their cell ids."""
        out = asdict(self)
        for key, unset in (("rows", None), ("at", "all"), ("timeout", None)):
            if out[key] == unset:
                del out[key]
        return out


@dataclass(frozen=True)
class CellSpec:
    suite: str
    seed: int
    dataset: DatasetRef
    model: ComponentRef
    regime: ComponentRef
    attacks: tuple[AttackRef, ...] = ()
    # seconds the cell may take, training and measuring (``[suite] timeout``); like an
    # attack's timeout, not part of the cell's identity
    timeout: float | None = None
    # the suite's [[verifiers]] (benchbench.suite.verifiers), in to_dict only when there are
    # some, so that suites written before them keep their cell ids
    verifiers: tuple[VerifierRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "dataset": self.dataset.to_dict(), "model": self.model.to_dict(),
               "regime": self.regime.to_dict(), "attacks": [a.to_dict() for a in self.attacks],
               "verifiers": [v.to_dict() for v in self.verifiers]}
        if self.timeout is None:
            del out["timeout"]
        if not self.verifiers:
            del out["verifiers"]
        return out

    def identity(self) -> dict[str, Any]:
        """``to_dict`` without the time limits: what the cell computes, which its id, the
        suite's hash and a resume file's match are made of (a longer timeout measures the
        same numbers); a model's given weights count by their sha256 alone."""
        out = self.to_dict()
        out.pop("timeout", None)
        out["model"] = self.model.to_dict(identity=True)  # given weights: their sha256 alone
        out["regime"] = self.regime.to_dict(identity=True)
        out["attacks"] = [{k: v for k, v in a.items() if k != "timeout"}
                          for a in out["attacks"]]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpec:
        attacks = tuple(AttackRef(**{**a, "eps": tuple(a["eps"])}) for a in data["attacks"])
        return cls(suite=data["suite"], seed=data["seed"], dataset=DatasetRef(**data["dataset"]),
                   model=ComponentRef(**data["model"]), regime=ComponentRef(**data["regime"]),
                   attacks=attacks, timeout=data.get("timeout"),
                   verifiers=tuple(VerifierRef.from_dict(v) for v in data.get("verifiers", ())))

    @classmethod
    def from_json(cls, text: str) -> CellSpec:
        return cls.from_dict(json.loads(text))

    @property
    def cell_id(self) -> str:
        """Content hash: equal specs, equal ids, whatever process computes them."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.model.label} / {self.regime.label} / seed {self.seed}"
