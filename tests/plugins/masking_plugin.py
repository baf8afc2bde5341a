"""A test plugin whose model saturates: logits scaled so far that gradients vanish."""

from __future__ import annotations

from benchbench import hookimpl


def build_saturated(*, input_shape, num_classes, scale: float = 1e4):
    """The built-in MLP with its logits multiplied by ``scale`` (a masked-gradient model)."""
    from torch import nn

    from benchbench.models.mlp import build_mlp

    class Saturated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = build_mlp(input_shape=input_shape, num_classes=num_classes, hidden=[32])

        def forward(self, x):
            return self.body(x) * scale

    return Saturated()


@hookimpl
def register_models(register):
    register("saturated", build_saturated)
