"""Input normalisation as a layer the verifiers understand: ``(x - mean) / std`` per channel."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """``(x - mean) / std``, ``mean`` and ``std`` broadcast over one example (e.g. shape
    ``[C, 1, 1]`` for images): put it first in an ``nn.Sequential`` so that the data bounds
    and eps stay in pixel units."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        mean = torch.as_tensor(mean, dtype=torch.get_default_dtype())
        std = torch.as_tensor(std, dtype=torch.get_default_dtype())
        if not bool((std > 0).all()):
            raise ValueError(f"std must be positive; got {std.tolist()}")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std
