"""PreAct ResNet-18: the pre-activation ResNet of He et al., "Identity Mappings in Deep Residual
Networks" (ECCV 2016), as the CIFAR-10 model of Wong et al. (ICLR 2020) and of Rice et al.,
"Overfitting in adversarially robust deep learning" (ICML 2020).

Follows ``CIFAR10/preact_resnet.py`` of github.com/locuslab/fast_adversarial (the same file as
``preactresnet.py`` of github.com/locuslab/robust_overfitting): a 3x3 convolution to 64
channels, four stages of two ``PreActBlock``s (BatchNorm, ReLU, 3x3 convolution, twice, with an
identity shortcut, or a 1x1 convolution ``shortcut.0`` where the stage changes width or strides
by 2) of 64, 128, 256 and 512 channels, a last BatchNorm ``bn``, ReLU, average pooling and the
linear layer ``linear``. Module names are the reference's (``conv1``, ``layer1.0.bn1`` ...
``bn``, ``linear``), so its state dicts load unchanged; PyTorch's default initialisation, as
there, drawn in the same order.

Generalised only where the reference hard-codes CIFAR: input channels and classes come from the
dataset, and the pooling averages the whole last feature map (the reference's
``avg_pool2d(out, 4)`` on 32x32 inputs, and on 28x28 ones). ``width`` (64) sets the first
stage's channels, the others being 2, 4 and 8 times it; only 64 is the reference's network.
Shapes: ``x [N, C, H, W]`` in pixel space, logits ``[N, classes]``. BatchNorm normalises by the
batch and updates its running statistics in train mode, and uses them in eval mode.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchbench.models.images import add_normalization, global_pool, normalize


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, self.expansion * planes,
                                                    kernel_size=1, stride=stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet18(nn.Module):
    def __init__(self, *, input_shape, num_classes: int, width: int = 64, mean=None,
                 std=None) -> None:
        super().__init__()
        channels = input_shape[0]
        self.in_planes = width
        self.conv1 = nn.Conv2d(channels, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(width, 2, stride=1)
        self.layer2 = self._make_layer(2 * width, 2, stride=2)
        self.layer3 = self._make_layer(4 * width, 2, stride=2)
        self.layer4 = self._make_layer(8 * width, 2, stride=2)
        self.bn = nn.BatchNorm2d(8 * width)
        self.linear = nn.Linear(8 * width, num_classes)
        add_normalization(self, "preact_resnet18", mean=mean, std=std, channels=channels)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(PreActBlock(self.in_planes, planes, s))
            self.in_planes = planes * PreActBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(normalize(self, x))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.relu(self.bn(out))
        out = global_pool(out)
        out = out.view(out.size(0), -1)
        return self.linear(out)
