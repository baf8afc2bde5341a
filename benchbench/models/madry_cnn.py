"""The MNIST CNN of Madry et al., "Towards Deep Learning Models Resistant to Adversarial
Attacks" (ICLR 2018).

Follows ``model.py`` of github.com/MadryLab/mnist_challenge (TensorFlow, itself the TensorFlow
tutorial's network): a 5x5 convolution to 32 channels and one to 64, each with "SAME" padding,
ReLU and a 2x2 max-pool of stride 2, then a fully connected layer of 1024 units with ReLU and
the logits. Initialised as there: weights from a normal of std 0.1 truncated at two std
(``tf.truncated_normal``), every bias 0.1. TensorFlow's "SAME" pooling pads an odd side at the
end, which is PyTorch's ``ceil_mode=True``; on 28x28 inputs nothing is padded (28 -> 14 -> 7).

Differences from the reference, by necessity: the layout is PyTorch's (weights
``[out, in, kh, kw]``, activations flattened channel-major, C x H x W, where TensorFlow flattens
H x W x C), so a TensorFlow checkpoint needs its kernels transposed and ``fc1``'s rows permuted
before it loads; channels, image size and classes come from the dataset. Module names:
``conv1``, ``conv2``, ``fc1``, ``fc2``. Shapes: ``x [N, C, H, W]`` in pixel space, logits
``[N, classes]``. No BatchNorm, no dropout: train and eval mode compute the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchbench.models.images import add_normalization, normalize

STD = 0.1  # tf.truncated_normal(shape, stddev=0.1): redrawn outside two std
BIAS = 0.1  # tf.constant(0.1)


def pooled(size: int) -> int:
    """A side after a 2x2, stride-2 "SAME" max-pool."""
    return -(-size // 2)


class MadryCNN(nn.Module):
    def __init__(self, *, input_shape, num_classes: int, mean=None, std=None) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.conv1 = nn.Conv2d(channels, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.flat = 64 * pooled(pooled(height)) * pooled(pooled(width))
        self.fc1 = nn.Linear(self.flat, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.trunc_normal_(layer.weight, std=STD, a=-2 * STD, b=2 * STD)
            nn.init.constant_(layer.bias, BIAS)
        add_normalization(self, "madry_cnn", mean=mean, std=std, channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv1(normalize(self, x)))
        out = F.max_pool2d(out, 2, 2, ceil_mode=True)
        out = F.relu(self.conv2(out))
        out = F.max_pool2d(out, 2, 2, ceil_mode=True)
        out = F.relu(self.fc1(out.flatten(1)))
        return self.fc2(out)
