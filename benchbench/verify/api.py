"""The Python API: margin bounds, proofs and verdicts for a model on a batch.

``verify(model, x, y, *, eps, method="crown", bounds=(0, 1))`` returns ``BoolTensor[len(eps),
N]``, True where the property is proved: every input of the eps-ball within the data bounds
gives ``logit_y - logit_j > tol * max(1, max|logits(x)|)`` for every ``j != y``. A list of
methods takes the best per example (IBP can be tighter than CROWN on IBP-trained models).
``verdicts`` gives int8 codes (1 robust, 0 unknown, -1 not robust, the last only from ``mip``
with a counterexample checked by a forward pass of the model in its own dtype).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from benchbench.errors import VerifierError
from benchbench.verify import DEFAULT_TOL
from benchbench.verify.bounds import build_network, n_features
from benchbench.verify.domain import NORMS, make_domain

BOUND_METHODS = ("ibp", "crown_ibp", "crown")
METHODS = (*BOUND_METHODS, "mip")
MEMORY = 1 << 28  # bytes of float64 coefficients per chunk of examples (256 MiB)


def check_inputs(x, y, eps: Sequence[float], bounds, norm: str) -> tuple[float, ...]:
    """Refuse what no verifier can take, naming it; the eps as a tuple of floats."""
    if norm not in NORMS:
        raise VerifierError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    if isinstance(eps, int | float):
        eps = (eps,)
    eps = tuple(float(e) for e in eps)
    if not eps or not all(math.isfinite(e) and e >= 0 for e in eps):
        raise VerifierError(f"eps must be a list of finite numbers >= 0; got {list(eps)}")
    if not torch.is_floating_point(x) or x.dim() < 2:
        raise VerifierError(f"x must be a float tensor [N, ...]; got {x.dtype} {list(x.shape)}")
    if y.shape != x.shape[:1] or y.dtype != torch.int64:
        raise VerifierError(f"y must be int64 [N] class indices; got {y.dtype} {list(y.shape)}")
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < hi:
        raise VerifierError(f"bounds must be (lo, hi) with lo < hi; got {tuple(bounds)}")
    if len(x) and (float(x.min()) < lo or float(x.max()) > hi):
        raise VerifierError(f"x lies outside the data bounds {(lo, hi)}: values from "
                            f"{float(x.min()):g} to {float(x.max()):g}")
    return eps


def threshold(model, x, tol: float = DEFAULT_TOL) -> torch.Tensor:
    """``tol * max(1, max_k |logit_k(x)|)`` per example (float64): the margin a proof needs.

    Bounds are computed in float64 and are sound for the model evaluated in exact (or float64)
    arithmetic. The model's own float32 inference rounds every product and sum; this margin
    absorbs that rounding (measured about 1e-6 relative on the founding MLP) but is not a
    rigorous bound on it."""
    with torch.no_grad():
        scale = model(x).detach().abs().amax(1).to(torch.float64)
    return tol * scale.clamp(min=1.0)


def _chunk(net, rows: int, method: str = "crown") -> int:
    """Examples per chunk: ``MEMORY`` over a bound on one example's coefficients (``crown``:
    both bounds of every neuron of the widest layer; ``ibp``, ``crown_ibp``: the margins' rows
    only). Fewer, larger chunks pay fewer per-op overheads (IBP on 1,000 MNIST images: 17 per
    chunk took 1.3 times as long as one chunk on one thread, 5 times on two busy threads)."""
    widest = max(n_features(net.in_shape), *(n_features(s) for s in net.shapes))
    classes = net.shapes[-1][0]
    unstable = 2 * max([n_features(s) for s in net.shapes[:-1]] or [classes])
    per_example = 8 * 4 * widest * (classes if method != "crown" else max(unstable, classes))
    return max(1, min(rows, MEMORY // per_example))


def bound_chunk(net, dom, y, method: str):
    """``(margins [B, classes], layers)`` for one chunk: layers are the pre-activation bounds
    the margins used (none for ``ibp``'s margins fold of the last layer aside)."""
    from benchbench.verify.crown import crown_margins, layer_bounds, relaxation
    from benchbench.verify.ibp import ibp_layers, ibp_margins

    if method == "ibp":
        layers = ibp_layers(net, dom)
        return ibp_margins(net, dom, y, layers), layers
    if method == "crown_ibp":
        layers = ibp_layers(net, dom)
        relax = [relaxation(lo, hi) for lo, hi in layers]
    elif method == "crown":
        layers, relax = layer_bounds(net, dom, crown=True)
    else:
        raise VerifierError(f"method must be one of {', '.join(BOUND_METHODS)}; got {method!r}")
    # and the intervals of the last layer from those bounds, where tighter (auto_LiRPA's
    # compare_crown_with_ibp on the output)
    margins = torch.maximum(crown_margins(net, dom, y, relax), ibp_margins(net, dom, y, layers))
    return margins, layers


def margin_bounds(model, x, y, *, eps: float, method: str = "crown", bounds=(0.0, 1.0),
                  norm: str = "linf", net=None) -> torch.Tensor:
    """Lower bounds ``[N, classes]`` (float64) of ``logit_y - logit_j`` over the domain of each
    example, ``+inf`` at ``j = y``; the model is read in eval mode."""
    (eps,) = check_inputs(x, y, (eps,), bounds, norm)
    net = net or build_network(model, x.shape[1:], verifier=method)
    out = []
    step = _chunk(net, len(x), method)
    with torch.no_grad():
        for start in range(0, len(x), step):
            dom = make_domain(x[start:start + step], eps, bounds, norm)
            out.append(bound_chunk(net, dom, y[start:start + step], method)[0])
    classes = net.shapes[-1][0]
    return torch.cat(out) if out else torch.empty((0, classes), dtype=torch.float64)


def _methods(method) -> list[str]:
    methods = [method] if isinstance(method, str) else list(method)
    for m in methods:
        if m not in METHODS:
            raise VerifierError(f"unknown verification method {m!r}; known: {', '.join(METHODS)}")
    if not methods:
        raise VerifierError(f"method must name at least one of {', '.join(METHODS)}")
    return methods


def verdicts(model, x, y, *, eps, method="mip", bounds=(0.0, 1.0), norm: str = "linf",
             tol: float = DEFAULT_TOL, **mip_options) -> torch.Tensor:
    """int8 ``[len(eps), N]``: 1 robust (proved), 0 unknown, -1 not robust (a counterexample
    checked by the model's own forward pass; ``mip`` only). ``mip_options`` go to ``mip``
    (``time_limit`` and the attack's settings). A list of methods runs them in order, each on
    the examples the ones before left unknown."""
    from benchbench.attacks.harness import attacking
    from benchbench.engine.verdicts import on_cpu
    from benchbench.verify.mip import mip_verdicts

    eps = check_inputs(x, y, eps, bounds, norm)
    methods = _methods(method)
    if "mip" in methods and norm != "linf":  # its program is the L-inf box, nothing else
        raise VerifierError(f"method 'mip' solves the L-inf box only; got norm {norm!r} (use "
                            "ibp, crown_ibp or crown for l2)")
    model, x, y = on_cpu(model), x.cpu(), y.cpu()  # bounds on the CPU whatever the device
    out = torch.zeros((len(eps), len(x)), dtype=torch.int8)
    with attacking(model):
        thr = threshold(model, x, tol)
        nets = {m: build_network(model, x.shape[1:], verifier=m) for m in methods}
        for e_i, e in enumerate(eps):
            for m in methods:
                todo = (out[e_i] == 0).nonzero().flatten()
                if len(todo) == 0:
                    break
                if m == "mip":
                    result = mip_verdicts(model, x[todo], y[todo], eps=e, bounds=bounds,
                                          tol=tol, net=nets[m], **mip_options)
                    out[e_i, todo] = result.codes
                    continue
                lb = margin_bounds(model, x[todo], y[todo], eps=e, method=m, bounds=bounds,
                                   norm=norm, net=nets[m])
                out[e_i, todo] = (lb.amin(1) > thr[todo]).to(torch.int8)
    return out


def verify(model, x, y, *, eps, method="crown", bounds=(0.0, 1.0), norm: str = "linf",
           tol: float = DEFAULT_TOL, **mip_options) -> torch.Tensor:
    """BoolTensor ``[len(eps), N]``: True where robustness is proved (see the module)."""
    return verdicts(model, x, y, eps=eps, method=method, bounds=bounds, norm=norm, tol=tol,
                    **mip_options) == 1
