"""The attacks the verifiers run beside their proofs: targeted PGD on each logit margin.

``margin_attack`` minimises ``logit_y - logit_j`` for every example and every target ``j``
(one row per pair), in the model's own dtype, with signed-gradient steps projected onto the
eps-ball and the data bounds exactly as benchbench's attack harness projects them. It is what
``mip`` runs before its solver (an example it breaks never reaches the solver) and what the
soundness tests compare bounds with (no proved lower bound may exceed a margin it finds).
``misclassified`` checks candidate inputs by a forward pass.
"""

from __future__ import annotations

import torch

from benchbench.attacks.harness import linf_limits, project


def misclassified(model, points: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[N]`` bool: the model's own forward pass predicts a class other than ``y``."""
    with torch.no_grad():
        return model(points).argmax(1) != y


def margin_attack(model, x, y, *, eps: float, bounds, norm: str = "linf", targets=None,
                  steps: int = 100, restarts: int = 2, seed: int = 0, start=None):
    """``(margins [N, K], points [N, K, *x])``: the smallest ``logit_y - logit_j`` found for
    each target ``j`` in ``targets`` (bool ``[N, K]``; default every ``j != y``) and where
    (``+inf`` and ``x`` elsewhere). Restart 0 starts at ``start`` (default ``x``), the others
    uniformly in the ball (a generator seeded with ``seed``); step size ``2.5 eps / steps``."""
    N = len(x)
    with torch.no_grad():
        K = model(x[:1]).shape[1] if N else 0
    if targets is None:
        targets = torch.ones((N, K), dtype=torch.bool)
        targets[torch.arange(N), y] = False
    best = torch.full((N, K), float("inf"), dtype=torch.float64)
    points = x.unsqueeze(1).repeat(1, K, *[1] * (x.dim() - 1))
    rows, cols = targets.nonzero(as_tuple=True)
    if len(rows) == 0 or eps == 0:
        if len(rows):
            with torch.no_grad():
                logits = model(x).to(torch.float64)
            margin = logits.gather(1, y.unsqueeze(1)) - logits
            best[rows, cols] = margin[rows, cols]
        return best, points
    gen = torch.Generator().manual_seed(seed)
    xr, yr = x[rows], y[rows]
    limits = linf_limits(xr, eps, bounds) if norm == "linf" else None
    step = 2.5 * eps / steps
    for r in range(restarts):
        if r == 0:
            z = (start[rows] if start is not None else xr).clone()
        elif norm == "linf":
            noise = torch.rand(xr.shape, generator=gen, dtype=xr.dtype) * 2 - 1
            z = xr + eps * noise
        else:
            noise = torch.randn(xr.shape, generator=gen, dtype=xr.dtype)
            z = xr + eps * noise / noise.flatten(1).norm(dim=1).clamp_min(1e-12).view(
                -1, *[1] * (x.dim() - 1))
        z = project(z, xr, eps, norm, bounds, limits=limits)
        for _ in range(steps + 1):
            z = z.detach().requires_grad_(True)
            logits = model(z)
            margin = logits.gather(1, yr.unsqueeze(1)).squeeze(1) - logits[
                torch.arange(len(rows)), cols]
            with torch.no_grad():
                m64 = margin.detach().to(torch.float64)
                better = m64 < best[rows, cols]
                best[rows[better], cols[better]] = m64[better]
                points[rows[better], cols[better]] = z.detach()[better]
            if _ == steps:
                break
            (grad,) = torch.autograd.grad(margin.sum(), z)
            with torch.no_grad():
                if norm == "linf":
                    z = z - step * grad.sign()
                else:
                    g = grad.flatten(1)
                    z = z - step * (g / g.norm(dim=1, keepdim=True).clamp_min(1e-12)).view_as(z)
                z = project(z, xr, eps, norm, bounds, limits=limits)
    return best, points


def first_break(model, x, y, points: torch.Tensor):
    """``(broken [N], counterexample [N, *x])``: for each example, the first of its candidate
    ``points [N, K, *x]`` that the model misclassifies (NaN rows where none does)."""
    N, K = points.shape[:2]
    wrong = misclassified(model, points.flatten(0, 1), y.repeat_interleave(K)).view(N, K)
    broken = wrong.any(1)
    first = wrong.to(torch.int8).argmax(1)
    out = torch.full_like(x, float("nan"))
    out[broken] = points[broken, first[broken]]
    return broken, out
