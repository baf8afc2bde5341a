"""AutoAttack (Croce and Hein, ICML 2020, arXiv:2003.01690) through the reference implementation
packaged as ``pyautoattack``: ``pip install 'benchbench[autoattack]'``.

Threat model: untargeted, L-inf or L2, white-box (its gradient members) and black-box (Square).
For each eps the reference's ``AutoAttack(model, eps=eps, norm=..., seed=..., version=...)``
runs ``run_standard_evaluation`` on the batch: its attacks in turn, each on the examples still
classified correctly, and an example keeps the first adversarial input that fools the model.
``version = "standard"`` is the reference's protocol: APGD-CE (100 iterations, 1 restart),
APGD-T (the 9 most likely other classes, 100 iterations each), FAB-T (9 targets, 100
iterations) and Square (5,000 queries, p_init 0.8), all with the reference's settings;
``"plus"`` adds APGD-DLR and FAB with 5 restarts; ``"rand"`` (randomised defences) is APGD-CE
and APGD-DLR averaging 20 gradients per step; ``"custom"`` runs ``attacks_to_run``, names from
the reference (``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``, ``square``) with the
reference's per-attack settings. Shapes: ``x`` [N, ...], ``y`` [N], returns [len(eps), N, ...];
the harness projects and counts.

Differences from calling the reference by hand, all chosen: ``seed`` defaults to 0 (the
reference's ``None`` seeds torch from the clock); torch's global random state is put back
afterwards (the reference calls ``torch.manual_seed``); the reference's iterates are float32
(it casts with ``.float()``), so the model is called behind a cast to the input dtype and a
float64 run's model runs in float64; data bounds other than [0, 1] (the reference clips to
[0, 1]) are mapped onto [0, 1] and back, eps scaled with them; an example the reference does not
fool comes back as the exact input; eps 0 is the input itself; the reference's messages stay in
its ``auto-attack`` logger (warnings reach stderr, never stdout) and a tracer it clears
(``sys.settrace``, its check for dynamic defences) is set back. Registering imports nothing.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

from benchbench import hookimpl
from benchbench.attacks import NORMS

PACKAGE = "pyautoattack"
INSTALL = "needs benchbench[autoattack]: pip install 'benchbench[autoattack]'"
VERSIONS = ("standard", "plus", "rand", "custom")
MEMBERS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")  # the reference's names
RUNS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"),  # the reference's _set_version
        "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"),
        "rand": ("apgd-ce", "apgd-dlr")}
ITERATIVE = ("apgd-ce", "apgd-dlr", "apgd-t")  # ascend a loss inside the ball (the flags' I)
TARGETED = ("apgd-t", "fab-t")  # the reference attacks 9 target classes: 10 classes at least
REFERENCE_NORM = {"linf": "Linf", "l2": "L2"}
MAX_BATCH = 100_000


def missing() -> bool:
    """Whether the reference is absent (checked without importing it)."""
    return importlib.util.find_spec(PACKAGE) is None


class AutoAttack:
    """AutoAttack by the reference implementation (standard: APGD-CE, APGD-T, FAB-T, Square)."""

    needs_gradients = True
    per_example = False  # random starts and Square's draws come from one stream per batch

    def __init__(self, *, version: str = "standard", attacks_to_run: list[str] | None = None,
                 norm: str = "linf", seed: int = 0, batch_size: int = 250) -> None:
        """The reference's constructor keys, less its model, device and eps.

        Suite keys:
            version: ``"standard"`` (default), ``"plus"``, ``"rand"`` or ``"custom"``: the
                reference's versions.
            attacks_to_run: with ``version = "custom"`` only (and then required), a list of the
                reference's attacks: ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``,
                ``square``.
            norm: ``"linf"`` (default) or ``"l2"`` (the reference's ``Linf``, ``L2``).
            seed: the reference's seed for every member's random draws (default 0).
            batch_size: rows per call of the reference's members (its default, 250).
        """
        if missing():
            raise ValueError(f"this attack {INSTALL}")
        if version not in VERSIONS:
            raise ValueError(f"version must be one of {', '.join(VERSIONS)}; got {version!r}")
        if version == "custom":
            if (not isinstance(attacks_to_run, list) or not attacks_to_run
                    or not all(isinstance(a, str) and a in MEMBERS for a in attacks_to_run)
                    or len(set(attacks_to_run)) != len(attacks_to_run)):
                raise ValueError(f"attacks_to_run must be a list of distinct names from "
                                 f"{', '.join(MEMBERS)} with version \"custom\"; got "
                                 f"{attacks_to_run!r}")
        elif attacks_to_run is not None:
            raise ValueError(f"attacks_to_run is for version \"custom\" only (version "
                             f"{version!r} runs {', '.join(RUNS[version])})")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
        for key, value, most in (("seed", seed, 2**63 - 1), ("batch_size", batch_size, MAX_BATCH)):
            low = 0 if key == "seed" else 1
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= most:
                raise ValueError(f"{key} must be an integer from {low} to {most:,}; got "
                                 f"{value!r}")
        self.version, self.norm, self.seed, self.batch_size = version, norm, seed, batch_size
        self.attacks_to_run = list(attacks_to_run) if version == "custom" else None
        self.members = tuple(self.attacks_to_run or RUNS[version])
        # APGD's members iterate on gradients inside the ball; FAB (minimal perturbation) and
        # Square (random search) alone are neither iterative nor single-step to the flags
        self.iterative = True if set(self.members) & set(ITERATIVE) else None

    def perturb(self, model, x, y, *, eps: Sequence[float], bounds=(0.0, 1.0)):
        import torch

        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        targeted = sorted(set(self.members) & set(TARGETED))
        if classes < 10 and targeted:
            raise ValueError(f"the reference's {' and '.join(targeted)} attack 9 target classes; "
                             f"the model has {classes} classes (use version \"custom\" without "
                             "apgd-t and fab-t)")
        if "square" in self.members and x.dim() != 4:
            raise ValueError(f"the reference's Square attack takes images [N, C, H, W]; the "
                             f"inputs are {tuple(x.shape)}")
        lo, hi = (float(b) for b in bounds)
        scale = hi - lo
        unit = (lo, hi) == (0.0, 1.0)  # the reference's range: no mapping, no rounding

        def logits(z):  # the reference's [0, 1] float32 inputs to the model's range and dtype;
            # its logits back in float32, the dtype the reference computes in (it cannot mix)
            return model(z.to(x.dtype) if unit else (z.to(x.dtype) * scale + lo)).float()

        # the reference's iterates are float32 (and it cannot mix dtypes): it gets float32
        x_unit = (x if unit else (x - lo) / scale).float()
        out = torch.empty((len(eps), *x.shape), dtype=x.dtype, device=x.device)
        for i, e in enumerate(eps):
            if e == 0:
                out[i] = x
                continue
            adv = self._run(logits, x_unit, y, e / scale)
            back = adv.to(x.dtype) if unit else (adv.to(x.dtype) * scale + lo)
            moved = (adv != x_unit).flatten(1).any(dim=1)  # fooled: the rest are x exactly
            out[i] = torch.where(moved.view(-1, *[1] * (x.dim() - 1)), back, x)
        return out

    def _run(self, logits, x, y, eps: float):
        """The reference's ``run_standard_evaluation`` at one eps, with torch's random state
        and the interpreter's tracer as they were before."""
        import torch
        from pyautoattack import AutoAttack as Reference

        # the reference seeds the CPU's generator and the current CUDA device's
        devices = sorted({torch.cuda.current_device(), x.device.index
                          if x.device.index is not None else torch.cuda.current_device()}) \
            if x.is_cuda else []
        tracer = sys.gettrace()
        try:
            with torch.random.fork_rng(devices=devices):
                attack = Reference(logits, attacks=self.attacks_to_run, device=x.device, eps=eps,
                                   norm=REFERENCE_NORM[self.norm], seed=self.seed,
                                   version=self.version)
                attack.verbose = False
                adv, _ = attack.run_standard_evaluation(x, y, batch_size=self.batch_size)
        finally:
            sys.settrace(tracer)
        return adv


class _NeedsExtra(AutoAttack):
    """AutoAttack by the reference implementation (needs ``benchbench[autoattack]``)."""

    @classmethod
    def suite_params(cls) -> list[str]:
        raise ValueError(f"this attack {INSTALL}")


@hookimpl
def register_attacks(register):
    from benchbench.docstrings import summary

    if missing():
        register("autoattack", _NeedsExtra,
                 summary=summary(AutoAttack.__doc__) + f" ({INSTALL})")
    else:
        register("autoattack", AutoAttack)
