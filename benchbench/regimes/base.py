"""The regime base class: the harness owns the training loop, a regime supplies its batch loss.

Like foolbox's attack base class (the public call owns the epsilon loop, a subclass implements
one ``run``), a regime derived from ``Regime`` says only what is specific to it:

* ``craft(ctx, model, x, y) -> x_train``: the inputs it trains on (default: ``x`` itself);
* ``loss(ctx, model, x, x_train, y) -> Tensor[N]``: one loss per example (default: the
  cross-entropy of ``model(x_train)``).

The harness (``benchbench.engine.training``) owns everything else: epochs, shuffles, batching,
the optimiser, stacking several seeds into one model, checkpoints, resume and the records. A
batch holds ``ctx.members`` members' rows one after the other (member-major; one member when the
model trains alone), and the harness averages each member's losses over its own rows, so member
``i`` trains exactly as it would alone (bit for bit as a stack of one at the same thread
count: README, "What is the same bit for bit").
``ctx`` (``benchbench.regimes.context.TrainContext``)
gives the threat model (bounds, dtype, any registered attack, projection), one seeded random
generator per member and a way to record numbers per epoch.

A regime that trains its own way (say a library's ``fit`` loop) does not derive from ``Regime``
and defines ``train(*, model, x, y, seed[, context])`` instead; see ``benchbench.hookspecs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import torch

    from benchbench.regimes.context import TrainContext

OPTIMIZERS = ("adam", "sgd")
AUTOCASTS = ("none", "bfloat16")  # torch.autocast's dtype for the training step, or none
DTYPES = ("float32", "float64")
MAX_EPOCHS = 100_000  # a week-long grid is thousands of epochs; more is a typo
MAX_BATCH = 1_000_000


def checkpoint_schedule(checkpoints: Sequence[int] | Mapping[str, int] | None,
                        epochs: int) -> tuple[int, ...]:
    """Epochs to checkpoint: a list, ``{start, step[, stop]}`` or None (the last epoch only)."""
    if checkpoints is None:
        return (epochs,)
    if isinstance(checkpoints, Mapping):
        unknown = set(checkpoints) - {"start", "step", "stop"}
        if unknown or not {"start", "step"} <= set(checkpoints):
            raise ValueError("checkpoints must be a list of epochs or {start, step[, stop]}; "
                             f"got keys {sorted(checkpoints)}")
        start, step = checkpoints["start"], checkpoints["step"]
        stop = checkpoints.get("stop", epochs)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                   for v in (start, step, stop)):
            raise ValueError("checkpoints start, step and stop must be positive integers")
        epochs_list = list(range(start, stop + 1, step))
    elif isinstance(checkpoints, Sequence) and not isinstance(checkpoints, str):
        epochs_list = list(checkpoints)
    else:
        raise ValueError(f"checkpoints must be a list of epochs or {{start, step}}; "
                         f"got {checkpoints!r}")
    if not epochs_list or not all(isinstance(e, int) and not isinstance(e, bool)
                                  and 1 <= e <= epochs for e in epochs_list):
        raise ValueError(f"checkpoints must be epochs between 1 and epochs={epochs}; "
                         f"got {epochs_list}")
    return tuple(sorted(set(epochs_list)))


def positive_int(key: str, value, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= limit:
        raise ValueError(f"{key} must be an integer from 1 to {limit:,}; got {value!r}")
    return value


def finite(key: str, value, *, low: float = 0.0, high: float = math.inf,
           low_open: bool = False) -> float:
    """``value`` as a number in ``[low, high]`` (``(low, high]`` with ``low_open``), finite."""
    ok = (isinstance(value, int | float) and not isinstance(value, bool)
          and math.isfinite(value) and value <= high
          and (value > low if low_open else value >= low))
    if not ok:
        bound = f"{'>' if low_open else '>='} {low:g}"
        top = "" if high == math.inf else f" and <= {high:g}"
        raise ValueError(f"{key} must be a finite number {bound}{top}; got {value!r}")
    return float(value) if isinstance(value, float) else value


class Regime:
    """Base class of harness-driven regimes: Adam or SGD on minibatches, reshuffled every epoch.

    Suite keys (every subclass accepts them): ``optimizer`` (adam, sgd), ``lr``,
    ``batch_size``, ``epochs``, ``checkpoints``, ``dtype`` (float32, float64), ``momentum``,
    ``weight_decay``, ``lr_schedule`` (``"constant"``, or a schedule built on
    ``torch.optim.lr_scheduler``: ``benchbench.regimes.schedules``) and ``autocast``
    (``"none"``, or ``"bfloat16"``: the training step's forward passes, crafting included, under
    ``torch.autocast`` on the run's device; float32 weights, optimiser and evaluation; for
    GPUs: on this project's CPUs bfloat16 was 4-12x slower in issue #17's measurement).
    """

    # capabilities, declared (the harness never guesses them from inherited methods):
    # - stackable: members of one stack may train together (``craft``/``loss`` act on each
    #   member's rows alone and draw randomness only from ``ctx``'s per-member generators)
    stackable: ClassVar[bool] = True
    # - member_params: parameters that may differ between the members of one stack (cells
    #   differing only in these and in their seed train together); everything else must be equal
    member_params: ClassVar[tuple[str, ...]] = ("lr", "momentum", "weight_decay")
    # - revision: raised whenever a change makes the class measure other numbers for the same
    #   keys; stored with every cell beside the plugin's version (``store.versions``), so cells
    #   measured before the change are reported as measured by other code, never as new numbers
    revision: ClassVar[int] = 1
    # - late_keys: keys added after suites were run; left out of a cell's spec while they hold
    #   their default, so the cells of suites written before them keep their ids (a late key's
    #   default that changes the numbers comes with a new ``revision``)
    late_keys: ClassVar[tuple[str, ...]] = ("lr_schedule", "clamp_start", "craft_mode",
                                            "autocast")

    def __init__(self, *, optimizer: str = "adam", lr: float = 1e-3, batch_size: int = 100,
                 epochs: int = 10, checkpoints: Sequence[int] | Mapping[str, int] | None = None,
                 dtype: str = "float32", momentum: float = 0.0,
                 weight_decay: float = 0.0, lr_schedule: str | Mapping = "constant",
                 autocast: str = "none") -> None:
        from benchbench.regimes.schedules import parse_schedule

        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; "
                             f"got {optimizer!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        self.batch_size = positive_int("batch_size", batch_size, MAX_BATCH)
        self.epochs = positive_int("epochs", epochs, MAX_EPOCHS)
        self.lr = finite("lr", lr)
        self.momentum = finite("momentum", momentum, high=1.0)
        self.weight_decay = finite("weight_decay", weight_decay)
        self.optimizer, self.dtype = optimizer, dtype
        self.checkpoint_epochs = checkpoint_schedule(checkpoints, epochs)
        self.lr_schedule = parse_schedule(lr_schedule, self.epochs)  # None: constant
        if autocast not in AUTOCASTS:
            raise ValueError(f"autocast must be one of {', '.join(AUTOCASTS)}; got "
                             f"{autocast!r}")
        if autocast != "none" and dtype != "float32":
            raise ValueError(f"autocast = {autocast!r} lowers float32 training; this regime's "
                             f"dtype is {dtype!r} (autocast leaves float64 as it is)")
        self.autocast = autocast

    # --- what a subclass implements -------------------------------------------------------

    def craft(self, ctx: TrainContext, model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The inputs to train on for the batch ``(x, y)``; ``x`` itself here. Must not modify
        ``x``; an adversarial regime returns points of the eps-ball within the data bounds
        (``ctx.project``)."""
        return x

    def loss(self, ctx: TrainContext, model, x: torch.Tensor, x_train: torch.Tensor,
             y: torch.Tensor) -> torch.Tensor:
        """One training loss per example, ``Tensor[N]``: the cross-entropy of ``model(x_train)``
        here. The harness averages each member's rows and backpropagates. A subclass that keeps
        this method (plain cross-entropy on ``x_train``) lets the harness use a stacked model's
        own backward pass (``cross_entropy_backward``)."""
        import torch.nn.functional as F

        return F.cross_entropy(model(x_train), y, reduction="none")

    # --- used by the harness --------------------------------------------------------------

    @property
    def monitor_eps(self) -> float | None:
        """The eps at which the harness measures PGD accuracy on a fixed training batch after
        every epoch (catastrophic-overfitting watch), or None (not measured)."""
        return None

    def make_optimizer(self, params):
        """Adam or SGD; fused kernels where torch has them (one element-wise pass per step)."""
        import torch

        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay,
                                    fused=True)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay, fused=True)


def uses_plain_cross_entropy(regime) -> bool:
    """Whether ``regime`` trains on the base class's cross-entropy of ``craft``'s inputs: its
    class does not override ``loss`` (then a stacked model's own backward pass may run)."""
    return type(regime).loss is Regime.loss


def harness_driven(regime_cls) -> bool:
    """Whether the harness runs the training loop (a ``Regime`` subclass) or the regime runs its
    own (``train``)."""
    return isinstance(regime_cls, type) and issubclass(regime_cls, Regime)


def contract_problem(regime_cls) -> str | None:
    """What is wrong with how ``regime_cls`` implements the contract, or None.

    A ``Regime`` subclass must not define ``train`` (the harness would never call it: the
    defect of a subclass that overrode only ``train``) nor the retired ``train_stacked``; a
    self-driven regime needs ``train``."""
    if harness_driven(regime_cls):
        for name in ("train", "train_stacked"):
            if any(name in vars(k) for k in regime_cls.__mro__ if k is not object):
                return (f"defines {name}() but derives from benchbench's Regime, whose harness "
                        f"runs the loop and calls craft() and loss(); implement those, or do not "
                        f"derive from Regime to run your own loop in train()")
        return None
    if not callable(getattr(regime_cls, "train", None)):
        return ("has neither Regime's craft()/loss() (derive from benchbench.regimes.Regime) "
                "nor its own train(*, model, x, y, seed)")
    return None
