"""Conformance checks for verifiers (part of the test kit, like ``benchbench.testing``).

``check_verifier(MyVerifier, **params)`` builds the verifier and checks every claim it makes,
offline, in a few seconds, on tiny random networks (one per declared layer kind, float64,
inputs [1, 6, 6] in [0, 1]):

* ``declares``: ``sound`` and ``complete`` are booleans, ``norm`` is linf or l2, ``layers`` is
  a tuple of names;
* ``layers``: a network with each declared layer kind the kit knows runs through the harness
  (``run_verifier``) and returns valid codes; a network with an undeclared kind is refused
  before it runs, with a VerifierError naming that layer;
* ``sound`` (if declared): no example it proves robust has a misclassified input among 256
  points drawn in its domain, its corners' signs and targeted PGD on every margin;
* ``planted``: a property with a built-in counterexample (an input 1e-4 past the decision
  boundary at the edge of the ball) is never proved; a complete verifier says "not robust",
  and its counterexample passes the harness's check;
* ``complete`` (if declared): a property with a margin of at least 0.5 everywhere in the ball
  is proved.
"""

from __future__ import annotations

from benchbench.testing import Check, passed

BOUNDS = (0.0, 1.0)
SHAPE = (1, 6, 6)
EPS = (0.02, 0.1)
ROWS = 8


def layer_nets() -> dict:
    """``{kind: factory}``: a tiny network using each layer kind the built-ins bound."""
    import torch
    from torch import nn

    from benchbench.verify.normalize import Normalize

    def bn(module):
        with torch.no_grad():
            module.running_mean.uniform_(-0.3, 0.3)
            module.running_var.uniform_(0.5, 1.5)
        return module

    def mlp(*extra_after_first):
        return nn.Sequential(nn.Flatten(), nn.Linear(36, 10), *extra_after_first, nn.ReLU(),
                             nn.Linear(10, 3))

    return {
        "Linear": mlp, "ReLU": mlp, "Flatten": mlp,
        "Identity": lambda: mlp(nn.Identity()), "Dropout": lambda: mlp(nn.Dropout(0.5)),
        "BatchNorm1d": lambda: mlp(bn(nn.BatchNorm1d(10))),
        "Conv2d": lambda: nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(48, 3)),
        "BatchNorm2d": lambda: nn.Sequential(nn.Conv2d(1, 3, 3), bn(nn.BatchNorm2d(3)),
                                             nn.ReLU(), nn.Flatten(), nn.Linear(48, 3)),
        "AvgPool2d": lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(),
                                           nn.AvgPool2d(2), nn.Flatten(), nn.Linear(27, 3)),
        "Normalize": lambda: nn.Sequential(
            Normalize(torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.25)), nn.Flatten(),
            nn.Linear(36, 10), nn.ReLU(), nn.Linear(10, 3)),
    }


OUTSIDERS = ("MaxPool2d", "Tanh", "Sigmoid")


def _outsider(kind: str):
    from torch import nn

    layer = {"MaxPool2d": nn.MaxPool2d(2), "Tanh": nn.Tanh(), "Sigmoid": nn.Sigmoid()}[kind]
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), layer, nn.Flatten(),
                         nn.Linear(72 if kind != "MaxPool2d" else 18, 3))


def _batch(model, seed: int):
    """``ROWS`` inputs in [0, 1] labelled with the model's own predictions (one wrong)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand((ROWS, *SHAPE), generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    y[-1] = (y[-1] + 1) % 3
    return x, y


def _build(factory, seed: int):
    import torch

    torch.manual_seed(seed)
    return factory().to(torch.float64).eval()


def planted():
    """``(model, x, y, eps)``: class 0 at ``x``, but at ``x[0, 0, 0] + eps`` logit 1 beats
    logit 0 by 1e-4 (the counterexample, built in)."""
    import torch
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 1), nn.ReLU(), nn.Linear(1, 2))
    eps = 0.1
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[0, 0] = 1.0
        model[1].bias.fill_(-0.5)
        model[3].weight.copy_(torch.tensor([[0.0], [(1.0 + 1e-4) / 0.05]]))
        model[3].bias.copy_(torch.tensor([1.0, 0.0]))
    x = torch.full((1, *SHAPE), 0.3, dtype=torch.float64)
    x[0, 0, 0, 0] = 0.45
    return model.to(torch.float64).eval(), x, torch.tensor([0]), eps


def _sound(verifier, name, detail: list[str]) -> None:
    import torch

    from benchbench.verify import ROBUST
    from benchbench.verify.attack import margin_attack, misclassified
    from benchbench.verify.verifiers import run_verifier

    g = torch.Generator().manual_seed(5)
    for kind, factory in layer_nets().items():
        if kind not in verifier.layers:
            continue
        model = _build(factory, 3)
        x, y = _batch(model, 4)
        result = run_verifier(verifier, model, x, y, eps=EPS, bounds=BOUNDS, name=name)
        for e_i, eps in enumerate(EPS):
            idx = (result.codes[e_i] == ROBUST).nonzero().flatten()
            if len(idx) == 0:
                continue
            xs, ys = x[idx], y[idx]
            lo, hi = (xs - eps).clamp(min=0), (xs + eps).clamp(max=1)
            u = torch.rand((256, *xs.shape), generator=g, dtype=torch.float64)
            u[:64] = u[:64].round()  # corners
            pts = lo + u * (hi - lo)  # [256, n, *SHAPE]
            if verifier.norm == "l2":
                d = (pts - xs).flatten(2)
                scale = (eps / d.norm(dim=2).clamp_min(1e-12)).clamp(max=1)
                pts = xs + (d * scale[..., None]).view_as(pts)
            _, adv = margin_attack(model, xs, ys, eps=eps, bounds=BOUNDS, norm=verifier.norm,
                                   steps=30)
            pts = torch.cat([pts.transpose(0, 1), adv], 1)  # [n, 256 + K, *SHAPE]
            wrong = misclassified(model, pts.flatten(0, 1),
                                  ys.repeat_interleave(pts.shape[1])).view(len(idx), -1)
            for i in idx[wrong.any(1)].tolist():
                detail.append(f"{kind} net: example {i} proved at eps {eps} but an input "
                              "of its ball is misclassified")


def verifier_conformance(verifier_cls, **params) -> list[Check]:
    """Every check, passed or not, for ``verifier_cls(**params)``."""
    from benchbench.errors import VerifierError
    from benchbench.verify.verifiers import run_verifier

    checks: list[Check] = []
    name = getattr(verifier_cls, "__name__", "verifier")
    try:
        verifier = verifier_cls(**params)
    except Exception as exc:  # noqa: BLE001 - reported as the failed check
        return [Check("builds", False, f"{type(exc).__name__}: {exc}")]
    checks.append(Check("builds", True))
    bad = [f"{key}={getattr(verifier, key, None)!r}" for key in ("sound", "complete")
           if not isinstance(getattr(verifier, key, None), bool)]
    if getattr(verifier, "norm", None) not in ("linf", "l2"):
        bad.append(f"norm={getattr(verifier, 'norm', None)!r} (linf or l2)")
    layers = getattr(verifier, "layers", None)
    if not (isinstance(layers, tuple | list) and all(isinstance(k, str) for k in layers)):
        bad.append(f"layers={layers!r} (a tuple of layer kind names)")
    checks.append(Check("declares", not bad, "; ".join(bad)))
    if bad:
        return checks

    problems = []
    for kind, factory in layer_nets().items():
        if kind in verifier.layers:
            model = _build(factory, 1)
            x, y = _batch(model, 2)
            try:
                codes = run_verifier(verifier, model, x, y, eps=EPS, bounds=BOUNDS,
                                     name=name).codes
                if codes.shape != (len(EPS), ROWS):
                    problems.append(f"{kind}: codes of shape {list(codes.shape)}")
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{kind} declared but {type(exc).__name__}: {exc}")
    outsider = next((k for k in OUTSIDERS if k not in verifier.layers), None)
    if outsider is not None:
        model = _build(lambda: _outsider(outsider), 1)
        x, y = _batch(model, 2)
        try:
            run_verifier(verifier, model, x, y, eps=EPS, bounds=BOUNDS, name=name)
            problems.append(f"a {outsider} layer (undeclared) was not refused")
        except VerifierError as exc:
            if outsider not in str(exc):
                problems.append(f"the refusal of {outsider} does not name it: {exc}")
    checks.append(Check("layers", not problems, "; ".join(problems)))

    if verifier.sound:
        checks.append(_attempt("sound", lambda: _sound_problem(verifier, name)))
    checks.append(_attempt("planted", lambda: _planted_problem(verifier, name)))
    if verifier.complete:
        checks.append(_attempt("complete", lambda: _complete_problem(verifier, name)))
    return checks


def _attempt(check: str, problem_of) -> Check:
    """The check ``check`` from ``problem_of()`` (a problem, or "" when it passed); a verifier
    that raises fails it, naming the error."""
    try:
        problem = problem_of()
    except Exception as exc:  # noqa: BLE001 - reported as the failed check
        problem = f"{type(exc).__name__}: {exc}"
    return Check(check, not problem, problem)


def _sound_problem(verifier, name) -> str:
    detail: list[str] = []
    _sound(verifier, name, detail)
    return "; ".join(detail[:3])


def _planted_problem(verifier, name) -> str:
    from benchbench.verify import NOT_ROBUST, ROBUST
    from benchbench.verify.verifiers import run_verifier

    model, x, y, eps = planted()
    result = run_verifier(verifier, model, x, y, eps=(eps,), bounds=BOUNDS, name=name)
    code = int(result.codes[0, 0])
    if code == ROBUST:
        return "proved a property whose counterexample is built in"
    if verifier.complete and code != NOT_ROBUST:
        return (f"complete, but answered {code} (rejected counterexamples: "
                f"{result.rejected[0]}) where a checked -1 was due")
    return ""


def _complete_problem(verifier, name) -> str:
    from benchbench.verify import ROBUST
    from benchbench.verify.verifiers import run_verifier

    model, x, y, _ = planted()
    wide = run_verifier(verifier, model, x, y, eps=(0.01,), bounds=BOUNDS, name=name)
    if int(wide.codes[0, 0]) != ROBUST:
        return "a property with margin >= 0.5 in the ball was not proved"
    return ""


def check_verifier(verifier_cls, **params) -> list[Check]:
    """Run ``verifier_conformance`` and raise AssertionError naming every failed check."""
    return passed("verifier", verifier_conformance(verifier_cls, **params))
