"""Interval bound propagation (Gowal et al. 2018, arXiv:1810.12715; Mirman et al. 2018).

Intervals pass through each op in centre-radius form (``centre = op(mid)``, ``radius =
|op|(rad)``) and through each ReLU as ``[relu(l), relu(u)]``. The margin specification (label
logit minus each other logit) is folded into the last linear layer, as auto_LiRPA does (the
"elision" of Gowal et al.: ``C W`` as one layer is tighter than intervals on the logits).
For L2 the first chain is bounded exactly over the ball (its rows' dual norms) before intervals
take over, again as auto_LiRPA does for a first linear layer.
"""

from __future__ import annotations

import torch

from benchbench.verify.ops import Linear, chain_adjoint, chain_interval


def spec(y: torch.Tensor, classes: int, dtype=torch.float64) -> torch.Tensor:
    """``C [B, classes, classes]``: row ``j`` is ``e_y - e_j`` (row ``y`` is zero)."""
    eye = torch.eye(classes, dtype=dtype)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def exact_chain_bounds(chain, dom, out_shape):
    """Bounds of every output of an affine chain over the domain itself (no intervals)."""
    n = 1
    for d in out_shape:
        n *= d
    B = len(dom)
    A = torch.eye(n, dtype=torch.float64).reshape(1, n, *out_shape).expand(B, n, *out_shape)
    A, bias = chain_adjoint(chain, A, torch.zeros((B, n), dtype=torch.float64))
    lower = dom.concretize(A, bias)
    upper = -dom.concretize(-A, -bias)
    return lower.reshape(B, *out_shape), upper.reshape(B, *out_shape)


def first_bounds(net, dom):
    """Interval bounds of chain 0's output (for L2 also its exact bounds over the ball)."""
    lower, upper = chain_interval(net.chains[0], dom.lower, dom.upper)
    if dom.norm == "l2":
        exact = exact_chain_bounds(net.chains[0], dom, net.shapes[0])
        lower, upper = torch.maximum(lower, exact[0]), torch.minimum(upper, exact[1])
    return lower, upper


def ibp_layers(net, dom):
    """``[(lower, upper)]``: interval bounds of every ReLU's pre-activation."""
    out = []
    for i in range(net.relus):
        if i == 0:
            lower, upper = first_bounds(net, dom)
        else:
            lower, upper = chain_interval(net.chains[i], out[-1][0].clamp(min=0),
                                          out[-1][1].clamp(min=0))
        out.append((lower, upper))
    return out


PAIRS = 1 << 27  # bytes: the largest table of ``_pairs`` (10 classes: 100 rows; CIFAR-100: 10,000)


def _pairs(net, last: Linear):
    """The last layer folded with the margin specification for every label at once:
    ``W [K*K, n]`` with row ``y*K + j`` ``w_y - w_j`` (the row of ``C W`` for label ``y``),
    ``|W|``, and the biases ``[K, K]``; computed once per network (None where the tables
    would exceed ``PAIRS`` bytes). The same floats as ``C W`` (each is one subtraction), read
    by one product for the batch instead of a ``[B, K, n]`` tensor per batch."""
    key = ("pairs", len(net.chains) - 1)
    if key not in net.dense:
        K, n = last.weight.shape
        if 2 * 8 * K * K * n > PAIRS:
            net.dense[key] = None
        else:
            W = (last.weight.unsqueeze(1) - last.weight.unsqueeze(0)).reshape(K * K, n)
            b = None if last.bias is None else last.bias.unsqueeze(1) - last.bias.unsqueeze(0)
            net.dense[key] = (W, W.abs(), b)
    return net.dense[key]


def _with_label(margins: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return margins.scatter(1, y.unsqueeze(1), float("inf"))


def ibp_margins(net, dom, y, layers=None) -> torch.Tensor:
    """Lower bounds ``[B, classes]`` of ``logit_y - logit_j`` (``+inf`` at ``j = y``)."""
    classes = net.shapes[-1][0]
    C = spec(y, classes)
    last = net.chains[-1]
    if net.relus == 0:
        A, bias = chain_adjoint(last, C, torch.zeros(C.shape[:2], dtype=torch.float64))
        lower = dom.concretize(A, bias)
        if dom.norm == "linf":
            return _with_label(lower, y)
        lo, hi = dom.lower, dom.upper
    else:
        layers = layers if layers is not None else ibp_layers(net, dom)
        lo, hi = layers[-1][0].clamp(min=0), layers[-1][1].clamp(min=0)
        lower = None
    if last and isinstance(last[-1], Linear):
        lo, hi = chain_interval(last[:-1], lo, hi)
        mid, rad = (hi + lo) * 0.5, (hi - lo) * 0.5
        pairs = _pairs(net, last[-1])
        if pairs is not None:  # the rows of C W, one table for every label
            W, absW, b = pairs
            rows = (y.unsqueeze(1) * classes + torch.arange(classes)).flatten()
            pick = torch.arange(len(y)).repeat_interleave(classes)
            out = (mid.matmul(W.t())[pick, rows] - rad.matmul(absW.t())[pick, rows]
                   ).reshape(len(y), classes)
            out = out if b is None else out + b[y]
        else:
            W = C.matmul(last[-1].weight)  # [B, K, n]
            b = last[-1].bias_term(C)
            out = (W.matmul(mid.unsqueeze(-1)).squeeze(-1)
                   - W.abs().matmul(rad.unsqueeze(-1)).squeeze(-1))
            out = out if b is None else out + b
    else:
        lo, hi = chain_interval(last, lo, hi)
        mid, rad = ((hi + lo) / 2).unsqueeze(-1), ((hi - lo) / 2).unsqueeze(-1)
        out = C.matmul(mid).squeeze(-1) - C.abs().matmul(rad).squeeze(-1)
    if lower is not None:
        out = torch.maximum(out, lower)
    return _with_label(out, y)
