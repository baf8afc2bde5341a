"""Attacks: the harness, the losses they ascend, and the built-in FGSM, PGD and BIM."""

NORMS = ("linf", "l2")  # the threat models an attack may declare
