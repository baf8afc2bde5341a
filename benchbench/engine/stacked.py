"""Training the seeds of a cell as one stacked model when the model plugin can stack.

Cells that differ only in their seed share data and shapes. When the model factory declares the
``stack`` capability and the regime has ``train_stacked``, they train as one module: one batched
matrix product per layer instead of one small product per seed, one optimiser step for all. Each
member still gets its own initialisation, shuffles, checkpoints and records, as if alone.
"""

from __future__ import annotations

import time

import torch

from benchbench.engine.cell import (
    CellContext,
    CellOutcome,
    build_model,
    now,
    run_cell,
    train_and_measure,
)
from benchbench.engine.data import build
from benchbench.suite.cells import CellSpec


def same_but_seed(a: CellSpec, b: CellSpec) -> bool:
    return (a.suite, a.dataset, a.model, a.regime, a.attacks) == (
        b.suite, b.dataset, b.model, b.regime, b.attacks)


def can_stack(registry, spec: CellSpec) -> bool:
    factory = registry.get("model", spec.model.name).obj
    regime = registry.get("regime", spec.regime.name).obj
    return callable(getattr(factory, "stack", None)) and hasattr(regime, "train_stacked")


def plan_units(cells: list[CellSpec], registry, *, stack: bool) -> list[list[CellSpec]]:
    """Group consecutive cells that differ only in seed (when they can stack); keep order."""
    units: list[list[CellSpec]] = []
    for cell in cells:
        if (stack and units and same_but_seed(units[-1][0], cell)
                and can_stack(registry, cell)):
            units[-1].append(cell)
        else:
            units.append([cell])
    return units


def run_unit(specs: list[CellSpec], ctx: CellContext, *, index: int = 0,
             total: int = 1) -> list[CellOutcome]:
    """Run cells that differ only in seed; stacked when the model stacks, else one by one."""
    if len(specs) == 1:
        return [run_cell(specs[0], ctx, index=index, total=total)]
    registry, first = ctx.registry, specs[0]
    dataset = ctx.data.dataset(first.dataset)
    members = [build_model(registry, first.model, s.seed, dataset) for s in specs]
    stacked = registry.get("model", first.model.name).obj.stack(members)
    if stacked is None:
        return [run_cell(s, ctx, index=index + i, total=total) for i, s in enumerate(specs)]

    started, t0 = now(), time.perf_counter()
    regime = build(registry, "regime", first.regime.name, first.regime.params)
    dtype = getattr(torch, regime.dtype)
    x, y = ctx.data.get(first.dataset, "train", dtype=dtype, device=ctx.device)
    stacked = stacked.to(device=ctx.device, dtype=dtype)
    member = members[0].to(device=ctx.device, dtype=dtype)

    def member_model(i: int):
        member.load_state_dict(stacked.member_state_dict(i))
        return member

    epochs = regime.train_stacked(model=stacked, x=x, y=y, seeds=[s.seed for s in specs])
    return train_and_measure(specs, ctx, regime=regime, model=stacked, epochs=epochs,
                             member_model=member_model, engine=f"stacked x{len(specs)}",
                             started=started, t0=t0, index=index, total=total)
