"""Verifiers that lie, for the run's soundness check and validation.

``proves_everything`` declares itself sound and answers "robust" for every example at every eps:
wherever an attack (or the clean pass) breaks an example, a run must fail that cell naming both,
and store none of its numbers. ``unsound`` says honestly that it is not sound: a suite that names
it is refused, since its "robust" is not a proof.
"""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.verify.bounds import LAYERS


class ProvesEverything:
    """Claims a proof for every example (sound = True is a lie)."""

    sound = True
    complete = False
    layers = LAYERS

    def __init__(self, *, norm: str = "linf") -> None:
        self.norm = norm

    def verify(self, model, x, y, *, eps, bounds):
        import torch

        from benchbench.verify.verifiers import Verdicts

        return Verdicts(torch.ones(len(x), dtype=torch.int8))


class Unsound(ProvesEverything):
    """Declares that its "robust" is no proof."""

    sound = False


@hookimpl
def register_verifiers(register):
    register("proves_everything", ProvesEverything)
    register("unsound", Unsound)
