"""An attack's parameters as the report prints them: the values it ran with, per eps where they
depend on it.

``benchbench run`` stores, in the store's ``attack_params`` metadata, what
``benchbench.attacks.params.effective_table`` says of every attack of the suite: the values at
each eps (the suite's keys, the plugin's defaults, an adapter's library defaults and what the
attack derives), the rule of each derived key and which keys the wrapped library decided. So
PGD's unset ``step_size`` reads ``step_size=2.5·ε/steps (0.04167 at ε=0.05, 0.1667 at
ε=0.2)`` and an ART key the suite left out ``max_iter=100 (ART default)``. A store written
before that metadata shows its spec's parameters; a key left for the attack to resolve
(``None``) reads "the attack's default (not recorded)".
"""

from __future__ import annotations

import json

from benchbench.attacks.params import LibraryDefault, from_plain

NOT_RECORDED = "the attack's default (not recorded)"


def stored_params(meta: dict[str, str]) -> dict[str, dict]:
    """Label -> the stored ``effective_table`` (``from_plain``), or ``{}`` (an older store)."""
    try:
        tables = json.loads(meta.get("attack_params") or "{}")
    except ValueError:
        return {}
    if not isinstance(tables, dict):
        return {}
    return {label: from_plain(t) for label, t in tables.items() if isinstance(t, dict)}


def value_text(value) -> str:
    """One value: floats to 4 significant digits, the rest as ``str`` writes them."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _per_eps(values: list, eps: list[float]) -> str:
    return ", ".join(f"{value_text(v)} at ε={e:g}" for v, e in zip(values, eps, strict=True)
                     if v is not None)


def key_text(key: str, values: list, eps: list[float], *, rule: str | None = None,
             library: str | None = None) -> str:
    """``key=...`` from its value at each of ``eps``: with a ``rule`` (a derived key), the rule
    and the values per eps; a value that varies with eps, per eps; else the value, marked
    ``(<library> default)`` where the wrapped ``library`` decided it."""
    if rule is not None:
        at = _per_eps(values, eps)
        return f"{key}={rule}" + (f" ({at})" if at else "")
    if any(v != values[0] for v in values):
        return f"{key}=({_per_eps(values, eps)})"
    value = values[0]
    if isinstance(value, LibraryDefault):
        return f"{key}={value}"
    return f"{key}={value_text(value)}" + (f" ({library} default)" if library else "")


def params_text(spec_params: dict, stored: dict | None) -> str:
    """``key=value, ...`` for one attack: from ``stored`` (its ``effective_table``) when the
    store has it, else from its spec's ``spec_params``."""
    if not stored or not stored.get("values"):
        return ", ".join(f"{k}={NOT_RECORDED if v is None else value_text(v)}"
                         for k, v in spec_params.items())
    rows, eps = stored["values"], [float(e) for e in stored.get("eps", [])]
    rules, library = stored.get("rules", {}), set(stored.get("library", []))
    name = stored.get("library_name") or "library"
    keys = list(dict.fromkeys(k for row in rows for k in row))
    return ", ".join(key_text(k, [row.get(k) for row in rows], eps, rule=rules.get(k),
                              library=name if k in library else None) for k in keys)
