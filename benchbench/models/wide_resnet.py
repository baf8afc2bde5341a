"""Wide residual networks, WRN-depth-k of Zagoruyko and Komodakis, "Wide Residual Networks"
(BMVC 2016), in the pre-activation form TRADES and RobustBench use (WRN-34-10, WRN-28-10).

Follows ``robustbench/model_zoo/architectures/wide_resnet.py`` of github.com/RobustBench/
robustbench (itself TRADES' ``models/wideresnet.py``): a 3x3 convolution ``conv1`` to 16
channels, three ``NetworkBlock``s ``block1``-``block3`` of ``(depth - 4) / 6`` ``BasicBlock``s
each (``layer.<i>``: BatchNorm ``bn1``, ReLU, 3x3 ``conv1``, ``bn2``, ReLU, dropout, 3x3
``conv2``, plus the input or its 1x1 ``convShortcut`` where the width changes) of 16k, 32k and
64k channels (k = ``widen_factor``; strides 1, 2, 2), a last BatchNorm ``bn1``, ReLU, average
pooling and the linear layer ``fc``. Module names and the initialisation are the reference's
(convolutions normal with std sqrt(2 / (k * k * out_channels)), BatchNorm weight 1 and bias 0,
the linear bias 0), drawn in the same order, so RobustBench's WRN-28-10 and WRN-34-10 state
dicts load unchanged; ``sub_block1 = true`` adds the reference's unused ``sub_block1`` (a
copy of ``block1`` that ``forward`` never calls), which some checkpoints (TRADES' WRN-34-10)
hold.

Generalised only where the reference hard-codes CIFAR: input channels and classes come from the
dataset, and the pooling averages the whole last feature map (the reference's
``avg_pool2d(out, 8)`` on 32x32 inputs). ``dropout`` (the reference's ``dropRate``, 0) acts
after each block's second BatchNorm in train mode only. Shapes: ``x [N, C, H, W]`` in pixel
space, logits ``[N, classes]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from benchbench.models.images import add_normalization, global_pool, normalize


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, out_planes: int, stride: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1,
                               bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1, padding=1,
                               bias=False)
        # nn.Dropout calls F.dropout(out, p, self.training), as the reference's forward does
        self.dropout = nn.Dropout(drop_rate) if drop_rate > 0 else None
        self.equal_in_out = in_planes == out_planes
        self.convShortcut = None
        if not self.equal_in_out:
            self.convShortcut = nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride,
                                          padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.equal_in_out:
            x = self.relu1(self.bn1(x))
            out = x
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        return torch.add(x if self.equal_in_out else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, blocks: int, in_planes: int, out_planes: int, stride: int,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.layer = nn.Sequential(*[
            BasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                       drop_rate) for i in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, *, input_shape, num_classes: int, depth: int = 28,
                 widen_factor: int = 10, dropout: float = 0.0, sub_block1: bool = False,
                 mean=None, std=None) -> None:
        super().__init__()
        channels = input_shape[0]
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        blocks = (depth - 4) // 6
        self.conv1 = nn.Conv2d(channels, widths[0], kernel_size=3, stride=1, padding=1,
                               bias=False)
        self.block1 = NetworkBlock(blocks, widths[0], widths[1], 1, dropout)
        if sub_block1:
            self.sub_block1 = NetworkBlock(blocks, widths[0], widths[1], 1, dropout)
        self.block2 = NetworkBlock(blocks, widths[1], widths[2], 2, dropout)
        self.block3 = NetworkBlock(blocks, widths[2], widths[3], 2, dropout)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(widths[3], num_classes)
        self.channels = widths[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                with torch.no_grad():
                    m.weight.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)
        add_normalization(self, "wide_resnet", mean=mean, std=std, channels=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(normalize(self, x))
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = global_pool(out)
        out = out.view(-1, self.channels)
        return self.fc(out)
