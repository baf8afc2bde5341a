"""The affine operations a verified network is made of, each with what bounding needs.

Every op maps a batch ``[B, *in_shape]`` to ``[B, *out_shape]`` as ``linear(x) + bias`` and
provides, in float64:

* ``forward(x)``: the op itself; ``abs_linear(r)``: its linear part with absolute weights (the
  radius of an interval in centre-radius form, as auto_LiRPA's ``interval_propagate``);
* ``adjoint(A)``: ``A`` of shape ``[B, k, *out_shape]`` pulled back to ``[B, k, *in_shape]``
  (``A @ W``: the backward step of CROWN); ``bias_term(A)``: ``<A, bias>`` as ``[B, k]``;
* ``general``: False for ops that act on each coordinate alone (scaling, reshaping), through
  which interval arithmetic loses nothing.

Average pooling is a depthwise convolution with constant weights; batch normalisation (eval
mode) and input normalisation are per-channel scalings. ReLU is not an op: it separates chains.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Linear:
    general = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight = weight
        self.bias = bias
        self.in_shape, self.out_shape = (weight.shape[1],), (weight.shape[0],)

    def forward(self, x):
        out = x.matmul(self.weight.t())
        return out if self.bias is None else out + self.bias

    def abs_linear(self, r):
        return r.matmul(self.weight.abs().t())

    def adjoint(self, A):
        return A.matmul(self.weight)

    def bias_term(self, A):
        return None if self.bias is None else A.matmul(self.bias)


class Conv:
    """``F.conv2d`` with the layer's stride, padding, dilation and groups."""

    general = True

    def __init__(self, weight, bias, *, stride, padding, dilation, groups, in_shape) -> None:
        self.weight, self.bias = weight, bias
        self.kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
        self.in_shape = tuple(in_shape)
        probe = torch.zeros((1, *self.in_shape), dtype=weight.dtype)
        self.out_shape = tuple(F.conv2d(probe, weight, None, **self.kw).shape[1:])

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, **self.kw)

    def abs_linear(self, r):
        return F.conv2d(r, self.weight.abs(), None, **self.kw)

    def adjoint(self, A):
        B, k = A.shape[:2]
        flat = A.reshape(B * k, *self.out_shape)
        back = torch.nn.grad.conv2d_input((B * k, *self.in_shape), self.weight, flat,
                                          **self.kw)
        return back.reshape(B, k, *self.in_shape)

    def bias_term(self, A):
        return None if self.bias is None else A.sum(dim=(-1, -2)).matmul(self.bias)


class Scale:
    """``x * scale + shift`` per coordinate (batch norm in eval mode, input normalisation)."""

    general = False

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor, shape) -> None:
        self.in_shape = self.out_shape = tuple(shape)
        self.scale = scale.expand(self.in_shape).contiguous()
        self.shift = shift.expand(self.in_shape).contiguous()

    def forward(self, x):
        return x * self.scale + self.shift

    def abs_linear(self, r):
        return r * self.scale.abs()

    def adjoint(self, A):
        return A * self.scale

    def bias_term(self, A):
        return (A * self.shift).flatten(2).sum(-1)


class Reshape:
    """Flatten (or any reshape): coordinates keep their values."""

    general = False

    def __init__(self, in_shape, out_shape) -> None:
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.out_shape)

    abs_linear = forward

    def adjoint(self, A):
        return A.reshape(*A.shape[:2], *self.in_shape)

    def bias_term(self, A):
        return None


def chain_forward(chain, x):
    for op in chain:
        x = op.forward(x)
    return x


def chain_adjoint(chain, A, bias):
    """``A`` on the chain's output pulled back to its input; ``bias`` gains each op's term."""
    for op in reversed(chain):
        term = op.bias_term(A)
        if term is not None:
            bias = bias + term
        A = op.adjoint(A)
    return A, bias


def chain_interval(chain, lower, upper):
    """Interval bounds through the chain, one op at a time in centre-radius form."""
    for op in chain:
        if isinstance(op, Reshape):
            lower, upper = op.forward(lower), op.forward(upper)
            continue
        mid, rad = (upper + lower) * 0.5, (upper - lower) * 0.5  # halving: exact
        centre, dev = op.forward(mid), op.abs_linear(rad)
        lower, upper = centre - dev, centre + dev
    return lower, upper


def interval_exact(chain) -> bool:
    """Whether interval arithmetic through ``chain`` gives the tightest box of its image of a
    box: at most one op mixes coordinates (the others scale or reshape them)."""
    return sum(op.general for op in chain) <= 1


def chain_dense(chain, in_shape, out_shape, dtype=torch.float64):
    """The chain as one dense map ``(W [n_out, n_in], b [n_out])`` (for the MILP), pulled back
    from the identity on its output (no subtraction of a forward pass: no cancellation)."""
    n_out = 1
    for d in out_shape:
        n_out *= d
    eye = torch.eye(n_out, dtype=dtype).reshape(1, n_out, *out_shape)
    W, b = chain_adjoint(chain, eye, torch.zeros((1, n_out), dtype=dtype))
    return W.reshape(n_out, -1).contiguous(), b.reshape(n_out)
