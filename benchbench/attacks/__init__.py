"""Attacks: the harness, the losses they ascend, and the built-in FGSM, PGD and BIM."""

NORMS = ("linf", "l2")  # the threat models an attack may declare


def attack_capabilities(attack) -> dict:
    """What a built attack declares that the report's flags read, as plain data for the store.

    ``norm`` (``"linf"``, ``"l2"``; ``None`` if it names none) and ``iterative``: ``True`` for
    an attack that ascends its loss inside the eps-ball in several gradient steps (PGD, BIM),
    ``False`` for a single gradient step (FGSM), ``None`` (undeclared) for anything else, e.g.
    a minimal-perturbation or decision-based attack, which no flag compares. Declared by the
    attack (a class or instance attribute), never inferred from its name or code. A value that
    is neither is refused: the suite names the attack.
    """
    iterative = getattr(attack, "iterative", None)
    if iterative is not None and not isinstance(iterative, bool):
        raise ValueError(f"iterative must be True, False or absent (None); got {iterative!r}")
    return {"norm": getattr(attack, "norm", None), "iterative": iterative}
