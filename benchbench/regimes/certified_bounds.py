"""Bounds for certified training: IBP and CROWN-IBP margins, differentiable, in the model's dtype.

``benchbench.verify`` proves properties: it reads a model's weights as detached float64 copies.
Training needs gradients through the bounds, in the run's dtype, and a stacked MLP's members
bounded on their own rows. This module builds the same network ``verify`` bounds (its layer
decomposition: ``verify.bounds``'s checks and ops, chains of affine ops between ReLUs) on the
model's live parameters, and bounds it with the same formulas:

* ``interval_layers``: every ReLU's pre-activation bounds by interval arithmetic (verify's
  ``ibp_layers``, reused as it is: it only composes ops);
* ``ibp_margins``: lower bounds of ``logit_y - logit_j`` with the specification folded into the
  last linear layer (verify's ``ibp_margins``, Gowal et al.'s elision), ``0`` at ``j = y``;
* ``crown_ibp_margins``: the CROWN lower bounds of the margins from interval pre-activation
  bounds (verify's ``crown_margins`` on ``ibp_layers``, which is CROWN-IBP's ``backward_range``),
  pulled back without in-place operations so that autograd can differentiate it; the lower
  slope of an unstable ReLU (``upper_d > 0.5``) is a constant, as in the reference.

Input sets are L-inf boxes ``[lo, hi]`` (``TrainContext.limits``: the ball within the data
bounds), as tensors of the model's dtype. A ``StackedMLP`` becomes a chain of ``MemberLinear``
ops whose products are per member (``bmm``), so member ``i``'s bounds depend on its rows and
weights alone: stacked seeds train as they would alone.
"""

from __future__ import annotations

import torch

from benchbench.errors import VerifierError
from benchbench.verify.bounds import Network, check_layers, layer_kind
from benchbench.verify.domain import Domain
from benchbench.verify.ops import Conv, Linear, Reshape, Scale, chain_adjoint, chain_interval

#: layers whose training-mode forward is their eval-mode one (BatchNorm's batch statistics and
#: dropout's masks are not bounded here)
TRAIN_LAYERS = ("Linear", "Conv2d", "ReLU", "Flatten", "AvgPool2d", "Normalize", "Identity")


class MemberLinear:
    """One linear layer of a stack of ``M`` MLPs on member-major rows ``[M * B, n]``: weight
    ``[M, out, in]``, bias ``[M, 1, out]`` (``StackedMLP``'s), with verify's op interface."""

    general = True

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight, self.bias = weight, bias
        self.members = weight.shape[0]
        self.in_shape, self.out_shape = (weight.shape[2],), (weight.shape[1],)

    def _rows(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(self.members, -1, t.shape[-1])

    def forward(self, x):
        return torch.baddbmm(self.bias, self._rows(x), self.weight.transpose(1, 2)).reshape(
            len(x), -1)

    def abs_linear(self, r):
        return torch.bmm(self._rows(r), self.weight.abs().transpose(1, 2)).reshape(len(r), -1)

    def adjoint(self, A):
        B, k = A.shape[:2]
        return torch.bmm(self._rows(A), self.weight).reshape(B, k, -1)

    def bias_term(self, A):
        B, k = A.shape[:2]
        return torch.bmm(self._rows(A), self.bias.transpose(1, 2)).reshape(B, k)


def _stacked_network(model, in_shape) -> Network:
    if model.act != "relu":
        raise VerifierError(f"certified training bounds ReLU networks; this stacked MLP uses "
                            f"{model.act}")
    n = 1
    for d in in_shape:
        n *= d
    chains: list[list] = [[Reshape(in_shape, (n,))]]
    shapes = []
    weights, biases = model._parameters_now()
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if i:
            shapes.append((w.shape[2],))
            chains.append([])
        chains[-1].append(MemberLinear(w, b))
    shapes.append((weights[-1].shape[1],))
    return Network(chains, tuple(in_shape), shapes)


class LiveConv(Conv):
    """verify's ``Conv`` on a layer's own parameters, its output shape probed on their
    device."""

    def __init__(self, weight, bias, *, in_shape, **kw) -> None:
        import torch.nn.functional as F

        self.weight, self.bias, self.kw, self.in_shape = weight, bias, kw, tuple(in_shape)
        with torch.no_grad():
            probe = torch.zeros((1, *self.in_shape), dtype=weight.dtype, device=weight.device)
            self.out_shape = tuple(F.conv2d(probe, weight, None, **kw).shape[1:])


def _pair(v):
    return tuple(v) if isinstance(v, tuple | list) else (v, v)


def _live_op(layer, kind: str, shape: tuple[int, ...], index: int, dtype, device):
    """The op ``verify.bounds`` builds for ``layer``, on the layer's own parameters (gradients
    flow through them) or its constants in ``dtype``; None for an identity."""
    if kind == "Linear":
        if shape != (layer.in_features,):
            raise VerifierError(f"layer {index} (Linear) takes {layer.in_features} features; "
                                f"its input has shape {list(shape)} (a Flatten missing?)")
        return Linear(layer.weight, layer.bias)
    if kind in ("Conv2d", "AvgPool2d") and len(shape) != 3:
        raise VerifierError(f"layer {index} ({kind}) takes [C, H, W] inputs; got {list(shape)}")
    if kind == "Conv2d":
        padding = layer.padding
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding = tuple(dl * (k - 1) // 2 for dl, k in
                            zip(layer.dilation, layer.kernel_size, strict=True))
        return LiveConv(layer.weight, layer.bias, stride=layer.stride, padding=padding,
                        dilation=layer.dilation, groups=layer.groups, in_shape=shape)
    if kind == "AvgPool2d":
        kh, kw = _pair(layer.kernel_size)
        weight = torch.full((shape[0], 1, kh, kw), 1.0 / (kh * kw), dtype=dtype, device=device)
        return LiveConv(weight, None, stride=_pair(layer.stride or layer.kernel_size),
                        padding=_pair(layer.padding), dilation=(1, 1), groups=shape[0],
                        in_shape=shape)
    if kind == "Normalize":
        scale = (1.0 / layer.std).to(dtype)
        shift = (-layer.mean / layer.std).to(dtype)
        try:
            scale, shift = (t.expand((1, *shape))[0] for t in (scale, shift))
        except RuntimeError:
            raise VerifierError(f"layer {index} (Normalize) does not fit its input of shape "
                                f"{list(shape)}: its mean has shape {list(layer.mean.shape)}"
                                ) from None
        return Scale(scale, shift, shape)
    if kind == "Flatten":
        return Reshape(shape, layer(torch.zeros((1, *shape))).shape[1:])
    return None  # Identity


def training_network(model, in_shape, *, dtype, device="cpu", name: str = "ibp") -> Network:
    """``model`` as the chains ``verify`` bounds, on its live parameters: a ``StackedMLP``
    member by member, anything else through ``verify.bounds``' decomposition (VerifierError
    naming a layer it cannot bound in training)."""
    from benchbench.models.stacked_mlp import StackedMLP

    if isinstance(model, StackedMLP):
        return _stacked_network(model, in_shape)
    layers = check_layers(model, TRAIN_LAYERS, verifier=name)
    shape = tuple(in_shape)
    chains: list[list] = [[]]
    shapes: list[tuple[int, ...]] = []
    for i, layer in enumerate(layers):
        kind = layer_kind(layer)
        if kind == "ReLU":
            shapes.append(shape)
            chains.append([])
            continue
        op = _live_op(layer, kind, shape, i, dtype, device)
        if op is not None:
            chains[-1].append(op)
            shape = tuple(op.out_shape)
    shapes.append(shape)
    if len(shape) != 1:
        raise VerifierError(f"{name}: the model's output has per-example shape {list(shape)}; "
                            "certified training needs logits [N, classes]")
    return Network(chains, tuple(in_shape), shapes)


def box(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, eps: float) -> Domain:
    """The L-inf input set ``[lo, hi]`` around ``x`` (tensors of the model's dtype)."""
    return Domain("linf", float(eps), x, lo, hi)


def spec(y: torch.Tensor, classes: int, dtype) -> torch.Tensor:
    """``C [B, classes, classes]``: row ``j`` is ``e_y - e_j`` (row ``y`` is zero)."""
    eye = torch.eye(classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def interval_layers(net: Network, dom: Domain) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Interval bounds ``[(lower, upper)]`` of every ReLU's pre-activation: verify's own."""
    from benchbench.verify.ibp import ibp_layers

    return ibp_layers(net, dom)


def ibp_margins(net: Network, dom: Domain, y: torch.Tensor, layers) -> torch.Tensor:
    """IBP lower bounds ``[B, classes]`` of ``logit_y - logit_j`` (exactly 0 at ``j = y``):
    intervals up to the last linear layer, the specification folded into it (elision)."""
    lo, hi = dom.lower, dom.upper
    C = spec(y, net.shapes[-1][0], lo.dtype)
    last = net.chains[-1]
    if net.relus == 0:  # an affine model: its margins bounded exactly over the box
        A, bias = chain_adjoint(last, C, torch.zeros(C.shape[:2], dtype=lo.dtype,
                                                     device=lo.device))
        return dom.concretize(A, bias)
    lo, hi = layers[-1][0].clamp(min=0), layers[-1][1].clamp(min=0)
    if last and isinstance(last[-1], Linear | MemberLinear):
        lo, hi = chain_interval(last[:-1], lo, hi)
        A, b = last[-1].adjoint(C), last[-1].bias_term(C)
    else:
        lo, hi = chain_interval(last, lo, hi)
        A, b = C, None
    mid, rad = ((hi + lo) / 2).unsqueeze(-1), ((hi - lo) / 2).unsqueeze(-1)
    out = A.matmul(mid).squeeze(-1) - A.abs().matmul(rad).squeeze(-1)
    return out if b is None else out + b


def crown_ibp_margins(net: Network, dom: Domain, y: torch.Tensor, layers) -> torch.Tensor:
    """CROWN-IBP lower bounds ``[B, classes]`` of ``logit_y - logit_j`` (0 at ``j = y``): the
    margins pulled back through every ReLU's CROWN relaxation of its interval bounds."""
    from benchbench.verify.crown import relaxation

    lo = dom.lower
    C = spec(y, net.shapes[-1][0], lo.dtype)
    A, bias = chain_adjoint(net.chains[-1], C, torch.zeros(C.shape[:2], dtype=lo.dtype,
                                                           device=lo.device))
    for i in range(net.relus, 0, -1):
        lower_d, upper_d, upper_b = relaxation(*layers[i - 1])
        pos, neg = A.clamp(min=0), A.clamp(max=0)
        # the lower bound takes the lower line where the coefficient is positive, the upper
        # line (and its intercept) where negative
        bias = bias + neg.flatten(2).matmul(upper_b.flatten(1).unsqueeze(-1)).squeeze(-1)
        A = pos * lower_d.unsqueeze(1) + neg * upper_d.unsqueeze(1)
        A, bias = chain_adjoint(net.chains[i - 1], A, bias)
    return dom.concretize(A, bias)
