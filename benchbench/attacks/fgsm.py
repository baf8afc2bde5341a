"""Fast Gradient Sign Method (Goodfellow, Shlens and Szegedy, 2015, arXiv:1412.6572).

Threat model: untargeted, L-inf, white-box (needs input gradients). For each eps,
``x_adv = clip(x + eps * sign(grad_x L(model(x), y)), lo, hi)`` with the true labels ``y``
passed explicitly and ``L`` one of ``benchbench.attacks.losses.LOSSES`` (default ``ce``, the
seed study's). One gradient serves every eps. Shapes: ``x`` [N, ...], ``y`` [N], returns
[len(eps), N, ...]; the harness clips to the bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

from benchbench.attacks.losses import check_loss


class FGSM:
    """Fast Gradient Sign Method, L-inf, one gradient for all eps."""

    norm = "linf"
    needs_gradients = True
    iterative = False  # one gradient step: the flags' single-step reference
    per_example = True  # no randomness, no coupling across the batch

    def __init__(self, *, loss: str = "ce") -> None:
        self.loss = check_loss(loss)

    def perturb(self, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0)):
        import torch

        from benchbench.attacks.losses import loss_gradient

        step = loss_gradient(model, x, y, self.loss).sign_()
        out = torch.empty((len(eps), *x.shape), dtype=x.dtype, device=x.device)
        for i, e in enumerate(eps):  # x + e * step in one pass (e * step is exact)
            torch.add(x, step, alpha=e, out=out[i])
        return out
