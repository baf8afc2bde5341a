"""Attacks of the adversarial-robustness-toolbox (ART) as benchbench attacks: ``benchbench[art]``.

Registered through benchbench's own ``benchbench`` entry point (``art``), so ``benchbench
plugins`` lists them whether or not ART is installed; ART itself is imported only when one of
them is built. Suite keys are ART's own constructor arguments (checked against ART's signature),
except what the harness decides: the estimator, ``eps`` (from the suite's eps list, one ART
call per eps), ``targeted`` (always untargeted) and ``verbose``. ``norm`` is ``"linf"`` or
``"l2"``. The true labels are always passed (ART would otherwise attack its own predictions).
Attacks without an eps (Carlini-Wagner, DeepFool, HopSkipJump) run once; the harness projects
their result onto each eps-ball. ``art.autoattack`` builds ART's own default ensemble with
ART's settings (``art/attacks/evasion/auto_attack.py``), at each eps: APGD on the cross-entropy
and APGD on the DLR loss (``eps_step`` AutoAttack's, ART's 0.1; 100 iterations; 5 random
inits; AutoAttack's ``batch_size``), DeepFool (100 iterations, epsilon 1e-3, 10 gradients,
AutoAttack's ``batch_size``) and Square (5,000 iterations, p_init 0.8, 5 restarts, its own
batch of 128); ``verbose`` off. Keys change it: ``attacks``, the members by name (``apgd_ce``,
``apgd_dlr``, ``deepfool``, ``square``; default all four), ``max_iter`` (APGD's and
DeepFool's), ``nb_random_init`` (APGD's), ``square_max_iter``, ``square_nb_restarts``, and
AutoAttack's own ``eps_step``, ``batch_size`` (default: the harness's chunk, all its rows, for
speed; ART's 32) and ``parallel_pool_size``.

ART's adversarial trainers are registered here too, as regimes (``benchbench.art_regimes``),
through the same install check: without ART they are listed with "needs benchbench[art]" and a
suite naming one is refused before anything runs.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Sequence

from benchbench import hookimpl
from benchbench.attacks import NORMS

INSTALL = "needs benchbench[art]: pip install 'benchbench[art]'"
FIXED = {"self", "estimator", "classifier", "eps", "targeted", "verbose", "summary_writer",
         "estimator_orig"}
# name: (ART class, takes eps, default norm, norm can be chosen)
SPECS = {
    "art.fgsm": ("FastGradientMethod", True, "linf", True),
    "art.pgd": ("ProjectedGradientDescent", True, "linf", True),
    "art.cw_l2": ("CarliniL2Method", False, "l2", False),
    "art.cw_linf": ("CarliniLInfMethod", False, "linf", False),
    "art.deepfool": ("DeepFool", False, "l2", False),
    "art.autoattack": ("AutoAttack", True, "linf", True),
    "art.square": ("SquareAttack", True, "linf", True),
    "art.hopskipjump": ("HopSkipJump", False, "l2", True),
}


# the flags' capability (benchbench.attacks.attack_capabilities): iterative within the eps-ball,
# or a single gradient step; the rest (minimal-perturbation, decision-based, random search)
# declare nothing, so no flag compares them
ITERATIVE = {"art.fgsm": False, "art.pgd": True, "art.autoattack": True}
GRADIENT_MEMBERS = ("apgd_ce", "apgd_dlr")  # AutoAttack members that iterate on gradients


def art_missing() -> bool:
    """Whether ART is absent (checked without importing it: registration stays cheap)."""
    return importlib.util.find_spec("art") is None


def art_import(module: str, what: str = "attack"):
    """ART's ``module`` (e.g. ``"art.attacks.evasion"``), or a ValueError saying that this
    ``what`` needs the extra and how to install it (a suite naming it is then refused)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"this {what} {INSTALL}") from None


def art_class(name: str):
    """The ART attack class, or a ValueError with the install command."""
    return getattr(art_import("art.attacks.evasion"), name)


def check_known(art_name: str, params: dict, allowed: list[str]) -> list[str]:
    """``allowed``, or a ValueError naming the keys ART's ``art_name`` does not take."""
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)} for ART's "
                         f"{art_name}; allowed: {', '.join(allowed)}")
    return allowed


class ARTAttack:
    """Base of the generated adapters (one subclass per entry of ``SPECS``)."""

    art_name = ""
    takes_eps = True
    norm = "linf"
    choose_norm = True
    per_example = False  # ART attacks may draw random numbers or couple a batch
    iterative: bool | None = None  # see ITERATIVE; minimal-perturbation ones: undeclared
    library = "ART"  # keys a suite leaves out are ART's defaults (benchbench.attacks.params)
    #: what ``effective_params`` decides instead of ART, as reports print it
    param_rules = {"eps_step": "ε/4", "batch_size": "the harness's chunk (all its rows)"}

    @property
    def bounded(self) -> bool:
        """Minimal-perturbation attacks (no eps) may leave the ball; the harness projects."""
        return self.takes_eps

    @classmethod
    def key_source(cls):
        """ART's constructor: its signature and ``:param:`` lines are the keys' types,
        defaults and documentation (``benchbench plugins show``)."""
        init = art_class(cls.art_name).__init__
        return [init, ensemble_defaults] if cls.art_name == "AutoAttack" else init

    @classmethod
    def suite_params(cls) -> list[str]:
        sig = inspect.signature(art_class(cls.art_name).__init__)
        names = [p for p in sig.parameters if p not in FIXED and p != "norm"]
        if cls.art_name == "AutoAttack":  # members by name (ART takes attack objects)
            names.extend(ENSEMBLE_KEYS)
        return names + (["norm"] if cls.choose_norm else [])

    def __init__(self, **params) -> None:
        check_known(self.art_name, params, self.suite_params())
        members = params.get("attacks")
        if self.art_name == "AutoAttack" and members is not None and (
                not isinstance(members, list) or not set(members) <= set(AUTOATTACK_MEMBERS)):
            raise ValueError(f"attacks must be a list of {', '.join(AUTOATTACK_MEMBERS)} "
                             f"(default: all four, ART's AutoAttack); got {members!r}")
        for key in ENSEMBLE_KEYS if self.art_name == "AutoAttack" else ():
            value = params.get(key, 1)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer; got {value!r}")
        norm = params.pop("norm", self.norm)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        self.norm, self.params = norm, params
        if self.art_name == "AutoAttack" and members is not None:  # iterative if APGD runs
            # [] runs all four (APGD among them); DeepFool and Square alone declare nothing
            # (minimal-perturbation and random-search: no flag compares them, as built-in
            # autoattack without an APGD member)
            self.iterative = True if not members or set(members) & set(GRADIENT_MEMBERS) \
                else None

    def effective_params(self, eps: float) -> dict:
        """What the adapter sets in ART's place when the suite does not (``param_rules``):
        ``eps_step`` (eps / 4, ART's default is an absolute 0.1; AutoAttack keeps ART's);
        AutoAttack's ``batch_size`` (the harness's chunk: ``None``, not a function of eps) and
        ``attacks``."""
        out = {}
        if "eps_step" in self.suite_params() and "eps_step" not in self.params and \
                self.art_name != "AutoAttack":
            out["eps_step"] = eps / 4
        if self.art_name == "AutoAttack":
            out.update({k: v for k, v in (("batch_size", None),
                                          ("attacks", list(AUTOATTACK_MEMBERS)))
                        if k not in self.params})
        return out

    def perturb(self, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0)):
        import numpy as np
        import torch
        from art.estimators.classification import PyTorchClassifier

        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        clf = PyTorchClassifier(model=_cast_inputs(model, x.dtype),
                                loss=torch.nn.CrossEntropyLoss(),
                                input_shape=tuple(x.shape[1:]), nb_classes=classes,
                                clip_values=tuple(bounds),
                                device_type="gpu" if x.is_cuda else "cpu")
        xn = x.detach().cpu().numpy()
        yn = torch.nn.functional.one_hot(y, classes).cpu().numpy().astype(xn.dtype)
        cls, names = art_class(self.art_name), self.suite_params()
        kwargs = dict(self.params)
        if "norm" in names:
            kwargs["norm"] = np.inf if self.norm == "linf" else 2
        if "verbose" in inspect.signature(cls.__init__).parameters:
            kwargs["verbose"] = False
        if self.art_name == "AutoAttack":
            # ART's default batch of 32 costs 10x on a CPU (74 s against 7.2 s for 200 MNIST
            # images, APGD-CE and APGD-DLR at 50 iterations); the harness's chunks are small
            kwargs.setdefault("batch_size", len(x))
            kwargs = _autoattack_members(clf, kwargs, eps)
        if not self.takes_eps:
            adv = cls(clf, **kwargs).generate(xn, y=yn)
            outs = [adv] * len(eps)
        else:
            outs = []
            for e in eps:
                step = {k: v for k, v in self.effective_params(e).items() if k == "eps_step"}
                args = {k: (v(e) if callable(v) else v) for k, v in kwargs.items()}
                outs.append(cls(clf, eps=e, **step, **args).generate(xn, y=yn))
        return torch.from_numpy(np.stack(outs)).to(device=x.device, dtype=x.dtype)


AUTOATTACK_MEMBERS = ("apgd_ce", "apgd_dlr", "deepfool", "square")


#: the member keys of ``art.autoattack`` beyond ART's AutoAttack's own
ENSEMBLE_KEYS = ("max_iter", "nb_random_init", "square_max_iter", "square_nb_restarts")


def ensemble_defaults(max_iter: int = 100, nb_random_init: int = 5, square_max_iter: int = 5000,
                      square_nb_restarts: int = 5) -> None:
    """The settings ART's AutoAttack gives its default ensemble (``auto_attack.py``), as keys
    of ``art.autoattack`` (``benchbench plugins show`` and the report read them here).

    :param max_iter: Iterations of APGD-CE, APGD-DLR and DeepFool (ART's 100 each).
    :param nb_random_init: Random initialisations of each APGD member (ART's 5).
    :param square_max_iter: Iterations of Square (ART's 5,000).
    :param square_nb_restarts: Restarts of Square (ART's 5).
    """


def _autoattack_members(clf, kwargs: dict, eps) -> dict:
    """Turn the suite's member names into ART attacks built per eps (``attacks`` becomes a
    function of eps), each as ART's AutoAttack builds its default ensemble, with the keys of
    ``ENSEMBLE_KEYS`` and AutoAttack's ``eps_step`` and ``batch_size`` in its place."""
    from art.attacks import evasion

    names = kwargs.pop("attacks", None) or list(AUTOATTACK_MEMBERS)
    keys = {name: kwargs.pop(name, p.default)
            for name, p in inspect.signature(ensemble_defaults).parameters.items()}
    norm, batch = kwargs.get("norm"), kwargs.get("batch_size", 32)  # ART's AutoAttack default
    eps_step = kwargs.get("eps_step", 0.1)  # ART's AutoAttack default

    def build(e: float) -> list:
        made = []
        for name in names:
            if name.startswith("apgd"):
                loss = "cross_entropy" if name == "apgd_ce" else "difference_logits_ratio"
                made.append(evasion.AutoProjectedGradientDescent(
                    estimator=clf, norm=norm, eps=e, eps_step=eps_step,
                    max_iter=keys["max_iter"], targeted=False,
                    nb_random_init=keys["nb_random_init"], batch_size=batch, loss_type=loss,
                    verbose=False))
            elif name == "deepfool":
                made.append(evasion.DeepFool(classifier=clf, max_iter=keys["max_iter"],
                                             epsilon=1e-3, nb_grads=10, batch_size=batch,
                                             verbose=False))
            else:
                made.append(evasion.SquareAttack(estimator=clf, norm=norm,
                                                 max_iter=keys["square_max_iter"], eps=e,
                                                 p_init=0.8, nb_restarts=keys["square_nb_restarts"],
                                                 verbose=False))
        return made

    return {**kwargs, "attacks": build}


def _cast_inputs(model, dtype):
    """``model`` behind a cast of its inputs to ``dtype`` (some ART attacks work in float64)."""
    import torch

    class CastTo(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model(x.to(dtype))

    return CastTo()


# raised whenever an adapter measures other numbers for the same keys (benchbench.store.versions
# stores it with each cell, so cells measured before are reported stale, never as new numbers);
# 2: art.autoattack builds ART's own default ensemble (Square 5,000 x 5, APGD eps_step 0.1, ...)
REVISIONS = {"art.autoattack": 2}


def adapters() -> dict[str, type]:
    return {name: type(f"ART{art}", (ARTAttack,), {
        "art_name": art, "takes_eps": takes_eps, "norm": norm, "choose_norm": choose,
        "iterative": ITERATIVE.get(name), "revision": REVISIONS.get(name, 1),
        "__doc__": f"ART's {art} ({norm}{', one call per eps' if takes_eps else ''})."})
        for name, (art, takes_eps, norm, choose) in SPECS.items()}


@hookimpl
def register_attacks(register):
    from benchbench.docstrings import summary

    missing = art_missing()
    for name, cls in adapters().items():
        register(name, cls, summary=summary(cls.__doc__) + (f" ({INSTALL})" if missing else ""))


@hookimpl
def register_regimes(register):
    from benchbench.art_regimes import ADAPTERS
    from benchbench.docstrings import summary

    missing = art_missing()
    for name, cls in ADAPTERS.items():
        register(name, cls, summary=summary(cls.summary) + (f" ({INSTALL})" if missing else ""))
