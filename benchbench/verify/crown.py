"""CROWN (Zhang et al. 2018, arXiv:1811.00866; auto_LiRPA: Xu et al. 2020, arXiv:2002.12920)
and CROWN-IBP (Zhang et al. 2020, arXiv:1906.06316).

A linear function of a chain's output is pulled back to the input through every op and every
ReLU, each unstable ReLU (``l < 0 < u``) relaxed by the triangle's upper line ``u (x - l) /
(u - l)`` and the adaptive lower line: slope 1 if ``u > -l`` else 0 (auto_LiRPA's default,
``relu_lower_bound_init`` "adaptive", with its ``1e-8`` guard on ``u - l``); stable ReLUs are
exact. The pulled-back function is bounded over the input domain (``Domain.concretize``).

Intermediate bounds (each ReLU's pre-activation):

* ``crown``: interval bounds from the previous layer's bounds first; the neurons they leave
  unstable are then bounded by CROWN and the tighter of the two kept per neuron (stable neurons
  keep their interval bounds: their relaxation is exact whatever the bound). This is
  auto_LiRPA's ``sparse_intermediate_bounds`` with ``compare_crown_with_ibp``, and what makes
  CROWN on 10,000 MNIST images a matter of minutes: only unstable neurons are pulled back.
* ``crown_ibp``: interval bounds only; CROWN for the final margins.

The margins are CROWN's, or where tighter the intervals of the last layer from the last
intermediate bounds (auto_LiRPA's ``compare_crown_with_ibp`` on the output; ``api.bound_chunk``).

The upper bound of ``a . z`` is minus the lower bound of ``-a . z`` (the same relaxation), so
both are pulled back in one pass of ``2k`` rows. Coefficients are dense (auto_LiRPA's patches
mode is not implemented); what keeps them cheap: the unstable rows in blocks of at most
``BLOCK`` bytes (memory the allocator reuses), a convolution chain's rows gathered from its
dense matrix, through a linear layer only the columns of ReLUs not stably inactive, and the
rows after a second convolution cut to the window they reach through the first one
(``benchbench.verify.crop``: patches for that convolution only).
"""

from __future__ import annotations

import torch

from benchbench.verify.crop import (
    block_box,
    croppable,
    order_rows,
    pull_back_window,
    relax_window,
    select_window,
)
from benchbench.verify.crop import (
    blocks as crop_blocks,
)
from benchbench.verify.ibp import _with_label, first_bounds, spec
from benchbench.verify.ops import Linear, chain_adjoint, chain_dense, chain_interval, interval_exact

DENSE = 1 << 27  # bytes: the largest dense matrix of a chain kept for ``_select`` (128 MiB)
BLOCK = 1 << 25
"""Bytes of one coefficient tensor in ``_tighten`` (its unstable rows go in blocks): 32 MiB,
glibc's largest mmap threshold, so that with ``benchbench run``'s ``keep_freed_memory`` the
tensors come from reused heap blocks, not fresh pages (measured: CROWN on the founding MLP in
half the CPU time)."""


def relaxation(lower: torch.Tensor, upper: torch.Tensor):
    """``(lower_slope, upper_slope, upper_intercept)`` of each ReLU (auto_LiRPA's formulas)."""
    lb = lower.clamp(max=0)
    ub = torch.maximum(upper.clamp(min=0), lb + 1e-8)
    upper_d = ub / (ub - lb)
    upper_b = -lb * upper_d
    lower_d = (upper_d > 0.5).to(lower.dtype)
    return lower_d, upper_d, upper_b


def _dense(net, i):
    """Chain ``i`` as one dense ``(W, b)``, computed once per network, or None where ``W`` would
    take more than ``DENSE`` bytes."""
    if i not in net.dense:
        in_shape = net.shapes[i - 1] if i else net.in_shape
        fits = 8 * net_size(in_shape) * net_size(net.shapes[i]) <= DENSE
        net.dense[i] = chain_dense(net.chains[i], in_shape, net.shapes[i]) if fits else None
    return net.dense[i]


def _select(net, i, idx):
    """The one-hot rows ``idx [B, k]`` of chain ``i``'s output pulled back to its input:
    gathered from a last linear layer's weights, or from the chain's dense matrix (a
    convolution's adjoint of ``k`` one-hots per example costs far more than the gather)."""
    chain, shape = net.chains[i], net.shapes[i]
    if chain and isinstance(chain[-1], Linear):
        last = chain[-1]
        bias = (last.bias[idx] if last.bias is not None
                else torch.zeros(idx.shape, dtype=torch.float64))
        return chain_adjoint(chain[:-1], last.weight[idx], bias)
    dense = _dense(net, i)
    if dense is not None:
        W, b = dense
        in_shape = net.shapes[i - 1] if i else net.in_shape
        return W[idx].reshape(*idx.shape, *in_shape), b[idx]
    B, k = idx.shape
    onehot = torch.zeros((B, k, net_size(shape)), dtype=torch.float64)
    onehot.scatter_(2, idx.unsqueeze(-1), 1.0)
    return chain_adjoint(chain, onehot.reshape(B, k, *shape),
                         torch.zeros((B, k), dtype=torch.float64))


def net_size(shape) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def pull_back(net, relax, m: int, A, bias, dom):
    """Lower bound of ``A . input(chain m) + bias`` given the relaxations of ReLUs below."""
    for i in range(m, 0, -1):
        lower_d, upper_d, upper_b = relax[i - 1]
        # A+ lower_d + A- upper_d = A upper_d + A+ (lower_d - upper_d); A- . b = (A - A+) . b:
        # one clamp and no A- (the elementwise passes are most of CROWN's time on CNNs)
        pos = A.clamp(min=0)
        ub = upper_b.flatten(1).unsqueeze(-1)
        bias = bias + (A.flatten(2).matmul(ub) - pos.flatten(2).matmul(ub)).squeeze(-1)
        pos.mul_((lower_d - upper_d).unsqueeze(1))
        A = pos.add_(A * upper_d.unsqueeze(1))
        A, bias = _adjoint_live(net.chains[i - 1], A, bias, (lower_d != 0) | (upper_d != 0))
    return dom.concretize(A, bias)


def _pull_back_both(net, relax, m: int, A, bias, dom):
    """``pull_back`` of the rows ``[A; -A]`` (both bounds of each row of ``A``), the first ReLU
    step taken from ``A`` alone (``_relax_both``)."""
    if m == 0:
        return pull_back(net, relax, 0, torch.cat([A, -A], 1), torch.cat([bias, -bias], 1), dom)
    lower_d, upper_d, _ = relax[m - 1]
    out, bias = _relax_both(A, bias, relax[m - 1])
    out, bias = _adjoint_live(net.chains[m - 1], out, bias, (lower_d != 0) | (upper_d != 0))
    return pull_back(net, relax, m - 1, out, bias, dom)


def _relax_both(A, bias, relax_m):
    """The rows ``[A; -A]`` through one ReLU's relaxation, and their biases: with
    ``D = A+ (lower_d - upper_d)`` the rows of ``A`` become ``A upper_d + D`` and those of
    ``-A`` (``(-A)+ = A+ - A``) ``D - A lower_d``; no negated or concatenated copy of ``A`` is
    relaxed (the elementwise passes are most of CROWN's time on CNNs)."""
    lower_d, upper_d, upper_b = relax_m
    B, r = A.shape[:2]
    pos = A.clamp(min=0)
    ub = upper_b.reshape(B, -1, 1)
    p = pos.flatten(2).matmul(ub).squeeze(-1)
    q = A.flatten(2).matmul(ub).squeeze(-1)
    D = pos.mul_((lower_d - upper_d).unsqueeze(1))
    out = torch.empty((B, 2 * r, *A.shape[2:]), dtype=A.dtype)
    torch.addcmul(D, A, upper_d.unsqueeze(1), out=out[:, :r])
    torch.addcmul(D, A, lower_d.unsqueeze(1), value=-1, out=out[:, r:])
    return out, torch.cat([bias + q - p, -bias - p], 1)


def _adjoint_live(chain, A, bias, live):
    """``chain_adjoint`` of ``A [B, k, n]`` whose columns outside ``live [B, n]`` (the ReLUs
    not stably inactive: both slopes 0) are zero. Through a last linear layer only the live
    columns are multiplied, gathered per example (padded with dead ones: zero columns), where
    that saves a fifth or more of the product: the stably inactive neurons' share."""
    if not (chain and isinstance(chain[-1], Linear)) or A.dim() != 3:
        return chain_adjoint(chain, A, bias)
    live = live.flatten(1)
    m = int(live.sum(1).max()) if len(live) else 0
    if m > 0.8 * live.shape[1]:
        return chain_adjoint(chain, A, bias)
    keep = torch.sort((~live).to(torch.int8), dim=1, stable=True).indices[:, :m]  # live first
    last = chain[-1]
    A = A.gather(2, keep.unsqueeze(1).expand(-1, A.shape[1], -1))
    if last.bias is not None:
        bias = bias + A.matmul(last.bias[keep].unsqueeze(-1)).squeeze(-1)
    return chain_adjoint(chain[:-1], A.matmul(last.weight[keep]), bias)


def _unstable_rows(lower, upper):
    """``(idx [B, k], valid [B, k])``: each example's unstable neurons, padded to the most."""
    mask = ((lower < 0) & (upper > 0)).flatten(1)
    counts = mask.sum(1)
    k = int(counts.max()) if len(counts) else 0
    if k == 0:
        return None, None
    # stable sort: unstable first, in index order; padding repeats index 0 (masked out)
    order = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices[:, :k]
    valid = torch.arange(k).unsqueeze(0) < counts.unsqueeze(1)
    return torch.where(valid, order, 0), valid


def layer_bounds(net, dom, *, crown: bool = True):
    """``(layers, relax)``: bounds ``[(lower, upper)]`` of every ReLU's pre-activation and
    their relaxations, CROWN-tightened on interval-unstable neurons when ``crown``."""
    layers, relax = [], []
    for i in range(net.relus):
        chain = net.chains[i]
        if i == 0:
            lower, upper = first_bounds(net, dom)
            exact = dom.norm == "l2" or interval_exact(chain)
        else:
            lower, upper = chain_interval(chain, layers[-1][0].clamp(min=0),
                                          layers[-1][1].clamp(min=0))
            exact = False
        if crown and not exact:
            lower, upper = _tighten(net, relax, i, dom, lower, upper)
        layers.append((lower, upper))
        relax.append(relaxation(lower, upper))
    return layers, relax


def _tighten(net, relax, i, dom, lower, upper):
    idx, valid = _unstable_rows(lower, upper)
    if idx is None:
        return lower, upper
    B, k = idx.shape
    # rows in blocks: no coefficient tensor above BLOCK bytes
    widest = max(net_size(s) for s in [net.in_shape, *net.shapes[:i + 1]])
    blocks = -(-k // max(1, BLOCK // (8 * 2 * B * widest)))
    rows = -(-k // blocks)
    spans = [(start, min(k, start + rows)) for start in range(0, k, rows)]
    crop = croppable(net, i)
    if crop:  # blocks of rows with nearby boxes: one per row of layer i's map
        idx, valid = order_rows(net, idx, valid)
        spans = crop_blocks(net, idx, valid, rows)
    lows, ups = [], []
    for start, stop in spans:
        part, ok = idx[:, start:stop], valid[:, start:stop]
        box = block_box(net, part, ok) if crop else None
        if box is not None:
            A, bias = select_window(net, part, box)
            out, bias = _relax_both(A, bias, relax_window(relax[0], box))
            both = pull_back_window(net, box, out, bias, dom)
        else:
            A, bias = _select(net, i, part)
            both = _pull_back_both(net, relax, i, A, bias, dom)
        r = part.shape[1]
        lows.append(both[:, :r])
        ups.append(-both[:, r:])
    new_lower, new_upper = torch.cat(lows, 1), torch.cat(ups, 1)
    # padded rows repeat index 0: a reduction by max (min) keeps only valid rows' bounds
    inf = torch.tensor(float("inf"), dtype=torch.float64)
    best_lower = torch.full_like(lower.flatten(1), -inf).scatter_reduce(
        1, idx, torch.where(valid, new_lower, -inf), reduce="amax")
    best_upper = torch.full_like(upper.flatten(1), inf).scatter_reduce(
        1, idx, torch.where(valid, new_upper, inf), reduce="amin")
    return (torch.maximum(lower, best_lower.reshape(lower.shape)),
            torch.minimum(upper, best_upper.reshape(upper.shape)))


def crown_margins(net, dom, y, relax) -> torch.Tensor:
    """CROWN lower bounds ``[B, classes]`` of ``logit_y - logit_j`` (``+inf`` at ``j = y``)."""
    C = spec(y, net.shapes[-1][0])
    A, bias = chain_adjoint(net.chains[-1], C, torch.zeros(C.shape[:2], dtype=torch.float64))
    return _with_label(pull_back(net, relax, net.relus, A, bias, dom), y)
