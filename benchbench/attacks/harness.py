"""The threat model, enforced by the harness rather than by each attack.

An attack only proposes adversarial inputs. The harness puts the model in eval mode, projects the
proposal onto the eps-ball of the attack's norm and onto the data bounds, and counts which inputs
are still classified correctly. Attacks therefore cannot over-report their strength. The attack
gets copies of the inputs and labels, its proposal must be finite and of the right shape, dtype
and device, and it may not change the model (``benchbench.attacks.guard``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from benchbench.attacks import NORMS


@dataclass(frozen=True)
class AttackResult:
    """One attack on one batch: adversarial inputs and correctness, one row per eps."""

    eps: tuple[float, ...]
    x_adv: torch.Tensor  # [len(eps), *x.shape], projected
    correct: torch.Tensor  # [len(eps), batch] bool: still classified correctly

    @property
    def n_correct(self) -> list[int]:
        return self.correct.sum(dim=1).tolist()


def linf_limits(x: torch.Tensor, eps: float,
                bounds: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[max(x - eps, lo), min(x + eps, hi)]``: the L-inf ball around ``x`` within the bounds."""
    return (x - eps).clamp_(min=bounds[0]), (x + eps).clamp_(max=bounds[1])


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str,
            bounds: tuple[float, float], *, out: torch.Tensor | None = None,
            limits: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x`` and the bounds.

    ``out`` may be ``x_adv`` itself (in place). For L-inf, ``limits`` may pass
    ``linf_limits(x, eps, bounds)`` computed once for many projections around the same ``x``.
    """
    if norm == "linf":
        # clamp(clamp(a, x - eps, x + eps), lo, hi) in one pass: min and max are exact, so
        # clamping to [max(x - eps, lo), min(x + eps, hi)] gives the same bits (x in bounds)
        lo, hi = limits if limits is not None else linf_limits(x, eps, bounds)
        return torch.clamp(x_adv, lo, hi, out=out)
    if norm == "l2":
        delta = (x_adv - x).flatten(1)
        scale = (eps / delta.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        return torch.clamp(x + (delta * scale[:, None]).view_as(x), *bounds, out=out)
    raise ValueError(f"unknown norm {norm!r}; allowed: {', '.join(NORMS)}")


@contextmanager
def frozen_in(model: torch.nn.Module, *, train: bool) -> Iterator[torch.nn.Module]:
    """``model`` with its parameters frozen (input gradients only; custom backward passes
    cannot tell which gradients ``autograd.grad`` asked for), in training mode or eval mode;
    its mode and ``requires_grad`` come back afterwards."""
    was_training = model.training
    params = [p for p in model.parameters() if p.requires_grad]
    model.train(train)
    for p in params:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)
        model.train(was_training)


def attacking(model: torch.nn.Module):
    """``model`` in eval mode with its parameters frozen: how every attack sees it."""
    return frozen_in(model, train=False)


def attack_batch(attack, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 eps: Sequence[float], bounds: tuple[float, float]) -> AttackResult:
    """Run ``attack`` on one batch under the threat model and check the model on the result."""
    from benchbench.attacks.guard import check_proposal, model_unchanged

    with attacking(model):
        with model_unchanged(attack, model):  # copies: the attack cannot edit x, y
            proposal = attack.perturb(model, x.clone(), y.clone(), eps=tuple(eps),
                                      bounds=tuple(bounds))
        model.eval()  # whatever mode the attack left it in (attacking() restores the run's)
        x_adv = check_proposal(attack, proposal, x, len(eps)).detach().to(x.dtype)
        if x_adv.untyped_storage().data_ptr() == x.untyped_storage().data_ptr():
            x_adv = x_adv.clone()  # never write into the caller's inputs
        for i, e in enumerate(eps):  # project in place: no extra copy of every batch
            project(x_adv[i], x, e, attack.norm, bounds, out=x_adv[i])
        with torch.no_grad():  # one call per eps: the model only ever sees batches like x
            correct = torch.stack([model(adv).argmax(dim=1) == y for adv in x_adv])
    return AttackResult(tuple(eps), x_adv, correct)
