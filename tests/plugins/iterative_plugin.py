"""A test plugin of attacks that declare (or leave out) the ``iterative`` capability.

``lazy_iterative`` claims to iterate but proposes the clean inputs, so it is weaker than any
single-step attack: the report's "I" flag must catch it, exactly as it would a masked PGD.
``lazy_step`` is as weak but declares a single step, and ``lazy_undeclared`` declares nothing:
neither is compared. ``sharp_step`` is FGSM under another name, a third-party single-step
reference.
"""

from __future__ import annotations

from benchbench import hookimpl
from benchbench.attacks.fgsm import FGSM


class Lazy:
    """Proposes the clean inputs at every eps (accuracy stays clean); declares nothing."""

    norm = "linf"
    per_example = True

    def perturb(self, model, x, y, *, eps, bounds):
        return x.expand(len(eps), *x.shape).clone()


class LazyIterative(Lazy):
    """An "iterative" attack that never moves: what masked gradients look like."""

    iterative = True


class LazyStep(Lazy):
    """A single-step attack that never moves."""

    iterative = False


class SharpStep(FGSM):
    """FGSM registered by a third party: a single gradient step."""

    iterative = False


@hookimpl
def register_attacks(register):
    register("lazy_iterative", LazyIterative)
    register("lazy_step", LazyStep)
    register("lazy_undeclared", Lazy)
    register("sharp_step", SharpStep)
