"""Noise-augmented training: a training regime, and the template for a benchbench regime plugin.

Every batch trains on ``x + u``, ``u ~ U(-sigma, sigma)`` per coordinate, projected onto the
L-inf ball of radius ``sigma`` around ``x`` and the data bounds. The noise comes from
``ctx.uniform`` (each seed's own generator), so seeds stacked into one model train as they
would alone and a resumed run draws what an uninterrupted one would. The harness owns the
loop: ``craft`` gets a batch ``x`` [N, ...] and returns the inputs to train on, same shape;
``loss`` returns one cross-entropy per example, ``Tensor[N]``.
"""

from __future__ import annotations

import math

import benchbench
from benchbench.regimes import Regime


class NoiseTraining(Regime):
    """Train on inputs plus uniform noise in [-sigma, sigma], kept inside the data bounds."""

    def __init__(self, *, sigma: float = 0.1, record: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)  # optimizer, lr, batch_size, epochs, checkpoints, dtype...
        if not isinstance(sigma, int | float) or isinstance(sigma, bool) or not (
                math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}")
        if not isinstance(record, bool):
            raise ValueError(f"record must be true or false; got {record!r}")
        self.sigma, self.record = float(sigma), record

    def craft(self, ctx, model, x, y):
        noisy = x + ctx.uniform(x, -self.sigma, self.sigma)
        return ctx.project(noisy, x, self.sigma)

    def loss(self, ctx, model, x, x_train, y):
        losses = super().loss(ctx, model, x, x_train, y)  # cross-entropy of model(x_train)
        if self.record:
            ctx.record("loss", losses)  # stored per epoch as split "fit"
        return losses


@benchbench.hookimpl
def register_regimes(register):
    register("noise_training", NoiseTraining)
