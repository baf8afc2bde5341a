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

_ACTIVATIONS = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}


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
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < last:
                h = self.act(h)
        return h.reshape(-1, h.shape[-1])

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
