"""Certified training: IBP (Gowal et al. 2018) and CROWN-IBP (Zhang et al. 2020), harness-driven.

Both train on ``kappa * CE(f(x), y) + (1 - kappa) * CE(-m(x), y)``, where ``m_j(x)`` is a lower
bound of ``f_y(x') - f_j(x')`` over every ``x'`` of the L-inf ball of radius ``eps_t`` within
the data bounds (``m_y = 0``): ``-m`` are the worst-case logits, the margin specification's
bound fed to the cross-entropy as the references do. ``ibp`` bounds the margins by interval
arithmetic with the specification folded into the last linear layer; ``crown_ibp`` by
``beta * CROWN-IBP + (1 - beta) * IBP``. The bounds are ``benchbench.regimes.certified_bounds``:
``benchbench.verify``'s network and formulas, differentiable and in the run's dtype, so the
bound trained on is the bound ``benchbench.verify(method="ibp")`` certifies with (to rounding).

The schedules, linear in the training step ``t`` (``(epoch - 1) * batches + batch``, from 0):
nothing moves for ``warmup_epochs``, then over ``ramp_epochs`` the rate
``r = (t - warmup) / ramp`` goes from 0 to 1 and ``eps_t = r * eps``,
``kappa_t = kappa_start + r * (kappa_end - kappa_start)``, ``beta_t`` likewise; afterwards
``r = 1``. While ``eps_t`` is 0 the loss is the clean cross-entropy (the bound at eps 0 is the
margin itself, so the formula gives the same value; CROWN-IBP's ``train.py`` likewise trains
"natural" while eps is 0). Warmup and ramp are in epochs (fractions allowed), so a schedule
keeps its shape when a suite trains shorter or longer.

Records (split ``fit``, per epoch and seed): ``loss`` and ``verified_accuracy``, the share of
training rows whose margins' lower bounds at ``eps_t`` are all positive (Gowal et al.'s
``verified_accuracy``, CROWN-IBP's ``1 - robust_err``).

Stackable: a ``StackedMLP`` is bounded member by member (``MemberLinear``), and nothing is
random, so stacked seeds train as alone (``benchbench.testing_regimes``, 1e-9 in float64) and
a resumed run continues bit for bit. Models: the layers ``certified_bounds.TRAIN_LAYERS`` names
(no BatchNorm, no dropout), in an ``nn.Sequential`` or a model whose ``layers()`` returns them;
a model whose layers do not compute its forward (say one normalising inside ``forward``) is
refused at the first batch of an epoch (every epoch's first batch is checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from benchbench.regimes.base import Regime, finite

if TYPE_CHECKING:  # torch only when training: registering regimes must stay cheap
    import torch

    from benchbench.regimes.context import TrainContext


def linear_rate(ctx: TrainContext, warmup: float, ramp: float) -> float:
    """The schedules' rate at the batch being trained: 0 until ``warmup`` epochs are done, then
    linear to 1 over ``ramp`` epochs (Gowal et al.'s ``linear_schedule``, CROWN-IBP's
    ``EpsilonScheduler.linear_schedule``, in training steps)."""
    step = (ctx.epoch - 1) * ctx.batches + ctx.batch
    start = warmup * ctx.batches
    if step < start:
        return 0.0
    if ramp == 0:
        return 1.0
    return min(1.0, (step - start) / (ramp * ctx.batches))


class _Certified:
    """The keys, schedule and loss both certified regimes share (a mixin holding no loop)."""

    name: ClassVar[str] = ""
    #: defaults of warmup_epochs and ramp_epochs as fractions of ``epochs`` (see each class)
    warmup_share: ClassVar[float] = 0.0
    ramp_share: ClassVar[float] = 0.0

    def _schedule(self, eps, warmup_epochs, ramp_epochs, kappa_start, kappa_end) -> None:
        self.eps = finite("eps", eps, low=0.0, high=1e3, low_open=True)
        self.warmup_epochs = (self.warmup_share * self.epochs if warmup_epochs is None
                              else finite("warmup_epochs", warmup_epochs, high=self.epochs))
        self.ramp_epochs = (self.ramp_share * self.epochs if ramp_epochs is None
                            else finite("ramp_epochs", ramp_epochs, high=self.epochs))
        if self.warmup_epochs + self.ramp_epochs > self.epochs:
            raise ValueError(f"warmup_epochs + ramp_epochs must be at most epochs = "
                             f"{self.epochs} (eps must reach its target); got "
                             f"{self.warmup_epochs:g} + {self.ramp_epochs:g}")
        self.kappa_start = finite("kappa_start", kappa_start, high=1.0)
        self.kappa_end = finite("kappa_end", kappa_end, high=1.0)

    def rate(self, ctx: TrainContext) -> float:
        return linear_rate(ctx, self.warmup_epochs, self.ramp_epochs)

    @staticmethod
    def ramped(start: float, end: float, rate: float) -> float:
        return start + rate * (end - start)

    def margins(self, net, dom, y, rate: float) -> torch.Tensor:
        """Lower bounds ``[B, classes]`` of the margins (0 at the label)."""
        raise NotImplementedError

    def loss(self, ctx, model, x, x_train, y):
        import torch
        import torch.nn.functional as F

        from benchbench.regimes.certified_bounds import box, training_network

        rate = self.rate(ctx)
        eps = self.eps * rate
        logits = model(x)
        natural = F.cross_entropy(logits, y, reduction="none")
        label = F.one_hot(y, logits.shape[1]).bool()
        net = None
        if ctx.batch == 0:  # every epoch's first batch: the layers bounded are the model's
            net = training_network(model, x.shape[1:], dtype=x.dtype, device=x.device,
                                   name=self.name)
            _check_decomposition(net, model, x, logits, self.name)
        if eps == 0:
            losses = natural
            with torch.no_grad():
                margins = logits.gather(1, y.unsqueeze(1)) - logits
        else:
            net = net or training_network(model, x.shape[1:], dtype=x.dtype, device=x.device,
                                          name=self.name)
            lo, hi = ctx.limits(x, eps)
            margins = self.margins(net, box(x, lo, hi, eps), y, rate)
            robust = F.cross_entropy(-margins, y, reduction="none")
            kappa = self.ramped(self.kappa_start, self.kappa_end, rate)
            losses = kappa * natural + (1.0 - kappa) * robust
        ctx.record("loss", losses)
        ctx.record("verified_accuracy", (margins.detach() > 0).logical_or_(label).all(1))
        return losses


def _check_decomposition(net, model, x, logits, name: str) -> None:
    """Refuse a model whose layers, as bounded, do not compute its own logits."""
    import torch

    from benchbench.errors import VerifierError

    with torch.no_grad():
        ours = net.forward(x)
        scale = max(1.0, float(logits.abs().max()))
        gap = float((ours - logits).abs().max())
    if not gap <= torch.finfo(x.dtype).eps ** 0.5 * scale:
        raise VerifierError(f"{name}: {type(model).__name__}'s layers do not compute its "
                            f"forward (logits differ by {gap:.3g}); certified training bounds "
                            "an nn.Sequential, or a model whose layers() returns what its "
                            "forward computes, in order")


class IBPTraining(_Certified, Regime):
    """Interval bound propagation training (Gowal, Dvijotham, Stanforth, Bunel, Qin, Uesato,
    Arandjelovic, Mann and Kohli 2018, "On the effectiveness of interval bound propagation for
    training verifiably robust models", arXiv:1810.12715; deepmind/interval-bound-propagation).

    ``kappa_t * CE(f(x), y) + (1 - kappa_t) * CE(-m(x), y)`` with ``m`` the IBP lower bounds of
    the margins at ``eps_t``, the specification folded into the last linear layer (their
    ``ClassificationSpecification`` with ``collapse``; their loss appends a 0 logit for the
    label to the 9 bounds, ours keeps the label's 0 in place: the same cross-entropy).

    Keys and defaults (their ``examples/train.py`` flags, MNIST): ``eps`` (0.1, benchbench's
    threat model; they train at 1.1 times the evaluated eps: ``epsilon_train`` 0.33 for 0.3),
    ``kappa_start`` (1.0: ``nominal_xent_init``) and ``kappa_end`` (0.5:
    ``nominal_xent_final``; the verified weight ``1 - kappa`` is their ``verified_xent``, 0 to
    0.5), ``warmup_epochs`` (``epochs / 30``: their 2,000 ``warmup_steps`` of 60,000 training
    steps) and ``ramp_epochs`` (``epochs / 6``: their 10,000 ``rampup_steps``). Where we differ:
    their nominal weight is 1 during warmup whatever ``kappa_start`` (we use ``kappa_start``;
    at eps 0 both give the clean cross-entropy), and losses are one value per example averaged
    by the harness, where they average each term (the same loss up to float rounding).
    """

    name = "ibp"
    warmup_share = 2_000 / 60_000
    ramp_share = 10_000 / 60_000

    def __init__(self, *, eps: float = 0.1, warmup_epochs: float | None = None,
                 ramp_epochs: float | None = None, kappa_start: float = 1.0,
                 kappa_end: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self._schedule(eps, warmup_epochs, ramp_epochs, kappa_start, kappa_end)

    def margins(self, net, dom, y, rate):
        from benchbench.regimes.certified_bounds import ibp_margins, interval_layers

        return ibp_margins(net, dom, y, interval_layers(net, dom))


class CROWNIBPTraining(_Certified, Regime):
    """CROWN-IBP training (Zhang, Chen, Xiao, Gowal, Stanforth, Li, Boning and Hsieh 2020,
    "Towards stable and efficient training of verifiably robust neural networks",
    arXiv:1906.06316; huanzhang12/CROWN-IBP).

    The margins' lower bound is ``beta_t * CROWN-IBP + (1 - beta_t) * IBP``: CROWN's backward
    relaxation of the margins from interval pre-activation bounds (their ``backward_range``),
    mixed with the elided IBP bound (their ``interval_range``); as their ``train.py``, IBP
    alone when ``beta_t < 1e-5``. The loss is then IBP training's.

    Keys and defaults (their ``train.py`` ``robust_natural`` method and ``defaults.json``):
    ``eps`` (0.1), ``beta_start`` (1.0) and ``beta_end`` (0.0: ``final-beta``; they tie beta
    to eps, ``beta = 1 - (eps_t / eps)(1 - final_beta)``, our rate), ``kappa_start`` (1.0) and
    ``kappa_end`` (0.5: ``final-kappa``, the same tie), ``warmup_epochs`` (``0.03 epochs``) and
    ``ramp_epochs`` (``0.17 epochs``): their ``config/mnist_dm-large_0.2.json``,
    ``schedule_start`` 3 and ``schedule_length`` 18 of 100 epochs (eps reaches its target
    ``schedule_length - 1`` epochs after the start). Where we differ: one loss per example,
    averaged by the harness (the same loss up to float rounding).
    """

    name = "crown_ibp"
    warmup_share = 3 / 100
    ramp_share = 17 / 100

    def __init__(self, *, eps: float = 0.1, warmup_epochs: float | None = None,
                 ramp_epochs: float | None = None, kappa_start: float = 1.0,
                 kappa_end: float = 0.5, beta_start: float = 1.0, beta_end: float = 0.0,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self._schedule(eps, warmup_epochs, ramp_epochs, kappa_start, kappa_end)
        self.beta_start = finite("beta_start", beta_start, high=1.0)
        self.beta_end = finite("beta_end", beta_end, high=1.0)

    def margins(self, net, dom, y, rate):
        from benchbench.regimes.certified_bounds import (
            crown_ibp_margins,
            ibp_margins,
            interval_layers,
        )

        layers = interval_layers(net, dom)
        ibp = ibp_margins(net, dom, y, layers)
        beta = self.ramped(self.beta_start, self.beta_end, rate)
        if beta < 1e-5:
            return ibp
        return beta * crown_ibp_margins(net, dom, y, layers) + (1.0 - beta) * ibp
