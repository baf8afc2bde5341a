"""Random-sign noise: an L-inf baseline attack, and the template for a benchbench plugin.

Threat model: untargeted, L-inf, black-box (no gradients, ignores ``model`` and ``y``). For each
eps, ``x_adv = x + eps * s`` with ``s`` a ±1 tensor shaped like ``x`` drawn from a
``torch.Generator`` seeded with ``seed``, the same ``s`` for every eps. Shapes: ``x`` [N, ...],
``y`` [N], returns [len(eps), N, ...]; the harness clips to the eps-ball and the ``bounds``.
"""

from __future__ import annotations

from collections.abc import Sequence

import benchbench


class RandomSign:
    """Random ±eps per coordinate from a seeded generator: the floor any real attack must beat."""

    norm = "linf"
    needs_gradients = False

    def __init__(self, *, seed: int = 0) -> None:
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
        self.seed = seed

    def perturb(self, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0)):
        import torch

        gen = torch.Generator().manual_seed(self.seed)  # a fresh generator: stateless, repeatable
        sign = torch.randint(0, 2, x.shape, generator=gen).mul_(2).sub_(1)
        sign = sign.to(device=x.device, dtype=x.dtype)
        return torch.stack([x + e * sign for e in eps])


@benchbench.hookimpl
def register_attacks(register):
    register("random_sign", RandomSign)
