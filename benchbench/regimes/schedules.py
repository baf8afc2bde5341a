"""Learning-rate schedules for harness-driven regimes, built on ``torch.optim.lr_scheduler``.

The regime key ``lr_schedule`` is ``"constant"`` (the default: the regime's ``lr`` throughout) or
a table naming a schedule (a bare name takes that schedule's defaults):

* ``{ name = "step", milestones = [54, 74, 89], gamma = 0.1 }`` (alias ``"piecewise"``):
  ``MultiStepLR``, stepped after every epoch: the lr is multiplied by ``gamma`` after each
  milestone epoch (TRADES' ``epoch >= 55`` is milestone 54). A milestone is a whole epoch, or
  a fraction of the regime's ``epochs`` below 1 (``[0.5, 0.75]``: Rice et al.'s piecewise
  schedule), rounded to the nearest epoch (halves up);
* ``{ name = "cosine", lr_min = 0.0 }``: ``CosineAnnealingLR(T_max = epochs, eta_min =
  lr_min)``, stepped after every epoch;
* ``{ name = "cyclic", lr_min = 0.0, peak = 0.5 }``: ``CyclicLR`` (triangular), stepped after
  every batch: from ``lr_min`` up to the regime's ``lr`` over the first ``peak`` of the run's
  ``epochs x batches`` steps and back down over the rest (Wong et al.: their CIFAR-10 script
  uses ``CyclicLR`` with ``peak = 0.5``; their MNIST script interpolates to its peak at
  ``epochs * 2 // 5`` epochs, ``peak = 0.4`` at 10 epochs, evaluated one batch ahead);
* ``{ name = "one_cycle", pct_start = 0.3, div_factor = 25.0, final_div_factor = 1e4,
  anneal = "cos", three_phase = false }``: ``OneCycleLR(max_lr = lr, total_steps = epochs x
  batches)``, stepped after every batch.

``cyclic`` and ``one_cycle`` take ``cycle_momentum`` (false here, unlike torch's default), with
``base_momentum`` and ``max_momentum`` (torch's defaults: 0.8/0.9 and 0.85/0.95): true cycles
SGD's momentum (Adam's beta1) inversely to the lr, as Wong et al.'s CIFAR-10 script gets from
torch's default. Every length follows the regime's ``epochs`` (and the batches per epoch of the
training split), so a schedule keeps its shape when a suite trains shorter or longer.

In a stack, each run of members sharing hyper-parameters (``MemberwiseOptimizer``) is one
parameter group of the scheduler: every member follows the schedule from its own ``lr``,
exactly as torch's scheduler would on its own optimiser (tested). The scheduler's state and the
groups' scheduled values are part of the trainer's resume state, so a resumed run continues
bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from benchbench.regimes.base import finite

NAMES = ("constant", "step", "cosine", "cyclic", "one_cycle")
ALIASES = {"piecewise": "step"}
PER_BATCH = ("cyclic", "one_cycle")
ANNEAL = ("cos", "linear")
#: what each schedule accepts besides ``name``, with its default
OPTIONS: dict[str, dict[str, Any]] = {
    "constant": {},
    "step": {"milestones": None, "gamma": 0.1},
    "cosine": {"lr_min": 0.0},
    "cyclic": {"lr_min": 0.0, "peak": 0.5, "cycle_momentum": False, "base_momentum": 0.8,
               "max_momentum": 0.9},
    "one_cycle": {"pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4,
                  "anneal": "cos", "three_phase": False, "cycle_momentum": False,
                  "base_momentum": 0.85, "max_momentum": 0.95},
}
#: the parameter-group keys torch's schedulers write (restored on resume)
SCHEDULED_KEYS = ("lr", "initial_lr", "max_lr", "min_lr", "momentum", "betas",
                  "base_momentum", "max_momentum")


def parse_schedule(value, epochs: int) -> dict[str, Any] | None:
    """``lr_schedule`` checked and completed with its defaults (milestones in epochs), or None
    for ``"constant"``; a ValueError naming the key and what is allowed otherwise."""
    table = {"name": value} if isinstance(value, str) else value
    if not isinstance(table, Mapping) or not isinstance(table.get("name"), str):
        raise ValueError(f"lr_schedule must be one of {', '.join(NAMES)} or a table naming one, "
                         f"e.g. {{ name = \"step\", milestones = [5, 8] }}; got {value!r}")
    name = ALIASES.get(table["name"], table["name"])
    if name not in NAMES:
        raise ValueError(f"lr_schedule.name must be one of {', '.join(NAMES)} (or piecewise, "
                         f"an alias of step); got {table['name']!r}")
    allowed = OPTIONS[name]
    unknown = sorted(set(table) - {"name", *allowed})
    if unknown:
        raise ValueError(f"lr_schedule.{unknown[0]}: unknown for the {name} schedule; allowed: "
                         f"{', '.join(allowed) or 'none'}")
    if name == "constant":
        return None
    out = {"name": name, **allowed, **{k: v for k, v in table.items() if k != "name"}}
    for key in ("lr_min",):
        if key in out:
            out[key] = finite(f"lr_schedule.{key}", out[key])
    for key in ("cycle_momentum", "three_phase"):
        if key in out and not isinstance(out[key], bool):
            raise ValueError(f"lr_schedule.{key} must be true or false; got {out[key]!r}")
    for key in ("base_momentum", "max_momentum"):
        if key in out:
            out[key] = finite(f"lr_schedule.{key}", out[key], high=1.0)
    if name == "step":
        out["gamma"] = finite("lr_schedule.gamma", out["gamma"], low_open=True, high=1e3)
        out["milestones"] = _milestones(out["milestones"], epochs)
    if name == "cyclic":
        out["peak"] = _fraction("lr_schedule.peak", out["peak"])
    if name == "one_cycle":
        out["pct_start"] = _fraction("lr_schedule.pct_start", out["pct_start"])
        for key in ("div_factor", "final_div_factor"):
            out[key] = finite(f"lr_schedule.{key}", out[key], low_open=True, high=1e12)
        if out["anneal"] not in ANNEAL:
            raise ValueError(f"lr_schedule.anneal must be one of {', '.join(ANNEAL)}; "
                             f"got {out['anneal']!r}")
    return out


def _fraction(key: str, value) -> float:
    value = finite(key, value, low_open=True, high=1.0)
    if value >= 1.0:
        raise ValueError(f"{key} must be a fraction of the run strictly between 0 and 1; "
                         f"got {value!r}")
    return value


def _milestones(value, epochs: int) -> list[int]:
    allowed = (f"a non-empty list of epochs from 1 to {epochs - 1} (epochs = {epochs}) or of "
               "fractions of epochs between 0 and 1, e.g. [54, 74, 89] or [0.5, 0.75]")
    if not isinstance(value, list) or not value:
        raise ValueError(f"lr_schedule.milestones must be {allowed}; got {value!r}")
    out = []
    for m in value:
        if isinstance(m, int) and not isinstance(m, bool):
            epoch = m
        elif isinstance(m, float) and math.isfinite(m) and 0.0 < m < 1.0:
            epoch = math.floor(m * epochs + 0.5)
        else:
            raise ValueError(f"lr_schedule.milestones must be {allowed}; got {m!r} in it")
        if not 1 <= epoch < epochs:
            raise ValueError(f"lr_schedule.milestones must be {allowed}; {m!r} is epoch "
                             f"{epoch}, after which no epoch trains")
        out.append(epoch)
    if len(set(out)) != len(out):
        raise ValueError(f"lr_schedule.milestones lists epoch "
                         f"{next(e for i, e in enumerate(out) if e in out[:i])} twice "
                         f"(after rounding fractions of epochs = {epochs})")
    return sorted(out)


class Schedule:
    """One torch scheduler over an optimiser's parameter groups, stepped after every batch
    (``cyclic``, ``one_cycle``) or every epoch (the others).

    ``opt`` is a ``torch.optim.Optimizer`` or a ``MemberwiseOptimizer``, which the scheduler
    sees through a view with one parameter group per run of members sharing hyper-parameters
    (the dicts its steps read)."""

    def __init__(self, spec: Mapping[str, Any], opt, *, epochs: int, batches: int) -> None:
        self.spec = dict(spec)
        self.per_batch = spec["name"] in PER_BATCH
        self.target = _torch_optimizer(opt)
        self.scheduler = _scheduler(self.spec, self.target, epochs=epochs, batches=batches)
        # the harness steps the optimiser before every scheduler step, maybe by calling its
        # kernel directly (lean_step), where torch's wrapper cannot see it and would warn
        self.target._opt_called = True

    def after_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self) -> None:
        if not self.per_batch:
            self.scheduler.step()

    def lrs(self) -> list[float]:
        """The learning rate of every parameter group now."""
        return [g["lr"] for g in self.target.param_groups]

    def state_dict(self) -> dict:
        """The scheduler's state and the values it wrote into each group (plain data)."""
        return {"scheduler": self.scheduler.state_dict(),
                "groups": [{k: g[k] for k in SCHEDULED_KEYS if k in g}
                           for g in self.target.param_groups]}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        for group, saved in zip(self.target.param_groups, state["groups"], strict=True):
            group.update(saved)


def build_schedule(regime, opt, *, batches: int) -> Schedule | None:
    """``regime``'s schedule on ``opt`` (None for a constant lr)."""
    spec = getattr(regime, "lr_schedule", None)
    if spec is None:
        return None
    return Schedule(spec, opt, epochs=regime.epochs, batches=batches)


def _scheduler(spec: dict, opt, *, epochs: int, batches: int):
    from torch.optim import lr_scheduler

    name, lrs = spec["name"], [g["lr"] for g in opt.param_groups]
    if name == "step":
        return lr_scheduler.MultiStepLR(opt, milestones=spec["milestones"], gamma=spec["gamma"])
    if name == "cosine":
        return lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=spec["lr_min"])
    momentum = {"cycle_momentum": spec["cycle_momentum"],
                "base_momentum": spec["base_momentum"], "max_momentum": spec["max_momentum"]}
    total = epochs * batches
    if name == "cyclic":
        up = spec["peak"] * total
        return lr_scheduler.CyclicLR(opt, base_lr=spec["lr_min"], max_lr=lrs,
                                     step_size_up=up, step_size_down=total - up, **momentum)
    return lr_scheduler.OneCycleLR(opt, max_lr=lrs, total_steps=total,
                                   pct_start=spec["pct_start"], div_factor=spec["div_factor"],
                                   final_div_factor=spec["final_div_factor"],
                                   anneal_strategy=spec["anneal"],
                                   three_phase=spec["three_phase"], **momentum)


def _torch_optimizer(opt):
    import torch

    return opt if isinstance(opt, torch.optim.Optimizer) else _view_class()(opt)


@functools.cache
def _view_class():
    import torch

    class GroupsView(torch.optim.Optimizer):
        """An optimiser's ``param_groups`` and ``defaults`` as torch's schedulers expect them,
        for an optimiser that keeps its own parameters and state (``MemberwiseOptimizer``):
        the scheduler writes the groups, the owner reads them at every step. Torch's own
        ``__init__`` is not run: there are no parameters to register here."""

        def __init__(self, owner) -> None:
            self.owner = owner
            # one group per run of members sharing hyper-parameters: the dicts its steps read
            self.param_groups = [h for _, _, h in owner.runs]
            if owner.kind == "adam":
                for h in self.param_groups:
                    h.setdefault("betas", (0.9, 0.999))  # its default, made visible to cycle
            self.defaults = {"betas": (0.9, 0.999)} if owner.kind == "adam" else {
                "momentum": 0.0}
            self.state = {}

        def step(self, closure=None):
            return self.owner.step()

    return GroupsView
