"""The verifier contract, its harness and the built-in verifiers.

A verifier class is built with its suite keys (keyword-only ``__init__`` parameters) and
declares, as class or instance attributes, never inferred:

* ``norm``: the threat model it proves (``"linf"`` or ``"l2"``), a key where it has several;
* ``sound``: every "robust" it returns is a proof (no input of the domain is misclassified);
* ``complete``: it can also answer "not robust" (with a counterexample) and, given time,
  decides every example;
* ``layers``: the layer kinds it bounds (``benchbench.verify.bounds.LAYERS`` names torch's;
  a plugin may add its own by class name).

``verify(model, x, y, *, eps, bounds) -> Verdicts`` answers one eps: int8 codes per example
(1 robust, 0 unknown, -1 not robust) and, for each -1, the counterexample. ``run_verifier``
is the harness: it refuses a model with an undeclared layer before anything runs (naming the
layer), puts the model in eval mode with frozen parameters, loops over eps, and keeps a -1 only
where the counterexample lies in the threat model's box and the model's own forward pass
misclassifies it (otherwise it becomes 0 and is counted in ``rejected``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from benchbench.errors import VerifierError
from benchbench.verify import DEFAULT_TOL, NOT_ROBUST
from benchbench.verify.bounds import LAYERS, check_layers

if TYPE_CHECKING:
    import torch


@dataclass
class Verdicts:
    """One eps: ``codes`` int8 ``[N]``; ``counterexamples`` ``[N, *x]`` (rows of -1 codes
    hold the input found, others anything) or None when there is no -1."""

    codes: torch.Tensor
    counterexamples: torch.Tensor | None = None


@dataclass
class VerifierResult:
    """Every eps of one batch: codes int8 ``[len(eps), N]``, the counterexamples of each eps
    (None where none) and how many -1 verdicts the harness rejected per eps."""

    eps: tuple[float, ...]
    codes: torch.Tensor
    counterexamples: list
    rejected: list[int]


def _positive(key: str, value, *, integer: bool = False):
    ok = (isinstance(value, int) if integer else isinstance(value, int | float))
    if not ok or isinstance(value, bool) or not (math.isfinite(value) and value > 0):
        kind = "a positive integer" if integer else "a positive finite number"
        raise ValueError(f"{key} must be {kind}; got {value!r}")
    return value


class BoundVerifier:
    """Base of the bound-propagation verifiers: proved where every margin's lower bound
    exceeds ``tol`` times the clean logits' scale. Sound, incomplete; L-inf or L2."""

    method: ClassVar[str] = ""
    sound: ClassVar[bool] = True
    complete: ClassVar[bool] = False
    norms: ClassVar[tuple[str, ...]] = ("linf", "l2")
    layers: ClassVar[tuple[str, ...]] = LAYERS
    revision: ClassVar[int] = 1

    def __init__(self, *, norm: str = "linf", tol: float = DEFAULT_TOL) -> None:
        if norm not in self.norms:
            raise ValueError(f"norm must be one of {', '.join(self.norms)}; got {norm!r}")
        self.norm, self.tol = norm, _positive("tol", tol)

    def verify(self, model, x, y, *, eps: float, bounds) -> Verdicts:
        from benchbench.verify.api import margin_bounds, threshold

        lower = margin_bounds(model, x, y, eps=eps, method=self.method, bounds=bounds,
                              norm=self.norm)
        import torch

        return Verdicts((lower.amin(1) > threshold(model, x, self.tol)).to(torch.int8))


class IBP(BoundVerifier):
    """Interval bound propagation (Gowal et al. 2018): the cheapest, loosest bounds."""

    method = "ibp"


class CROWNIBP(BoundVerifier):
    """CROWN-IBP (Zhang et al. 2020): interval bounds inside, CROWN for the margins."""

    method = "crown_ibp"


class CROWN(BoundVerifier):
    """CROWN (Zhang et al. 2018): backward linear relaxation with the adaptive lower slope."""

    method = "crown"


class MIP:
    """Exact verification (Tjeng et al. 2019): big-M MILP on HiGHS after CROWN and PGD."""

    sound: ClassVar[bool] = True
    complete: ClassVar[bool] = True
    norms: ClassVar[tuple[str, ...]] = ("linf",)
    layers: ClassVar[tuple[str, ...]] = LAYERS
    revision: ClassVar[int] = 1

    def __init__(self, *, norm: str = "linf", time_limit: float = 10.0, tol: float = DEFAULT_TOL,
                 attack_steps: int = 100, attack_restarts: int = 2, seed: int = 0) -> None:
        if norm not in self.norms:
            raise ValueError(f"norm must be linf (the MILP encodes an L-inf box); got {norm!r}")
        self.norm = norm
        self.time_limit = _positive("time_limit", time_limit)
        self.tol = _positive("tol", tol)
        self.attack_steps = _positive("attack_steps", attack_steps, integer=True)
        self.attack_restarts = _positive("attack_restarts", attack_restarts, integer=True)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an integer; got {seed!r}")
        self.seed = seed

    def verify(self, model, x, y, *, eps: float, bounds) -> Verdicts:
        from benchbench.verify.mip import mip_verdicts

        result = mip_verdicts(model, x, y, eps=eps, bounds=bounds, tol=self.tol,
                              time_limit=self.time_limit, attack_steps=self.attack_steps,
                              attack_restarts=self.attack_restarts, seed=self.seed)
        return Verdicts(result.codes, result.counterexamples)


def check_model(model, verifier, *, name: str | None = None) -> None:
    """Refuse ``model`` if it has a layer ``verifier`` does not declare (VerifierError naming
    the layer): what a run calls before it starts."""
    check_layers(model, tuple(verifier.layers), verifier=name or type(verifier).__name__)


def _in_threat_model(z, x, eps: float, norm: str, bounds) -> torch.Tensor:
    """``[N]`` bool: ``z`` lies in the eps-ball and the data bounds as the attack harness
    projects them in ``x``'s dtype."""
    import torch

    from benchbench.attacks.harness import linf_limits

    inside = ((z >= bounds[0]) & (z <= bounds[1])).flatten(1).all(1)
    if norm == "linf":
        lo, hi = linf_limits(x, eps, bounds)
        return inside & ((z >= lo) & (z <= hi)).flatten(1).all(1)
    slack = 1 + x[0].numel() * torch.finfo(x.dtype).eps
    return inside & ((z - x).flatten(1).norm(dim=1) <= eps * slack)


def run_verifier(verifier, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0),
                 name: str | None = None) -> VerifierResult:
    """Run ``verifier`` under the harness's rules (see the module) on one batch."""
    import torch

    from benchbench.attacks.harness import attacking
    from benchbench.verify.api import check_inputs
    from benchbench.verify.attack import misclassified

    label = name or type(verifier).__name__
    check_model(model, verifier, name=label)
    norm = getattr(verifier, "norm", None)
    eps = check_inputs(x, y, eps, bounds, norm)
    codes = torch.zeros((len(eps), len(x)), dtype=torch.int8)
    found, rejected = [], []
    with attacking(model):
        for e_i, e in enumerate(eps):
            v = verifier.verify(model, x, y, eps=e, bounds=tuple(bounds))
            c = v.codes
            if c.shape != (len(x),) or c.dtype != torch.int8 or not bool(
                    ((c >= -1) & (c <= 1)).all()):
                raise VerifierError(f"verifier {label} returned codes of {c.dtype} "
                                    f"{list(c.shape)}; expected int8 [{len(x)}] in -1, 0, 1")
            c = c.clone()
            bad = 0
            negative = (c == NOT_ROBUST).nonzero().flatten()
            if len(negative):
                cex = v.counterexamples
                ok = torch.zeros(len(negative), dtype=torch.bool)
                if cex is not None and cex.shape == x.shape:
                    z = cex[negative].to(x.dtype)
                    ok = (_in_threat_model(z, x[negative], e, norm, bounds)
                          & misclassified(model, z, y[negative]))
                bad = int((~ok).sum())
                c[negative[~ok]] = 0
                found.append(v.counterexamples)
            else:
                found.append(None)
            codes[e_i], rejected = c, [*rejected, bad]
    return VerifierResult(eps, codes, found, rejected)
