"""TRADES' SmallCNN, the MNIST model of Zhang et al., "Theoretically Principled Trade-off
between Robustness and Accuracy" (ICML 2019).

Follows ``models/small_cnn.py`` of github.com/yaodongyu/TRADES layer for layer: four 3x3
convolutions (32, 32, 64, 64 channels, no padding) with ReLU and a 2x2 max-pool after each
pair, then 200-200 fully connected layers with dropout after the first, and the logits. Module
names are the reference's (``feature_extractor.conv1`` ... ``classifier.fc3``), so its state
dicts load unchanged; the initialisation is the reference's too (Kaiming-normal convolutions
with zero biases, a zero last layer, PyTorch's default for ``fc1``/``fc2``), drawn in the same
order, so one seed gives the reference's weights.

Generalised only where the reference hard-codes MNIST: input channels, classes and the size of
``fc1``'s input (64 x 4 x 4 on 28x28) come from the dataset; images need at least 16x16 pixels.
Shapes: ``x [N, C, H, W]`` in pixel space, logits ``[N, classes]``. Dropout (``dropout``, the
reference's ``drop = 0.5``) acts in train mode only.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from benchbench.models.images import add_normalization, normalize


def features(size: int) -> int:
    """A side of the feature maps after the two conv-conv-pool stages."""
    return ((size - 4) // 2 - 4) // 2


class SmallCNN(nn.Module):
    def __init__(self, *, input_shape, num_classes: int, dropout: float = 0.5,
                 mean=None, std=None) -> None:
        super().__init__()
        channels, height, width = input_shape
        self.flat = 64 * features(height) * features(width)
        self.feature_extractor = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(channels, 32, 3)),
            ("relu1", nn.ReLU(True)),
            ("conv2", nn.Conv2d(32, 32, 3)),
            ("relu2", nn.ReLU(True)),
            ("maxpool1", nn.MaxPool2d(2, 2)),
            ("conv3", nn.Conv2d(32, 64, 3)),
            ("relu3", nn.ReLU(True)),
            ("conv4", nn.Conv2d(64, 64, 3)),
            ("relu4", nn.ReLU(True)),
            ("maxpool2", nn.MaxPool2d(2, 2)),
        ]))
        self.classifier = nn.Sequential(OrderedDict([
            ("fc1", nn.Linear(self.flat, 200)),
            ("relu1", nn.ReLU(True)),
            ("drop", nn.Dropout(dropout)),
            ("fc2", nn.Linear(200, 200)),
            ("relu2", nn.ReLU(True)),
            ("fc3", nn.Linear(200, num_classes)),
        ]))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
        nn.init.constant_(self.classifier.fc3.weight, 0)
        nn.init.constant_(self.classifier.fc3.bias, 0)
        add_normalization(self, "small_cnn", mean=mean, std=std, channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.feature_extractor(normalize(self, x))
        # reshape, not view: the engine runs this model channels_last (feature maps NHWC)
        return self.classifier(out.reshape(-1, self.flat))
