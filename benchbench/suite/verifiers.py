"""A suite's ``[[verifiers]]`` tables: read and checked like ``[[attacks]]``.

```toml
[[verifiers]]
name = "crown"        # a registered verifier (benchbench plugins): ibp, crown_ibp, crown, mip
eps = [0.01, 0.02]    # one number or a list
rows = 200            # optional: only the test split's first 200 rows (absent: all)
at = "last"           # optional: only the last checkpoint (default "all")
label = "crown"       # optional, default the name; distinct from every attack's label
norm = "linf"         # every other key is a parameter of the verifier (time_limit for mip)
```

Verifiers run on the suite's test split. Labels share the store's ``attack`` column with the
attacks, so they must differ from every attack label, from ``none`` and from the names of the
derived rows (``worst_*``, ``certified_*``, ``exact_*``, ``gap_*``), which attack labels may
not take either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: prefixes of the rows derived from per-example bits and verdicts (and the report's gap)
RESERVED = ("worst_", "certified_", "exact_", "gap_")
MAX_VERIFIERS = 20
VERIFIER_KEYS = ("eps", "rows", "at")


@dataclass(frozen=True)
class VerifierRef:
    """A registered verifier with the parameters the suite gives it, on the test split."""

    name: str
    label: str
    eps: tuple[float, ...]
    params: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None  # only the test split's first ``rows`` rows (None: all)
    at: str = "all"  # "all" checkpoints, or the "last" one only

    def to_dict(self) -> dict[str, Any]:
        """Plain data; ``rows`` and ``at`` only when set (as for attacks)."""
        out = asdict(self)
        for key, unset in (("rows", None), ("at", "all")):
            if out[key] == unset:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerifierRef:
        return cls(**{**data, "eps": tuple(data["eps"])})


def parse_verifiers(check, registry, data: dict[str, Any], *, ds_name: str, ds_cls,
                    attacks) -> tuple[VerifierRef, ...]:
    """The suite's ``[[verifiers]]`` (``data`` is the whole document), or the one-line
    ``SuiteError`` naming the key; also refuses attack labels with a reserved prefix."""
    from benchbench.suite.document import short as _short
    from benchbench.suite.load import ATTACK_AT, CLEAN, _check_plugin, _eps, _labelled

    for i, attack in enumerate(attacks):
        if attack.label.startswith(RESERVED[1:]):
            raise check.fail(f"attacks[{i}].label", f"{attack.label!r} starts with a prefix "
                             f"reserved for rows derived from verdicts ({', '.join(RESERVED)}); "
                             "label the attack otherwise")
    raw_items = data.get("verifiers", [])
    items = check.tables(raw_items, "verifiers") if raw_items else []
    if len(items) > MAX_VERIFIERS:
        raise check.fail("verifiers", f"{len(items):,} verifiers; at most {MAX_VERIFIERS} are "
                         "allowed")
    taken = {a.label: f"attacks[{i}]" for i, a in enumerate(attacks)}
    out = []
    for where, name, label, params, raw in _labelled(check, items, "verifiers", VERIFIER_KEYS,
                                                     indexed=True):
        if label == CLEAN or label.startswith(RESERVED):
            raise check.fail(f"{where}.label", f"{label!r} is reserved ({CLEAN!r} for the clean "
                             f"metrics, {', '.join(p + '*' for p in RESERVED)} for derived "
                             "rows); give the verifier another label")
        if label in taken:
            raise check.fail(f"{where}.label", f"{label!r} is already used by {taken[label]}; "
                             "verifiers and attacks share the store's attack column: give "
                             "this one a distinct label = \"...\"")
        params = _check_plugin(check, registry, "verifier", where, name, params)
        norm = params.get("norm", getattr(registry.get("verifier", name).obj, "norm", None))
        eps = _eps(check, f"{where}.eps", raw.get("eps"), ds_name, ds_cls, norm)
        rows = raw.get("rows")
        if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool)
                                 or not 1 <= rows <= 10_000_000):
            raise check.fail(f"{where}.rows", "the number of the test split's first rows to "
                             "verify, an integer from 1 to 10,000,000 (absent: all); got "
                             f"{_short(rows)}")
        at = raw.get("at", "all")
        if at not in ATTACK_AT:
            raise check.fail(f"{where}.at", f"which checkpoints to verify: one of "
                             f"{', '.join(ATTACK_AT)}; got {_short(at)}")
        out.append(VerifierRef(name, label, eps, params, rows=rows, at=at))
    return tuple(out)
