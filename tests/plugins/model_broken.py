"""Model factories each broken in one way the model kit (``benchbench.testing.check_model``)
must catch; ``BROKEN`` maps each to the check it must fail. All take digits' 1x8x8 inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(input_shape, num_classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 16), nn.ReLU(),
                         nn.Linear(16, num_classes))


class Wrapped(nn.Module):
    def __init__(self, input_shape, num_classes: int) -> None:
        super().__init__()
        self.net = _mlp(input_shape, num_classes)

    def forward(self, x):
        return self.net(x)


def build_wrong_shape(*, input_shape, num_classes):
    """One logit too many."""
    return _mlp(input_shape, num_classes + 1)


class Float32Inside(Wrapped):
    def forward(self, x):
        return self.net.float()(x.float())  # ignores the run's dtype


def build_float32_inside(*, input_shape, num_classes):
    return Float32Inside(input_shape, num_classes)


class StrayTensor(Wrapped):
    def __init__(self, input_shape, num_classes: int) -> None:
        super().__init__(input_shape, num_classes)
        self.scale = torch.tensor(2.0)  # not a buffer: .to() leaves it behind

    def forward(self, x):
        return self.net(x) * self.scale


def build_stray_tensor(*, input_shape, num_classes):
    return StrayTensor(input_shape, num_classes)


def build_unseeded(*, input_shape, num_classes):
    """Draws its weights from a generator of its own, seeded from the OS."""
    model = _mlp(input_shape, num_classes)
    gen = torch.Generator()
    gen.seed()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(model[1].weight.shape, generator=gen))
    return model


def build_seed_ignored(*, input_shape, num_classes):
    """Every seed gets the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _mlp(input_shape, num_classes)


class EvalNoise(Wrapped):
    def forward(self, x):
        return self.net(F.dropout(x, 0.5, training=True))  # dropout in eval mode too


def build_eval_noise(*, input_shape, num_classes):
    return EvalNoise(input_shape, num_classes)


class Unregistered(nn.Module):
    """Its hidden layer sits in a plain list: not a submodule, so not in the state dict."""

    def __init__(self, input_shape, num_classes: int) -> None:
        super().__init__()
        self.hidden = [nn.Linear(math.prod(input_shape), 16)]
        self.out = nn.Linear(16, num_classes)

    def forward(self, x):
        return self.out(torch.relu(self.hidden[0](x.flatten(1))))


def build_unregistered(*, input_shape, num_classes):
    return Unregistered(input_shape, num_classes)


class UnsavedMask(Wrapped):
    """A random input mask kept out of the state dict: a checkpoint does not restore it."""

    def __init__(self, input_shape, num_classes: int) -> None:
        super().__init__(input_shape, num_classes)
        self.register_buffer("mask", (torch.rand(input_shape) > 0.5).float(), persistent=False)

    def forward(self, x):
        return self.net(x * self.mask)


def build_unsaved_mask(*, input_shape, num_classes):
    return UnsavedMask(input_shape, num_classes)


class ModeNotPassedOn(nn.Module):
    """Overrides ``train`` without passing the mode on: its BatchNorm never leaves train mode."""

    def __init__(self, input_shape, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * input_shape[1] * input_shape[2], num_classes)

    def train(self, mode: bool = True):
        self.training = mode
        return self

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def build_mode_not_passed_on(*, input_shape, num_classes):
    return ModeNotPassedOn(input_shape, num_classes)


class SecretMode(Wrapped):
    def forward(self, x):
        return self.net(x) * (2.0 if self.training else 1.0)  # undeclared mode dependence


def build_secret_mode(*, input_shape, num_classes):
    return SecretMode(input_shape, num_classes)


class FalseClaim(Wrapped):
    mode_dependent = True  # but both modes compute the same


def build_false_claim(*, input_shape, num_classes):
    return FalseClaim(input_shape, num_classes)


class NoInputGradient(Wrapped):
    def forward(self, x):
        return self.net(x.detach())


def build_no_input_gradient(*, input_shape, num_classes):
    return NoInputGradient(input_shape, num_classes)


class InPlace(Wrapped):
    def forward(self, x):
        return self.net(x.clamp_(0.0, 0.5))  # writes into the caller's batch


def build_in_place(*, input_shape, num_classes):
    return InPlace(input_shape, num_classes)


def build_bad_stack(*, input_shape, num_classes):
    from benchbench.models.mlp import build_mlp

    return build_mlp(input_shape=input_shape, num_classes=num_classes, hidden=[16])


def _reversed_stack(models):
    from benchbench.models.stacked_mlp import stack_mlps

    return stack_mlps(list(reversed(models)))  # members in the wrong order


build_bad_stack.stack = _reversed_stack

def build_reserved_key(*, input_shape, num_classes, weights: float = 1.0):
    return _mlp(input_shape, num_classes)  # a suite's [model] weights is a file, never this


BROKEN = {
    build_wrong_shape: "logits [N, num_classes] in float32",
    build_float32_inside: "logits [N, num_classes] in float64",
    build_stray_tensor: "every tensor is a parameter or a buffer",
    build_unseeded: "two builds with one seed give identical weights",
    build_seed_ignored: "two seeds give different weights",
    build_eval_noise: "eval mode is deterministic and leaves the state unchanged (float32)",
    build_unregistered: "forward runs (float64)",  # its hidden layer stays float32
    build_unsaved_mask: "state_dict round-trip into another seed's model",
    build_mode_not_passed_on: "eval mode is deterministic and leaves the state unchanged "
                              "(float64)",
    build_secret_mode: "train and eval mode agree (no BatchNorm, no dropout)",
    build_false_claim: "mode_dependent: train and eval mode differ",
    build_no_input_gradient: "input gradient flows in eval mode (float32)",
    build_in_place: "input not modified (float64)",
    build_bad_stack: "stack: each member's logits on its rows",
    build_reserved_key: "no parameter named as a key benchbench takes in [model]",
}
