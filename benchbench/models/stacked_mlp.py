"""Several MLPs of one shape trained as one module: weights stacked as [members, out, in].

``stack_mlps(models)`` is the ``stack`` capability of ``build_mlp``: it takes the per-seed models
(each initialised exactly as it would be alone) and returns a module that reads a member-major
batch ``[members * B, ...]`` (member 0's rows, then member 1's...) and returns member-major
logits. Each member's output depends only on its own rows and weights, so gradients, optimiser
steps (element-wise) and attacks act on each member as they would on the model alone.

Weights keep ``nn.Linear``'s [out, in] layout per member: it is what a member's state dict holds,
and it is the fast layout for the narrow last layer (two of its three products run 2-4x faster
than with [in, out] on the CPU, where a 10-column result is the worst case for the BLAS).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from benchbench.engine import blas

_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_FORWARD = {"relu": torch.relu_, "tanh": torch.tanh_, "sigmoid": torch.sigmoid_}  # in place
# A lone member's (a stack of one's) product with a result smaller than this, or in float64,
# runs on one MKL thread, as a member of a larger stack does (see _bmm): MKL splits such
# products' sums by thread count (the last layer's [10, 16] weight gradient from 100 rows in
# float32; every measured float64 shape). Larger float32 products give the same bits on any
# thread count (measured for the digits and founding MLPs' shapes, README).
ONE_THREAD_OUTPUT = 4096
def _activation_backward(grad: torch.Tensor, h: torch.Tensor, act: str) -> torch.Tensor:
    """``grad * act'(z)`` from the activation's output ``h``: autograd's own backward ops."""
    if act == "relu":  # grad where h > 0, else 0
        return torch.ops.aten.threshold_backward(grad, h, 0)
    if act == "tanh":
        return torch.ops.aten.tanh_backward(grad, h)
    return torch.ops.aten.sigmoid_backward(grad, h)


def _product(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None,
             out: torch.Tensor | None) -> torch.Tensor:
    """``bias + a @ b`` for one member (2-d) or a stack (3-d), into ``out`` if given."""
    if a.dim() == 3:
        return torch.bmm(a, b, out=out) if bias is None else torch.baddbmm(bias, a, b, out=out)
    return torch.mm(a, b, out=out) if bias is None else torch.addmm(bias, a, b, out=out)


#: (shapes, strides, dtype, bias, threads) -> whether MKL's batched product gives every member
#: the bits of the member alone on this CPU (checked on the first product of that key)
_BATCHED_EXACT: dict[tuple, bool] = {}


def _bmm(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None = None,
         out: torch.Tensor | None = None) -> torch.Tensor:
    """``bias + a @ b`` for stacked ``a`` [S, m, k] and ``b`` [S, k, n] (into ``out`` if given).

    Every member gets the bits of the same model alone (a stack of one), whatever the stack and
    the thread count. A stack of two or more is one ``bmm``: MKL's batched product gives each
    thread whole members, each computed exactly as a one-thread ``mm`` (measured for every
    layout and shape of the digits and founding MLPs, in float32 and float64, on AMD Zen 4 and
    Intel Xeon). Intel does not document that for its batched product, so the first product
    of each shape, layout, dtype and thread count is checked against the members computed
    alone (``_BATCHED_EXACT``); where a CPU rounds them otherwise, that product is computed
    member by member from then on (slower, and said once), never with other bits. A stack of
    one is a single product, which MKL may split over threads: it runs on one thread where
    that changes its bits (``ONE_THREAD_OUTPUT``, float64) and on every thread elsewhere. On
    CUDA the stack is one ``bmm``.
    """
    if a.device.type != "cpu":
        return _product(a, b, bias, out)
    if a.shape[0] > 1:
        key = (tuple(a.shape), a.stride(), tuple(b.shape), b.stride(), a.dtype,
               None if bias is None else bias.stride(), torch.get_num_threads())
        exact = _BATCHED_EXACT.get(key)
        if exact is None:
            batched, alone = _product(a, b, bias, None), _members(a, b, bias, None)
            exact = _BATCHED_EXACT[key] = _same_bits(batched, alone)
            if not exact:
                import warnings

                warnings.warn(f"this CPU's batched product rounds stack members otherwise than "
                              f"alone ({a.dtype}, {list(a.shape)} @ {list(b.shape)}, "
                              f"{key[-1]} threads): those products run member by member "
                              "(the same bits, slower)", stacklevel=2)
            chosen = batched if exact else alone
            return chosen if out is None else out.copy_(chosen)
        return _product(a, b, bias, out) if exact else _members(a, b, bias, out)
    if a.dtype == torch.float64 or a.shape[1] * b.shape[2] < ONE_THREAD_OUTPUT:
        with blas.one_thread():
            return _product(a, b, bias, out)
    return _product(a, b, bias, out)


def _members(a: torch.Tensor, b: torch.Tensor, bias: torch.Tensor | None,
             out: torch.Tensor | None) -> torch.Tensor:
    """Each member's product as the member alone computes it (a stack of one), into ``out``."""
    if out is None:
        out = a.new_empty((a.shape[0], a.shape[1], b.shape[2]))
    for j in range(a.shape[0]):
        _bmm(a[j:j + 1], b[j:j + 1], None if bias is None else bias[j:j + 1],
             out=out[j:j + 1])
    return out


def _same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Equal bit for bit (a NaN where the other has one counts as equal)."""
    return bool(((x == y) | (x.isnan() & y.isnan())).all())


def _forward(x, act, weights, biases) -> list[torch.Tensor]:
    """Every layer's input and, last, the logits."""
    inputs, h, n = [x], x, len(weights)
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = _bmm(h, w.transpose(1, 2), b)
        if i < n - 1:
            h = _FORWARD[act](h)
        inputs.append(h)
    return inputs


def _backward(grad, inputs, weights, act, grad_w, grad_b, *, input_grad: bool,
              param_grads: bool = True):
    """Fill ``grad_w``/``grad_b`` from the logits' gradient (writing into the tensors already
    there, if any) unless not ``param_grads`` (an attack's input gradient needs none: a third
    fewer products); return the input's gradient if asked."""
    for i in reversed(range(len(weights))):
        if param_grads:
            grad_w[i] = _bmm(grad.transpose(1, 2), inputs[i], out=grad_w[i])
            grad_b[i] = torch.sum(grad, dim=1, keepdim=True, out=grad_b[i])
        if i > 0:
            grad = _activation_backward(_bmm(grad, weights[i]), inputs[i], act)
        elif input_grad:
            return _bmm(grad, weights[0])
    return None


class _StackedForward(torch.autograd.Function):
    """The whole stacked MLP as one autograd node with a hand-written backward.

    Autograd's generic graph spends a node, a dispatch and an allocation per layer operation;
    here backward is one batched product per weight gradient and per hidden input gradient
    (the first layer's input gradient only when the input requires it, as for attacks).
    """

    @staticmethod
    def forward(ctx, x, act, *params):
        n = len(params) // 2
        weights = params[:n]
        inputs = _forward(x, act, weights, params[n:])
        ctx.act = act
        ctx.save_for_backward(*inputs[:-1], *weights)
        return inputs[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        n = len(saved) // 2
        grad_w, grad_b = [None] * n, [None] * n
        grad_x = _backward(grad, saved[:n], saved[n:], ctx.act, grad_w, grad_b,
                           input_grad=ctx.needs_input_grad[0],
                           param_grads=any(ctx.needs_input_grad[2:]))
        return grad_x, None, *grad_w, *grad_b


class StackedMLP(nn.Module):
    """``members`` MLPs as batched matrix products (``baddbmm``)."""

    def __init__(self, models: Sequence[nn.Sequential]) -> None:
        super().__init__()
        first = models[0]
        self.members = len(models)
        self.names = [name for name, m in first.named_children() if isinstance(m, nn.Linear)]
        self.act = next(_ACTIVATIONS[type(m)] for m in first if type(m) in _ACTIVATIONS)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for name in self.names:
            layers = [dict(m.named_children())[name] for m in models]
            self.weights.append(nn.Parameter(
                torch.stack([lin.weight.detach() for lin in layers]).contiguous()))
            self.biases.append(nn.Parameter(
                torch.stack([lin.bias.detach() for lin in layers]).unsqueeze(1).contiguous()))

    def _stacked(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.members, -1, self.weights[0].shape[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _StackedForward.apply(self._stacked(x), self.act, *self.weights, *self.biases)
        return out.reshape(-1, out.shape[-1])

    def _parameters_now(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        # ParameterList's own iteration costs ~40 us a step; its dict holds the same objects
        return (list(self.weights._parameters.values()),
                list(self.biases._parameters.values()))

    def _logits_grad(self, x, y, weights, biases, per_label: float):
        """Every layer's input, and the gradient at the logits of the summed NLL of
        ``log_softmax`` with gradient ``per_label`` at each label: autograd's own two ops
        (the NLL's backward, then ``log_softmax``'s). Call under ``torch.no_grad()``."""
        inputs = _forward(self._stacked(x), self.act, weights, biases)
        logp = torch.log_softmax(inputs.pop(), dim=-1)
        nll = torch.zeros_like(logp).scatter_(-1, y.view(*logp.shape[:2], 1), per_label)
        return inputs, torch._log_softmax_backward_data(nll, logp, -1, logp.dtype)

    def cross_entropy_backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Set each parameter's ``.grad`` to the gradient of the sum over members of each
        member's mean cross-entropy on its rows of ``(x, y)`` (member-major, equal rows each).

        The training step without autograd: the same operations autograd runs for
        ``F.cross_entropy(model(x), y, reduction="sum") / rows`` (``log_softmax`` and its
        backward from the NLL gradient ``-1 / rows``), with none of its graph bookkeeping.
        """
        weights, biases = self._parameters_now()
        with torch.no_grad():
            rows = len(x) // self.members
            inputs, grad = self._logits_grad(x, y, weights, biases, -1.0 / rows)
            grad_w, grad_b = [w.grad for w in weights], [b.grad for b in biases]
            _backward(grad, inputs, weights, self.act, grad_w, grad_b, input_grad=False)
        for p, g in zip([*weights, *biases], [*grad_w, *grad_b], strict=True):
            if p.grad is not g:
                p.grad = g

    def cross_entropy_input_grad(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The gradient of the summed cross-entropy of ``(x, y)`` with respect to ``x``
        (member-major, shaped like ``x``), without autograd and without weight gradients.

        An attack's inner step: autograd's own operations for
        ``torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)`` (the NLL
        gradient -1 at each label, ``log_softmax``'s backward, then the layers'), so the bits
        are those of the autograd path, with none of its graph bookkeeping.
        """
        weights, biases = self._parameters_now()
        with torch.no_grad():
            inputs, grad = self._logits_grad(x, y, weights, biases, -1.0)
            grad = _backward(grad, inputs, weights, self.act, None, None, input_grad=True,
                             param_grads=False)
        return grad.view_as(x)

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights in the layout of the model built alone."""
        state = {}
        for name, w, b in zip(self.names, self.weights, self.biases, strict=True):
            state[f"{name}.weight"] = w[member].detach().clone()
            state[f"{name}.bias"] = b[member, 0].detach().clone()
        return state


def stack_mlps(models: Sequence[nn.Module]) -> StackedMLP | None:
    """The stack of ``models``, or None when they cannot be stacked (e.g. a GELU MLP)."""
    first = models[0]
    kinds = {type(m) for m in first.children()} - {nn.Flatten, nn.Linear}
    if len(kinds) != 1 or not kinds <= set(_ACTIVATIONS):
        return None
    return StackedMLP(models)
