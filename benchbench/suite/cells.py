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


@dataclass(frozen=True)
class ComponentRef:
    """A registered model or regime with the parameters the suite gives it."""

    name: str
    label: str
    params: dict[str, Any] = field(default_factory=dict)


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

    def to_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "dataset": self.dataset.to_dict(),
               "attacks": [a.to_dict() for a in self.attacks]}
        if self.timeout is None:
            del out["timeout"]
        return out

    def identity(self) -> dict[str, Any]:
        """``to_dict`` without the time limits: what the cell computes, which its id, the
        suite's hash and a resume file's match are made of (a longer timeout measures the
        same numbers)."""
        out = self.to_dict()
        out.pop("timeout", None)
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
                   attacks=attacks, timeout=data.get("timeout"))

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
