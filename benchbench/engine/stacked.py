"""Training cells that share data and shapes as one stacked model when the model plugin can.

Cells that differ only in their seed, or also in the regime parameters the regime class lists in
``member_params`` (the built-in regime: learning rate, momentum, weight decay), share data and
shapes. When the model factory declares the ``stack`` capability and the regime has
``train_stacked``, they train as one module: one batched matrix product per layer instead of one
small product per cell, one fused optimiser step for all. Each member still gets its own
initialisation, shuffles, hyper-parameters, checkpoints and records, as if alone.
"""

from __future__ import annotations

import torch

from benchbench.engine.cell import CellContext, CellOutcome, build_model, run_cell, train_unit
from benchbench.engine.data import build
from benchbench.suite.cells import CellSpec


def stackable(a: CellSpec, b: CellSpec, registry) -> bool:
    """Whether ``b`` can join ``a``'s stack: the same suite, data, model, attacks and regime, up
    to the seed and to the regime parameters its class lists in ``member_params``."""
    if (a.suite, a.dataset, a.attacks, a.model.name, a.model.params, a.regime.name) != (
            b.suite, b.dataset, b.attacks, b.model.name, b.model.params, b.regime.name):
        return False
    regime = registry.get("regime", a.regime.name).obj
    free = set(getattr(regime, "member_params", ()))
    keys = set(a.regime.params) | set(b.regime.params)
    return all(a.regime.params.get(k) == b.regime.params.get(k) for k in keys - free)


def can_stack(registry, spec: CellSpec) -> bool:
    """Whether the cell's model factory can stack and its regime declares ``stackable`` (a
    ``Regime`` subclass, trained by the harness; a self-driven regime trains alone)."""
    from benchbench.regimes.base import harness_driven

    factory = registry.get("model", spec.model.name).obj
    regime = registry.get("regime", spec.regime.name).obj
    return (callable(getattr(factory, "stack", None)) and harness_driven(regime)
            and regime.stackable is True
            and spec.regime.params.get("autocast", "none") == "none")


def alone_because(registry, spec: CellSpec, *, stack: bool) -> str:
    """Why ``spec`` trains on its own rather than in a stack: said in the log, the plan
    (``benchbench validate``) and the store's ``engine`` column (``sequential: <why>``)."""
    from benchbench.regimes.base import harness_driven

    if not stack:
        return "--engine sequential"
    regime = registry.get("regime", spec.regime.name).obj
    if getattr(regime, "evaluate_only", False) is True:
        return f"regime {spec.regime.name!r} evaluates given weights (nothing to train)"
    if not harness_driven(regime):
        return f"regime {spec.regime.name!r} runs its own loop (self-driven)"
    if not callable(getattr(registry.get("model", spec.model.name).obj, "stack", None)):
        return f"model {spec.model.name!r} declares no stack"
    if regime.stackable is not True:
        return f"regime {spec.regime.name!r} declares stackable = {regime.stackable!r}"
    if spec.regime.params.get("autocast", "none") != "none":  # a stack's kernels ignore autocast
        return (f"regime autocast = {spec.regime.params['autocast']!r} (a stack's own kernels "
                "do not follow torch.autocast)")
    return f"model {spec.model.name!r} declined to stack these members"


def plan_units(cells: list[CellSpec], registry, *, stack: bool) -> list[list[CellSpec]]:
    """Group consecutive cells that can train as one stack (see ``stackable``); keep order."""
    units: list[list[CellSpec]] = []
    for cell in cells:
        if (stack and units and stackable(units[-1][0], cell, registry)
                and can_stack(registry, cell)):
            units[-1].append(cell)
        else:
            units.append([cell])
    return units


def run_unit(specs: list[CellSpec], ctx: CellContext, *, stack: bool = True, index: int = 0,
             total: int = 1) -> list[CellOutcome]:
    """Run cells that ``stackable`` grouped; stacked when ``stack`` and the model stacks, else
    one by one. A single cell also runs as a stack (of one) when it can: the stack's training
    step, without autograd, is faster than the module's own (0.78 against 0.86 s an epoch for
    the seed study's MLP, benchmarks/README.md)."""
    registry, first = ctx.registry, specs[0]
    stacked = None
    if stack and can_stack(registry, first):
        dataset = ctx.data.dataset(first.dataset)
        members = [build_model(registry, first.model, s.seed, dataset) for s in specs]
        stacked = registry.get("model", first.model.name).obj.stack(members)
    if stacked is None:  # one by one, saying why
        engine = f"sequential: {alone_because(registry, first, stack=stack)}"
        return [run_cell(s, ctx, index=index + i, total=total, engine=engine)
                for i, s in enumerate(specs)]

    regimes = [build(registry, "regime", s.regime.name, s.regime.params) for s in specs]
    regime = regimes[0]
    dtype = getattr(torch, regime.dtype)
    x, y = ctx.data.get(first.dataset, "train", dtype=dtype, device=ctx.device)
    stacked = stacked.to(device=ctx.device, dtype=dtype)
    member = members[0].to(device=ctx.device, dtype=dtype)

    def member_model(i: int):
        member.load_state_dict(stacked.member_state_dict(i))
        return member

    # only regimes declaring member_params get here with differing parameters (``stackable``)
    differ = any(s.regime.params != first.regime.params for s in specs)
    return train_unit(specs, ctx, regime=regime, model=stacked, x=x, y=y,
                      member_model=member_model, member_state=stacked.member_state_dict,
                      stacked=True, engine=f"stacked x{len(specs)}",
                      regimes=regimes if differ else None, index=index, total=total)
