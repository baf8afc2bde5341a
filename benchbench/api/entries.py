"""The attacks and verifiers ``benchbench.evaluate`` runs, checked as a suite checks its own.

Each entry is a registered name (``"fgsm"``), a ``(name, params)`` pair (``("pgd", {"steps":
10})``) or a table like a suite's ``[[attacks]]`` (``{"name": "pgd", "steps": 10, "eps": [0.1],
"label": "pgd10", "rows": 100}``), so tables copy from a suite file (or ``tomllib``) as they are.
Beside the plugin's own keys an entry may set ``label`` (default: its name), ``eps`` (default:
``evaluate``'s ``eps``) and ``rows`` (measure only the first ``rows`` examples); a suite's
``split`` and ``at`` are accepted and checked, and select nothing: ``evaluate`` measures the
``x, y`` it is given, at one checkpoint. Every problem is an ``ArgumentError`` on one line naming
the entry and the key.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from benchbench.errors import ArgumentError, PluginError

#: keys of an entry that are not the plugin's (a suite's [[attacks]] keys)
OWN_KEYS = ("name", "label", "eps", "rows", "split", "at", "timeout")
RESERVED_LABELS = ("none",)  # the clean rows'
RESERVED_PREFIXES = ("worst_", "certified_")  # the derived rows'
MAX_ROWS = 10_000_000
MAX_TIMEOUT = 30 * 86_400  # seconds, as a suite's (benchbench.suite.load)


def fail(key: str, problem: str) -> ArgumentError:
    """``benchbench.evaluate: <key>: <problem>`` as an ArgumentError."""
    from benchbench.errors import one_line

    return ArgumentError(one_line(f"benchbench.evaluate: {key}: {problem}"))


def short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class Entry:
    """One attack or verifier, built: ``obj`` is the plugin's instance, ``norm`` what it
    declares (``None``: none), ``eps`` the radii it is measured at."""

    kind: str
    name: str
    label: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None
    split: str = "test"
    at: str = "all"
    norm: str | None = None
    obj: object = None
    timeout: float | None = None  # seconds (an attack's; benchbench.engine.timeouts)


def _one(item: Any, where: str) -> tuple[str, dict[str, Any]]:
    """``(name, table without name)`` of one entry in any of its forms."""
    if isinstance(item, str):
        return item, {}
    if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str) \
            and isinstance(item[1], dict):
        if "name" in item[1]:
            raise fail(f"{where}.name", "a (name, params) pair names its plugin once; drop "
                       "name from the params")
        return item[0], dict(item[1])
    if isinstance(item, dict):
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise fail(f"{where}.name", "required, a registered name (a table needs "
                       "name = \"...\"; a (name, params) pair goes inside the list: "
                       f"[(\"pgd\", {{...}})]); got {short(name)}")
        return name, {k: v for k, v in item.items() if k != "name"}
    raise fail(where, "must be a registered name, a (name, params) pair or a table with "
               f"name = \"...\" like a suite's [[attacks]]; got {short(item)}")


def check_eps(value: Any, key: str, norm: str | None, bounds: tuple[float, float],
              size: int) -> tuple[float, ...]:
    """Distinct finite eps >= 0, each at most the widest step inside ``bounds`` (the suite's
    rule: ``hi - lo`` for L-inf, the box's diagonal for any other norm)."""
    from benchbench.suite.load import MAX_EPS

    eps = [value] if is_number(value) else value
    if (not isinstance(eps, list | tuple) or not eps or len(eps) > MAX_EPS
            or not all(is_number(e) and math.isfinite(e) and e >= 0 for e in eps)):
        raise fail(key, f"a finite number >= 0 or a list of at most {MAX_EPS:,} (e.g. [0.05, "
                   f"0.1]); got {short(value)}")
    out = tuple(float(e) for e in eps)
    if len(set(out)) != len(out):
        twice = next(e for i, e in enumerate(out) if e in out[:i])
        raise fail(key, f"eps {twice:g} is listed twice; list each eps once")
    lo, hi = bounds
    limit, ball = (hi - lo, "L-inf") if norm == "linf" else ((hi - lo) * math.sqrt(size), "L2")
    if max(out) > limit:
        raise fail(key, f"eps {max(out):g} is larger than any {ball} step inside the bounds "
                   f"[{lo:g}, {hi:g}]; use eps <= {limit:g}")
    return out


def _build(registry, kind: str, name: str, params: dict[str, Any], where: str):
    from benchbench.engine.data import build

    try:
        allowed = registry.params_of(kind, name)
    except PluginError as exc:  # unknown name: the registry suggests close ones
        raise fail(f"{where}.name", str(exc)) from None
    except ValueError as exc:  # a missing optional extra
        raise fail(f"{where}.name", f"{name!r}: {exc}") from None
    for key in params:
        if key not in allowed:
            raise fail(f"{where}.{key}", f"unknown parameter for {kind} {name!r}; allowed: "
                       f"{', '.join(allowed) or 'none'} (and {', '.join(OWN_KEYS[1:])})")
    try:
        return build(registry, kind, name, params)
    except (ValueError, TypeError) as exc:  # a plugin's way of saying a value is wrong
        lines = str(exc).strip().splitlines() or ["no message"]
        raise fail(where, f"{kind} {name!r}: {lines[0]}") from None
    except Exception as exc:  # noqa: BLE001 - the plugin failing, named
        lines = str(exc).strip().splitlines() or ["no message"]
        raise fail(where, f"{kind} {name!r} raised {type(exc).__name__}: {lines[0]}") from None


def parse_entries(kind: str, items: Any, *, arg: str, registry, eps: Any,
                  bounds: tuple[float, float], size: int, taken: set[str]) -> list[Entry]:
    """The entries of ``evaluate``'s ``arg`` (``attacks`` or ``verifiers``), built; ``taken``
    holds the labels already used (attacks and verifiers share one namespace) and grows."""
    from benchbench.attacks import attack_capabilities
    from benchbench.suite.load import ATTACK_AT, ATTACK_SPLITS

    if items is None:
        return []
    if isinstance(items, str | dict):
        items = [items]
    if not isinstance(items, list | tuple):
        raise fail(arg, f"a list of entries (names, (name, params) pairs or tables); got "
                   f"{short(items)}")
    out = []
    for i, item in enumerate(items):
        where = f"{arg}[{i}]"
        name, table = _one(item, where)
        label = table.pop("label", name)
        if not isinstance(label, str) or not label:
            raise fail(f"{where}.label", f"must be a non-empty string; got {short(label)}")
        if label in RESERVED_LABELS or label.startswith(RESERVED_PREFIXES):
            raise fail(f"{where}.label", f"{label!r} is reserved (clean rows are 'none'; "
                       "worst_* and certified_* are derived rows); give it another label")
        if label in taken:
            raise fail(f"{where}.label", f"{label!r} is already used; give each entry a "
                       "distinct label")
        taken.add(label)
        split, at = table.pop("split", "test"), table.pop("at", "all")
        if split not in ATTACK_SPLITS:
            raise fail(f"{where}.split", f"one of {', '.join(ATTACK_SPLITS)} (a suite's key: "
                       f"here x, y are the rows measured); got {short(split)}")
        if at not in ATTACK_AT:
            raise fail(f"{where}.at", f"one of {', '.join(ATTACK_AT)} (a suite's key: here "
                       f"one model is measured); got {short(at)}")
        timeout = table.pop("timeout", None)
        if timeout is not None and kind != "attack":
            raise fail(f"{where}.timeout", "only attacks take a timeout here; a verifier's "
                       "own limit is its key (mip: time_limit per example)")
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, int | float)
                                    or not 0 < timeout <= MAX_TIMEOUT):
            raise fail(f"{where}.timeout", "seconds the entry may take before it fails, a "
                       f"number above 0 and at most {MAX_TIMEOUT:,} (absent: no limit); got "
                       f"{short(timeout)}")
        rows = table.pop("rows", None)
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)
                                 or not 1 <= rows <= MAX_ROWS):
            raise fail(f"{where}.rows", "the number of first rows to measure, an integer from "
                       f"1 to {MAX_ROWS:,} (absent: all); got {short(rows)}")
        own = "eps" in table
        radii = table.pop("eps", eps)
        if radii is None:
            raise fail(f"{where}.eps", f"{kind} {label!r} has no eps: pass eps=[...] to "
                       "benchbench.evaluate or give the entry its own eps")
        obj = _build(registry, kind, name, table, where)
        if kind == "attack":
            try:
                norm = attack_capabilities(obj)["norm"]
            except ValueError as exc:
                raise fail(where, f"attack {name!r}: {exc}") from None
        else:
            norm = getattr(obj, "norm", None)
            if getattr(obj, "sound", None) is not True:
                raise fail(where, f"verifier {name!r} does not declare sound = True: its "
                           "'robust' would be no proof, and certified accuracy no bound")
        key = f"{where}.eps" if own else f"eps (for {where}, {kind} {label!r})"
        out.append(Entry(kind, name, label, check_eps(radii, key, norm, bounds, size),
                         table, rows, split, at, norm, obj,
                         None if timeout is None else float(timeout)))
    return out
