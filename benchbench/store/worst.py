"""Names of the worst-case (ensemble) rows: one pseudo-attack per norm.

An input counts as robust at an eps only if *every* attack of the suite with that norm failed on
it (AutoAttack's ensemble rule). Those accuracies are stored beside the attacks' own rows, as
attack ``worst_<norm>`` (``worst_linf``, ``worst_l2``), metric ``accuracy``; anything that walks
the attacks of a store (flags, plots, tables) tells them apart with ``is_worst``.
"""

from __future__ import annotations

PREFIX = "worst_"


def worst_name(norm: str) -> str:
    """The pseudo-attack holding the worst case over every attack of ``norm``."""
    return f"{PREFIX}{norm}"


def is_worst(attack: str) -> bool:
    """Whether ``attack`` names a worst-case row rather than an attack."""
    return str(attack).startswith(PREFIX)


def worst_norm(attack: str) -> str:
    """The norm of a worst-case row: ``worst_linf`` -> ``linf``."""
    if not is_worst(attack):
        raise ValueError(f"{attack!r} is not a worst-case row")
    return attack[len(PREFIX):]
