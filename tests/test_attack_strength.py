"""The attack kit's strength smoke test: an attack that leaves its inputs unchanged fails."""

from __future__ import annotations

import torch

from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.pgd import PGD
from benchbench.testing import STRONG_FOOLED, conformance, strength_check


class Identity:
    """Returns every input unchanged: passed all the other checks before the strength test."""

    norm = "linf"
    per_example = True

    def perturb(self, model, x, y, *, eps, bounds):
        return torch.stack([x.clone() for _ in eps])


class Faint:
    """A real perturbation, far too small to matter: eps / 1000 along the gradient sign."""

    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        return torch.stack([x + e / 1000 for e in eps])


def test_an_attack_that_changes_nothing_passes_everything_but_the_strength_check():
    checks = conformance(Identity)
    failed = [c for c in checks if not c.passed]
    assert [c.name for c in failed] == ["fools an undefended model at eps 0.5"]
    assert "fooled 0% of the 16 examples" in failed[0].detail
    assert not strength_check(Faint()).passed


def test_real_attacks_pass_it_in_both_norms():
    for attack in (FGSM(), PGD(steps=5), PGD(norm="l2", steps=5)):
        check = strength_check(attack)
        assert check.passed, (attack, check.detail)
    assert 0 < STRONG_FOOLED < 1
