"""Several MLPs of one shape trained as one module: weights stacked as [members, in, out].

``stack_mlps(models)`` is the ``stack`` capability of ``build_mlp``: it takes the per-seed models
(each initialised exactly as it would be alone) and returns a module that reads a member-major
batch ``[members * B, ...]`` (member 0's rows, then member 1's...) and returns member-major
logits. Each member's output depends only on its own rows and weights, so gradients, optimiser
steps (element-wise) and attacks act on each member as they would on the model alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid"}
_FORWARD = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


def _activation_backward(grad: torch.Tensor, h: torch.Tensor, act: str) -> torch.Tensor:
    """``grad * act'(z)`` from the activation's output ``h`` (may reuse ``grad``)."""
    if act == "relu":  # autograd's own ReLU backward: grad where h > 0, else 0
        return torch.ops.aten.threshold_backward(grad, h, 0)
    if act == "tanh":
        return grad.mul_(1 - h * h)
    return grad.mul_(h * (1 - h))


class _StackedForward(torch.autograd.Function):
    """The whole stacked MLP as one autograd node with a hand-written backward.

    Autograd's generic graph spends a node, a dispatch and an allocation per layer operation;
    here backward is one batched product per weight gradient and per hidden input gradient
    (the first layer's input gradient only when the input requires it, as for attacks).
    """

    @staticmethod
    def forward(ctx, x, act, *params):
        n = len(params) // 2
        weights, biases = params[:n], params[n:]
        inputs, h = [x], x
        for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < n - 1:
                h = _FORWARD[act](h)
                inputs.append(h)
        ctx.act = act
        ctx.save_for_backward(*inputs, *weights)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        saved = ctx.saved_tensors
        n = len(saved) // 2
        inputs, weights = saved[:n], saved[n:]
        grad_w, grad_b = [None] * n, [None] * n
        grad_x = None
        for i in reversed(range(n)):
            grad_w[i] = torch.bmm(inputs[i].transpose(1, 2), grad)
            grad_b[i] = grad.sum(dim=1, keepdim=True)
            if i > 0:
                grad = _activation_backward(torch.bmm(grad, weights[i].transpose(1, 2)),
                                            inputs[i], ctx.act)
            elif ctx.needs_input_grad[0]:
                grad_x = torch.bmm(grad, weights[0].transpose(1, 2))
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
                torch.stack([lin.weight.detach().t() for lin in layers]).contiguous()))
            self.biases.append(nn.Parameter(
                torch.stack([lin.bias.detach() for lin in layers]).unsqueeze(1).contiguous()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.reshape(self.members, -1, self.weights[0].shape[1])
        out = _StackedForward.apply(h, self.act, *self.weights, *self.biases)
        return out.reshape(-1, out.shape[-1])

    def member_state_dict(self, member: int) -> dict[str, torch.Tensor]:
        """Member ``member``'s weights in the layout of the model built alone."""
        state = {}
        for name, w, b in zip(self.names, self.weights, self.biases, strict=True):
            state[f"{name}.weight"] = w[member].detach().t().contiguous()
            state[f"{name}.bias"] = b[member, 0].detach().clone()
        return state


def stack_mlps(models: Sequence[nn.Module]) -> StackedMLP | None:
    """The stack of ``models``, or None when they cannot be stacked (e.g. a GELU MLP)."""
    first = models[0]
    kinds = {type(m) for m in first.children()} - {nn.Flatten, nn.Linear}
    if len(kinds) != 1 or not kinds <= set(_ACTIVATIONS):
        return None
    return StackedMLP(models)
