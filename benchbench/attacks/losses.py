"""Input gradients of the losses attacks ascend: cross-entropy, its stable form, the CW margin.

Every function returns one gradient per example (the batch is summed, never averaged), so an
example's gradient does not depend on the batch it is in.

* ``ce``: PyTorch's cross-entropy as is. Its gradient with respect to the logits is
  ``softmax - onehot``; once the true-class probability rounds to 1.0 in the run's dtype,
  ``p_y - 1`` is 0 and the gradient loses the true-class term (past a logit gap of about 103 in
  float32 every term underflows and the gradient is exactly zero). The seed study used this.
* ``ce_stable``: the same gradient divided by ``1 - p_y`` (a positive number per example), computed
  in log space as ``softmax over the other classes`` minus ``onehot``. Its sign and its direction
  are exactly those of the cross-entropy gradient, and it never rounds to zero.
* ``margin``: the Carlini-Wagner logit margin ``max_{j != y} z_j - z_y``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch only where a gradient is taken: registering attacks must stay cheap
    import torch

LOSSES = ("ce", "ce_stable", "margin")


def check_loss(loss: str) -> str:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
    return loss


def loss_gradient(model, x: torch.Tensor, y: torch.Tensor, loss: str = "ce", *,
                  with_logits: bool = False):
    """Gradient of ``loss`` (summed over the batch) with respect to the inputs ``x``; with
    ``with_logits``, ``(gradient, logits)`` (the logits of the same forward pass, detached)."""
    import torch
    import torch.nn.functional as F

    x = x.detach().requires_grad_(True)
    logits = model(x)
    true = y.unsqueeze(1)
    if loss == "ce":
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    elif loss == "ce_stable":
        with torch.no_grad():
            weights = logits.detach().scatter(1, true, float("-inf")).softmax(dim=1)
            weights.scatter_(1, true, -1.0)
        (grad,) = torch.autograd.grad(logits, x, grad_outputs=weights)
    elif loss == "margin":
        others = logits.scatter(1, true, float("-inf")).amax(dim=1)
        (grad,) = torch.autograd.grad((others - logits.gather(1, true).squeeze(1)).sum(), x)
    else:
        check_loss(loss)
    return (grad, logits.detach()) if with_logits else grad
