"""Measuring one checkpoint: clean metrics on each split and every attack at every eps."""

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


def clean_records(model, x, y, *, epoch: int, split: str, batch_size: int) -> list[Record]:
    """Accuracy and mean cross-entropy of ``model`` on the whole split."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    loss = torch.zeros((), dtype=torch.float64, device=x.device)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = model(x[start:start + batch_size])
            target = y[start:start + batch_size]
            correct += (logits.argmax(1) == target).sum()
            loss += F.cross_entropy(logits, target, reduction="sum").double()
    model.train(was_training)
    n = len(x)
    return [Record(epoch, split, "none", 0.0, "accuracy", correct.item() / n),
            Record(epoch, split, "none", 0.0, "loss", loss.item() / n)]


def attack_records(model, attack, ref, x, y, *, epoch: int, bounds: tuple[float, float],
                   batch_size: int) -> list[Record]:
    """Accuracy under ``attack`` at each of ``ref.eps`` on the whole split."""
    n_correct = torch.zeros(len(ref.eps), dtype=torch.int64, device=x.device)
    for start in range(0, len(x), batch_size):
        result = attack_batch(attack, model, x[start:start + batch_size],
                              y[start:start + batch_size], eps=ref.eps, bounds=bounds)
        n_correct += result.correct.sum(dim=1)
    return [Record(epoch, ref.split, ref.label, eps, "accuracy", c / len(x))
            for eps, c in zip(ref.eps, n_correct.tolist(), strict=True)]
