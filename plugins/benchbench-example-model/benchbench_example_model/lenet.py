"""The LeNet-5 network: ``x [N, C, H, W]`` in pixel space to logits ``[N, num_classes]``."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    def __init__(self, input_shape, num_classes: int, *, batchnorm: bool, mean, std) -> None:
        super().__init__()
        channels, height, width = input_shape

        def norm(c: int) -> nn.Module:  # BatchNorm is mode-dependent: the harness sets modes
            return nn.BatchNorm2d(c) if batchnorm else nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=2), norm(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), norm(16), nn.ReLU(), nn.MaxPool2d(2))
        h, w = (height // 2 - 4) // 2, (width // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))
        # Buffers follow model.to(device, dtype) as the weights do; persistent=False keeps them
        # out of the state dict, so checkpoints hold only what the network learns.
        for name, values, default in (("mean", mean, 0.0), ("std", std, 1.0)):
            given = mean is not None or std is not None
            values = [float(v) for v in values] if values is not None else [default] * channels
            self.register_buffer(name, torch.tensor(values).view(channels, 1, 1)
                                 if given else None, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is not None:
            x = (x - self.mean) / self.std  # a new tensor: never modify the caller's x
        return self.classifier(self.features(x))
