"""Evaluation protocols a leaderboard can require (``benchbench leaderboard --protocol NAME``).

A protocol is data: the attack(s) that must have been run, with the parameters that make them
that protocol, at the board's norm and eps, on the whole test split (or at least ``rows`` of
it), on every seed of the entry. ``admit`` tells whether an entry was evaluated under it (or
why not, in one phrase); ``ranked_summary`` is the number the board ranks: the protocol's
attack's robust accuracy, as RobustBench ranks its AutoAttack number, not the worst case over
every attack the entry also ran (that is shown beside it: extra attacks are allowed, and can
only lower the worst case, so ranking on it would reward entries attacked less).

To add one, add a ``Protocol`` to ``PROTOCOLS``; the README's "Leaderboard" lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchbench.leaderboard.attack_sets import params_text, value_text
from benchbench.leaderboard.runs import LeaderboardError


@dataclass(frozen=True)
class Requirement:
    """An attack the protocol needs: its registered name and the parameters that must have these
    values (others are free: a seed, say)."""

    attack: str
    params: tuple[tuple[str, object], ...] = ()

    def text(self) -> str:
        return f"{self.attack}({params_text(dict(self.params))})"

    def mismatch(self, attack: dict) -> str | None:
        """Why ``attack`` (an entry's ``robust_accuracy`` item) is not this one; None if it is."""
        if attack.get("attack") != self.attack:
            return "another attack"
        params = attack.get("params") or {}
        for key, want in self.params:
            if key not in params:
                return f"{key} not recorded"
            if params[key] != want:
                return f"{key}={value_text(params[key])}, not {value_text(want)}"
        return None


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str  # the ranked column's header
    description: str  # a sentence for the page
    requires: tuple[Requirement, ...]
    rows: int | None = None  # None: the whole test split; N: at least the first N inputs
    reference: str = ""

    def text(self) -> str:
        attacks = " and ".join(r.text() for r in self.requires)
        where = ("on the whole test split" if self.rows is None
                 else f"on at least the first {self.rows} test inputs")
        return f"{attacks} at the board's norm and eps, {where}, on every seed"


PROTOCOLS = {
    "autoattack-standard": Protocol(
        name="autoattack-standard",
        title="AutoAttack (standard)",
        description=("RobustBench's standard evaluation: AutoAttack, version standard (APGD-CE, "
                     "APGD-T, FAB-T and Square, as the attack's library runs them)"),
        requires=(Requirement("autoattack", (("version", "standard"),)),),
        rows=None,
        reference="Croce and Hein, 2020, arXiv:2003.01690; RobustBench, arXiv:2010.09670"),
}


def get_protocol(name: str) -> Protocol:
    """The protocol called ``name``; ``LeaderboardError`` naming the known ones otherwise."""
    if name not in PROTOCOLS:
        raise LeaderboardError(f"--protocol {name!r} is not a protocol benchbench knows; use one "
                               f"of {', '.join(sorted(PROTOCOLS))}")
    return PROTOCOLS[name]


def _matches(protocol: Protocol, requirement: Requirement, entry: dict) -> tuple[list, list]:
    """(labels of ``entry``'s attacks that meet ``requirement``, why each near miss does not)."""
    found, misses = [], []
    seeds = len(entry["seeds"])
    for label, attack in sorted(entry["robust_accuracy"].items()):
        why = requirement.mismatch(attack)
        if why == "another attack":
            continue
        norm = attack.get("norm") or entry["threat_model"]
        rows = attack.get("rows")
        if why is None and norm != entry["threat_model"]:
            why = f"norm {norm}"
        if why is None and rows is not None and (protocol.rows is None or rows < protocol.rows):
            why = f"on the first {rows} test inputs only"
        if why is None and attack["n"] != seeds:
            why = f"on {attack['n']} of {seeds} seeds"
        (misses.append(f"{label}: {why}") if why else found.append(label))
    return found, misses


def admit(protocol: Protocol, entry: dict) -> tuple[list[str] | None, str | None]:
    """(the labels of the attacks that make ``entry`` evaluated under ``protocol``, None), or
    (None, why not: one phrase)."""
    labels = []
    for requirement in protocol.requires:
        found, misses = _matches(protocol, requirement, entry)
        if not found:
            tail = f" ({'; '.join(misses)})" if misses else ""
            return None, (f"no {requirement.text()} at eps {entry['eps']:g}{tail}; its attacks: "
                          f"{', '.join(sorted(entry['robust_accuracy']))}")
        # several runs of the same requirement: the strictest (lowest mean) counts
        labels.append(min(found, key=lambda label: (entry["robust_accuracy"][label]["mean"],
                                                    label)))
    return labels, None


def ranked_summary(entry: dict, labels: list[str]) -> dict:
    """The protocol's number for ``entry``: the per-seed minimum over ``labels`` (one attack per
    requirement; with one requirement, that attack's accuracy itself)."""
    from benchbench.leaderboard.entries import summary

    robust = entry["robust_accuracy"]
    values = [min(v) for v in zip(*(robust[label]["values"] for label in labels), strict=True)]
    return {**summary(values), "attacks": list(labels), "exact": len(labels) == 1}
