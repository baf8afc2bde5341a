"""The inner maximisation the adversarial regimes share: L-inf PGD with the model frozen in the
mode each reference crafts in, and the pointwise KL of TRADES and MART
(``benchbench.regimes.adversarial`` uses them; ``benchbench.engine.training`` too)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only when training: registering regimes must stay cheap
    import torch

    from benchbench.regimes.context import TrainContext


@contextmanager
def crafting(ctx: TrainContext, model, mode: str = "eval") -> Iterator[torch.nn.Module]:
    """``model`` with its parameters frozen (input gradients only) in ``mode`` while crafting:
    ``"eval"`` is ``ctx.frozen``; ``"train"`` keeps training-mode behaviour (BatchNorm's batch
    statistics and running-statistics updates, dropout's masks). Training mode and
    ``requires_grad`` come back afterwards."""
    if mode == "eval":
        with ctx.frozen(model) as m:
            yield m
        return
    from benchbench.attacks.harness import frozen_in

    with frozen_in(model, train=True) as m:
        yield m


def mode_dependent(model) -> bool:
    """Whether ``model`` has modules that compute differently in training mode, or change
    state when called there: BatchNorm/InstanceNorm with running statistics, dropout."""
    from torch.nn.modules.batchnorm import _NormBase
    from torch.nn.modules.dropout import _DropoutNd

    return any(isinstance(m, _NormBase | _DropoutNd) for m in model.modules())


def pgd_linf(ctx: TrainContext, model, x, y, *, eps: float, steps: int, step_size: float,
             start: torch.Tensor, loss=None, clamp_start: bool = True,
             mode: str = "eval", freeze_misclassified: bool = False) -> torch.Tensor:
    """``steps`` signed-gradient ascent steps on ``loss(logits)`` (summed over examples;
    default: cross-entropy with ``y``) from ``start``, each projected onto the eps-ball around
    ``x`` and the bounds. ``clamp_start``: project ``start`` before the first gradient (Madry's
    ``pgd_attack.py``), else take it where it is (TRADES', MART's and Wong et al.'s MNIST code).
    The model is frozen in ``mode`` meanwhile (``crafting``). ``freeze_misclassified``: a
    step moves only the rows the model classifies correctly at their current point (Wong et
    al.'s MNIST PGD, ``train_mnist.py``'s ``I = output.max(1)[1] == y``)."""
    import torch
    import torch.nn.functional as F

    lo, hi = ctx.limits(x, eps)  # the projection ctx.project applies, computed once
    x_adv = torch.clamp(start, lo, hi) if clamp_start else start.detach().clone()
    # a stacked model's own cross-entropy input gradient: autograd's bits, not its graph
    # (not when rows freeze: that needs the logits, so the model's own forward runs)
    direct = getattr(model, "cross_entropy_input_grad", None) \
        if loss is None and not freeze_misclassified else None
    with crafting(ctx, model, mode):
        for _ in range(steps):
            if direct is not None:
                grad = direct(x_adv, y)
            else:
                x_adv.requires_grad_(True)
                logits = model(x_adv)
                value = F.cross_entropy(logits, y, reduction="sum") if loss is None \
                    else loss(logits)
                (grad,) = torch.autograd.grad(value, x_adv)
                x_adv = x_adv.detach()
            if freeze_misclassified:
                right = (logits.detach().argmax(1) == y).view(-1, *[1] * (x.dim() - 1))
                x_adv = torch.where(right, (x_adv + step_size * grad.sign()).clamp_(lo, hi),
                                    x_adv)
                continue
            # x + step * sign (exact: sign is -1, 0 or 1), clamped, in place: ctx.project's bits
            x_adv.add_(grad.sign_(), alpha=step_size).clamp_(lo, hi)
    return x_adv


def kl_per_example(log_q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row from ``log q`` and ``p``: ``nn.KLDivLoss``'s pointwise
    ``p * (log p - log q)`` (TRADES' and MART's criterion, ``log_target`` false), summed."""
    import torch.nn.functional as F

    return F.kl_div(log_q, p, reduction="none").sum(1)
