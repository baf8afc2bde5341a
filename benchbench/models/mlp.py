"""The multi-layer perceptron of the founding study (784-200-300-10 on MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
INITS = ("xavier_uniform", "torch_default")


def build_mlp(*, input_shape: Sequence[int], num_classes: int, hidden: Sequence[int] = (200, 300),
              activation: str = "relu", init: str = "xavier_uniform"):
    """Fully connected classifier: flatten, hidden layers with one activation, linear logits.

    ``init = "xavier_uniform"`` draws weights Glorot-uniform and sets biases to zero (the seed's
    TensorFlow ``xavier_initializer``); ``"torch_default"`` keeps PyTorch's own initialisation.
    """
    import math

    import torch
    from torch import nn

    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    if isinstance(hidden, int | str) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be a list of positive layer sizes; got {hidden!r}")
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[activation]
    sizes = [math.prod(input_shape), *hidden, num_classes]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(n_in, n_out)
        if init == "xavier_uniform":
            nn.init.xavier_uniform_(linear.weight)
            with torch.no_grad():
                linear.bias.zero_()
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def _stack(models):
    from benchbench.models.stacked_mlp import stack_mlps

    return stack_mlps(models)


build_mlp.stack = _stack  # capability: several seeds of one shape train as one stacked module
