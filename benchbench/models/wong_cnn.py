"""The small MNIST CNN of Wong, Rice and Kolter, "Fast is better than free: Revisiting
adversarial training" (ICLR 2020).

Follows ``MNIST/mnist_net.py`` of github.com/locuslab/fast_adversarial exactly: one
``nn.Sequential`` of a 4x4 convolution of stride 2 and padding 1 to 16 channels, ReLU, the same
to 32 channels, ReLU, flatten, a linear layer of 100 units, ReLU and the logits. The model is
that ``nn.Sequential`` (a subclass whose ``forward`` normalises first), so its parameters are
named as there, ``0.weight``, ``0.bias``, ``2.*``, ``5.*``, ``7.*``, and the repository's
published ``MNIST/models/fgsm.pth`` and ``pgd_madry.pth`` load unchanged (``strict=True``).
PyTorch's default initialisation, as the reference (which sets none), drawn in its order.

Channels, image size (at least 4x4) and classes come from the dataset; on 28x28 the linear
layer reads 32 x 7 x 7, as the reference's ``Linear(32*7*7, 100)``. Shapes: ``x [N, C, H, W]``
in pixel space, logits ``[N, classes]``. No BatchNorm, no dropout.
"""

from __future__ import annotations

import torch
from torch import nn

from benchbench.models.images import add_normalization, normalize


def downsampled(size: int) -> int:
    """A side after a 4x4 convolution of stride 2 and padding 1."""
    return (size + 2 - 4) // 2 + 1


class WongCNN(nn.Sequential):
    def __init__(self, *, input_shape, num_classes: int, mean=None, std=None) -> None:
        channels, height, width = input_shape
        h, w = downsampled(downsampled(height)), downsampled(downsampled(width))
        super().__init__(
            nn.Conv2d(channels, 16, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * h * w, 100),
            nn.ReLU(),
            nn.Linear(100, num_classes),
        )
        add_normalization(self, "wong_cnn", mean=mean, std=std, channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(normalize(self, x))
