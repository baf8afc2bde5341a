"""What the harness checks around every attack call, for evaluation and for regime crafting.

An attack gets copies of the clean inputs and labels (so editing them in place changes nothing
the harness measures; the copy of a batch costs less than one forward pass), and the model in
eval mode with frozen parameters. Afterwards the harness checks that the proposal is a finite
floating tensor of the expected shape on the inputs' device, and that the model's parameters and
buffers are what they were: each tensor's version counter (bumped by every in-place op, under
``no_grad`` too) and a float64 sum of it (which catches writes through ``.data``, which bumps no
counter). Anything else fails the cell with ``AttackContractError`` naming the attack; a number
is never stored from it. The model's mode is set back before the proposal is classified.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch

from benchbench.errors import BenchbenchError


class AttackContractError(BenchbenchError, ValueError):
    """An attack broke the harness's contract: its proposal, or what it did to the model."""


def _state(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]


def _fingerprint(model: torch.nn.Module) -> list[tuple[str, int, int, float]]:
    with torch.no_grad():
        tensors = _state(model)
        sums = (torch.stack([t.detach().sum(dtype=torch.float64) for _, t in tensors]).tolist()
                if tensors else [])
    return [(name, t._version, t.data_ptr(), s)
            for (name, t), s in zip(tensors, sums, strict=True)]


@contextmanager
def model_unchanged(attack, model: torch.nn.Module):
    """Fail if the model's parameters or buffers change inside (``AttackContractError``)."""
    before = _fingerprint(model)
    yield
    after = _fingerprint(model)
    if len(before) != len(after):
        raise AttackContractError(f"attack {_name(attack)} added or removed model tensors")
    for (name, *was), (_, *now) in zip(before, after, strict=True):
        same_sum = was[2] == now[2] or (math.isnan(was[2]) and math.isnan(now[2]))
        if was[:2] != now[:2] or not same_sum:
            raise AttackContractError(
                f"attack {_name(attack)} changed the model's {name!r} (parameters and buffers "
                "are the harness's: an attack may only read them)")


def check_proposal(attack, proposal, like: torch.Tensor, rows: int) -> torch.Tensor:
    """``proposal`` if it is a finite floating tensor ``[rows, *like.shape]`` on ``like``'s
    device, else ``AttackContractError`` naming the attack and what was wrong."""
    expected = (rows, *like.shape)
    if not isinstance(proposal, torch.Tensor):
        raise AttackContractError(f"attack {_name(attack)} returned {type(proposal).__name__}; "
                                  f"expected a tensor of shape {expected}")
    if tuple(proposal.shape) != expected:
        raise AttackContractError(f"attack {_name(attack)} returned shape "
                                  f"{tuple(proposal.shape)}; expected {expected} (one batch "
                                  "per eps)")
    if not proposal.is_floating_point():
        raise AttackContractError(f"attack {_name(attack)} returned dtype {proposal.dtype}; "
                                  f"expected a floating dtype (the inputs' {like.dtype})")
    if proposal.device != like.device:
        raise AttackContractError(f"attack {_name(attack)} returned a tensor on "
                                  f"{proposal.device}; the inputs are on {like.device}")
    finite = torch.isfinite(proposal)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise AttackContractError(f"attack {_name(attack)} returned {bad} non-finite values "
                                  "(NaN or infinity): an input it proposes must be a number")
    return proposal


def _name(attack) -> str:
    return getattr(attack, "name", None) or type(attack).__name__
