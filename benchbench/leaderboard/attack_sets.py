"""Which attacks, with which parameters, an entry's number is over; entries grouped by them.

A worst case over {fgsm, pgd} and one over {mifgsm, pgd} are different measurements: ranking
them in one list says more than the numbers do. ``attack_key`` is what makes two attacks the
same (the registered name, every parameter, the test inputs it ran on; not the label a suite gave
it), ``evaluation`` an entry's set of them, and ``group_entries`` puts entries with the same set
together, so each group is ranked on its own (``render.board_data``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

GROUP_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def value_text(value) -> str:
    """A parameter's value as a suite would write it: strings bare, the rest as JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                           ensure_ascii=False)


def params_text(params: dict) -> str:
    return ", ".join(f"{k}={value_text(v)}" for k, v in sorted((params or {}).items()))


def describe_attack(label: str, attack: dict) -> str:
    """``pgd(norm=linf, restarts=1, steps=3)``, ``... on the first 500 test inputs``."""
    name = attack.get("attack") or label
    rows = attack.get("rows")
    return f"{name}({params_text(attack.get('params') or {})})" + (
        f" on the first {rows} test inputs" if rows else "")


def attack_key(label: str, attack: dict) -> tuple:
    """What makes two attacks the same measurement: name, every parameter, the inputs."""
    return (attack.get("attack") or label, json.dumps(attack.get("params") or {},
                                                      sort_keys=True), attack.get("rows"))


def evaluation(entry: dict, labels=None) -> tuple:
    """The (sorted) keys of the attacks ``labels`` (default: the worst case's) of ``entry``."""
    robust = entry["robust_accuracy"]
    labels = entry["worst_case"]["attacks"] if labels is None else labels
    return tuple(sorted(attack_key(label, robust[label]) for label in labels))


def params_complete(attack: dict) -> bool:
    """Whether the entry recorded every parameter of the attack (schema 2 says; a version-1
    entry never did)."""
    return bool(attack.get("params_complete", False))


@dataclass
class Group:
    """Entries whose ranked number is over the same attacks with the same parameters."""

    id: str | None  # "A", "B", ...; None when every entry is in one group
    attacks: list[str]  # describe_attack of each, sorted
    entries: list[dict] = field(default_factory=list)


def letter(i: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA, ..."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = GROUP_LETTERS[r] + out
    return out


def group_entries(entries: list[dict], *, key=evaluation) -> list[Group]:
    """``entries`` in groups of equal ``key`` (their worst case's attack set): the largest group
    first, then the one whose best entry ranks highest; lettered A, B, ... when more than one."""
    groups: dict[tuple, Group] = {}
    for e in entries:
        k = key(e)
        if k not in groups:
            robust = e["robust_accuracy"]
            groups[k] = Group(None, sorted(describe_attack(label, robust[label])
                                           for label in e["worst_case"]["attacks"]))
        groups[k].entries.append(e)
    best = {k: max(x["worst_case"]["mean"] for x in g.entries) for k, g in groups.items()}
    ordered = sorted(groups, key=lambda k: (-len(groups[k].entries), -best[k], json.dumps(k)))
    out = [groups[k] for k in ordered]
    if len(out) > 1:
        for i, g in enumerate(out):
            g.id = letter(i)
    return out
