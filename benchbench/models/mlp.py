"""The multi-layer perceptron of the founding study (784-200-300-10 on MNIST)."""

from __future__ import annotations

from collections.abc import Sequence

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu")
INITS = ("xavier_uniform", "torch_default")
MAX_UNITS = 100_000  # units per hidden layer
MAX_LAYERS = 100  # hidden layers
MAX_PARAMS = 100_000_000  # weights and biases in all (400 MB in float32; the founding study: 0.2 M)


def check_hidden(hidden, n_in: int, n_out: int) -> None:
    """Refuse layer sizes that are not a list of 1..MAX_UNITS or would make a model over
    MAX_PARAMS parameters (checked before torch allocates anything)."""
    if (not isinstance(hidden, list | tuple) or len(hidden) > MAX_LAYERS
            or not all(isinstance(h, int) and not isinstance(h, bool) and 0 < h <= MAX_UNITS
                       for h in hidden)):
        shown = repr(hidden) if len(repr(hidden)) <= 60 else repr(hidden)[:57] + "..."
        raise ValueError(f"hidden must be a list of at most {MAX_LAYERS} layer sizes, each an "
                         f"integer from 1 to {MAX_UNITS:,}; got {shown}")
    sizes = [n_in, *hidden, n_out]
    params = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    if params > MAX_PARAMS:
        raise ValueError(f"hidden {list(hidden)} makes {params:,} parameters; at most "
                         f"{MAX_PARAMS:,} are allowed")


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
    check_hidden(hidden, math.prod(input_shape), num_classes)
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
