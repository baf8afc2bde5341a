"""Reading and validating suite files (TOML).

Every error names the file, the key and what is allowed, and is raised before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchbench.errors import PluginError
from benchbench.suite.cells import AttackRef, CellSpec, ComponentRef, DatasetRef
from benchbench.suite.document import Checker, check_values, parse_suite, read_suite, short
from benchbench.suite.text import check_text

TOP_KEYS = ("suite", "dataset", "model", "regime", "attacks", "verifiers")
SUITE_KEYS = ("name", "seeds", "description", "timeout")
MAX_TIMEOUT = 30 * 86_400  # seconds: a timeout is at most 30 days
ATTACK_SPLITS = ("train", "test")
ATTACK_AT = ("all", "last")  # every checkpoint, or the last one only

# Limits (README, "What benchbench refuses"): each error names the one it hit.
MAX_SEEDS = 1_000  # seeds per suite
SEED_LIMIT = 2**31  # seeds are 0 <= s < 2**31 (the engine seeds torch with seed * 100_003 + epoch)
MAX_EPS = 1_000  # eps values per attack
MAX_ATTACKS = 100  # [[attacks]] entries
MAX_CELLS = 10_000  # models x regimes x seeds: a week-long grid is a few hundred
MAX_NAME = 100  # characters of a suite name (it names the run directory)
CLEAN = "none"  # the attack column of clean metrics: no attack may take this label


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
    timeout: float | None = None  # seconds per cell (benchbench.engine.timeouts)
    verifiers: tuple = ()  # VerifierRef (benchbench.suite.verifiers)
    # per regime (aligned with ``regimes``): its own ``seeds`` key, None: the suite's seeds
    regime_seeds: tuple = ()

    def seeds_of(self, index: int) -> tuple[int, ...]:
        """The seeds regime ``index`` runs: its own ``seeds`` key, else the suite's."""
        own = self.regime_seeds[index] if index < len(self.regime_seeds) else None
        return self.seeds if own is None else own

    def cells(self) -> list[CellSpec]:
        """Every (model, regime, seed), in that nesting order."""
        return [CellSpec(self.name, seed, self.dataset, model, regime, self.attacks,
                         timeout=self.timeout, verifiers=self.verifiers)
                for model in self.models for i, regime in enumerate(self.regimes)
                for seed in self.seeds_of(i)]

    @property
    def hash(self) -> str:
        """Hash of what the suite computes (not of its comments or description)."""
        content = {"name": self.name, "cells": [c.identity() for c in self.cells()]}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def _timeout(check, key: str, value: Any, what: str) -> float | None:
    """A time limit in seconds (absent: none), or the one-line error."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not 0 < value <= MAX_TIMEOUT):
        raise check.fail(key, f"seconds {what} may take before it fails, a number above 0 and "
                         f"at most {MAX_TIMEOUT:,} (30 days; absent: no limit); got "
                         f"{short(value)}")
    return float(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _seeds(check: Checker, value: Any, key: str = "suite.seeds") -> tuple[int, ...]:
    allowed = (f"a positive count up to {MAX_SEEDS:,} (e.g. 5) or a list of at most "
               f"{MAX_SEEDS:,} distinct integers 0 <= seed < 2**31 (e.g. [0, 1, 2])")
    if _is_int(value) and 1 <= value <= MAX_SEEDS:
        return tuple(range(value))
    if isinstance(value, list) and value and len(value) <= MAX_SEEDS and all(
            _is_int(s) and 0 <= s < SEED_LIMIT for s in value):
        if len(set(value)) == len(value):
            return tuple(value)
        twice = next(s for i, s in enumerate(value) if s in value[:i])
        raise check.fail(key, f"must be {allowed}; seed {twice} is listed twice")
    shown = (f"a list of {len(value):,}" if isinstance(value, list) and len(value) > 10
             else repr(value) if not _is_int(value) or abs(value) < 10**20
             else f"an integer of {len(str(abs(value)))} digits")
    raise check.fail(key, f"must be {allowed}; got {shown}")


def _labelled(check: Checker, items: list[dict[str, Any]], key: str, reserved: tuple[str, ...],
              indexed: bool) -> list[tuple[str, str, str, dict[str, Any], dict[str, Any]]]:
    """(where, name, label, params, raw item) per entry; labels default to names, unique."""
    out, seen = [], {}
    for i, item in enumerate(items):
        where = f"{key}[{i}]" if indexed or len(items) > 1 else key
        name = check.string(item, "name", where)
        label = item.get("label", name)
        if not isinstance(label, str) or not label:
            raise check.fail(f"{where}.label", f"must be a non-empty string; got {short(label)}")
        if label in seen:
            raise check.fail(f"{where}.label", f"{short(label)} is already used by {seen[label]}; "
                             "give each entry a distinct label = \"...\"")
        seen[label] = where
        params = {k: v for k, v in item.items() if k not in ("name", "label", *reserved)}
        out.append((where, name, label, params, item))
    return out


def _check_plugin(check: Checker, registry, kind: str, where: str, name: str,
                  params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with the plugin's defaults filled in, so that writing a default out or
    leaving it implicit makes the same cell (and a changed default makes a new one)."""
    try:
        allowed = registry.params_of(kind, name)
    except PluginError as exc:  # unknown name
        raise check.fail(f"{where}.name", str(exc)) from None
    except ValueError as exc:  # a missing optional extra
        raise check.fail(f"{where}.name", f"{name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a broken plugin: name it, no traceback
        raise check.fail(f"{where}.name", _broken(registry, kind, name, exc)) from None
    for key in params:
        if key not in allowed:
            raise check.fail(f"{where}.{key}", f"unknown parameter for {kind} {name!r}; "
                             f"allowed: {', '.join(allowed) or 'none'}")
    try:
        defaults = registry.defaults_of(kind, name)
        # a plugin's late_keys (added after suites were run) stay out of the spec at their
        # default, so that older suites keep their cell ids (benchbench.regimes.base.Regime)
        late = getattr(registry.get(kind, name).obj, "late_keys", ())
        return {k: v for k, v in {**defaults, **params}.items()
                if not (k in late and k in defaults and json.dumps(v) == json.dumps(defaults[k]))}
    except Exception as exc:  # noqa: BLE001
        raise check.fail(f"{where}.name", _broken(registry, kind, name, exc)) from None


def _broken(registry, kind: str, name: str, exc: Exception) -> str:
    return (f"{kind} {name!r} from {registry.get(kind, name).source} failed to describe its "
            f"parameters ({type(exc).__name__}: {exc}); fix or uninstall that plugin")


def _eps(check: Checker, key: str, value: Any, ds_name: str, ds_cls,
         norm: Any) -> tuple[float, ...]:
    """Distinct finite eps values, at most the widest step the dataset's bounds allow: the
    width ``hi - lo`` for L-inf, the box's diagonal for any other norm."""
    eps = [value] if _is_number(value) else value
    if (not isinstance(eps, list) or not eps or len(eps) > MAX_EPS
            or not all(_is_number(e) and e >= 0 for e in eps)):
        raise check.fail(key, f"required, a non-negative number or a list of at most {MAX_EPS:,} "
                         f"(e.g. [0.05, 0.1]); got {short(value)}")
    out = tuple(float(e) for e in eps)
    if len(set(out)) != len(out):
        twice = next(e for i, e in enumerate(out) if e in out[:i])
        raise check.fail(key, f"eps {twice:g} is listed twice; list each eps once")
    try:
        lo, hi = (float(b) for b in ds_cls.bounds)
        size = math.prod(int(n) for n in getattr(ds_cls, "input_shape", ()))
    except (TypeError, ValueError, AttributeError):
        return out  # a plugin dataset without plain bounds: the engine reports it
    limit, ball = (hi - lo, "L-inf") if norm == "linf" else ((hi - lo) * math.sqrt(size), "L2")
    if math.isfinite(limit) and max(out) > limit:
        raise check.fail(key, f"eps {max(out):g} is larger than any {ball} step inside "
                         f"{ds_name}'s bounds [{lo:g}, {hi:g}]; use eps <= {limit:g}")
    return out


def load_suite(path: str | Path, registry) -> Suite:
    """Parse and validate ``path`` against the registered plugins."""
    path = Path(path)
    check = Checker(path)
    data, text = parse_suite(check, read_suite(check, path))
    check_values(check, data)
    check_text(check, data, text)  # no control characters: they would reach terminals, reports
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
    if (not all(ch.isalnum() or ch in "-_." for ch in suite_name) or set(suite_name) == {"."}
            or len(suite_name) > MAX_NAME):
        raise check.fail("suite.name", f"it names the run directory: use up to {MAX_NAME} "
                         "letters, digits, '-', '_' or '.', not only dots; got "
                         f"{short(suite_name)}")
    seeds = _seeds(check, meta.get("seeds", 1))
    description = meta.get("description", "")
    timeout = _timeout(check, "suite.timeout", meta.get("timeout"),
                       "each cell (training and measuring; a stack of N seeds gets N times it)")
    if not isinstance(description, str):
        raise check.fail("suite.description", "must be a string (shown in the report); got "
                         f"{type(description).__name__} {short(description)}")

    ds = check.table(data["dataset"], "dataset")
    ds_name = check.string(ds, "name", "dataset")
    ds_params = {k: v for k, v in ds.items() if k not in ("name", "train", "test", "augment")}
    ds_params = _check_plugin(check, registry, "dataset", "dataset", ds_name, ds_params)
    ds_cls = registry.get("dataset", ds_name).obj
    from benchbench.datasets.splits import check_rows, parse_split

    for role in ("train", "test"):
        try:
            check_rows(parse_split(check.string(ds, role, "dataset"), ds_cls.splits),
                       getattr(ds_cls, "split_sizes", None))
        except ValueError as exc:
            raise check.fail(f"dataset.{role}", str(exc)) from None
    augment = None
    if "augment" in ds:  # training-batch augmentation (benchbench.engine.augment)
        from benchbench.engine.augment import AugmentKeyError, parse_augment

        try:
            augment = parse_augment(ds["augment"], getattr(ds_cls, "input_shape", None))
        except AugmentKeyError as exc:
            raise check.fail(f"dataset.augment{'.' + exc.key if exc.key else ''}",
                             exc.problem) from None
    dataset = DatasetRef(ds_name, ds["train"], ds["test"], ds_params, augment)

    refs, regime_seeds = {}, []
    for key, kind in (("model", "model"), ("regime", "regime")):
        refs[key] = []
        tables = check.tables(data[key], key)
        given: list = [None] * len(tables)
        if key == "model":  # weights people already have: weights, zoo (suite/given.py)
            from benchbench.suite.given import model_weights

            tables, given = model_weights(check, tables, suite_dir=path.parent, dataset=ds_name)
        entries = _labelled(check, tables, key, ("seeds",) if key == "regime" else (),
                            indexed=False)
        for (where, name, label, params, raw), weights in zip(entries, given, strict=True):
            if key == "regime":  # a regime's own seeds (costly regimes: fewer)
                regime_seeds.append(_seeds(check, raw["seeds"], f"{where}.seeds")
                                    if "seeds" in raw else None)
            params = _check_plugin(check, registry, kind, where, name, params)
            refs[key].append(ComponentRef(name, label, params, weights=weights))
    from benchbench.suite.given import check_pairing

    check_pairing(check, registry, refs["model"], refs["regime"])

    if augment is not None:
        from benchbench.regimes.base import harness_driven

        for ref in refs["regime"]:
            if not harness_driven(registry.get("regime", ref.name).obj):
                raise check.fail("dataset.augment", f"regime {ref.name!r} trains in its own "
                                 "loop, where the harness cannot augment its batches; remove "
                                 "augment or use a regime derived from benchbench's Regime")

    runs = sum(len(seeds if own is None else own) for own in regime_seeds)
    cells = len(refs["model"]) * runs
    if cells > MAX_CELLS:
        grid = (f"{len(refs['regime'])} regimes x {len(seeds)} seeds"
                if all(own is None for own in regime_seeds) else f"{runs:,} regime-seeds")
        raise check.fail("model", f"the grid has {cells:,} cells ({len(refs['model'])} models x "
                         f"{grid}); at most "
                         f"{MAX_CELLS:,} are allowed: split it into several suites")

    attacks = []
    raw_attacks = data.get("attacks", [])
    items = check.tables(raw_attacks, "attacks") if raw_attacks else []
    if len(items) > MAX_ATTACKS:
        raise check.fail("attacks", f"{len(items):,} attacks; at most {MAX_ATTACKS} are allowed")
    for where, name, label, params, raw in _labelled(check, items, "attacks",
                                                     ("eps", "split", "rows", "at",
                                                      "timeout"),
                                                     indexed=True):
        params = _check_plugin(check, registry, "attack", where, name, params)
        eps = _eps(check, f"{where}.eps", raw.get("eps"), ds_name, ds_cls,
                   params.get("norm", getattr(registry.get("attack", name).obj, "norm", None)))
        split = raw.get("split", "test")
        if split not in ATTACK_SPLITS:
            raise check.fail(f"{where}.split", f"must be one of {', '.join(ATTACK_SPLITS)} "
                             f"(the suite's dataset.train or dataset.test); got {short(split)}")
        if label == CLEAN:
            raise check.fail(f"{where}.label", f"{CLEAN!r} is reserved for the clean metrics; "
                             "give the attack another label")
        rows = raw.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)
                                 or not 1 <= rows <= 10_000_000):
            raise check.fail(f"{where}.rows", "the number of the split's first rows to attack, "
                             f"an integer from 1 to 10,000,000 (absent: all); got {short(rows)}")
        at = raw.get("at", "all")
        if at not in ATTACK_AT:
            raise check.fail(f"{where}.at", f"which checkpoints to attack: one of "
                             f"{', '.join(ATTACK_AT)}; got {short(at)}")
        limit = _timeout(check, f"{where}.timeout", raw.get("timeout"),
                         "this attack may take at one checkpoint, per cell")
        attacks.append(AttackRef(name, label, eps, split, params, rows=rows, at=at,
                                 timeout=limit))

    from benchbench.suite.verifiers import parse_verifiers

    verifiers = parse_verifiers(check, registry, data, ds_name=ds_name, ds_cls=ds_cls,
                                attacks=attacks)
    return Suite(str(path), suite_name, description, seeds, dataset,
                 tuple(refs["model"]), tuple(refs["regime"]), tuple(attacks), text,
                 timeout=timeout, verifiers=verifiers, regime_seeds=tuple(regime_seeds))
