"""Running one cell: build, train, checkpoint and evaluate. Spec in, records out."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from benchbench.engine import blas
from benchbench.engine.data import DataCache, build
from benchbench.engine.device import rng_devices
from benchbench.engine.evaluate import Record, attack_records, clean_records, masking_records
from benchbench.engine.timeouts import TimedOut, time_limit
from benchbench.store.checkpoints import checkpoint_path, save_checkpoint
from benchbench.store.examples import CORRECT
from benchbench.store.verdicts import VERDICTS
from benchbench.store.versions import plugin_version
from benchbench.suite.cells import CellSpec, ComponentRef

EVAL_BATCH = 10_000  # rows per forward pass when measuring clean accuracy and loss (5 members)
ATTACK_BATCH = 1_000  # rows per attack call (5 members): every element-wise pass stays in cache
# Each member's rows per call are fixed, whatever the stack: a product's bits can depend on its
# row count (MKL takes other kernels for few rows), so a member measures the same chunks alone
# as in a stack of any size.
EVAL_ROWS = EVAL_BATCH // 5
ATTACK_ROWS = ATTACK_BATCH // 5


class Events:
    """Progress callbacks; the CLI shows them as progress bars. All are no-ops here."""

    def log(self, message: str) -> None: ...
    def cell_started(self, spec: CellSpec, epochs: int, index: int, total: int) -> None: ...
    def epoch_done(self, spec: CellSpec, epoch: int) -> None: ...
    def evaluating(self, spec: CellSpec, epoch: int, what: str) -> None: ...
    def cell_finished(self, spec: CellSpec, outcome: CellOutcome) -> None: ...
    # numbers as they are measured (benchbench.engine.progress): the mean over the unit's
    # members of an epoch's training records, and of a checkpoint's evaluation
    def epoch_metrics(self, spec: CellSpec, epoch: int, metrics: dict[str, float]) -> None: ...
    def checkpoint_done(self, spec: CellSpec, epoch: int, metrics: dict[str, float]) -> None: ...
    # the runner's plan, once before any unit runs: (index of its first cell, cells, stacked)
    def planned(self, units: list[tuple[int, int, bool]]) -> None: ...


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
    error: str | None = None  # set when this cell failed (its records are then not stored)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_model(registry, ref: ComponentRef, seed: int, dataset):
    """A model, initialised on the CPU from a torch RNG seeded with ``seed``."""
    factory = registry.get("model", ref.name).obj
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(input_shape=tuple(dataset.input_shape), num_classes=dataset.num_classes,
                       **ref.params)


def memory_format(registry, ref: ComponentRef, device: str = "cpu") -> str | None:
    """``"channels_last"`` where the model's factory declares ``channels_last = True`` (a
    capability: its forward must not ``view`` NHWC feature maps) and the run is on the CPU,
    else None. On the CPU oneDNN's NHWC kernels made small_cnn's PGD-AT 1.14-1.21x faster; on
    an H200 cuDNN's made it 0.88x (slower), wong_cnn's 0.91x (benchmarks/README.md, "CNNs on an
    NVIDIA H200"), so a GPU run keeps the contiguous layout."""
    if device != "cpu":
        return None
    factory = registry.get("model", ref.name).obj
    return "channels_last" if getattr(factory, "channels_last", False) is True else None


def evaluate(model, specs: list[CellSpec], ctx: CellContext, attacks, dtype, epoch: int,
             member_model=None, failed: dict[int, str] | None = None) -> list[list[Record]]:
    """Clean metrics on both splits, then every attack, for each of ``specs`` (the members of
    ``model``), with which examples stayed correct (``benchbench.store.examples``). Attack
    randomness is seeded from each cell's seed and the epoch. An attack runs on the whole stack
    only if it declares ``per_example = True`` (each example's result depends on that example,
    its label and the model alone: no random draws, no coupling across the batch); any other
    attack runs member by member on ``member_model(i)``, seeing exactly what it would see alone.

    An attack that raises on the whole stack is rerun member by member, so only the members it
    fails on fail: ``failed[i]`` gets member ``i``'s own error, and failed members are skipped.
    """
    spec, members = specs[0], len(specs)
    failed = {} if failed is None else failed
    dataset = ctx.data.dataset(spec.dataset)
    records: list[list[Record]] = [[] for _ in specs]
    data = {role: ctx.data.get(spec.dataset, role, dtype=dtype, device=ctx.device)
            for role in ("train", "test")}
    for role, (x, y) in data.items():
        ctx.events.evaluating(spec, epoch, f"clean {role}")
        per = clean_records(model, x, y, epoch=epoch, split=role, batch_size=EVAL_ROWS * members,
                            members=members, examples=True)
        for mine, new in zip(records, per, strict=True):
            mine += new
    ctx.events.evaluating(spec, epoch, "gradient-masking checks")
    per = masking_records(model, *data["test"], epoch=epoch, split="test",
                          batch_size=ATTACK_ROWS * members, members=members)
    for mine, new in zip(records, per, strict=True):
        mine += new
    bounds = tuple(dataset.bounds)

    def measure(net, attack, ref, x, y, size: int, seed: int):
        return measure_attack(net, attack, ref, x, y, epoch=epoch, bounds=bounds,
                              members=size, seed=seed, device=ctx.device)

    last = max(ctx.data.registry.get("regime", spec.regime.name).obj(**spec.regime.params)
               .checkpoint_epochs) if any(ref.at == "last" for ref, _ in attacks) else None
    for ref, attack in attacks:
        if ref.at == "last" and epoch != last:
            continue
        ctx.events.evaluating(spec, epoch, ref.label)
        x, y = data[ref.split]
        if ref.rows is not None:
            x, y = x[:ref.rows], y[:ref.rows]
        what = f"attack {ref.label} at epoch {epoch}"
        if members == 1 or getattr(attack, "per_example", False):
            try:
                if not failed:
                    with time_limit(_scaled(ref.timeout, members), what) as mine:
                        for got, new in zip(records, measure(model, attack, ref, x, y, members,
                                                             specs[0].seed), strict=True):
                            got += new
                    continue
            except TimedOut as exc:  # the whole stack ran past it: every member fails
                if exc.token is not mine:
                    raise
                if members == 1:
                    raise AttackTimeout(str(exc)) from None
                failed.update({i: f"AttackTimeout: {exc}" for i in range(members)
                               if i not in failed})
                continue
            except Exception:  # noqa: BLE001 - find which members it fails on, below
                if members == 1:
                    raise
        for i in range(members):
            if i in failed:
                continue
            try:  # member_model(i) reloads one shared module: fetch it right before use
                with time_limit(ref.timeout, what) as mine:
                    records[i] += measure(member_model(i), attack, ref, x, y, 1,
                                          specs[i].seed)[0]
            except TimedOut as exc:
                if exc.token is not mine:
                    raise
                failed[i] = f"AttackTimeout: {exc}"
            except Exception as exc:  # noqa: BLE001 - this member fails, the others go on
                failed[i] = f"{type(exc).__name__}: {exc} (attack {ref.label}, epoch {epoch})"
    if spec.verifiers:  # proofs per example, checked against the attacks' counterexamples
        from benchbench.engine.verdicts import verify_checkpoint

        verify_checkpoint(specs, ctx, attacks, records, epoch=epoch, test=data["test"],
                          bounds=bounds, member_model=member_model, failed=failed)
    return records


def measure_attack(net, attack, ref, x, y, *, epoch: int, bounds, members: int, seed: int,
                   device: str) -> list[list[Record]]:
    """One attack's records on ``members`` models' rows (``attack_records``), as every cell
    measures them: torch's RNG forked and seeded ``seed * 100_003 + epoch``, and each member's
    rows in chunks of ``ATTACK_ROWS``. ``benchbench.evaluate`` calls this too, so its numbers
    are a suite's."""
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed * 100_003 + epoch)
        return attack_records(net, attack, ref, x, y, epoch=epoch, bounds=bounds,
                              batch_size=ATTACK_ROWS * members, members=members, examples=True)


class AttackTimeout(Exception):
    """An attack ran past its ``timeout``: its cell fails (the unit's other cells go on)."""


def _scaled(seconds: float | None, members: int) -> float | None:
    """A per-cell limit for ``members`` cells measured in one call."""
    return None if seconds is None else seconds * members


def plugin_versions(registry, cell: CellSpec) -> dict[str, str]:
    """``kind:name`` -> the distribution and version each of the cell's plugins comes from, as
    ``benchbench.store.versions.installed_versions`` names them (so stale cells can be told)."""
    used = [("dataset", cell.dataset.name), ("model", cell.model.name),
            ("regime", cell.regime.name)] + [("attack", a.name) for a in cell.attacks] + [
            ("verifier", v.name) for v in cell.verifiers]
    return {f"{kind}:{name}": plugin_version(registry.get(kind, name)) for kind, name in used}


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _in_stream(epochs: Iterator[int], seed: int, rng: dict | None, device: str):
    """Run ``epochs`` with torch's RNG in a stream of its own (dropout, say, draws from it):
    seeded with ``seed``, or set to ``rng`` where a resumed unit stopped. Set when training
    starts (the attacks are built in between) and kept across the evaluations between epochs
    (they fork the RNG themselves)."""
    from benchbench.engine.resume import set_rng_state

    devices = [torch.cuda.current_device()] if device == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        if rng is not None:
            set_rng_state(rng)
        else:  # only the generators forked here
            torch.default_generator.manual_seed(seed)
            if devices:
                torch.cuda.manual_seed(seed)
        yield from epochs


def _self_driven(regime, *, model, x, y, seed: int, tctx) -> Iterator[int]:
    """A regime that runs its own loop: ``train(*, model, x, y, seed[, context])``."""
    import inspect

    extra = {"context": tctx} if "context" in inspect.signature(regime.train).parameters else {}
    return regime.train(model=model, x=x, y=y, seed=seed, **extra)


def _problems(records: list[Record]) -> str | None:
    """The first non-finite number among ``records``, said as a divergence, or None."""
    import math

    for r in records:
        if r.metric not in (CORRECT, VERDICTS) and not math.isfinite(r.value):
            what = r.metric if r.attack == "none" else f"{r.attack} {r.metric}"
            return f"diverged at epoch {r.epoch}: {r.split} {what} is {r.value}"
    return None


def train_unit(specs: list[CellSpec], ctx: CellContext, *, regime, model, x, y,
               member_model, member_state, stacked: bool, engine: str, regimes=None,
               index: int = 0, total: int = 1) -> list[CellOutcome]:
    """Train ``model`` (``specs``' one model, or their stack) with ``regime``, checkpointing each
    member and evaluating at the regime's schedule; one outcome per cell.

    A ``Regime`` trains in the harness's loop (``benchbench.engine.training``) and resumes: at
    each checkpoint before the last epoch the unit saves what a later run needs to train on
    from there, bit for bit (``benchbench.engine.resume``). A self-driven regime (its own
    ``train``) starts over. A member whose weights stop being finite, whose numbers are not, or
    on which an attack raises fails alone, with its own error; if training stops before a
    scheduled checkpoint, every member fails saying so."""
    from benchbench.engine.progress import checkpoint_summary, epoch_summary
    from benchbench.engine.resume import load_resume, resume_path, save_resume
    from benchbench.engine.training import Trainer
    from benchbench.regimes.base import harness_driven
    from benchbench.regimes.context import TrainContext

    blas.warn_once_if_not_reproducible()

    started, t0 = now(), time.perf_counter()
    first = specs[0]
    dataset = ctx.data.dataset(first.dataset)
    dtype = getattr(torch, regime.dtype)
    attacks = [(ref, build(ctx.registry, "attack", ref.name, ref.params)) for ref in first.attacks]
    tctx = TrainContext(len(specs), tuple(s.seed for s in specs), tuple(dataset.bounds), dtype,
                        ctx.device, ctx.registry, member_model, ctx.events.log)
    ctx.events.cell_started(first, regime.epochs, index, total)
    trainer, resumed, made_by = None, None, None
    path = resume_path(ctx.checkpoint_dir, specs) if ctx.checkpoint_dir is not None else None
    if harness_driven(type(regime)):
        trainer = Trainer(regime, model=model, x=x, y=y, seeds=[s.seed for s in specs],
                          ctx=tctx, stacked=stacked, regimes=regimes, member_state=member_state)
        trainer.augment = first.dataset.augment  # benchbench.engine.augment (None: none)
        made_by = {"trainer": "harness", "plugins": plugin_versions(ctx.registry, first)}
        resumed = (load_resume(path, specs, model, ctx.device, made_by, log=ctx.events.log)
                   if path else None)
        if resumed is not None:
            model.load_state_dict(resumed.model)
            trainer.load_state(resumed.trainer, resumed.epoch, resumed.records)
            t0 -= resumed.elapsed_s  # the interrupted runs' time counts too
            ctx.events.log(f"resuming {', '.join(s.describe() for s in specs)} after epoch "
                           f"{resumed.epoch}")
        records, epochs = trainer.records, trainer.epochs()
    else:
        records = [[] for _ in specs]
        epochs = _self_driven(regime, model=model, x=x, y=y, seed=first.seed, tctx=tctx)
    failed: dict[int, str] = {}
    schedule, reached = set(regime.checkpoint_epochs), 0
    for epoch in _in_stream(epochs, first.seed * 100_003, resumed.rng if resumed else None,
                            ctx.device):
        fit = epoch_summary(records, epoch)
        if fit:  # before epoch_done, so the epoch's progress line can show them
            ctx.events.epoch_metrics(first, epoch, fit)
        ctx.events.epoch_done(first, epoch)
        reached = max(reached, epoch)
        if epoch not in schedule:
            continue
        # given weights (evaluate_only) are their own checkpoint: the file, by its sha256
        if ctx.checkpoint_dir is not None and not getattr(regime, "evaluate_only", False):
            for i, spec in enumerate(specs):
                save_checkpoint(checkpoint_path(ctx.checkpoint_dir, spec.cell_id, epoch),
                                member_model(i), metadata={"cell_id": spec.cell_id,
                                                           "epoch": epoch,
                                                           "spec": spec.to_json()})
        for mine, new in zip(records, evaluate(model, specs, ctx, attacks, dtype, epoch,
                                               member_model, failed), strict=True):
            mine += new
        ctx.events.checkpoint_done(first, epoch, checkpoint_summary(records, epoch))
        if trainer is not None and path is not None and epoch < regime.epochs:
            save_resume(path, specs, epoch=epoch, model=model, trainer=trainer.state(),
                        records=records, elapsed_s=time.perf_counter() - t0,
                        device=ctx.device, made_by=made_by)
    missing = sorted(e for e in schedule if e > reached)
    if missing:
        error = (f"training stopped after epoch {reached} of {regime.epochs}: scheduled "
                 f"checkpoints {missing} were never reached")
        failed.update({i: error for i in range(len(specs))})
    if trainer is not None:
        _early_stopped(specs, ctx, trainer, attacks, dtype, member_model, failed)
    for i in range(len(specs)):
        if i not in failed and trainer is not None and trainer.diverged[i] is not None:
            failed[i] = (f"diverged at epoch {trainer.diverged[i]}: the weights are not finite "
                         "(lower the learning rate?)")
        problem = None if i in failed else _problems(records[i])
        if problem:
            failed[i] = problem
    wall = time.perf_counter() - t0
    device = blas.describe(ctx.device)  # threads, CPU kernels and BLAS mode: provenance
    outcomes = [CellOutcome(spec, recs, regime.dtype, device, started, now(),
                            wall / len(specs), engine=engine, error=failed.get(i))
                for i, (spec, recs) in enumerate(zip(specs, records, strict=True))]
    for outcome in outcomes:
        ctx.events.cell_finished(outcome.spec, outcome)
    return outcomes


def _early_stopped(specs, ctx, trainer, attacks, dtype, member_model, failed) -> None:
    """With ``early_stop``: evaluate each member's best monitored epoch (unless it was a
    checkpoint already) and record which epoch it was (``best_epoch``, split ``fit``)."""
    regime = trainer.regime
    for i, best in enumerate(trainer.best):
        if best is None or i in failed:
            continue
        epoch, _, weights = best
        trainer.records[i].append(Record(regime.epochs, "fit", "none", 0.0, "best_epoch",
                                         float(epoch)))
        if epoch in regime.checkpoint_epochs:
            continue
        net = member_model(i)
        net.load_state_dict(weights)
        if ctx.checkpoint_dir is not None:
            save_checkpoint(checkpoint_path(ctx.checkpoint_dir, specs[i].cell_id, epoch), net,
                            metadata={"cell_id": specs[i].cell_id, "epoch": epoch,
                                      "spec": specs[i].to_json(), "early_stop": "best"})
        mine: dict[int, str] = {}
        trainer.records[i] += evaluate(net, [specs[i]], ctx, attacks, dtype, epoch,
                                       lambda _, n=net: n, mine)[0]
        if mine:
            failed[i] = mine[0]


def run_cell(spec: CellSpec, ctx: CellContext, *, index: int = 0, total: int = 1,
             engine: str = "sequential") -> CellOutcome:
    """Train the cell's model alone, checkpointing and evaluating at the regime's schedule;
    ``engine`` is what the store records (``sequential: <why it is not stacked>``)."""
    regime = build(ctx.registry, "regime", spec.regime.name, spec.regime.params)
    dtype = getattr(torch, regime.dtype)
    x, y = ctx.data.get(spec.dataset, "train", dtype=dtype, device=ctx.device)
    model = build_model(ctx.registry, spec.model, spec.seed, ctx.data.dataset(spec.dataset))
    model = model.to(device=ctx.device, dtype=dtype)
    if memory_format(ctx.registry, spec.model, ctx.device) == "channels_last":  # declared
        model = model.to(memory_format=torch.channels_last)
        engine = f"{engine}; channels_last"
    if spec.model.weights is not None:  # given weights (regime "pretrained"), in the run's dtype
        from benchbench.models.weights import load_weights

        load_weights(model, spec.model.weights, model_name=spec.model.name)
    if getattr(regime, "evaluate_only", False):  # pretrained: nothing trains, alone or stacked
        engine = "evaluate only"
    return train_unit([spec], ctx, regime=regime, model=model, x=x, y=y,
                      member_model=lambda i: model, member_state=lambda i: _weights(model),
                      stacked=False, engine=engine, index=index, total=total)[0]
