"""Adversarial training: FGSM-AT, PGD-AT, TRADES and MART, torch-native, stackable, resumable.

Each regime crafts its training inputs inside the L-inf ball of radius ``eps`` (projected by
the same code that projects every attack in evaluation) and says what loss it trains on; the
harness does the rest (``benchbench.regimes.base``). Random starts come from each member's own
generator (``TrainContext.uniform``/``normal``), so the members of a stack train exactly as
they would alone.

Keys every adversarial regime accepts, besides ``Regime``'s:

* ``eps`` (0.1): the L-inf radius trained against;
* ``eps_ramp`` (0): grow eps linearly from 0 over this many epochs, batch by batch (common on
  MNIST, where a strong attack from the first step can stall training); 0 = no ramp;
* ``attack``: craft with a registered attack instead of the regime's own inner maximisation,
  e.g. ``{ name = "pgd", steps = 10 }`` (any built-in or plugin attack; see
  ``TrainContext.perturb``);
* ``monitor`` (true): after every epoch, PGD-10 accuracy at ``eps`` on a fixed batch of
  training images (catastrophic-overfitting watch, stored as split ``fit``);
* ``early_stop`` (false): also evaluate each seed's best epoch by that measure (Wong et al.);
* ``clamp_start``: whether the random start is clamped to the data range before the first
  gradient (default: as the regime's reference; see each class);
* ``craft_mode`` (``"eval"`` or ``"train"``): the mode the model is in while the regime's own
  inner maximisation crafts its training inputs (default: the reference's; the training mode
  is restored afterwards). BatchNorm then normalises crafted batches with their own statistics
  and updates its running statistics, and dropout draws masks, as in the reference. A named
  ``attack`` always crafts in eval mode (the evaluation threat model, ``TrainContext.perturb``).

Defaults come from the reference implementations, scaled down for an MLP at eps 0.1 where
noted in each class. Where a regime follows its reference's operations exactly, or differs
from them, its docstring says which; ``tests/test_reference_fidelity.py`` runs each reference
formula, copied into the test with its source named, beside ours on fixed inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from benchbench.regimes.base import Regime, finite, positive_int
from benchbench.regimes.inner_max import crafting, kl_per_example, mode_dependent, pgd_linf

if TYPE_CHECKING:  # torch only when training: registering regimes must stay cheap
    import torch

    from benchbench.regimes.context import TrainContext

MAX_STEPS = 10_000
CRAFT_MODES = ("eval", "train")


def check_attack_table(attack) -> dict | None:
    if attack is None:
        return None
    if not isinstance(attack, Mapping) or not isinstance(attack.get("name"), str):
        raise ValueError("attack must be a table naming a registered attack, e.g. "
                         f"{{ name = \"pgd\", steps = 10 }}; got {attack!r}")
    if "eps" in attack:
        raise ValueError("attack.eps is the regime's eps: set eps (and eps_ramp) on the regime")
    return dict(attack)


class _Threat:
    """The keys and helpers every adversarial regime shares (a mixin holding no loop)."""

    def _threat(self, eps, eps_ramp, attack, monitor, early_stop, clamp_start=True,
                craft_mode="eval") -> None:
        self.eps = finite("eps", eps, low=0.0, high=1e3, low_open=True)
        self.eps_ramp = 0 if eps_ramp == 0 else positive_int("eps_ramp", eps_ramp,
                                                            self.epochs)
        self.attack = check_attack_table(attack)
        for key, value in (("monitor", monitor), ("early_stop", early_stop),
                           ("clamp_start", clamp_start)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false; got {value!r}")
        if early_stop and not monitor:
            raise ValueError("early_stop needs monitor = true: it keeps the epoch with the best "
                             "monitored PGD accuracy")
        if craft_mode not in CRAFT_MODES:
            raise ValueError(f"craft_mode must be one of {', '.join(CRAFT_MODES)} (the model's "
                             f"mode while crafting training inputs); got {craft_mode!r}")
        self.monitor, self.early_stop = monitor, early_stop
        self.clamp_start, self.craft_mode = clamp_start, craft_mode
        self._built = None

    def _iterations(self, steps, step_size) -> None:
        """``steps`` of the inner maximisation and their size (None: 2.5 eps / steps)."""
        self.steps = positive_int("steps", steps, MAX_STEPS)
        self.step_size = None if step_size is None else finite(
            "step_size", step_size, low_open=True, high=1e3)

    def step_for(self, eps: float) -> float:
        return self.step_size if self.step_size is not None else 2.5 * eps / self.steps

    @property
    def monitor_eps(self) -> float | None:
        return self.eps if self.monitor else None

    def current_eps(self, ctx: TrainContext) -> float:
        """``eps``, ramped linearly over the first ``eps_ramp`` epochs batch by batch."""
        if not self.eps_ramp:
            return self.eps
        done = (ctx.epoch - 1) + (ctx.batch + 1) / ctx.batches
        return self.eps * min(1.0, done / self.eps_ramp)

    def named_attack(self, ctx: TrainContext, model, x, y, eps: float) -> torch.Tensor:
        if self._built is None:
            params = {k: v for k, v in self.attack.items() if k not in ("name", "label")}
            self._built = ctx.attack(self.attack["name"], **params)
            if self.craft_mode == "train":
                ctx.log(f"{type(self).__name__}: attack {self.attack['name']!r} crafts in eval "
                        "mode (the evaluation threat model); craft_mode = \"train\" applies to "
                        "the regime's own crafting only")
        return ctx.perturb(self._built, model, x, y, eps)

    def crafting_attack(self) -> tuple[str, dict] | None:
        """The registered attack crafting uses, ``(name, params)``, for validation."""
        if self.attack is None:
            return None
        return self.attack["name"], {k: v for k, v in self.attack.items()
                                     if k not in ("name", "label")}


def _adversarial_loss(ctx: TrainContext, model, x_train, y) -> torch.Tensor:
    import torch.nn.functional as F

    logits = model(x_train)
    losses = F.cross_entropy(logits, y, reduction="none")
    ctx.record("loss", losses)
    ctx.record("adv_accuracy", logits.argmax(1) == y)
    return losses


class FGSMAT(_Threat, Regime):
    """FGSM adversarial training with a random start (Wong, Rice and Kolter 2020, "Fast is better
    than free", arXiv:2001.03994; locuslab/fast_adversarial).

    Per batch: ``delta ~ U(-eps, eps)``, one signed-gradient step of size ``alpha`` from
    ``x + delta``, projected onto the eps-ball and the bounds; train on the cross-entropy there.
    ``alpha`` defaults to 1.25 eps (their MNIST script: eps 0.3, alpha 0.375). Their known
    failure, catastrophic overfitting (PGD accuracy collapsing within an epoch while FGSM
    accuracy stays high), is what ``monitor`` watches.

    As their ``MNIST/train_mnist.py``: the gradient is taken at the unclamped ``x + delta``
    (``clamp_start = false``; their ``CIFAR10/train_fgsm.py`` clamps it first: ``true``) with
    the model in training mode (``craft_mode = "train"``: they never call ``model.eval()``).
    Where we differ: the step is taken on ``x + delta`` rather than on ``delta`` (the same point
    up to one float rounding), and the gradient is of the summed rather than the mean
    cross-entropy (the same signs, exactly so for a batch of a power of two rows).
    """

    revision: ClassVar[int] = 2  # 2: unclamped start and training-mode crafting by default

    def __init__(self, *, eps: float = 0.1, alpha: float | None = None, eps_ramp: int = 0,
                 attack: dict | None = None, monitor: bool = True, early_stop: bool = False,
                 clamp_start: bool = False, craft_mode: str = "train", **kwargs) -> None:
        super().__init__(**kwargs)
        self._threat(eps, eps_ramp, attack, monitor, early_stop, clamp_start, craft_mode)
        self.alpha = None if alpha is None else finite("alpha", alpha, low_open=True, high=1e3)

    def craft(self, ctx, model, x, y):
        eps = self.current_eps(ctx)
        if self.attack is not None:
            return self.named_attack(ctx, model, x, y, eps)
        alpha = 1.25 * eps if self.alpha is None else self.alpha * eps / self.eps
        start = x + ctx.uniform(x, -eps, eps)
        return pgd_linf(ctx, model, x, y, eps=eps, steps=1, step_size=alpha, start=start,
                        clamp_start=self.clamp_start, mode=self.craft_mode)

    def loss(self, ctx, model, x, x_train, y):
        return _adversarial_loss(ctx, model, x_train, y)


class PGDAT(_Threat, Regime):
    """PGD adversarial training (Madry, Makelov, Schmidt, Tsipras and Vladu 2018,
    arXiv:1706.06083): train on the cross-entropy at a PGD point of the eps-ball.

    ``steps`` (10; Madry's mnist_challenge uses 40 at eps 0.3), ``step_size`` (2.5 eps / steps,
    benchbench's ``pgd`` attack default; theirs is 0.01 at eps 0.3), ``random_start`` (true, as
    theirs), ``adv_fraction`` (1.0, theirs: the share of each batch trained adversarially, the
    rest clean), ``clamp_start`` (true: their ``pgd_attack.py`` clips the random start to
    [0, 1] before the first gradient), ``craft_mode`` (``"eval"``: their model has neither
    BatchNorm nor dropout, so their code is silent; eval is TRADES' and MART's choice),
    ``freeze_misclassified`` (false, Madry's; true: Wong et al.'s MNIST PGD training,
    ``MNIST/train_mnist.py``, where a step moves only the examples the model still classifies
    correctly, so an example stays where it was first misclassified; early in training, when
    most examples are misclassified, this trains near the random start). Where we differ from
    that script: it never clears ``delta.grad``, so each of its steps takes the sign of the
    gradients summed over the steps so far; ours takes each step's own gradient, as Madry's
    and their ``CIFAR10/train_pgd.py`` (``delta.grad.zero_()``) do.

    The steps are their ``LinfPGDAttack.perturb``'s operations in the same order (summed
    cross-entropy, ``x += a * sign(g)``, clip to the ball, clip to [0, 1]), computed in the run's
    dtype (their NumPy code adds a float64 start, so it iterates in float64 and TensorFlow
    rounds each point to float32 when it feeds it).
    """

    late_keys: ClassVar[tuple[str, ...]] = (*Regime.late_keys, "freeze_misclassified")

    def __init__(self, *, eps: float = 0.1, steps: int = 10, step_size: float | None = None,
                 random_start: bool = True, adv_fraction: float = 1.0, eps_ramp: int = 0,
                 attack: dict | None = None, monitor: bool = True, early_stop: bool = False,
                 clamp_start: bool = True, craft_mode: str = "eval",
                 freeze_misclassified: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self._threat(eps, eps_ramp, attack, monitor, early_stop, clamp_start, craft_mode)
        self._iterations(steps, step_size)
        for key, value in (("random_start", random_start),
                           ("freeze_misclassified", freeze_misclassified)):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false; got {value!r}")
        if freeze_misclassified and attack is not None:
            raise ValueError("freeze_misclassified applies to pgd_at's own crafting; a named "
                             "attack crafts on its own terms: drop one of them")
        self.random_start, self.freeze_misclassified = random_start, freeze_misclassified
        self.adv_fraction = finite("adv_fraction", adv_fraction, low_open=True, high=1.0)

    def craft(self, ctx, model, x, y):
        eps = self.current_eps(ctx)
        rows = len(x) // ctx.members
        k = max(1, round(self.adv_fraction * rows))
        if k < rows:  # the first k rows of each member's (shuffled) batch
            part = x.view(ctx.members, rows, *x.shape[1:])[:, :k].reshape(-1, *x.shape[1:])
            part_y = y.view(ctx.members, rows)[:, :k].reshape(-1)
            adv = self._craft(ctx, model, part, part_y, eps)
            out = x.clone().view(ctx.members, rows, *x.shape[1:])
            out[:, :k] = adv.view(ctx.members, k, *x.shape[1:])
            return out.view_as(x)
        return self._craft(ctx, model, x, y, eps)

    def _craft(self, ctx, model, x, y, eps):
        if self.attack is not None:
            return self.named_attack(ctx, model, x, y, eps)
        step = self.step_for(eps)
        start = x + ctx.uniform(x, -eps, eps) if self.random_start else x
        return pgd_linf(ctx, model, x, y, eps=eps, steps=self.steps, step_size=step,
                        start=start, clamp_start=self.clamp_start, mode=self.craft_mode,
                        freeze_misclassified=self.freeze_misclassified)

    def loss(self, ctx, model, x, x_train, y):
        return _adversarial_loss(ctx, model, x_train, y)


class TRADES(_Threat, Regime):
    """TRADES (Zhang, Yu, Jiao, Xing, El Ghaoui and Jordan 2019, arXiv:1901.08573):
    ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, ``x_adv`` maximising the KL from a small
    Gaussian start (0.001 standard deviation).

    ``beta`` (1.0, their train_trades_mnist.py), ``steps`` (10; theirs 40 at eps 0.3),
    ``step_size`` (2.5 eps / steps; theirs 0.01 at eps 0.3), ``clamp_start`` (false: their
    ``trades_loss`` takes the first gradient at the unclamped start), ``craft_mode``
    (``"eval"``: they call ``model.eval()`` to craft, ``model.train()`` after).

    As their ``trades.py`` ``trades_loss``: crafting ascends ``nn.KLDivLoss(sum)`` of
    ``log_softmax(f(x_adv))`` against ``softmax(f(x))`` (the target computed once per batch,
    in the crafting mode: theirs recomputes it at every step, the same numbers in eval mode);
    the loss takes three forward passes in their order, ``x``, ``x_adv`` and ``x`` again for
    the KL's target, so BatchNorm's batch statistics, running statistics and dropout's masks
    are theirs. A model without BatchNorm or dropout (``mode_dependent``) skips the third pass,
    whose logits would be the first's bit for bit. Where we differ: the loss is one value per
    example, averaged by the harness, where they take the batch mean of each term (the same
    loss up to float rounding).
    """

    revision: ClassVar[int] = 2  # 2: unclamped start, their KL criterion, their passes

    def __init__(self, *, eps: float = 0.1, beta: float = 1.0, steps: int = 10,
                 step_size: float | None = None, eps_ramp: int = 0, attack: dict | None = None,
                 monitor: bool = True, early_stop: bool = False, clamp_start: bool = False,
                 craft_mode: str = "eval", **kwargs) -> None:
        super().__init__(**kwargs)
        self._threat(eps, eps_ramp, attack, monitor, early_stop, clamp_start, craft_mode)
        self.beta = finite("beta", beta, high=1e6)
        self._iterations(steps, step_size)

    def craft(self, ctx, model, x, y):
        import torch
        import torch.nn.functional as F

        eps = self.current_eps(ctx)
        if self.attack is not None:
            return self.named_attack(ctx, model, x, y, eps)
        with crafting(ctx, model, self.craft_mode), torch.no_grad():
            p_nat = F.softmax(model(x), dim=1)
        step = self.step_for(eps)
        return pgd_linf(ctx, model, x, y, eps=eps, steps=self.steps, step_size=step,
                        start=x + ctx.normal(x, 0.001), clamp_start=self.clamp_start,
                        mode=self.craft_mode,
                        loss=lambda logits: F.kl_div(F.log_softmax(logits, dim=1), p_nat,
                                                     reduction="sum"))

    def loss(self, ctx, model, x, x_train, y):
        import torch.nn.functional as F

        nat = model(x)
        adv = model(x_train)
        target = model(x) if mode_dependent(model) else nat
        natural = F.cross_entropy(nat, y, reduction="none")
        robust = kl_per_example(F.log_softmax(adv, dim=1), F.softmax(target, dim=1))
        losses = natural + self.beta * robust
        ctx.record("loss", losses)
        ctx.record("adv_accuracy", adv.argmax(1) == y)
        return losses


class MART(_Threat, Regime):
    """MART (Wang, Zou, Yi, Bailey, Ma and Gu 2020, "Improving adversarial robustness requires
    revisiting misclassified examples"): a boosted cross-entropy at ``x_adv`` (cross-entropy plus
    ``-log(1.0001 - max_{k != y} p_k(x_adv) + 1e-12)``) plus
    ``beta * KL(f(x) || f(x_adv)) * (1.0000001 - p_y(x))``.

    ``x_adv`` is PGD on the cross-entropy from a 0.001-std Gaussian start; ``beta`` (6.0, their
    default), ``steps`` (10), ``step_size`` (2.5 eps / steps), ``clamp_start`` (false: their
    ``mart_loss`` takes the first gradient at the unclamped start), ``craft_mode`` (``"eval"``:
    they call ``model.eval()`` to craft, ``model.train()`` after).

    As their ``mart.py`` ``mart_loss``: two forward passes, ``x`` then ``x_adv``; the most
    likely wrong class from ``argsort``; ``nn.KLDivLoss`` of ``log(p(x_adv) + 1e-12)`` against
    ``p(x)``. Where we differ: crafting ascends the summed rather than the mean cross-entropy
    (the same signs, exactly so for a batch of a power of two rows; a stack's members stay
    independent), and the loss is one value per example averaged by the harness (the same loss
    up to float rounding).
    """

    revision: ClassVar[int] = 2  # 2: unclamped start, their KL target p, their two passes

    def __init__(self, *, eps: float = 0.1, beta: float = 6.0, steps: int = 10,
                 step_size: float | None = None, eps_ramp: int = 0, attack: dict | None = None,
                 monitor: bool = True, early_stop: bool = False, clamp_start: bool = False,
                 craft_mode: str = "eval", **kwargs) -> None:
        super().__init__(**kwargs)
        self._threat(eps, eps_ramp, attack, monitor, early_stop, clamp_start, craft_mode)
        self.beta = finite("beta", beta, high=1e6)
        self._iterations(steps, step_size)

    def craft(self, ctx, model, x, y):
        eps = self.current_eps(ctx)
        if self.attack is not None:
            return self.named_attack(ctx, model, x, y, eps)
        step = self.step_for(eps)
        return pgd_linf(ctx, model, x, y, eps=eps, steps=self.steps, step_size=step,
                        start=x + ctx.normal(x, 0.001), clamp_start=self.clamp_start,
                        mode=self.craft_mode)

    def loss(self, ctx, model, x, x_train, y):
        import torch
        import torch.nn.functional as F

        nat = model(x)
        adv = model(x_train)
        adv_p = F.softmax(adv, dim=1)
        top = torch.argsort(adv_p, dim=1)[:, -2:]
        others = torch.where(top[:, -1] == y, top[:, -2], top[:, -1])  # likeliest wrong class
        boosted = F.cross_entropy(adv, y, reduction="none") + F.nll_loss(
            torch.log(1.0001 - adv_p + 1e-12), others, reduction="none")
        nat_p = F.softmax(nat, dim=1)
        true_p = nat_p.gather(1, y.unsqueeze(1)).squeeze(1)
        kl = kl_per_example(torch.log(adv_p + 1e-12), nat_p)
        losses = boosted + self.beta * kl * (1.0000001 - true_p)
        ctx.record("loss", losses)
        ctx.record("adv_accuracy", adv.argmax(1) == y)
        return losses
