"""Conformance checks for training regimes (part of the test kit, ``benchbench.testing``).

``regime_conformance(MyRegime, **params)`` trains tiny MLPs on 96 real 8x8 digits in float64 and
checks what the harness promises a regime's users:

* it builds, trains to every scheduled checkpoint, and does not modify the data it is given;
* two runs with the same seed give the same weights (deterministic under a seed);
* every input ``craft`` returns lies in the data bounds and, for a regime with ``eps``, in the
  L-inf eps-ball around its clean input;
* for a ``Regime`` that declares ``stackable``: the members of a stack of three seeds end with
  the weights each seed reaches trained alone (1e-9: the stack computes in another order);
* for a ``Regime``: a run interrupted after epoch 1 and resumed from the harness's saved state
  ends with the same weights, bit for bit.

A self-driven regime (its own ``train``) gets the first two checks; one that declares
``evaluate_only`` (``pretrained``: it trains nothing) also that its weights stay as given.
"""

from __future__ import annotations

BOUNDS = (0.0, 1.0)  # the digits' data range, as benchbench.testing's
SEEDS = (0, 1, 2)
ROWS = 96
KIT_DEFAULTS = {"epochs": 2, "batch_size": 32, "dtype": "float64"}


def _setup(dtype):
    from benchbench.models.mlp import build_mlp
    from benchbench.testing import tiny_data

    x, y = tiny_data(ROWS, dtype=dtype)

    def model(seed: int):
        import torch

        torch.manual_seed(seed)
        return build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16]).to(dtype)

    return x, y, model


def _context(members: int, seeds, dtype, member_model=None):
    from benchbench.regimes.context import TrainContext
    from benchbench.testing import isolated_registry

    return TrainContext(members, tuple(seeds), BOUNDS, dtype, "cpu", isolated_registry(),
                        member_model, log=lambda _: None)


def _train(regime, x, y, model_of, seeds, *, stack: bool, stop: int | None = None,
           resume: dict | None = None, crafted: list | None = None):
    """Train ``seeds`` (as one stack or one model) with the harness; return the model, its
    trainer and the global RNG state, having stopped after epoch ``stop`` if given."""
    import torch

    from benchbench.engine.training import Trainer
    from benchbench.models.stacked_mlp import stack_mlps

    members = [model_of(s) for s in seeds]
    model = stack_mlps(members) if stack else members[0]

    def member_model(i):
        if not stack:
            return model
        members[0].load_state_dict(model.member_state_dict(i))
        return members[0]

    def member_state(i):
        if stack:
            return model.member_state_dict(i)
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    ctx = _context(len(seeds), seeds, x.dtype, member_model)
    trainer = Trainer(regime, model=model, x=x, y=y, seeds=list(seeds), ctx=ctx,
                      stacked=stack, member_state=member_state)
    if crafted is not None:
        craft = regime.craft

        def spy(ctx, model, xb, yb):
            out = craft(ctx, model, xb, yb)
            crafted.append((xb.clone(), out.detach().clone()))
            return out

        regime.craft = spy
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seeds[0])
        if resume is not None:
            model.load_state_dict(resume["model"])
            trainer.load_state(resume["trainer"], resume["epoch"], resume["records"])
            torch.set_rng_state(resume["rng"])
        last = 0
        for last in trainer.epochs():
            if stop is not None and last == stop:
                saved = {"model": {k: v.clone() for k, v in model.state_dict().items()},
                         "trainer": _clone(trainer.state()), "epoch": last,
                         "records": [list(r) for r in trainer.records],
                         "rng": torch.get_rng_state()}
                return model, trainer, saved
    if crafted is not None:
        del regime.craft
    return model, trainer, {"epoch": last}


def _clone(state):
    """A deep copy of a state made of tensors, lists, dicts and plain values."""
    import copy

    return copy.deepcopy(state)


def _weights(model, stack: bool, i: int):
    return model.member_state_dict(i) if stack else dict(model.state_dict())


def _same(a: dict, b: dict, tol: float) -> tuple[bool, float]:
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    return worst <= tol, worst


def regime_conformance(regime_cls, **params) -> list:
    """Every check, passed or not, for ``regime_cls(**params)`` (epochs, batch_size and dtype
    default to 2, 32 and float64)."""
    import torch

    from benchbench.regimes.base import contract_problem, harness_driven
    from benchbench.testing import Check

    checks: list[Check] = []

    def check(name: str, ok: bool, detail: str = "") -> None:
        checks.append(Check(name, bool(ok), "" if ok else detail))

    problem = contract_problem(regime_cls)
    if problem:
        return [Check("follows the regime contract", False, problem)]
    evaluates = getattr(regime_cls, "evaluate_only", False) is True  # e.g. pretrained
    params = {**({"dtype": "float64"} if evaluates else KIT_DEFAULTS), **params}

    def build():
        return regime_cls(**params)

    try:
        regime = build()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Check("builds", False, f"{type(exc).__name__}: {exc}")]
    dtype = getattr(torch, regime.dtype)
    x, y, model_of = _setup(dtype)
    x0, y0 = x.clone(), y.clone()
    if not harness_driven(regime_cls):
        def own(seed):
            model = model_of(seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                done = list(regime.train(model=model, x=x, y=y, seed=seed))
            return model, done

        try:
            (first, done), (again, _) = own(0), own(0)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return [*checks, Check("trains", False, f"{type(exc).__name__}: {exc}")]
        missing = sorted(set(regime.checkpoint_epochs) - set(done))
        check("trains to every scheduled checkpoint", not missing,
              f"never yielded epochs {missing}")
        check("input not modified", torch.equal(x, x0) and torch.equal(y, y0),
              "train changed x or y")
        ok, worst = _same(dict(first.state_dict()), dict(again.state_dict()), 0.0)
        check("deterministic under a seed", ok, f"two runs differ by up to {worst:.3g}")
        if evaluates:  # declares it trains nothing: the weights stay as given
            ok, worst = _same(dict(first.state_dict()), dict(model_of(0).state_dict()), 0.0)
            check("evaluate_only: weights unchanged", ok, f"train moved them by {worst:.3g}")
        return checks

    crafted: list = []
    try:
        alone, trainer, end = _train(build(), x, y, model_of, SEEDS[:1], stack=False,
                                     crafted=crafted)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [*checks, Check("trains", False, f"{type(exc).__name__}: {exc}")]
    check("trains to every scheduled checkpoint", end["epoch"] == regime.epochs,
          f"stopped after epoch {end['epoch']} of {regime.epochs}")
    check("input not modified", torch.equal(x, x0) and torch.equal(y, y0),
          "craft or loss changed x or y")
    lo, hi = BOUNDS
    inside = all(bool((out >= lo).all() and (out <= hi).all()) for _, out in crafted)
    check("crafted inputs inside the data bounds", inside, f"outside {BOUNDS}")
    eps = getattr(regime, "eps", None)
    if isinstance(eps, float | int):
        size = max(float((out - xb).abs().max()) for xb, out in crafted)
        check("crafted inputs inside the eps-ball", size <= eps * (1 + 1e-9) + 1e-12,
              f"largest step {size:.4g} for eps {eps}")
    again, *_ = _train(build(), x, y, model_of, SEEDS[:1], stack=False)
    ok, worst = _same(dict(alone.state_dict()), dict(again.state_dict()), 0.0)
    check("deterministic under a seed", ok, f"two runs differ by up to {worst:.3g}")

    if regime.stackable is True:
        stacked, *_ = _train(build(), x, y, model_of, SEEDS, stack=True)
        worst_all = 0.0
        for i, seed in enumerate(SEEDS):
            single = alone if i == 0 else _train(build(), x, y, model_of, (seed,),
                                                 stack=False)[0]
            _, worst = _same(_weights(stacked, True, i), dict(single.state_dict()), 0.0)
            worst_all = max(worst_all, worst)
        check("stacked members equal their seeds trained alone", worst_all <= 1e-9,
              f"members differ from their seeds alone by up to {worst_all:.3g}")

    if regime.epochs >= 2:
        _, _, saved = _train(build(), x, y, model_of, SEEDS[:1], stack=False, stop=1)
        resumed, *_ = _train(build(), x, y, model_of, SEEDS[:1], stack=False, resume=saved)
        ok, worst = _same(dict(alone.state_dict()), dict(resumed.state_dict()), 0.0)
        check("interrupted and resumed equals uninterrupted", ok,
              f"weights differ by up to {worst:.3g}")
    return checks


def check_regime(regime_cls, **params) -> list:
    """Run ``regime_conformance`` and raise AssertionError naming every failed check."""
    from benchbench.testing import passed

    return passed("regime", regime_conformance(regime_cls, **params))
