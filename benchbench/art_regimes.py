"""ART's adversarial trainers as benchbench regimes: ``art.madry_pgd``, ``art.trades``,
``art.fbf`` and ``art.awp`` (``benchbench[art]``).

They are self-driven regimes (``benchbench.hookspecs``): ART's trainers own their loop, so they
do not derive from ``Regime``, train alone (never stacked) and start over when a run is resumed.
``train`` wraps the harness's model in ART's ``PyTorchClassifier`` (the same module object:
training happens in place), runs one epoch of ART's own training at a time and yields after
each, so the harness checkpoints and evaluates at any ``checkpoints``. Running epoch by epoch
equals ART's single ``fit(nb_epochs=epochs)`` bit for bit (``tests/test_art_regimes.py``):
across epochs ART's ``fit`` carries the optimiser (kept in the classifier), numpy's RNG (kept),
its shuffled index array (handed on, ``EpochOrder``) and, for AWP, the epoch count its warm-up
reads (counted here); FBF's cyclic learning rate spans all epochs of one ``fit``, so ``FBF``
runs ART's loop itself, one epoch at a time, around ART's per-batch step.

Randomness: ART draws shuffles and random starts from numpy's global RNG, Madry's batches from
torch's. ``train`` seeds both from ``seed`` and keeps them as streams of its own (swapped in
for ART's work, out at every yield), so what runs between epochs changes nothing. Deterministic
only as far as ART is (on the CPU it is, bit for bit).

Suite keys: ART's own constructor arguments (read from ART's signatures, so a key ART drops or
renames is refused), the PGD keys of the attack that crafts the training inputs (``eps``,
``eps_step``, ``max_iter``, ``num_random_init`` of ART's ``ProjectedGradientDescent``, L-inf),
the fit's ``batch_size``, and benchbench's ``epochs``, ``checkpoints``, ``optimizer`` (adam,
sgd), ``lr``, ``momentum``, ``weight_decay`` and ``dtype`` (float32 only: ART computes in
float32). Not exposed: ``nb_epochs`` (``epochs``), the estimator, the attack object, and FBF's
``use_amp`` (NVIDIA apex). Defaults are ART's except the threat model, set for data in [0, 1]
(ART's are CIFAR-10 pixels in [0, 255]): ``eps`` 0.1, ``max_iter`` 10, ``eps_step`` 2.5 eps /
max_iter and ``batch_size`` 100, as benchbench's ``pgd_at``; and the optimiser, Adam at 1e-3 as
benchbench's regimes (FBF: ART's SGD schedule, see ``FBF``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterator
from typing import ClassVar

from benchbench.art_attacks import art_import, check_known
from benchbench.art_epochs import TRAINERS, EpochOrder, Streams, quiet_bars
from benchbench.regimes.base import (
    MAX_BATCH,
    MAX_EPOCHS,
    OPTIMIZERS,
    checkpoint_schedule,
    finite,
    positive_int,
)

FIXED = {"self", "classifier", "proxy_classifier", "attack", "nb_epochs", "use_amp"}
PGD_KEYS = ("eps", "eps_step", "max_iter", "num_random_init")  # of ProjectedGradientDescent
OWN = ("epochs", "checkpoints", "optimizer", "lr", "momentum", "weight_decay", "dtype")
MAX_ITER = 10_000


def _count(key: str, value, limit: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise ValueError(f"{key} must be an integer from 0 to {limit:,}; got {value!r}")
    return value


CHECKS: dict[str, Callable] = {  # key -> validator(key, value) returning the value to use
    "eps": lambda k, v: finite(k, v, low_open=True, high=1e3),
    "eps_step": lambda k, v: v if v is None else finite(k, v, low_open=True, high=1e3),
    "max_iter": lambda k, v: positive_int(k, v, MAX_ITER),
    "num_random_init": lambda k, v: _count(k, v, 1_000),
    "batch_size": lambda k, v: positive_int(k, v, MAX_BATCH),
    "beta": lambda k, v: finite(k, v, high=1e6),
    "gamma": lambda k, v: finite(k, v, high=1e3),
    "warmup": lambda k, v: _count(k, v, MAX_EPOCHS),
    "proxy_lr": lambda k, v: finite(k, v, low_open=True, high=1e3),
    "lr": lambda k, v: finite(k, v, low_open=True, high=1e3),
    "momentum": lambda k, v: finite(k, v, high=1.0),
    "weight_decay": lambda k, v: finite(k, v, high=1e3),
    "epochs": lambda k, v: positive_int(k, v, MAX_EPOCHS),
}


class ARTRegime:
    """Base of the adapters: keys, checks, the classifier and the per-epoch drive."""

    art_name: ClassVar[str] = ""  # the trainer class in art.defences.trainer
    summary: ClassVar[str] = ""
    takes_attack: ClassVar[bool] = True  # ART's PGD crafts the training inputs (PGD_KEYS)
    extra: ClassVar[tuple[str, ...]] = ()  # keys of this adapter beyond ART's and OWN
    defaults: ClassVar[dict] = {"eps": 0.1, "eps_step": None, "max_iter": 10,
                                "num_random_init": 1, "batch_size": 100, "optimizer": "adam",
                                "lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0,
                                "epochs": 10, "checkpoints": None, "dtype": "float32"}
    stackable: ClassVar[bool] = False  # ART's loop trains one model

    @classmethod
    def trainer_class(cls):
        return getattr(art_import(TRAINERS, "regime"), cls.art_name)

    @classmethod
    def key_source(cls) -> list:
        """Where ART documents the keys (``benchbench plugins show``): the trainer's
        constructor, then PGD's and the trainer's ``fit``."""
        trainer = cls.trainer_class()
        evasion = art_import("art.attacks.evasion", "regime")
        return [trainer.__init__, evasion.ProjectedGradientDescent.__init__, trainer.fit]

    @classmethod
    def suite_params(cls) -> list[str]:
        """ART's constructor arguments (less what benchbench decides), the attack's PGD keys,
        the fit's batch size, then benchbench's own keys."""
        trainer = cls.trainer_class()
        names = [p for p in inspect.signature(trainer.__init__).parameters if p not in FIXED]
        if cls.takes_attack:
            evasion = art_import("art.attacks.evasion", "regime")
            pgd = inspect.signature(evasion.ProjectedGradientDescent.__init__).parameters
            names += [k for k in PGD_KEYS if k in pgd and k not in names]
        if "batch_size" in inspect.signature(trainer.fit).parameters and \
                "batch_size" not in names:
            names.append("batch_size")
        return names + [k for k in (*cls.extra, *OWN) if k not in names]

    def __init__(self, **params) -> None:
        allowed = check_known(self.art_name, params, self.suite_params())
        merged = {k: v for k, v in {**self.defaults, **params}.items() if k in allowed}
        for key, value in merged.items():
            if key in CHECKS:
                merged[key] = CHECKS[key](key, value)
        if merged["optimizer"] not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; "
                             f"got {merged['optimizer']!r}")
        if merged["dtype"] != "float32":
            raise ValueError(f"dtype must be float32 (ART's trainers compute in float32); "
                             f"got {merged['dtype']!r}")
        self.epochs = merged["epochs"]
        self.checkpoint_epochs = checkpoint_schedule(merged.pop("checkpoints"), self.epochs)
        if merged.get("eps_step", 0) is None:  # benchbench's pgd_at default
            merged["eps_step"] = 2.5 * merged["eps"] / merged["max_iter"]
        self.dtype = merged["dtype"]
        self.params = merged

    # --- what an adapter implements -------------------------------------------------------

    def start(self, clf, model, x, y) -> Callable[[int], None]:
        """Build ART's trainer around ``clf``; return ``run(epoch)``, one epoch of training."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------

    def art_kwargs(self) -> dict:
        """The suite's values for ART's constructor, by its own signature."""
        sig = inspect.signature(self.trainer_class().__init__).parameters
        return {k: v for k, v in self.params.items() if k in sig and k not in FIXED}

    def pgd(self, clf):
        """ART's L-inf PGD on ``clf`` with the suite's keys; one call per training batch."""
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescent

        p = self.params
        return ProjectedGradientDescent(clf, norm=np.inf, eps=p["eps"], eps_step=p["eps_step"],
                                        max_iter=p["max_iter"],
                                        num_random_init=p["num_random_init"],
                                        batch_size=p["batch_size"], verbose=False)

    def classifier(self, model, *, params, lr: float, bounds, device: str, shape, classes):
        """ART's ``PyTorchClassifier`` around ``model`` itself (trained in place)."""
        import torch
        from art.estimators.classification import PyTorchClassifier

        p = self.params
        if p["optimizer"] == "adam":
            opt = torch.optim.Adam(params, lr=lr, weight_decay=p["weight_decay"])
        else:
            opt = torch.optim.SGD(params, lr=lr, momentum=p["momentum"],
                                  weight_decay=p["weight_decay"])
        return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), optimizer=opt,
                                 input_shape=tuple(shape), nb_classes=classes,
                                 clip_values=tuple(float(b) for b in bounds),
                                 device_type="gpu" if str(device).startswith("cuda") else "cpu")

    def train(self, *, model, x, y, seed: int, context=None) -> Iterator[int]:
        """Train ``model`` in place with ART's trainer, yielding after every epoch.

        ``context`` (the harness's ``TrainContext``) gives the data bounds (ART's
        ``clip_values``) and the device; without one (called outside the harness) the data's
        own range and ``x``'s device are used. numpy's and torch's global RNGs are seeded from
        ``seed`` and kept as this run's own streams; deterministic only as far as ART is."""
        import numpy as np
        import torch

        if context is None:
            from types import SimpleNamespace

            context = SimpleNamespace(bounds=(x.min().item(), x.max().item()),
                                      device=x.device.type)
        with torch.no_grad():
            classes = int(model(x[:1]).shape[1])
        xn = x.detach().cpu().numpy().astype(np.float32, copy=True)  # ART never sees x itself
        yn = np.eye(classes, dtype=np.float32)[y.detach().cpu().numpy()]
        streams = Streams(seed, str(context.device))
        was_training = model.training
        with streams.active():
            clf = self.classifier(model, params=model.parameters(), lr=self.params["lr"],
                                  bounds=context.bounds, device=context.device,
                                  shape=x.shape[1:], classes=classes)
            run = self.start(clf, model, xn, yn)
        for epoch in range(1, self.epochs + 1):
            with streams.active(), quiet_bars():
                run(epoch)
            model.train(was_training)
            yield epoch


class MadryPGD(ARTRegime):
    """ART's ``AdversarialTrainerMadryPGD`` (Madry et al. 2018, arXiv:1706.06083): every batch
    replaced by ART's PGD points (random start), trained with ART's ``AdversarialTrainer``
    (ratio 1.0, fixed by ART). Keys: ``eps``, ``eps_step``, ``max_iter``,
    ``num_random_init``, ``batch_size``."""

    art_name = "AdversarialTrainerMadryPGD"
    summary = "ART's AdversarialTrainerMadryPGD: PGD adversarial training (Madry et al. 2018)."
    takes_attack = False  # its constructor takes the PGD keys itself

    def start(self, clf, model, x, y):
        trainer = self.trainer_class()(clf, nb_epochs=self.epochs, **self.art_kwargs())
        trainer.attack.set_params(batch_size=self.params["batch_size"])  # one call per batch
        order = EpochOrder(len(x))
        return lambda epoch: order.epoch(lambda xs, ys: trainer.fit(xs, ys, nb_epochs=1), x, y)


class TRADES(ARTRegime):
    """ART's ``AdversarialTrainerTRADESPyTorch`` (Zhang et al. 2019, arXiv:1901.08573): clean
    cross-entropy + ``beta`` x KL(f(x) || f(x_adv)). ART crafts ``x_adv`` with the attack it is
    given, here its PGD on the cross-entropy with the labels (the paper maximises the KL).
    Keys: ``beta`` (ART's 6.0, the paper's), the PGD keys, ``batch_size``."""

    art_name = "AdversarialTrainerTRADESPyTorch"
    summary = "ART's AdversarialTrainerTRADESPyTorch: TRADES (Zhang et al. 2019)."
    defaults = {**ARTRegime.defaults, "beta": 6.0}

    def start(self, clf, model, x, y):
        trainer, order = self.trainer_class()(clf, self.pgd(clf), **self.art_kwargs()), \
            EpochOrder(len(x))
        return lambda epoch: order.epoch(lambda xs, ys: trainer.fit(
            xs, ys, batch_size=self.params["batch_size"], nb_epochs=1), x, y)


class FBF(ARTRegime):
    """ART's ``AdversarialTrainerFBFPyTorch`` ("Fast is better than free", Wong, Rice and Kolter
    2020, arXiv:2001.03994): one FGSM step of 1.25 eps from a uniform start, gradient norm
    clipped at 0.5, a cyclic learning rate rising linearly from 0 to ``lr`` over the first 2/5
    of all epochs and back to 0 at the last. ART's ``fit`` computes that schedule over the
    epochs of one call, so this adapter runs ART's loop itself, one epoch at a time (the same
    shuffles, the same schedule, ART's per-batch step): bit for bit ART's ``fit``. Keys: ``eps``,
    ``batch_size``; ``lr`` is the schedule's peak (0.21, hard-coded in ART's ``fit``) for SGD
    with ``momentum`` 0.9 and ``weight_decay`` 5e-4 (Wong et al.'s CIFAR-10 script)."""

    art_name = "AdversarialTrainerFBFPyTorch"
    summary = "ART's AdversarialTrainerFBFPyTorch: FGSM-AT, 'Fast is better than free' (2020)."
    takes_attack = False
    defaults = {**ARTRegime.defaults, "optimizer": "sgd", "lr": 0.21, "momentum": 0.9,
                "weight_decay": 5e-4}

    def start(self, clf, model, x, y):
        import numpy as np

        trainer = self.trainer_class()(clf, **self.art_kwargs())
        n, size, epochs, peak = len(x), self.params["batch_size"], self.epochs, self.params["lr"]
        batches, order = math.ceil(n / size), np.arange(n)

        def run(epoch: int) -> None:  # ART's fit (adversarial_trainer_fbf_pytorch.py), 1 epoch
            np.random.shuffle(order)
            for b in range(batches):
                lr = np.interp([epoch - 1 + (b + 1) / batches], [0, epochs * 2 // 5, epochs],
                               [0, peak, 0])[0]
                rows = order[b * size:min((b + 1) * size, n)]
                trainer._batch_process(x[rows].copy(), y[rows], lr)  # noqa: SLF001 - ART's step

        return run


class AWP(ARTRegime):
    """ART's ``AdversarialTrainerAWPPyTorch`` (adversarial weight perturbation, Wu, Xia and Wang
    2020, arXiv:2004.05884): PGD or TRADES training (``mode``) on weights perturbed by one
    ascent step of a proxy model, scaled to ``gamma`` x each layer's weight norm, from epoch
    ``warmup`` on. The proxy is a copy of the model with its own SGD at ``proxy_lr`` (0.01, the
    AWP reference code's). Keys: ``mode`` (PGD, TRADES), ``gamma`` (0.01), ``beta`` (6.0, for
    TRADES), ``warmup`` (0), ``proxy_lr``, the PGD keys, ``batch_size``."""

    art_name = "AdversarialTrainerAWPPyTorch"
    summary = ("ART's AdversarialTrainerAWPPyTorch: adversarial weight perturbation "
               "(Wu et al. 2020).")
    extra = ("proxy_lr",)
    defaults = {**ARTRegime.defaults, "mode": "PGD", "gamma": 0.01, "beta": 6.0, "warmup": 0,
                "proxy_lr": 0.01}
    MODES = ("PGD", "TRADES")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        if self.params.get("mode") not in self.MODES:
            raise ValueError(f"mode must be one of {', '.join(self.MODES)}; "
                             f"got {self.params.get('mode')!r}")

    def start(self, clf, model, x, y):
        import copy

        proxy = copy.deepcopy(model)
        proxy_clf = self.classifier(proxy, params=proxy.parameters(),
                                    lr=self.params["proxy_lr"], bounds=clf.clip_values,
                                    device="cuda" if clf.device.type == "cuda" else "cpu",
                                    shape=clf.input_shape, classes=clf.nb_classes)
        attack, kwargs = self.pgd(clf), self.art_kwargs()
        warmup, order = kwargs.pop("warmup"), EpochOrder(len(x))

        def run(epoch: int) -> None:  # ART applies AWP from its own epoch index >= warmup
            trainer = self.trainer_class()(clf, proxy_clf, attack,
                                           warmup=max(0, warmup - (epoch - 1)), **kwargs)
            order.epoch(lambda xs, ys: trainer.fit(xs, ys, batch_size=self.params["batch_size"],
                                                   nb_epochs=1), x, y)

        return run


ADAPTERS: dict[str, type[ARTRegime]] = {"art.madry_pgd": MadryPGD, "art.trades": TRADES,
                                        "art.fbf": FBF, "art.awp": AWP}
