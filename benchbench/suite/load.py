"""Reading and validating suite files (TOML).

Every error names the file, the key and what is allowed, and is raised before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbench.errors import PluginError, SuiteError
from benchbench.suite.cells import AttackRef, CellSpec, ComponentRef, DatasetRef

TOP_KEYS = ("suite", "dataset", "model", "regime", "attacks")
SUITE_KEYS = ("name", "seeds", "description")
ATTACK_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Suite:
    path: str
    name: str
    description: str
    seeds: tuple[int, ...]
    dataset: DatasetRef
    models: tuple[ComponentRef, ...]
    regimes: tuple[ComponentRef, ...]
    attacks: tuple[AttackRef, ...]
    text: str

    def cells(self) -> list[CellSpec]:
        """Every (model, regime, seed), in that nesting order."""
        return [CellSpec(self.name, seed, self.dataset, model, regime, self.attacks)
                for model in self.models for regime in self.regimes for seed in self.seeds]

    @property
    def hash(self) -> str:
        """Hash of what the suite computes (not of its comments or description)."""
        content = {"name": self.name, "cells": [c.to_dict() for c in self.cells()]}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> SuiteError:
        return SuiteError(self.path, key, problem)

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table ([{key}]); got {type(data).__name__}")
        return data

    def tables(self, data: Any, key: str) -> list[dict[str, Any]]:
        """A table or an array of tables, as a list."""
        items = [data] if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise self.fail(key, f"must be a table [{key}] or an array of tables [[{key}]]")
        return [self.table(item, f"{key}[{i}]") for i, item in enumerate(items)]

    def string(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", f"required, a non-empty string; got {value!r}")
        return value


def _seeds(check: _Checker, value: Any) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return tuple(range(value))
    if (isinstance(value, list) and value and len(set(value)) == len(value)
            and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        return tuple(value)
    raise check.fail("suite.seeds", "must be a positive count (e.g. 5) or a list of distinct "
                     f"non-negative integers (e.g. [0, 1, 2]); got {value!r}")


def _labelled(check: _Checker, items: list[dict[str, Any]], key: str, reserved: tuple[str, ...],
              indexed: bool) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(where, name, label, params, raw item) per entry; labels default to names, unique."""
    out, seen = [], {}
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if indexed or len(items) > 1 else key
        name = check.string(item, "name", where)
        label = item.get("label", name)
        if not isinstance(label, str) or not label:
            raise check.fail(f"{where}.label", f"must be a non-empty string; got {label!r}")
        if label in seen:
            raise check.fail(f"{where}.label", f"{label!r} is already used by {seen[label]}; "
                             "give each entry a distinct label = \"...\"")
        seen[label] = where
        params = {k: v for k, v in item.items() if k not in ("name", "label", *reserved)}
        out.append((where, name, label, params, item))
    return out


def _check_plugin(check: _Checker, registry, kind: str, where: str, name: str,
                  params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the plugin's defaults filled in, so that writing a default out or
    leaving it implicit makes the same cell (and a changed default makes a new one)."""
    try:
        allowed = registry.params_of(kind, name)
    except (PluginError, ValueError) as exc:  # unknown name, or a missing optional extra
        raise check.fail(f"{where}.name", f"{name!r}: {exc}" if isinstance(exc, ValueError)
                         else str(exc)) from None
    for key in params:
        if key not in allowed:
            raise check.fail(f"{where}.{key}", f"unknown parameter for {kind} {name!r}; "
                             f"allowed: {', '.join(allowed) or 'none'}")
    return {**registry.defaults_of(kind, name), **params}


def load_suite(path: str | Path, registry) -> Suite:
    """Parse and validate ``path`` against the registered plugins."""
    path = Path(path)
    check = _Checker(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise check.fail("", f"cannot read the suite file ({exc.strerror}); "
                         "pass the path of a .toml suite, e.g. suites/quick_digits.toml") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise check.fail("", f"not valid TOML: {exc}") from None
    for key in data:
        if key not in TOP_KEYS:
            raise check.fail(key, f"unknown section; allowed: {', '.join(TOP_KEYS)}")
    for key in ("suite", "dataset", "model", "regime"):
        if key not in data:
            raise check.fail(key, f"missing; a suite needs [{key}] (see README, 'Suite files')")

    meta = check.table(data["suite"], "suite")
    for key in meta:
        if key not in SUITE_KEYS:
            raise check.fail(f"suite.{key}", f"unknown key; allowed: {', '.join(SUITE_KEYS)}")
    suite_name = check.string(meta, "name", "suite")
    if not all(ch.isalnum() or ch in "-_." for ch in suite_name):
        raise check.fail("suite.name", f"use letters, digits, '-', '_' or '.'; got {suite_name!r}")
    seeds = _seeds(check, meta.get("seeds", 1))

    ds = check.table(data["dataset"], "dataset")
    ds_name = check.string(ds, "name", "dataset")
    ds_params = {k: v for k, v in ds.items() if k not in ("name", "train", "test")}
    ds_params = _check_plugin(check, registry, "dataset", "dataset", ds_name, ds_params)
    splits = registry.get("dataset", ds_name).obj.splits
    from benchbench.datasets.splits import parse_split

    for role in ("train", "test"):
        try:
            parse_split(check.string(ds, role, "dataset"), splits)
        except ValueError as exc:
            raise check.fail(f"dataset.{role}", str(exc)) from None
    dataset = DatasetRef(ds_name, ds["train"], ds["test"], ds_params)

    refs = {}
    for key, kind in (("model", "model"), ("regime", "regime")):
        refs[key] = []
        entries = _labelled(check, check.tables(data[key], key), key, (), indexed=False)
        for where, name, label, params, _ in entries:
            params = _check_plugin(check, registry, kind, where, name, params)
            refs[key].append(ComponentRef(name, label, params))

    attacks = []
    raw_attacks = data.get("attacks", [])
    items = check.tables(raw_attacks, "attacks") if raw_attacks else []
    for where, name, label, params, raw in _labelled(check, items, "attacks", ("eps", "split"),
                                                     indexed=True):
        eps = raw.get("eps")
        eps = [eps] if isinstance(eps, int | float) and not isinstance(eps, bool) else eps
        if (not isinstance(eps, list) or not eps
                or not all(isinstance(e, int | float) and not isinstance(e, bool) and e >= 0
                           for e in eps)):
            raise check.fail(f"{where}.eps", "required, a non-negative number or a list of them "
                             f"(e.g. [0.05, 0.1]); got {eps!r}")
        split = raw.get("split", "test")
        if split not in ATTACK_SPLITS:
            raise check.fail(f"{where}.split", f"must be one of {', '.join(ATTACK_SPLITS)} "
                             f"(the suite's dataset.train or dataset.test); got {split!r}")
        params = _check_plugin(check, registry, "attack", where, name, params)
        attacks.append(AttackRef(name, label, tuple(float(e) for e in eps), split,
                                 params))

    return Suite(str(path), suite_name, str(meta.get("description", "")), seeds, dataset,
                 tuple(refs["model"]), tuple(refs["regime"]), tuple(attacks), text)
