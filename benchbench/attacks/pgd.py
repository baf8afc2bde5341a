"""Projected gradient descent (Madry et al., 2018, arXiv:1706.06083) and the basic iterative
method (Kurakin, Goodfellow and Bengio, 2017, arXiv:1607.02533).

Threat model: untargeted, L-inf or L2, white-box. From ``x`` (or a uniform random start in the
ball), ``steps`` times: ascend the loss (sign of the gradient for L-inf, the gradient scaled to
unit L2 norm per example for L2) by ``step_size``, then project onto the eps-ball and the data
bounds. With ``restarts`` > 1 each example keeps the first restart that fools the model. Shapes:
``x`` [N, ...], ``y`` [N], returns [len(eps), N, ...]; one run per eps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchbench.attacks import NORMS
from benchbench.attacks.losses import check_loss

MAX_STEPS = 100_000  # gradient steps per run
MAX_RESTARTS = 1_000


class PGD:
    """Projected gradient descent, L-inf or L2, with random starts and restarts."""

    needs_gradients = True
    iterative = True  # several steps: never weaker than one (the flags' "I" check)
    #: what ``effective_params`` derives when the suite leaves it unset, as reports print it
    param_rules = {"step_size": "2.5·ε/steps"}

    def __init__(self, *, norm: str = "linf", steps: int = 40, step_size: float | None = None,
                 random_start: bool = True, restarts: int = 1, loss: str = "ce") -> None:
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        for key, value, most in (("steps", steps, MAX_STEPS), ("restarts", restarts, MAX_RESTARTS)):
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
                raise ValueError(f"{key} must be a positive integer, at most {most:,}; "
                                 f"got {value!r}")
        if step_size is not None and not (isinstance(step_size, int | float)
                                          and not isinstance(step_size, bool)
                                          and 0 < step_size < math.inf):
            raise ValueError(f"step_size must be a positive number, finite (or absent for "
                             f"2.5 * eps / steps); got {step_size!r}")
        if not isinstance(random_start, bool):
            raise ValueError(f"random_start must be true or false; got {random_start!r}")
        self.norm, self.steps, self.step_size = norm, steps, step_size
        self.random_start, self.restarts, self.loss = random_start, restarts, check_loss(loss)
        self.per_example = not random_start  # random starts draw from torch's RNG
        self.iterative = steps > 1  # one step is single-step: a reference for the I flag

    def effective_params(self, eps: float) -> dict:
        """The keys a run at ``eps`` resolves itself (``benchbench.attacks.params``): the
        step, when ``step_size`` is unset."""
        return {} if self.step_size is not None else {"step_size": 2.5 * eps / self.steps}

    def _step(self, eps: float) -> float:
        return self.effective_params(eps).get("step_size", self.step_size)

    def _start(self, x, eps: float):
        import torch

        if not self.random_start:
            return x.clone()
        if self.norm == "linf":
            return x + torch.empty_like(x).uniform_(-eps, eps)
        direction = torch.randn_like(x).flatten(1)
        direction /= direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        radius = eps * torch.rand(len(x), 1, dtype=x.dtype, device=x.device) ** (
            1.0 / direction.shape[1])
        return x + (direction * radius).view_as(x)

    def _run(self, model, x, y, eps: float, bounds):
        """One run from a (random) start; with restarts to come, also which examples it fooled."""
        import torch

        from benchbench.attacks.harness import linf_limits, project
        from benchbench.attacks.losses import loss_gradient

        step = self._step(eps)
        limits = linf_limits(x, eps, bounds) if self.norm == "linf" else None
        x_adv = project(self._start(x, eps), x, eps, self.norm, bounds, limits=limits)
        for _ in range(self.steps):
            grad = loss_gradient(model, x_adv, y, self.loss)
            if self.norm == "linf":
                x_adv = x_adv + step * grad.sign()
            else:
                norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
                x_adv = x_adv + step * grad / norms.view(-1, *[1] * (x.dim() - 1))
            x_adv = project(x_adv, x, eps, self.norm, bounds, limits=limits)
        if self.restarts == 1:
            return x_adv, None
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != y
        return x_adv, fooled

    def perturb(self, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0)):
        import torch

        out = torch.empty((len(eps), *x.shape), dtype=x.dtype, device=x.device)
        for i, e in enumerate(eps):
            best, fooled = self._run(model, x, y, e, bounds)
            for _ in range(self.restarts - 1):
                if bool(fooled.all()):
                    break
                candidate, now = self._run(model, x, y, e, bounds)
                take = now & ~fooled
                best[take], fooled = candidate[take], fooled | now
            out[i] = best
        return out


class BIM(PGD):
    """Basic iterative method: PGD from the clean input, no random start, no restarts."""

    def __init__(self, *, norm: str = "linf", steps: int = 10, step_size: float | None = None,
                 loss: str = "ce") -> None:
        super().__init__(norm=norm, steps=steps, step_size=step_size, random_start=False,
                         restarts=1, loss=loss)
