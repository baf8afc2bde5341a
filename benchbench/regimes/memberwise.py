"""Optimiser steps for stacked parameters whose members have their own hyper-parameters.

A stacked model holds several members per tensor (``[members, ...]``), and ``torch.optim`` gives
one learning rate per tensor. ``MemberwiseOptimizer`` keeps ``torch.optim``'s own state
(``exp_avg``, ``exp_avg_sq`` and a float32 ``step`` for Adam; ``momentum_buffer`` for SGD) and
calls the fused kernel that ``torch.optim.Adam/SGD(fused=True)`` call, once per run of
consecutive members that share hyper-parameters, with each member's slice of the stacked tensors
as a tensor of its own (``benchbench.regimes.lean_step``: the kernels' vector and tail loops round
differently), so every member's numbers are bit for bit those of its own fused ``torch.optim``
optimiser (tested); members that share hyper-parameters cost one kernel call, like one optimiser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from benchbench.regimes.lean_step import fused_adam, fused_sgd

KINDS = ("adam", "sgd")


class MemberwiseOptimizer:
    """``step()`` updates member ``i`` of every parameter with ``hypers[i]``.

    ``hypers[i]`` holds ``lr`` and ``weight_decay``, and for SGD ``momentum``; Adam uses torch's
    defaults for ``betas`` and ``eps`` unless given. Every parameter's dim 0 is the member.
    """

    def __init__(self, params: Iterable[torch.Tensor], hypers: Sequence[Mapping], kind: str):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
        self.params = list(params)
        if any(p.shape[0] != len(hypers) for p in self.params):
            raise ValueError(f"every parameter must have {len(hypers)} members in dim 0")
        self.kind = kind
        self.runs: list[tuple[int, int, dict]] = []
        for i, h in enumerate(hypers):
            if self.runs and self.runs[-1][2] == dict(h):
                lo, _, same = self.runs[-1]
                self.runs[-1] = (lo, i + 1, same)
            else:
                self.runs.append((i, i + 1, dict(h)))
        with torch.no_grad():
            if kind == "adam":
                self.exp_avg = [torch.zeros_like(p) for p in self.params]
                self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
                self.steps = [[torch.zeros((), dtype=torch.float32, device=p.device)
                               for p in self.params] for _ in self.runs]
            else:
                self.momentum_buffer = [torch.zeros_like(p) for p in self.params]
                self.first = [True] * len(self.runs)

    def state_dict(self) -> dict:
        """The optimiser's state (references, as ``torch.optim`` returns it)."""
        if self.kind == "adam":
            return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps}
        return {"momentum_buffer": self.momentum_buffer, "first": self.first}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        """Continue from a ``state_dict()`` (its tensors copied into this optimiser's)."""
        mine = _tensors(self.state_dict())
        theirs = _tensors(state) if set(state) == set(self.state_dict()) else []
        if [t.shape for t in mine] != [t.shape for t in theirs]:
            raise ValueError(f"not the state of this {self.kind} MemberwiseOptimizer")
        for t, saved in zip(mine, theirs, strict=True):
            t.copy_(saved)
        if self.kind == "sgd":
            self.first = list(state["first"])

    @torch.no_grad()
    def step(self) -> None:
        # like torch.optim, a parameter without a gradient is skipped (its step count too)
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        for r, (lo, hi, h) in enumerate(self.runs):
            params = [self.params[i][lo:hi] for i in live]
            member_grads = [self.params[i].grad[lo:hi] for i in live]
            if self.kind == "adam":
                fused_adam(params, member_grads, [self.exp_avg[i][lo:hi] for i in live],
                           [self.exp_avg_sq[i][lo:hi] for i in live],
                           [self.steps[r][i] for i in live], lr=h["lr"],
                           betas=h.get("betas", (0.9, 0.999)), eps=h.get("eps", 1e-8),
                           weight_decay=h["weight_decay"], members=hi - lo)
                continue
            momentum = h.get("momentum", 0.0)
            fused_sgd(params, member_grads, [self.momentum_buffer[i][lo:hi] for i in live],
                      lr=h["lr"], momentum=momentum, weight_decay=h["weight_decay"],
                      first=self.first[r], members=hi - lo)
            self.first[r] = False


def _tensors(state: dict) -> list[torch.Tensor]:
    """Every tensor of a ``MemberwiseOptimizer.state_dict()``, in a fixed order."""
    if "steps" in state:
        steps = [t for run in state["steps"] for t in run]
        return [*state["exp_avg"], *state["exp_avg_sq"], *steps]
    return list(state["momentum_buffer"])
