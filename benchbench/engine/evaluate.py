"""Measuring checkpoints: clean metrics on each split and every attack at every eps.

Both functions take ``members``: the model may be a stack of ``members`` independent models
that reads a member-major batch (``members`` copies of the inputs, one after the other) and
returns member-major logits. ``members == 1`` is an ordinary model. Results come back per member.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from benchbench.attacks.harness import attack_batch


class Record(NamedTuple):
    """One stored number: ``attack == "none"`` and ``eps == 0`` for clean metrics."""

    epoch: int
    split: str
    attack: str
    eps: float
    metric: str
    value: float


def _repeat(t: torch.Tensor, members: int) -> torch.Tensor:
    return t if members == 1 else t.repeat(members, *([1] * (t.dim() - 1)))


def _member_chunks(x, y, batch_size: int, members: int):
    """``(x, y)`` in chunks of ``batch_size`` rows in all, each repeated once per member."""
    chunk = max(1, batch_size // members)
    for start in range(0, len(x), chunk):
        yield (_repeat(x[start:start + chunk], members),
               _repeat(y[start:start + chunk], members))


def clean_records(model, x, y, *, epoch: int, split: str, batch_size: int,
                  members: int = 1) -> list[list[Record]]:
    """Accuracy and mean cross-entropy on the whole split, one list per member."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(members, dtype=torch.int64, device=x.device)
    loss = torch.zeros(members, dtype=torch.float64, device=x.device)
    with torch.inference_mode():
        for xb, yb in _member_chunks(x, y, batch_size, members):
            logits = model(xb)
            correct += (logits.argmax(1) == yb).view(members, -1).sum(1)
            loss += F.cross_entropy(logits, yb, reduction="none").view(members, -1) \
                .double().sum(1)
    model.train(was_training)
    n = len(x)
    return [[Record(epoch, split, "none", 0.0, "accuracy", c / n),
             Record(epoch, split, "none", 0.0, "loss", s / n)]
            for c, s in zip(correct.tolist(), loss.tolist(), strict=True)]


def attack_records(model, attack, ref, x, y, *, epoch: int, bounds: tuple[float, float],
                   batch_size: int, members: int = 1) -> list[list[Record]]:
    """Accuracy under ``attack`` at each of ``ref.eps`` on the whole split, per member."""
    n_correct = torch.zeros(members, len(ref.eps), dtype=torch.int64, device=x.device)
    for xb, yb in _member_chunks(x, y, batch_size, members):
        result = attack_batch(attack, model, xb, yb, eps=ref.eps, bounds=bounds)
        n_correct += result.correct.view(len(ref.eps), members, -1).sum(2).T
    return [[Record(epoch, ref.split, ref.label, eps, "accuracy", c / len(x))
             for eps, c in zip(ref.eps, counts, strict=True)]
            for counts in n_correct.tolist()]


def masking_records(model, x, y, *, epoch: int, split: str, batch_size: int,
                    members: int = 1) -> list[list[Record]]:
    """Gradient-masking measurements, per member: the fraction of inputs whose cross-entropy
    input gradient is exactly zero (``zero_grad_frac``), and whose true-class probability is
    exactly 1.0 in the run's dtype (``saturated_frac``)."""
    from benchbench.attacks.harness import attacking
    from benchbench.attacks.losses import loss_gradient

    zero = torch.zeros(members, dtype=torch.int64, device=x.device)
    saturated = torch.zeros(members, dtype=torch.int64, device=x.device)
    with attacking(model):
        for xb, yb in _member_chunks(x, y, batch_size, members):
            grad, logits = loss_gradient(model, xb, yb, "ce", with_logits=True)
            zero += (grad.flatten(1) == 0).all(dim=1).view(members, -1).sum(1)
            p_true = logits.softmax(dim=1).gather(1, yb.unsqueeze(1)).squeeze(1)
            saturated += (p_true == 1.0).view(members, -1).sum(1)
    n = len(x)
    return [[Record(epoch, split, "none", 0.0, "zero_grad_frac", z / n),
             Record(epoch, split, "none", 0.0, "saturated_frac", s / n)]
            for z, s in zip(zero.tolist(), saturated.tolist(), strict=True)]
