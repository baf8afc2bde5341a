"""Running one cell: build, train, checkpoint and evaluate. Spec in, records out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchbench.engine.data import DataCache, build
from benchbench.engine.evaluate import Record, attack_records, clean_records, masking_records
from benchbench.engine.resume import (
    Resumed,
    load_resume,
    resume_path,
    save_resume,
    set_rng_state,
)
from benchbench.store.checkpoints import checkpoint_path, save_checkpoint
from benchbench.suite.cells import CellSpec, ComponentRef

EVAL_BATCH = 10_000  # rows per forward pass when measuring clean accuracy and loss
ATTACK_BATCH = 1_000  # rows per attack call: keeps every element-wise pass in the CPU's cache


class Events:
    """Progress callbacks; the CLI shows them as progress bars. All are no-ops here."""

    def log(self, message: str) -> None: ...
    def cell_started(self, spec: CellSpec, epochs: int, index: int, total: int) -> None: ...
    def epoch_done(self, spec: CellSpec, epoch: int) -> None: ...
    def evaluating(self, spec: CellSpec, epoch: int, what: str) -> None: ...
    def cell_finished(self, spec: CellSpec, outcome: CellOutcome) -> None: ...


@dataclass
class CellContext:
    """What a cell needs from its process: plugins, data, device and where checkpoints go."""

    registry: object
    data: DataCache
    device: str = "cpu"
    checkpoint_dir: Path | None = None
    events: Events = field(default_factory=Events)


@dataclass
class CellOutcome:
    spec: CellSpec
    records: list[Record]
    dtype: str
    device: str
    started: str
    finished: str
    wall_s: float
    engine: str = "sequential"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_model(registry, ref: ComponentRef, seed: int, dataset):
    """A model, initialised on the CPU from a torch RNG seeded with ``seed``."""
    factory = registry.get("model", ref.name).obj
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(input_shape=tuple(dataset.input_shape), num_classes=dataset.num_classes,
                       **ref.params)


def evaluate(model, specs: list[CellSpec], ctx: CellContext, attacks, dtype, epoch: int,
             member_model=None) -> list[list[Record]]:
    """Clean metrics on both splits, then every attack, for each of ``specs`` (the members of
    ``model``). Attack randomness is seeded from each cell's seed and the epoch. An attack runs
    on the whole stack only if it declares ``per_example = True`` (each example's result depends
    on that example, its label and the model alone: no random draws, no coupling across the
    batch); any other attack runs member by member on ``member_model(i)``, seeing exactly what it
    would see alone.
    """
    spec, members = specs[0], len(specs)
    dataset = ctx.data.dataset(spec.dataset)
    records: list[list[Record]] = [[] for _ in specs]
    data = {role: ctx.data.get(spec.dataset, role, dtype=dtype, device=ctx.device)
            for role in ("train", "test")}
    for role, (x, y) in data.items():
        ctx.events.evaluating(spec, epoch, f"clean {role}")
        per = clean_records(model, x, y, epoch=epoch, split=role, batch_size=EVAL_BATCH,
                            members=members)
        for mine, new in zip(records, per, strict=True):
            mine += new
    ctx.events.evaluating(spec, epoch, "gradient-masking checks")
    per = masking_records(model, *data["test"], epoch=epoch, split="test",
                          batch_size=ATTACK_BATCH, members=members)
    for mine, new in zip(records, per, strict=True):
        mine += new
    devices = [torch.cuda.current_device()] if ctx.device == "cuda" else []
    bounds = tuple(dataset.bounds)
    for ref, attack in attacks:
        ctx.events.evaluating(spec, epoch, ref.label)
        x, y = data[ref.split]
        together = members == 1 or getattr(attack, "per_example", False)
        for i in range(1 if together else members):
            # member_model(i) reloads one shared module: fetch it right before use
            net, size = (model, members) if together else (member_model(i), 1)
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(specs[i].seed * 100_003 + epoch)
                per = attack_records(net, attack, ref, x, y, epoch=epoch, bounds=bounds,
                                     batch_size=ATTACK_BATCH, members=size)
            for mine, new in zip(records if together else [records[i]], per, strict=True):
                mine += new
    return records


def takes_state(regime, method) -> bool:
    """Whether ``method`` (the regime's ``train`` or ``train_stacked``) resumes: the regime says
    ``resumable`` and the method names ``state`` (a subclass may override it without; one that
    takes ``**kwargs`` may not pass it on)."""
    import inspect

    return bool(getattr(regime, "resumable", False)) and \
        "state" in inspect.signature(method).parameters


def plugin_versions(registry, cell: CellSpec) -> dict[str, str]:
    """``kind:name`` -> the distribution and version each of the cell's plugins comes from."""
    used = [("dataset", cell.dataset.name), ("model", cell.model.name),
            ("regime", cell.regime.name)] + [("attack", a.name) for a in cell.attacks]
    return {f"{kind}:{name}": f"{e.source.distribution} {e.source.version}"
            for kind, name in used for e in [registry.get(kind, name)]}


@dataclass
class Training:
    """A unit's training as ``start_training`` starts it: the regime's iterator over epochs,
    for a resumable regime the ``state`` it keeps current and what the unit's saved states are
    ``made_by``, and what this run ``resumed`` from, if anything."""

    epochs: Iterator[int]
    state: dict | None = None
    made_by: dict | None = None
    resumed: Resumed | None = None


def start_training(specs: list[CellSpec], ctx: CellContext, regime, method,
                   **kwargs) -> Training:
    """Start ``method(**kwargs)`` (the regime's ``train`` or ``train_stacked``), passing a
    resumable regime ``state=`` and resuming the unit if an earlier run saved it
    (``kwargs["model"]`` then holds the saved weights).

    Training draws from torch's RNG (dropout, say) in a stream of its own, seeded from the
    seed of the unit's first cell, so its numbers do not depend on what the process ran before;
    a resumed unit goes on with that stream where it stopped."""
    model, resumed, state, made_by = kwargs["model"], None, None, None
    if takes_state(regime, method) and ctx.checkpoint_dir is not None:
        state = kwargs["state"] = {}
        made_by = {"method": method.__name__, "plugins": plugin_versions(ctx.registry, specs[0])}
        resumed = load_resume(resume_path(ctx.checkpoint_dir, specs), specs, model, ctx.device,
                              made_by)
    if resumed is not None:
        model.load_state_dict(resumed.model)
        state.update(epoch=resumed.epoch, optimizer_state=resumed.optimizer)
        ctx.events.log(f"resuming {', '.join(s.describe() for s in specs)} after epoch "
                       f"{resumed.epoch}")
    devices = [torch.cuda.current_device()] if ctx.device == "cuda" else []
    seed = specs[0].seed * 100_003  # attacks use seed * 100_003 + epoch

    def epochs():
        # set when training starts (the attacks are built in between), kept across the
        # evaluations in between epochs (they fork the RNG themselves)
        with torch.random.fork_rng(devices=devices):
            if resumed is not None:
                set_rng_state(resumed.rng)
            else:  # only the generators forked here
                torch.default_generator.manual_seed(seed)
                if devices:
                    torch.cuda.manual_seed(seed)
            yield from method(**kwargs)

    return Training(epochs(), state, made_by, resumed)


def train_and_measure(specs: list[CellSpec], ctx: CellContext, *, regime, model,
                      training: Training, member_model, engine: str, started: str, t0: float,
                      index: int = 0, total: int = 1) -> list[CellOutcome]:
    """Drive ``training`` (``start_training``'s, over ``model``, which holds the members of
    ``specs``), checkpointing each member and evaluating at the regime's schedule. For a
    resumable regime, each checkpoint before the last epoch also saves what a later run needs
    to resume the unit after it."""
    first = specs[0]
    attacks = [(ref, build(ctx.registry, "attack", ref.name, ref.params)) for ref in first.attacks]
    dtype = getattr(torch, regime.dtype)
    ctx.events.cell_started(first, regime.epochs, index, total)
    resumed, state = training.resumed, training.state
    records: list[list[Record]] = resumed.records if resumed else [[] for _ in specs]
    t0 -= resumed.elapsed_s if resumed else 0.0  # the interrupted runs' time counts too
    schedule = set(regime.checkpoint_epochs)
    for epoch in training.epochs:
        ctx.events.epoch_done(first, epoch)
        if epoch not in schedule:
            continue
        if ctx.checkpoint_dir is not None:
            for i, spec in enumerate(specs):
                save_checkpoint(checkpoint_path(ctx.checkpoint_dir, spec.cell_id, epoch),
                                member_model(i), metadata={"cell_id": spec.cell_id,
                                                           "epoch": epoch,
                                                           "spec": spec.to_json()})
        for mine, new in zip(records, evaluate(model, specs, ctx, attacks, dtype, epoch,
                                               member_model), strict=True):
            mine += new
        if state is not None and epoch < regime.epochs and "optimizer" in state:
            save_resume(resume_path(ctx.checkpoint_dir, specs), specs, epoch=epoch, model=model,
                        optimizer=state["optimizer"], records=records,
                        elapsed_s=time.perf_counter() - t0, device=ctx.device,
                        made_by=training.made_by)
    wall = time.perf_counter() - t0
    outcomes = [CellOutcome(spec, recs, regime.dtype, ctx.device, started, now(),
                            wall / len(specs), engine=engine)
                for spec, recs in zip(specs, records, strict=True)]
    for outcome in outcomes:
        ctx.events.cell_finished(outcome.spec, outcome)
    return outcomes


def run_cell(spec: CellSpec, ctx: CellContext, *, index: int = 0, total: int = 1) -> CellOutcome:
    """Train the cell's model alone, checkpointing and evaluating at the regime's schedule."""
    started, t0 = now(), time.perf_counter()
    regime = build(ctx.registry, "regime", spec.regime.name, spec.regime.params)
    dtype = getattr(torch, regime.dtype)
    x, y = ctx.data.get(spec.dataset, "train", dtype=dtype, device=ctx.device)
    model = build_model(ctx.registry, spec.model, spec.seed, ctx.data.dataset(spec.dataset))
    model = model.to(device=ctx.device, dtype=dtype)
    training = start_training([spec], ctx, regime, regime.train, model=model, x=x, y=y,
                              seed=spec.seed)
    return train_and_measure([spec], ctx, regime=regime, model=model, training=training,
                             member_model=lambda i: model, engine="sequential",
                             started=started, t0=t0, index=index, total=total)[0]
