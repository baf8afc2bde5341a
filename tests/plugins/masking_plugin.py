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


class StillL2:
    """An L2 attack that proposes the clean inputs: accuracy stays clean at every eps. Its
    norm is the class's own, not a spec parameter (the L-inf-only "C" flag must not apply)."""

    norm = "l2"
    per_example = True

    def perturb(self, model, x, y, *, eps, bounds):
        return x.expand(len(eps), *x.shape).clone()


@hookimpl
def register_attacks(register):
    register("still_l2", StillL2)
