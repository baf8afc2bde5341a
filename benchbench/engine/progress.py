"""What a unit's progress events say about its numbers: small summaries of its records.

A unit sends ``Events.epoch_metrics`` after an epoch whose training recorded numbers (split
``fit``: a regime's ``ctx.record`` means, the PGD monitor) and ``Events.checkpoint_done`` after a
checkpoint was evaluated (clean accuracy and loss per split, each attack's accuracy per eps).
Both carry a plain ``{name: value}`` dict, the mean over the unit's members (a stack of seeds:
their mean), so they travel from any worker as cheaply as the other events. The numbers the
store keeps are the records themselves, which come back with the unit's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchbench.store.examples import CORRECT
from benchbench.store.verdicts import VERDICTS


def record_name(split: str, attack: str, eps: float, metric: str) -> str:
    """The name a record goes by in progress lines and trackers: ``test/accuracy`` for a clean
    number, ``test/fgsm/eps_0.05/accuracy`` for an attack's (a name MLflow accepts too)."""
    if attack == "none":
        return f"{split}/{metric}"
    return f"{split}/{attack}/eps_{eps:g}/{metric}"


def _tail(records: Sequence, epoch: int, fit: bool) -> list:
    """The records of ``epoch`` at the end of ``records`` (they are appended in epoch order):
    its training records (``fit``) or its evaluation's."""
    out = []
    for r in reversed(records):
        if r.epoch != epoch:
            break
        if (r.split == "fit") == fit and r.metric not in (CORRECT, VERDICTS):
            out.append(r)
    return out[::-1]


def _means(members: Sequence[Sequence], epoch: int, *, fit: bool, keep) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for records in members:
        for r in _tail(records, epoch, fit):
            if keep(r):
                sums.setdefault(record_name(r.split, r.attack, r.eps, r.metric), []).append(
                    float(r.value))
    return {name: sum(v) / len(v) for name, v in sums.items()}


def epoch_summary(members: Sequence[Sequence], epoch: int) -> dict[str, float]:
    """Mean over members of what training recorded at ``epoch`` (split ``fit``)."""
    return _means(members, epoch, fit=True, keep=lambda r: True)


def checkpoint_summary(members: Sequence[Sequence], epoch: int) -> dict[str, float]:
    """Mean over members of the checkpoint's clean accuracy and loss per split and every
    attack's accuracy per eps (the masking checks' fractions are left to the report)."""
    return _means(members, epoch, fit=False,
                  keep=lambda r: r.metric == "accuracy" or (r.attack == "none"
                                                            and r.metric == "loss"))
