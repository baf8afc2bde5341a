"""A model factory without the ``stack`` capability: its seeds train one by one."""

from __future__ import annotations

from benchbench import hookimpl


def build_linear(*, input_shape, num_classes):
    """A linear classifier on the flattened input (no ``stack``: trains alone)."""
    import math

    import torch

    return torch.nn.Sequential(torch.nn.Flatten(),
                               torch.nn.Linear(math.prod(input_shape), num_classes))


@hookimpl
def register_models(register):
    register("flat_linear", build_linear)
