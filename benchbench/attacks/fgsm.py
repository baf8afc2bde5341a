"""Fast Gradient Sign Method (Goodfellow, Shlens and Szegedy, 2015, arXiv:1412.6572).

Threat model: untargeted, L-inf, white-box (needs input gradients). For each eps,
``x_adv = clip(x + eps * sign(grad_x CE(model(x), y)), lo, hi)`` with the true labels ``y``
passed explicitly. One gradient serves every eps. Shapes: ``x`` [N, ...], ``y`` [N], returns
[len(eps), N, ...]; the harness clips to the bounds.
"""

from __future__ import annotations

from collections.abc import Sequence

LOSSES = ("ce",)


class FGSM:
    """Fast Gradient Sign Method, L-inf, one gradient for all eps."""

    norm = "linf"
    needs_gradients = True
    per_example = True  # no randomness, no coupling across the batch

    def __init__(self, *, loss: str = "ce") -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
        self.loss = loss

    def perturb(self, model, x, y, *, eps: Sequence[float]):
        import torch

        from benchbench.attacks.harness import input_gradient

        step = input_gradient(model, x, y).sign_()
        out = torch.empty((len(eps), *x.shape), dtype=x.dtype, device=x.device)
        for i, e in enumerate(eps):  # x + e * step in one pass (e * step is exact)
            torch.add(x, step, alpha=e, out=out[i])
        return out
