"""The input set a proof covers: the eps-ball around each example within the data bounds.

L-inf: the box ``[max(x - eps, lo), min(x + eps, hi)]``, widened to contain the same box as
the attack harness computes it in the model's own dtype (``linf_limits`` on ``x`` as given), so
that a proof covers every point an attack of benchbench may try. L2: the ball (its radius
widened by the rounding of a float norm in the model's dtype, ``n * machine eps`` relative)
intersected with the box ``[x - eps, x + eps]`` within the data bounds; linear functions are
bounded over each of the two and the larger lower bound is kept (both are sound).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NORMS = ("linf", "l2")


@dataclass
class Domain:
    norm: str
    eps: float
    x0: torch.Tensor  # [B, *in] float64
    lower: torch.Tensor  # [B, *in] float64: a box containing the domain
    upper: torch.Tensor

    def __len__(self) -> int:
        return len(self.x0)

    def rows(self, sel) -> Domain:
        return Domain(self.norm, self.eps, self.x0[sel], self.lower[sel], self.upper[sel])

    def concretize(self, A: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The lower bound of ``A x + bias`` over the domain: ``A [B, k, *in]`` -> ``[B, k]``."""
        flat = A.flatten(2)
        centre = ((self.upper + self.lower) / 2).flatten(1).unsqueeze(-1)
        rad = ((self.upper - self.lower) / 2).flatten(1).unsqueeze(-1)
        box = flat.matmul(centre).squeeze(-1) - flat.abs().matmul(rad).squeeze(-1) + bias
        if self.norm == "linf":
            return box
        ball = (flat.matmul(self.x0.flatten(1).unsqueeze(-1)).squeeze(-1)
                - self.eps * flat.norm(dim=2) + bias)
        return torch.maximum(box, ball)


    def concretize_window(self, A: torch.Tensor, bias: torch.Tensor, box) -> torch.Tensor:
        """``concretize`` of ``A [B, k, C, h, w]``, the coefficients on the input window
        ``box = (y0, y1, x0, x1)`` of an image domain (zero elsewhere)."""
        y0, y1, x0, x1 = box
        part = Domain(self.norm, self.eps, self.x0[..., y0:y1, x0:x1],
                      self.lower[..., y0:y1, x0:x1], self.upper[..., y0:y1, x0:x1])
        return part.concretize(A, bias)


def make_domain(x: torch.Tensor, eps: float, bounds, norm: str = "linf") -> Domain:
    """The domain around ``x`` (any float dtype; bounds are computed in float64)."""
    from benchbench.attacks.harness import linf_limits

    lo, hi = float(bounds[0]), float(bounds[1])
    x64 = x.detach().to(torch.float64)
    if norm == "linf":
        lower = (x64 - eps).clamp(min=lo)
        upper = (x64 + eps).clamp(max=hi)
        if x.dtype != torch.float64:
            own_lo, own_hi = linf_limits(x.detach(), eps, (lo, hi))
            lower = torch.minimum(lower, own_lo.to(torch.float64))
            upper = torch.maximum(upper, own_hi.to(torch.float64))
        return Domain(norm, float(eps), x64, lower, upper)
    if norm == "l2":
        n = x[0].numel()
        radius = float(eps) * (1.0 + n * torch.finfo(x.dtype).eps)
        lower = (x64 - radius).clamp(min=lo)
        upper = (x64 + radius).clamp(max=hi)
        return Domain(norm, radius, x64, lower, upper)
    raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
