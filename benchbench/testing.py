"""The test kit for plugin authors: an isolated registry, a tiny model and real data, and the
conformance checks every attack and every regime must pass, offline.

From a plugin's own tests::

    from benchbench.testing import check_attack, check_regime

    def test_conformance():
        check_attack(MyAttack, seed=3)      # raises AssertionError naming each failed check
        check_regime(MyRegime, eps=0.1)

or with the ``benchbench_check_attack`` and ``benchbench_check_regime`` fixtures (this module
is a pytest plugin, registered through the ``pytest11`` entry point). ``benchbench plugins
check NAME`` runs the same checks on an installed attack.
"""

from __future__ import annotations

from dataclasses import dataclass

EPS = (0.0, 0.05, 0.3)
BOUNDS = (0.0, 1.0)


def isolated_registry(*plugins):
    """Built-ins plus ``plugins`` only: no installed entry points leak into a test."""
    from benchbench.plugins import load_registry

    return load_registry(load_entry_points=False, extra=plugins)


def tiny_data(n: int = 16, *, dtype=None):
    """``n`` real 8x8 digits from scikit-learn, pixels in [0, 1], as ``(x [n, 1, 8, 8], y)``."""
    import torch

    from benchbench.datasets.digits import Digits

    x, y = Digits().load("train")
    return x[:n].to(dtype or torch.float32), y[:n]


def tiny_model(*, seed: int = 0, dtype=None):
    """A small MLP for 8x8 digits (64-32-10), fitted for a few steps so gradients are typical."""
    import torch

    from benchbench.models.mlp import build_mlp

    torch.manual_seed(seed)
    model = build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[32])
    x, y = tiny_data(64)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.to(dtype or torch.float32).eval()


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str = ""


def _run(attack, model, x, y, eps):
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(0)
        return attack.perturb(model, x, y, eps=eps, bounds=BOUNDS)


def conformance(attack_cls, **params) -> list[Check]:
    """Every check, passed or not, for ``attack_cls(**params)``."""
    import torch

    from benchbench.attacks import NORMS
    from benchbench.attacks.harness import attack_batch

    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append(Check(name, bool(ok), "" if ok else detail))

    try:
        attack = attack_cls(**params)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Check("builds", False, f"{type(exc).__name__}: {exc}")]
    check("declares a norm", getattr(attack, "norm", None) in NORMS,
          f"norm must be one of {NORMS}; got {getattr(attack, 'norm', None)!r}")
    if not checks[-1].passed:
        return checks  # the harness cannot project without a norm
    bounded = getattr(attack, "bounded", True)
    for dtype in (torch.float32, torch.float64):
        model, (x, y) = tiny_model(dtype=dtype), tiny_data(dtype=dtype)
        x0, y0 = x.clone(), y.clone()
        state0 = {k: v.clone() for k, v in model.state_dict().items()}
        model.eval()  # as the harness hands it over
        name = str(dtype).removeprefix("torch.")
        try:
            out = _run(attack, model, x, y, EPS)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            check(f"perturb runs ({name})", False, f"{type(exc).__name__}: {exc}")
            continue
        check(f"input not modified in place ({name})", torch.equal(x, x0) and torch.equal(y, y0),
              "perturb changed x or y")
        changed = [k for k, v in model.state_dict().items() if not torch.equal(v, state0[k])]
        check(f"model's weights and buffers not modified ({name})", not changed,
              f"perturb changed {', '.join(changed[:3])}")
        check(f"model left in eval mode ({name})",
              not any(m.training for m in model.modules()), "perturb switched a module's mode")
        model.load_state_dict(state0)  # the remaining checks measure the model as it was
        model.eval()
        check(f"proposal is finite ({name})",
              isinstance(out, torch.Tensor) and bool(torch.isfinite(out).all()),
              "perturb returned NaN or infinity")
        check(f"shape and dtype kept ({name})",
              out.shape == (len(EPS), *x.shape) and out.dtype == dtype,
              f"got {tuple(out.shape)} {out.dtype}, expected {(len(EPS), *x.shape)} {dtype}")
        if out.shape != (len(EPS), *x.shape):
            continue  # the remaining checks need one batch per eps
        if bounded:
            delta = (out - x).flatten(2)
            size = delta.abs().amax(2) if attack.norm == "linf" else delta.norm(dim=2)
            limit = torch.tensor(EPS, dtype=dtype)[:, None] * (1 + 1e-5) + 1e-6
            check(f"inside the eps-ball ({name})", (size <= limit).all(),
                  f"largest step {size.max():.4g} for eps {EPS}")
            check(f"eps 0 is the identity ({name})", torch.equal(out[0], x),
                  "perturb at eps 0 changed x")
        try:
            result = attack_batch(attack, model, x, y, eps=EPS, bounds=BOUNDS)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            check(f"the harness accepts its proposal ({name})", False,
                  f"{type(exc).__name__}: {exc}")
            model.load_state_dict(state0)
            continue
        check(f"inside the data bounds after the harness ({name})",
              result.x_adv.min() >= BOUNDS[0] and result.x_adv.max() <= BOUNDS[1], "")
    if any(not c.passed for c in checks if c.name.startswith(("shape", "perturb runs"))):
        return checks
    model, (x, y) = tiny_model(), tiny_data()
    again = _run(attack, model, x, y, EPS)
    check("deterministic under a seed", torch.equal(_run(attack, model, x, y, EPS), again),
          "two runs with torch.manual_seed(0) differ")
    one = _run(attack, model, x[:1], y[:1], EPS)
    check("batch of one works", one.shape == (len(EPS), 1, *x.shape[1:]),
          f"got {tuple(one.shape)}")
    if getattr(attack, "per_example", False):
        alone = torch.cat([_run(attack, model, x[i:i + 1], y[i:i + 1], EPS)
                           for i in range(len(x))], dim=1)
        check("per_example holds (each example as if alone)",
              torch.allclose(again, alone, atol=1e-6), "results depend on the rest of the batch")
    checks.append(strength_check(attack))
    return checks


#: the strength smoke test: a large eps (L2: the radius of that L-inf ball on 8x8 digits) at
#: which any real attack fools an undefended tiny model on a clear fraction of its examples
STRONG_EPS = {"linf": 0.5, "l2": 0.5 * 8.0}
STRONG_FOOLED = 0.25  # identity: 0; random signs at 0.5 (the example plugin): 0.44; FGSM: 1.0


def strength_check(attack) -> Check:
    """Whether ``attack`` at ``STRONG_EPS`` fools the undefended ``tiny_model`` on at least
    ``STRONG_FOOLED`` of the ``tiny_data`` examples it classifies correctly (counted by the
    harness, after projection): an attack that leaves its inputs unchanged fails."""
    import torch

    from benchbench.attacks.harness import attack_batch

    eps = STRONG_EPS.get(getattr(attack, "norm", None), STRONG_EPS["linf"])
    model, (x, y) = tiny_model(), tiny_data()
    name = f"fools an undefended model at eps {eps:g}"
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            result = attack_batch(attack, model, x.clone(), y.clone(), eps=[0.0, eps],
                                  bounds=BOUNDS)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    clean = result.correct[0]
    fooled = (clean & ~result.correct[1]).sum().item() / max(1, clean.sum().item())
    return Check(name, fooled >= STRONG_FOOLED,
                 "" if fooled >= STRONG_FOOLED else
                 f"fooled {fooled:.0%} of the {clean.sum().item()} examples the model gets "
                 f"right; a real attack fools at least {STRONG_FOOLED:.0%} at this eps (does "
                 "perturb return its input unchanged?)")


def passed(kind: str, checks: list[Check]) -> list[Check]:
    """``checks``, or AssertionError naming every failed one."""
    failed = [c for c in checks if not c.passed]
    if failed:
        raise AssertionError(f"{kind} conformance failed: " + "; ".join(
            f"{c.name}: {c.detail}" for c in failed))
    return checks


def check_attack(attack_cls, **params) -> list[Check]:
    """Run ``conformance`` and raise AssertionError naming every failed check."""
    return passed("attack", conformance(attack_cls, **params))


from benchbench.testing_models import check_model, model_conformance  # noqa: E402
from benchbench.testing_regimes import check_regime, regime_conformance  # noqa: E402

__all__ = ["check_attack", "check_model", "check_regime", "conformance", "isolated_registry",
           "model_conformance", "regime_conformance", "tiny_data", "tiny_model"]

try:  # the pytest plugin: fixtures for plugin authors
    import pytest

    @pytest.fixture
    def benchbench_check_attack():
        """``check_attack`` as a fixture: ``benchbench_check_attack(MyAttack, seed=1)``."""
        return check_attack

    @pytest.fixture
    def benchbench_check_regime():
        """``check_regime`` as a fixture: ``benchbench_check_regime(MyRegime, eps=0.1)``."""
        return check_regime

    @pytest.fixture
    def benchbench_check_model():
        """``check_model`` as a fixture: ``benchbench_check_model(build_my_cnn, width=8)``."""
        return check_model
except ImportError:  # pytest is not needed to use the functions above
    pass
