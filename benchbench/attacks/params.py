"""An attack's effective parameters at one eps: what it runs with, not only what a suite wrote.

A suite's attack spec holds the keys the suite gave and the plugin's signature defaults (the
suite loader fills them in), so ``step_size = None`` can stand for "the attack decides". What an
attack decides is declared by the attack, with two optional attributes:

- ``effective_params(self, eps) -> dict``: on a built attack, the value of each key it resolves
  itself at ``eps`` (PGD with ``step_size`` unset: ``2.5 * eps / steps``). The attack's own code
  reads the same method, so what a report prints cannot drift from what runs. A value may be
  ``None`` where the rule depends on something other than eps (the chunk a batch is cut into).
- ``param_rules: dict[str, str]``: the rule of each such key, as a report prints it
  (``{"step_size": "2.5·ε/steps"}``).

An adapter of another library (it has ``suite_params()``, e.g. ``benchbench.art_attacks``) leaves
the keys a suite did not give to that library. Their defaults are read from the library's
constructor signature (``key_source()``, as ``benchbench plugins show`` reads them), or from the
adapter's class attribute of that name (ART adapters' ``norm``); where neither gives plain data,
or the library is not installed, the value is a ``LibraryDefault``. Reading an adapter's keys
imports its library (ART: seconds, once per process; ``benchbench run`` has imported it already).

Nothing here imports torch or a library at import time.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LibraryDefault:
    """A key left to the wrapped library, whose default could not be read as plain data."""

    library: str = "library"

    def __str__(self) -> str:
        return f"{self.library} default"


def _target(entry_or_class):
    """The registered object: a registry entry's ``obj``, or the class (factory) itself."""
    return entry_or_class.obj if hasattr(entry_or_class, "kind") and hasattr(
        entry_or_class, "obj") else entry_or_class


def _plain(value):
    """``value`` as JSON round-trips it, or ``None`` and False when it is not plain data."""
    try:
        value = json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return None, False
    return value, True


def _library_defaults(obj, params: dict) -> tuple[dict, set[str]]:
    """The keys an adapter accepts that ``params`` lacks, at its library's defaults (or its
    own class attribute), and which of them are the library's."""
    library = getattr(obj, "library", None) or "library"
    try:
        names = list(obj.suite_params())
        sources = obj.key_source() if callable(getattr(obj, "key_source", None)) else []
    except (ImportError, ValueError):  # the library is not installed: nothing can be read
        return {}, set()
    sources = list(sources) if isinstance(sources, list | tuple) else [sources]
    found: dict[str, inspect.Parameter] = {}
    for source in sources:
        for name, p in inspect.signature(source).parameters.items():
            if p.default is not p.empty:
                found.setdefault(name, p)
    out, theirs = {}, set()
    for name in names:
        if name in params:
            continue
        mine = getattr(obj, name, None)
        if isinstance(mine, str | int | float | bool):
            out[name] = mine  # an adapter's own default (ART adapters' norm = "linf")
            continue
        value, ok = _plain(found[name].default) if name in found else (None, False)
        out[name] = value if ok else LibraryDefault(library)
        theirs.add(name)
    return out, theirs


def effective_params(entry_or_class, params: dict, eps: float) -> dict:
    """The parameters the attack ``entry_or_class`` (a registry entry or the registered
    class) runs with at ``eps``, given the suite's ``params`` (a stored spec's: the suite's keys
    and the plugin's defaults).

    Returns a new dict: ``params``, then (adapters of another library only) the keys the suite
    did not give at the library's defaults (``LibraryDefault`` where they cannot be read), then
    whatever the built attack's optional ``effective_params(eps)`` derives, e.g. PGD's
    ``step_size`` left unset is ``2.5 * eps / steps``. ``params`` is not changed. An attack that
    declares nothing runs with ``params`` as they are. An adapter whose library is not installed
    cannot be built: its derived keys are then ``LibraryDefault`` too.
    """
    return effective_table(entry_or_class, params, [eps])["values"][0]


def effective_table(entry_or_class, params: dict, eps: Sequence[float]) -> dict:
    """``effective_params`` at each of ``eps`` (one build of the attack), with the rules of
    the derived keys: ``{"eps": [...], "values": [dict per eps], "rules": {key: text},
    "library": [keys at the wrapped library's defaults], "library_name": its name (an
    adapter's ``library``; None for an attack that wraps none)}``."""
    obj = _target(entry_or_class)
    adapter = hasattr(obj, "suite_params")
    defaults, library = _library_defaults(obj, params) if adapter else ({}, set())
    base = {**params, **defaults}
    derive = getattr(obj, "effective_params", None)
    built = None
    if callable(derive):
        try:
            built = obj(**params)
        except (ImportError, ValueError):
            if not adapter:
                raise
    rules = getattr(obj, "param_rules", None) or {}
    values, derived = [], set()
    for e in eps:
        extra = dict(built.effective_params(float(e))) if built is not None else {}
        derived.update(extra)
        values.append({**base, **extra})
    return {"eps": [float(e) for e in eps], "values": values,
            "rules": {k: str(rules[k]) for k in sorted(derived) if k in rules},
            "library": sorted(library - derived),
            "library_name": (getattr(obj, "library", None) or "library") if adapter else None}


def to_plain(table: dict) -> dict:
    """``effective_table``'s result as JSON data (for a store's metadata): a
    ``LibraryDefault`` becomes ``{"library_default": name}``, any other value not plain data
    its ``repr``; non-finite floats their ``repr`` too."""
    def plain(value):
        if isinstance(value, LibraryDefault):
            return {"library_default": value.library}
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        value_, ok = _plain(value)
        return value_ if ok else repr(value)

    return {**table, "values": [{k: plain(v) for k, v in row.items()}
                                for row in table["values"]]}


def from_plain(table: dict) -> dict:
    """``to_plain``'s inverse for ``LibraryDefault`` values (what a report reads back)."""
    def value(v):
        if isinstance(v, dict) and set(v) == {"library_default"}:
            return LibraryDefault(str(v["library_default"]))
        return v

    return {**table, "values": [{k: value(v) for k, v in row.items()}
                                for row in table.get("values", [])]}


def suite_effective_params(attacks, registry) -> dict[str, dict]:
    """Label -> ``to_plain(effective_table(...))`` for each of a suite's ``attacks``
    (``AttackRef``: name, label, params, eps): what ``benchbench run`` stores as the
    ``attack_params`` metadata, which the report prints."""
    return {a.label: to_plain(effective_table(registry.get("attack", a.name), dict(a.params),
                                              a.eps))
            for a in attacks}
