"""Conformance checks for model factories (part of the test kit, ``benchbench.testing``).

``model_conformance(factory, input_shape=(1, 8, 8), num_classes=10, **params)`` builds the
model as a run does (``factory(input_shape=..., num_classes=..., **params)`` on the CPU with
torch's RNG seeded, then ``.to(dtype)``), trains it a few steps on a fixed synthetic batch
(pixels in [0, 1]) so its weights are typical, and checks what the harness relies on:

* no keyword parameter of the factory is one of the names a suite's ``[model]`` table keeps
  for itself (``MODEL_TABLE_KEYS``: ``name``, ``label``, ``weights``, ``zoo``, ...): such a
  parameter could never be set from a suite;
* it builds an ``nn.Module``; two builds with one seed have identical state dicts, and two
  seeds differ (else a study's seeds would all be one model); every tensor it holds is a
  parameter or a buffer (a plain tensor attribute would not follow ``.to(device, dtype)``);
* it trains: a few Adam steps in train mode lower the loss on the batch;
* for float32 and float64 (the run's dtype): parameters, buffers and logits in that dtype,
  logits ``[N, num_classes]`` for a batch and for one example, the input not modified, an
  input gradient that is finite and not all zero in eval mode with frozen parameters (what
  attacks need), eval mode deterministic and leaving the state unchanged, train mode
  deterministic under a seed;
* train and eval mode differ as the model's modules say: with BatchNorm (running statistics),
  train mode updates them and computes otherwise than eval mode; with dropout (p > 0), train
  mode draws from torch's RNG; with neither, the two modes compute the same, unless the model
  declares ``mode_dependent = True`` (mode-dependent code of its own), when they must differ;
* float32 and float64 logits agree (to float32 rounding);
* a state dict loads into another seed's build (``strict=True``) and gives the same logits and
  state, also through a safetensors file (benchbench's checkpoint format);
* when the factory declares ``stack``: the stack of three seeds (``factory.stack(models)``,
  unless it returns None) gives each member's logits on its rows of a member-major batch
  (1e-9 in float64: a stack may compute in another order), ``member_state_dict(i)`` is member
  ``i``'s state dict, and, where the stack has them, ``cross_entropy_input_grad`` and
  ``cross_entropy_backward`` equal autograd's gradients (1e-9).
"""

from __future__ import annotations

from benchbench.suite.given import MODEL_KEYS

#: what a suite's ``[model]`` table keeps for itself: a factory parameter so named is never set
MODEL_TABLE_KEYS = ("name", "label", *MODEL_KEYS)
INPUT_SHAPE = (1, 8, 8)  # the digits' shape, as benchbench.testing's tiny data
NUM_CLASSES = 10
ROWS = 8
SEEDS = (0, 1, 2)
TRAIN_STEPS = 10
LR = 1e-3
# float32 against float64 logits: float32 rounds each op to 2^-24 relative (6e-8); a forward
# pass of a few hundred accumulated products per output stays far inside 1e-4 of the logits'
# scale, which a model computing wrongly in one dtype is not.
TOL_DTYPE = 1e-4
TOL_STACK = 1e-9  # float64, the stack computing in another order


def build(factory, seed: int, input_shape, num_classes: int, params: dict):
    """The model as ``benchbench.engine.cell.build_model`` builds it: on the CPU, torch's RNG
    seeded with ``seed`` (and restored after)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory(input_shape=tuple(input_shape), num_classes=num_classes, **params)


def batch(input_shape, num_classes: int, rows: int = ROWS, seed: int = 0):
    """``rows`` synthetic images, pixels uniform in [0, 1], and labels cycling over classes."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(rows, *input_shape, generator=gen),
            torch.arange(rows) % num_classes)


def _state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and torch_equal(a[k], b[k])
        for k in a)


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def _stray_tensors(model) -> list[str]:
    """Tensor attributes that are neither parameters nor buffers (``.to()`` leaves them)."""
    import torch

    out = []
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Tensor) and not attr.startswith("_"):
                out.append(f"{name}.{attr}" if name else attr)
    return out


def _forward(model, x, *, train: bool, seed: int = 0):
    import torch

    model.train(train)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        return model(x)


def _mode_claims(model) -> tuple[bool, bool, bool]:
    """(BatchNorm with running statistics, dropout with p > 0, declared ``mode_dependent``)."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.dropout import _DropoutNd

    modules = list(model.modules())
    bn = any(isinstance(m, _BatchNorm) and m.track_running_stats for m in modules)
    dropout = any(isinstance(m, _DropoutNd | nn.AlphaDropout) and m.p > 0 for m in modules)
    return bn, dropout, getattr(model, "mode_dependent", False) is True


def _scale(t) -> float:
    return 1.0 + float(t.abs().max())


def model_conformance(factory, *, input_shape=INPUT_SHAPE, num_classes: int = NUM_CLASSES,
                      **params) -> list:
    """Every check, passed or not, for ``factory(input_shape=..., num_classes=..., **params)``.

    Runs on one CPU thread (torch's setting is restored after): on tensors this small a second
    thread only waits, and on a busy machine its spinning made the checks 10-100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _conformance(factory, tuple(input_shape), num_classes, params)
    finally:
        torch.set_num_threads(threads)


def _conformance(factory, input_shape, num_classes: int, params: dict) -> list:
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    from benchbench.attacks.harness import attacking
    from benchbench.testing import Check

    checks: list[Check] = []

    def check(name: str, ok, detail: str = "") -> bool:
        checks.append(Check(name, bool(ok), "" if ok else detail))
        return bool(ok)

    def failed(name: str, exc: Exception) -> list[Check]:
        return [*checks, Check(name, False, f"{type(exc).__name__}: {exc}")]

    taken = _taken_keys(factory)
    check("no parameter named as a key benchbench takes in [model]", not taken,
          f"parameter(s) {', '.join(taken)} can never be set from a suite: [model] keeps "
          f"{', '.join(MODEL_TABLE_KEYS)} for itself; rename them")
    try:
        model = build(factory, SEEDS[0], input_shape, num_classes, params)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return failed("builds", exc)
    if not check("is a torch.nn.Module", isinstance(model, nn.Module),
                 f"the factory returned {type(model).__name__}"):
        return checks
    again = build(factory, SEEDS[0], input_shape, num_classes, params)
    other = build(factory, SEEDS[1], input_shape, num_classes, params)
    check("two builds with one seed give identical weights",
          _same_state(_state(model), _state(again)),
          "the state dicts differ (draw only from torch's global RNG, which the harness seeds)")
    check("two seeds give different weights",
          not _same_state(_state(model), _state(other)),
          f"seeds {SEEDS[0]} and {SEEDS[1]} build the same weights")
    stray = _stray_tensors(model)
    check("every tensor is a parameter or a buffer", not stray,
          f"{', '.join(stray[:5])} would not follow .to(device, dtype); register them "
          "(register_buffer(..., persistent=False) keeps one out of the state dict)")

    x, y = batch(input_shape, num_classes)
    try:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        losses = []
        for step in range(TRAIN_STEPS + 1):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(1000)  # one dropout mask: the losses compare the weights
                loss = F.cross_entropy(model(x.clone()), y)  # x stays the kit's
            losses.append(float(loss.detach()))
            if step < TRAIN_STEPS:
                opt.zero_grad()
                loss.backward()
                opt.step()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return failed("trains", exc)
    check("trains", losses[-1] < losses[0],
          f"{TRAIN_STEPS} Adam steps (lr {LR}) took the loss from {losses[0]:.4g} to "
          f"{losses[-1]:.4g}")

    logits = {}
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).removeprefix("torch.")
        net = copy.deepcopy(model).to(dtype)
        xd = x.to(dtype, copy=True)
        wrong = [k for k, v in net.state_dict().items()
                 if v.is_floating_point() and v.dtype != dtype]
        wrong += [f"buffer {k}" for k, v in net.named_buffers()
                  if v.is_floating_point() and v.dtype != dtype and k not in net.state_dict()]
        check(f"parameters and buffers in {name}", not wrong, f"{', '.join(wrong[:5])}")
        x0 = xd.clone()
        try:
            out = _forward(net, xd, train=False)
            one = _forward(net, xd[:1], train=False)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            return failed(f"forward runs ({name})", exc)
        check(f"logits [N, num_classes] in {name}",
              out.shape == (ROWS, num_classes) and one.shape == (1, num_classes)
              and out.dtype == dtype and one.dtype == dtype,
              f"got {tuple(out.shape)} {out.dtype} for {ROWS} rows and {tuple(one.shape)} "
              f"for one; expected [{ROWS}, {num_classes}] {dtype}")
        if out.shape != (ROWS, num_classes):
            return checks
        logits[name] = out
        check(f"input not modified ({name})", torch.equal(xd, x0), "forward changed x in place")
        xg = xd.clone().requires_grad_(True)
        try:
            with attacking(net):
                loss = F.cross_entropy(net(xg), y, reduction="sum")
                grad, = torch.autograd.grad(loss, xg)
            flows = bool(torch.isfinite(grad).all() and (grad != 0).any())
            detail = "the input gradient is not finite, or zero everywhere"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            flows, detail = False, f"{type(exc).__name__}: {exc}"
        check(f"input gradient flows in eval mode ({name})", flows, detail)
        before = _state(net)
        second = _forward(net, xd, train=False, seed=1)
        check(f"eval mode is deterministic and leaves the state unchanged ({name})",
              torch.equal(out, second) and _same_state(before, _state(net)),
              "two eval-mode forward passes differ, or one changed the state dict")
        a, b = copy.deepcopy(net), copy.deepcopy(net)
        ta, tb = _forward(a, xd, train=True, seed=5), _forward(b, xd, train=True, seed=5)
        check(f"train mode is deterministic under a seed ({name})",
              torch.equal(ta, tb) and _same_state(_state(a), _state(b)),
              "two train-mode passes from one state and one seed differ")

    net = copy.deepcopy(model).to(torch.float64)
    xd = x.to(torch.float64, copy=True)
    bn, dropout, declared = _mode_claims(net)
    before = _state(net)
    evals = _forward(net, xd, train=False)
    trained = _forward(net, xd, train=True, seed=5)
    after = _state(net)
    if bn:
        check("BatchNorm: train mode updates the running statistics",
              not _same_state(before, after), "a train-mode pass left the state unchanged")
        check("BatchNorm: train and eval mode differ", not torch.equal(evals, trained),
              "train mode computes what eval mode does")
    if dropout:
        net.load_state_dict(before)
        other_draw = _forward(net, xd, train=True, seed=6)
        check("dropout: train mode draws from torch's RNG", not torch.equal(trained, other_draw),
              "two seeds give the same train-mode logits")
    if declared and not (bn or dropout):
        check("mode_dependent: train and eval mode differ", not torch.equal(evals, trained),
              "the model declares mode_dependent = True, yet both modes compute the same")
    if not (bn or dropout or declared):
        check("train and eval mode agree (no BatchNorm, no dropout)",
              torch.equal(evals, trained) and _same_state(before, after),
              "the modes differ or train mode changes the state; use torch's BatchNorm or "
              "Dropout modules, or declare mode_dependent = True")

    a, b = logits["float32"], logits["float64"]
    gap = float((a.double() - b).abs().max())
    check("float32 and float64 agree", gap <= TOL_DTYPE * _scale(b),
          f"logits differ by {gap:.3g} (allowed {TOL_DTYPE * _scale(b):.3g})")

    ref = _forward(model, x.clone(), train=False)
    for label, load in (("state_dict", lambda s: s), ("safetensors", _through_safetensors)):
        fresh = build(factory, SEEDS[1], input_shape, num_classes, params)
        try:
            fresh.load_state_dict(load(model.state_dict()), strict=True)
            ok = torch.equal(_forward(fresh, x.clone(), train=False), ref) and _same_state(
                _state(fresh), _state(model))
            detail = "the loaded model's logits or state differ"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        check(f"{label} round-trip into another seed's model", ok, detail)

    if callable(getattr(factory, "stack", None)):
        checks += _stack_checks(factory, input_shape, num_classes, params)
    return checks


def _through_safetensors(state: dict) -> dict:
    from safetensors.torch import load, save

    return load(save({k: v.detach().cpu().contiguous() for k, v in state.items()}))


def _taken_keys(factory) -> list[str]:
    """The factory's keyword parameters that a suite's ``[model]`` table keeps for itself."""
    import inspect

    try:
        names = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable: nothing to inspect
        return []
    return [n for n in names if n in MODEL_TABLE_KEYS]


def _stack_checks(factory, input_shape, num_classes: int, params: dict) -> list:
    import torch
    import torch.nn.functional as F

    from benchbench.testing import Check

    checks: list[Check] = []

    def check(name: str, ok, detail: str = "") -> None:
        checks.append(Check(name, bool(ok), "" if ok else detail))

    members = [build(factory, s, input_shape, num_classes, params) for s in SEEDS]
    try:
        stacked = factory.stack(members)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return [Check("stack builds", False, f"{type(exc).__name__}: {exc}")]
    if stacked is None:
        return checks  # declined for these parameters: the members train one by one
    dtype = torch.float64
    stacked = stacked.to(dtype).eval()
    members = [m.to(dtype).eval() for m in members]
    parts = [batch(input_shape, num_classes, seed=10 + i) for i in range(len(members))]
    xs = [p[0].to(dtype) for p in parts]
    x, y = torch.cat(xs), torch.cat([p[1] for p in parts])
    try:
        with torch.no_grad():
            got = stacked(x)
            want = torch.cat([m(xi) for m, xi in zip(members, xs, strict=True)])
        gap = float((got - want).abs().max()) if got.shape == want.shape else float("inf")
        detail = f"logits differ by {gap:.3g}, got shape {tuple(got.shape)}"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        gap, detail = float("inf"), f"{type(exc).__name__}: {exc}"
    check("stack: each member's logits on its rows", gap <= TOL_STACK * _scale(want), detail)
    try:
        same = all(_same_state(dict(stacked.member_state_dict(i)), _state(m))
                   for i, m in enumerate(members))
        detail = "member_state_dict(i) is not member i's state dict"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        same, detail = False, f"{type(exc).__name__}: {exc}"
    check("stack: member_state_dict(i) is member i's state", same, detail)
    if callable(getattr(stacked, "cross_entropy_input_grad", None)):
        xg = [xi.clone().requires_grad_(True) for xi in xs]
        want = torch.cat([torch.autograd.grad(F.cross_entropy(m(xi), yi, reduction="sum"), xi)[0]
                          for m, xi, yi in zip(members, xg, y.chunk(len(xs)), strict=True)])
        got = stacked.cross_entropy_input_grad(x, y)
        gap = float((got - want).abs().max())
        check("stack: cross_entropy_input_grad equals autograd's", gap <= TOL_STACK * _scale(want),
              f"differs by {gap:.3g}")
    if callable(getattr(stacked, "cross_entropy_backward", None)):
        params_ = list(stacked.parameters())
        for p in params_:
            p.grad = None
        stacked.cross_entropy_backward(x, y)
        got = [p.grad.clone() for p in params_]
        for p in params_:
            p.grad = None
        (F.cross_entropy(stacked(x), y, reduction="sum") / ROWS).backward()
        gap = max(float((g - p.grad).abs().max()) for g, p in zip(got, params_, strict=True))
        check("stack: cross_entropy_backward equals autograd's",
              gap <= TOL_STACK * max(_scale(p.grad) for p in params_), f"differs by {gap:.3g}")
    return checks


def check_model(factory, **params) -> list:
    """Run ``model_conformance`` and raise AssertionError naming every failed check."""
    from benchbench.testing import passed

    return passed("model", model_conformance(factory, **params))
