"""Measuring checkpoints: clean metrics on each split and every attack at every eps.

Both functions take ``members``: the model may be a stack of ``members`` independent models
that reads a member-major batch (``members`` copies of the inputs, one after the other) and
returns member-major logits. ``members == 1`` is an ordinary model. Results come back per member.

With ``examples=True``, clean and attack measurements also return which examples stayed correct:
one record per split (clean) or eps (attack), metric ``CORRECT``, whose value is the packed bits
as text (``benchbench.store.examples``); the store keeps them and derives the worst case.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from benchbench.attacks.harness import attack_batch
from benchbench.store.examples import CORRECT, encode


class Record(NamedTuple):
    """One stored number: ``attack == "none"`` and ``eps == 0`` for clean metrics. With metric
    ``CORRECT``, ``value`` is not a number but the text of packed per-example correctness."""

    epoch: int
    split: str
    attack: str
    eps: float
    metric: str
    value: float


def _repeat(t: torch.Tensor, members: int) -> torch.Tensor:
    return t if members == 1 else t.repeat(members, *([1] * (t.dim() - 1)))


def packed_correct(correct: torch.Tensor) -> str:
    """A record's value for the bools ``correct`` [n]: ``numpy.packbits`` of them (first example
    in the first byte's high bit, zero-padded to whole bytes), as ``encode``'s text."""
    import numpy as np

    return encode(len(correct), np.packbits(correct.cpu().numpy().astype(bool)).tobytes())


def _member_chunks(x, y, batch_size: int, members: int):
    """``(x, y)`` in chunks of ``batch_size`` rows in all, each repeated once per member."""
    chunk = max(1, batch_size // members)
    for start in range(0, len(x), chunk):
        yield (_repeat(x[start:start + chunk], members),
               _repeat(y[start:start + chunk], members))


def clean_records(model, x, y, *, epoch: int, split: str, batch_size: int,
                  members: int = 1, examples: bool = False) -> list[list[Record]]:
    """Accuracy and mean cross-entropy on the whole split, one list per member (and which
    examples were correct, with ``examples``)."""
    was_training = model.training
    model.eval()
    correct = torch.zeros(members, dtype=torch.int64, device=x.device)
    loss = torch.zeros(members, dtype=torch.float64, device=x.device)
    chunks = []
    with torch.inference_mode():
        for xb, yb in _member_chunks(x, y, batch_size, members):
            logits = model(xb)
            hits = (logits.argmax(1) == yb).view(members, -1)
            correct += hits.sum(1)
            if examples:
                chunks.append(hits)
            loss += F.cross_entropy(logits, yb, reduction="none").view(members, -1) \
                .double().sum(1)
    model.train(was_training)
    n = len(x)
    out = [[Record(epoch, split, "none", 0.0, "accuracy", c / n),
            Record(epoch, split, "none", 0.0, "loss", s / n)]
           for c, s in zip(correct.tolist(), loss.tolist(), strict=True)]
    if examples:
        hits = torch.cat(chunks, dim=1)
        for i, mine in enumerate(out):
            mine.append(Record(epoch, split, "none", 0.0, CORRECT, packed_correct(hits[i])))
    return out


def attack_records(model, attack, ref, x, y, *, epoch: int, bounds: tuple[float, float],
                   batch_size: int, members: int = 1,
                   examples: bool = False) -> list[list[Record]]:
    """Accuracy under ``attack`` at each of ``ref.eps`` on the whole split, per member (and,
    with ``examples``, which examples stayed correct at each eps)."""
    n_correct = torch.zeros(members, len(ref.eps), dtype=torch.int64, device=x.device)
    chunks = []
    for xb, yb in _member_chunks(x, y, batch_size, members):
        result = attack_batch(attack, model, xb, yb, eps=ref.eps, bounds=bounds)
        hits = result.correct.view(len(ref.eps), members, -1)
        n_correct += hits.sum(2).T
        if examples:
            chunks.append(hits)
    out = [[Record(epoch, ref.split, ref.label, eps, "accuracy", c / len(x))
            for eps, c in zip(ref.eps, counts, strict=True)]
           for counts in n_correct.tolist()]
    if examples:
        hits = torch.cat(chunks, dim=2)
        for i, mine in enumerate(out):
            mine += [Record(epoch, ref.split, ref.label, eps, CORRECT, packed_correct(hits[j, i]))
                     for j, eps in enumerate(ref.eps)]
    return out


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
