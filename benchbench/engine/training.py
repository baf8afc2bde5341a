"""The training loop the harness owns for every ``Regime``: epochs, shuffles, batches, the
optimiser, stacking, the monitor and what a resumed run needs.

``Trainer(regime, ...)`` trains a model in place, alone or as a stack of ``members`` models
(member-major batches, see ``benchbench.models.stacked_mlp``). Member ``i`` draws its shuffles
from its own seed, its random starts from its own generator, has its own hyper-parameters
(``member_params``) and its own losses averaged over its own rows, exactly as it would alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from benchbench.engine.evaluate import Record
from benchbench.regimes.base import uses_plain_cross_entropy
from benchbench.regimes.context import TrainContext
from benchbench.regimes.lean_step import lean_step
from benchbench.regimes.schedules import build_schedule

SHUFFLE_SALT = 0x9E3779B9  # the shuffle stream is seeded apart from the initialisation stream
MONITOR_ROWS = 1_000  # the fixed training batch the catastrophic-overfitting monitor attacks
MONITOR_STEPS = 10
MONITOR_SALT = 0x2545F491


def shuffles(n: int, seed: int, epochs: int) -> Iterator[torch.Tensor]:
    """One permutation of ``range(n)`` per epoch, from a generator seeded by ``seed``."""
    gen = torch.Generator().manual_seed(seed + SHUFFLE_SALT)
    for _ in range(epochs):
        yield torch.randperm(n, generator=gen)


def _repeat(t: torch.Tensor, members: int) -> torch.Tensor:
    return t if members == 1 else t.repeat(members, *([1] * (t.dim() - 1)))


class Trainer:
    """Trains ``model`` with ``regime`` (``regimes[i]`` for member ``i`` when their
    ``member_params`` differ); ``epochs()`` yields after every epoch.

    ``stacked``: ``model`` is a stack of ``len(seeds)`` members. After each epoch the trainer
    appends to ``records[i]`` what ``ctx.record`` gathered (split ``fit``) and the monitor's PGD
    accuracy, and notes in ``diverged[i]`` the first epoch after which member ``i``'s weights
    are not finite. With ``early_stop``, ``best[i]`` holds ``(epoch, accuracy, weights)`` of the
    member's best monitored epoch.
    """

    def __init__(self, regime, *, model, x, y, seeds: Sequence[int], ctx: TrainContext,
                 stacked: bool, regimes: Sequence | None = None, member_state=None) -> None:
        self.regime, self.model, self.x, self.y = regime, model, x, y
        self.seeds, self.ctx, self.stacked = list(seeds), ctx, stacked
        self.members = len(self.seeds)
        self.member_state = member_state  # i -> member i's weights (a copy)
        self.records: list[list[Record]] = [[] for _ in self.seeds]
        self.diverged: list[int | None] = [None] * self.members
        self.best: list[tuple | None] = [None] * self.members
        self.first = 1
        hypers = [{k: getattr(r, k) for k in regime.member_params} for r in regimes or [regime]]
        if all(h == hypers[0] for h in hypers):
            self.opt = regime.make_optimizer(model.parameters())
            self.step = None  # lean_step takes the optimiser's state at its first step
        else:  # one fused kernel call per run of members that share hyper-parameters
            from benchbench.regimes.memberwise import MemberwiseOptimizer

            self.opt = MemberwiseOptimizer(model.parameters(), hypers, regime.optimizer)
            self.step = self.opt.step
        plain = uses_plain_cross_entropy(regime)
        # the regime's autocast: the step's forward passes (crafting too) in bfloat16 where
        # torch.autocast lowers them; float32 weights, gradients, optimiser and evaluation
        self.autocast = getattr(regime, "autocast", "none")
        # the model's own cross-entropy backward (no autograd graph) when it has one; not under
        # autocast, which only autograd's ops follow
        self.backward = (getattr(model, "cross_entropy_backward", None)
                         if plain and self.autocast == "none" else None)
        self.plain = plain
        # the regime's lr_schedule on the optimiser (None: constant), per batch or per epoch
        self.schedule = build_schedule(regime, self.opt, batches=-(-len(x) // regime.batch_size))

    # --- resume ---------------------------------------------------------------------------

    def state(self) -> dict:
        """What ``load_state`` needs to train on after the last epoch trained."""
        return {"optimizer": self.opt.state_dict(), "context": self.ctx.state(),
                "diverged": list(self.diverged),
                "best": [None if b is None else [b[0], b[1], b[2]] for b in self.best],
                "schedule": None if self.schedule is None else self.schedule.state_dict()}

    def load_state(self, state: dict, epoch: int, records: list[list[Record]]) -> None:
        self.opt.load_state_dict(state["optimizer"])
        self.ctx.load_state(state["context"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        self.diverged = list(state["diverged"])
        self.best = [None if b is None else (int(b[0]), float(b[1]), b[2])
                     for b in state["best"]]
        self.records, self.first = records, epoch + 1

    # --- the loop -------------------------------------------------------------------------

    def epochs(self) -> Iterator[int]:
        regime, model, x, y, ctx = self.regime, self.model, self.x, self.y, self.ctx
        step = self.step or lean_step(self.opt, members=self.members if self.stacked else 1)
        n, size = len(x), regime.batch_size
        ctx.batches = -(-n // size)
        streams = [shuffles(n, seed, regime.epochs) for seed in self.seeds]
        # the suite's dataset.augment (set by the cell; None: none), drawn per member from
        # (seed, epoch, batch): nothing to save for resume (benchbench.engine.augment)
        from benchbench.engine.augment import augment_rows

        augment = getattr(self, "augment", None)
        seeds = self.seeds if self.stacked else self.seeds[:1]
        model.train()
        for epoch, perms in enumerate(zip(*streams, strict=True), start=1):
            if epoch < self.first:  # the shuffle streams still draw every epoch's permutation
                continue
            ctx.epoch = epoch
            perm = torch.stack(perms).to(x.device, non_blocking=True)
            for ctx.batch, start in enumerate(range(0, n, size)):
                if self.stacked:
                    flat = perm[:, start:start + size].reshape(-1)
                    xb, yb = x.index_select(0, flat), y.index_select(0, flat)
                else:
                    idx = perm[0, start:start + size]
                    xb, yb = x[idx], y[idx]
                xb = augment_rows(xb, augment, seeds, epoch=epoch, batch=ctx.batch)
                self._train_batch(xb, yb, len(flat) // self.members if self.stacked
                                  else len(idx))
                step()
                if self.schedule is not None:
                    self.schedule.after_batch()
            if self.schedule is not None:
                self.schedule.after_epoch()
            self._end_epoch(epoch)
            yield epoch

    def _train_batch(self, xb, yb, rows: int) -> None:
        if self.autocast == "none":
            loss = self._loss(xb, yb, rows)
        else:  # the forward passes under autocast, the last backward outside it (torch's advice)
            with torch.autocast(device_type=xb.device.type, dtype=getattr(torch, self.autocast)):
                loss = self._loss(xb, yb, rows)
        if loss is not None:
            loss.backward()

    def _loss(self, xb, yb, rows: int):
        """The batch's loss to backpropagate, or None where the model's own backward ran."""
        x_train = self.regime.craft(self.ctx, self.model, xb, yb)
        if self.backward is not None:
            self.backward(x_train, yb)
            return None
        if self.plain and not self.stacked:  # the cross-entropy exactly as a plain loop takes it
            loss = F.cross_entropy(self.model(x_train), yb)
            self.opt.zero_grad(set_to_none=True)
            return loss
        # every member's batch has ``rows`` rows: sum / rows = sum of member means
        losses = self.regime.loss(self.ctx, self.model, xb, x_train, yb)
        if losses.shape != (len(yb),):
            raise ValueError(f"{type(self.regime).__name__}.loss returned shape "
                             f"{tuple(losses.shape)}; expected ({len(yb)},): one loss per "
                             "example")
        loss = losses.sum() / rows
        self.model.zero_grad(set_to_none=True)
        return loss

    def _end_epoch(self, epoch: int) -> None:
        for metric, values in self.ctx.epoch_means().items():
            for mine, v in zip(self.records, values, strict=True):
                mine.append(Record(epoch, "fit", "none", 0.0, metric, v))
        with torch.no_grad():
            finite = torch.ones(self.members, dtype=torch.bool, device=self.x.device)
            for p in self.model.parameters():
                rows = p.reshape(self.members, -1) if self.stacked else p.reshape(1, -1)
                finite &= torch.isfinite(rows).all(1)
        for i, ok in enumerate(finite.tolist()):
            if not ok and self.diverged[i] is None:
                self.diverged[i] = epoch
        eps = self.regime.monitor_eps
        if eps is not None:
            self._monitor(epoch, eps)

    def _monitor(self, epoch: int, eps: float) -> None:
        """PGD accuracy at ``eps`` on the first ``MONITOR_ROWS`` training images, per member;
        random starts seeded by the member's seed and the epoch (nothing to save for resume)."""
        from benchbench.regimes.inner_max import pgd_linf

        rows = min(MONITOR_ROWS, len(self.x))
        xm, ym = _repeat(self.x[:rows], self.members), _repeat(self.y[:rows], self.members)
        ctx = TrainContext(self.members, tuple(s * 1_000_003 + epoch + MONITOR_SALT
                                               for s in self.seeds),
                           self.ctx.bounds, self.ctx.dtype, self.ctx.device)
        x_adv = pgd_linf(ctx, self.model, xm, ym, eps=eps, steps=MONITOR_STEPS,
                         step_size=2.5 * eps / MONITOR_STEPS,
                         start=xm + ctx.uniform(xm, -eps, eps))
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            correct = (self.model(x_adv).argmax(1) == ym).view(self.members, -1)
        self.model.train(was)
        accuracy = (correct.sum(1).double() / rows).tolist()
        for i, (mine, acc) in enumerate(zip(self.records, accuracy, strict=True)):
            mine.append(Record(epoch, "fit", "pgd_monitor", eps, "accuracy", acc))
            if getattr(self.regime, "early_stop", False) and (
                    self.best[i] is None or acc > self.best[i][1]):
                self.best[i] = (epoch, acc, self.member_state(i))
