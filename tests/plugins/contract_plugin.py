"""A test plugin that provides one thing of every kind through the public hooks."""

from __future__ import annotations

from benchbench import hookimpl


def build_linear(*, input_shape, num_classes, bias: bool = True):
    """A single linear layer: the smallest model a suite can train."""
    import math

    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes, bias=bias))


class Blobs:
    """Four Gaussian blobs in 2-d, generated from a seed: a dataset with no files."""

    splits = ("train", "test")
    num_classes = 4
    input_shape = (2,)
    bounds = (-10.0, 10.0)

    def __init__(self, *, n: int = 400, seed: int = 0) -> None:
        self.n, self.seed = n, seed

    def prepare(self, *, data_dir=None, log=print) -> str:
        return "generated"

    def load(self, split, *, data_dir=None):
        import torch

        gen = torch.Generator().manual_seed(self.seed + (split == "test"))
        y = torch.arange(self.n) % 4
        centres = torch.tensor([[3.0, 3.0], [-3.0, 3.0], [-3.0, -3.0], [3.0, -3.0]])
        return centres[y] + torch.randn(self.n, 2, generator=gen, dtype=torch.float64), y


class FullBatch:
    """Full-batch gradient descent: one step per epoch on the whole training set."""

    def __init__(self, *, lr: float = 0.5, epochs: int = 3) -> None:
        self.lr, self.epochs, self.dtype = lr, epochs, "float32"
        self.checkpoint_epochs = tuple(range(1, epochs + 1))

    def train(self, *, model, x, y, seed):
        import torch
        import torch.nn.functional as F

        opt = torch.optim.SGD(model.parameters(), lr=self.lr)
        for epoch in range(1, self.epochs + 1):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            yield epoch


@hookimpl
def register_models(register):
    register("linear", build_linear)


@hookimpl
def register_datasets(register):
    register("blobs", Blobs)


@hookimpl
def register_regimes(register):
    register("full_batch", FullBatch)


@hookimpl
def register_attacks(register):
    from benchbench.attacks.fgsm import FGSM

    register("fgsm_copy", FGSM, summary="FGSM under another name")
