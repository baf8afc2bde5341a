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
    evaluate,
    now,
    run_cell,
)
from benchbench.engine.data import build
from benchbench.engine.evaluate import Record
from benchbench.store.checkpoints import checkpoint_path, save_checkpoint
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
    attacks = [(ref, build(registry, "attack", ref.name, ref.params)) for ref in first.attacks]
    dtype = getattr(torch, regime.dtype)
    x, y = ctx.data.get(first.dataset, "train", dtype=dtype, device=ctx.device)
    stacked = stacked.to(device=ctx.device, dtype=dtype)
    member = members[0].to(device=ctx.device, dtype=dtype)

    def member_model(i: int):
        member.load_state_dict(stacked.member_state_dict(i))
        return member

    ctx.events.cell_started(first, regime.epochs, index, total)
    records: list[list[Record]] = [[] for _ in specs]
    schedule = set(regime.checkpoint_epochs)
    for epoch in regime.train_stacked(model=stacked, x=x, y=y, seeds=[s.seed for s in specs]):
        ctx.events.epoch_done(first, epoch)
        if epoch not in schedule:
            continue
        if ctx.checkpoint_dir is not None:
            for i, spec in enumerate(specs):
                save_checkpoint(checkpoint_path(ctx.checkpoint_dir, spec.cell_id, epoch),
                                member_model(i), metadata={"cell_id": spec.cell_id,
                                                           "epoch": epoch,
                                                           "spec": spec.to_json()})
        for mine, new in zip(records, evaluate(stacked, specs, ctx, attacks, dtype, epoch,
                                               member_model), strict=True):
            mine += new
    wall = time.perf_counter() - t0
    outcomes = [CellOutcome(spec, recs, regime.dtype, ctx.device, started, now(),
                            wall / len(specs), engine=f"stacked x{len(specs)}")
                for spec, recs in zip(specs, records, strict=True)]
    for outcome in outcomes:
        ctx.events.cell_finished(outcome.spec, outcome)
    return outcomes
