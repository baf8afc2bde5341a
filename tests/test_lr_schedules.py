"""Learning-rate schedules (``lr_schedule``): torch's own schedulers, per member, resumable.

The learning rates the harness trains with are compared, step by step, with those of torch's
scheduler built by hand on a plain optimiser: exactly, since both are the same scheduler code on
the same floats.
"""

from __future__ import annotations

import functools
import io
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.optim import lr_scheduler

from benchbench.engine.training import Trainer, shuffles
from benchbench.models.mlp import build_mlp
from benchbench.models.stacked_mlp import stack_mlps
from benchbench.regimes.context import TrainContext
from benchbench.regimes.schedules import parse_schedule
from benchbench.regimes.standard import StandardTraining
from benchbench.testing import tiny_data

ROWS, BATCH, EPOCHS = 96, 32, 4
BATCHES = ROWS // BATCH


def mlp(seed: int, dtype=torch.float64):
    torch.manual_seed(seed)
    return build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16]).to(dtype)


def regime(schedule, *, lr=0.01, optimizer="sgd", momentum=0.9, epochs=EPOCHS):
    return StandardTraining(lr=lr, optimizer=optimizer, momentum=momentum, epochs=epochs,
                            batch_size=BATCH, dtype="float64", lr_schedule=schedule)


@functools.cache
def data():
    return tiny_data(ROWS, dtype=torch.float64)


def trainer(regimes, seeds, *, stacked: bool):
    x, y = data()
    members = [mlp(s) for s in seeds]
    model = stack_mlps(members) if stacked else members[0]
    ctx = TrainContext(len(seeds), tuple(seeds), (0.0, 1.0), torch.float64, "cpu",
                       log=lambda _: None)
    return Trainer(regimes[0], model=model, x=x, y=y, seeds=list(seeds), ctx=ctx,
                   stacked=stacked, regimes=regimes if len(regimes) > 1 else None)


def trained_lrs(t: Trainer) -> list[list[float]]:
    """The lr of every parameter group at every step the trainer takes."""
    seen = []
    craft = t.regime.craft

    def spy(ctx, model, x, y):
        seen.append(t.schedule.lrs() if t.schedule else [g["lr"] for g in t.opt.param_groups])
        return craft(ctx, model, x, y)

    t.regime.craft = spy
    list(t.epochs())
    return seen


def torch_lrs(make, lr: float, *, per_batch: bool) -> list[float]:
    """torch's scheduler ``make(opt)`` on its own SGD optimiser, stepped as training steps it."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)
    sched = make(opt)
    out = []
    for _ in range(EPOCHS):
        for _ in range(BATCHES):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            if per_batch:
                sched.step()
        if not per_batch:
            sched.step()
    return out


TOTAL = EPOCHS * BATCHES
CASES = [
    ({"name": "step", "milestones": [1, 3], "gamma": 0.5}, False,
     lambda o: lr_scheduler.MultiStepLR(o, milestones=[1, 3], gamma=0.5)),
    ({"name": "piecewise", "milestones": [0.5, 0.75]}, False,
     lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 3], gamma=0.1)),
    ("cosine", False, lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=EPOCHS)),
    ({"name": "cosine", "lr_min": 1e-4}, False,
     lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=EPOCHS, eta_min=1e-4)),
    ({"name": "cyclic", "peak": 0.4}, True,
     lambda o: lr_scheduler.CyclicLR(o, base_lr=0.0, max_lr=o.param_groups[0]["lr"],
                                     step_size_up=0.4 * TOTAL, step_size_down=0.6 * TOTAL,
                                     cycle_momentum=False)),
    ("one_cycle", True,
     lambda o: lr_scheduler.OneCycleLR(o, max_lr=o.param_groups[0]["lr"], total_steps=TOTAL,
                                       cycle_momentum=False)),
    ({"name": "one_cycle", "anneal": "linear", "three_phase": True, "pct_start": 0.25}, True,
     lambda o: lr_scheduler.OneCycleLR(o, max_lr=o.param_groups[0]["lr"], total_steps=TOTAL,
                                       anneal_strategy="linear", three_phase=True,
                                       pct_start=0.25, cycle_momentum=False)),
]


@pytest.mark.parametrize(("spec", "per_batch", "make"), CASES)
def test_each_schedule_trains_with_torchs_own_learning_rates(spec, per_batch, make):
    ours = [lrs[0] for lrs in trained_lrs(trainer([regime(spec)], [0], stacked=False))]
    assert ours == torch_lrs(make, 0.01, per_batch=per_batch)
    assert len(set(ours)) > 1  # it did change the lr


@pytest.mark.parametrize(("spec", "per_batch", "make"), CASES)
def test_members_of_a_stack_follow_the_schedule_from_their_own_lr(spec, per_batch, make):
    lrs = [0.01, 0.03, 0.03]  # two runs of members: groups 0.01 and 0.03
    t = trainer([regime(spec, lr=lr) for lr in lrs], [0, 1, 2], stacked=True)
    groups = trained_lrs(t)
    assert [g[0] for g in groups] == torch_lrs(make, 0.01, per_batch=per_batch)
    assert [g[1] for g in groups] == torch_lrs(make, 0.03, per_batch=per_batch)


def test_cyclic_momentum_cycles_as_torchs_for_each_member():
    spec = {"name": "cyclic", "cycle_momentum": True}

    def make(o):
        return lr_scheduler.CyclicLR(o, base_lr=0.0, max_lr=o.param_groups[0]["lr"],
                                     step_size_up=TOTAL / 2, step_size_down=TOTAL / 2)

    t = trainer([regime(spec, lr=lr) for lr in (0.01, 0.02)], [0, 1], stacked=True)
    momenta = []
    craft = t.regime.craft
    t.regime.craft = lambda *a: (momenta.append([g["momentum"] for g in
                                                  t.schedule.target.param_groups]), craft(*a))[1]
    list(t.epochs())
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01, momentum=0.9)
    sched, expected = make(opt), []
    for _ in range(TOTAL):
        expected.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    assert [m[0] for m in momenta] == expected == [m[1] for m in momenta]
    assert min(expected) == pytest.approx(0.8) and max(expected) == 0.9


def test_the_lean_adam_step_follows_the_schedule_like_torchs_own_loop():
    """The harness's Adam step (``lean_step``: torch's fused kernel without ``opt.step``) with a
    one-cycle schedule: the weights of a plain torch loop with ``opt.step`` and torch's
    scheduler, bit for bit (the same kernel on the same numbers)."""
    spec = "one_cycle"
    t = trainer([regime(spec, optimizer="adam", momentum=0.0)], [0], stacked=False)
    list(t.epochs())
    model = mlp(0)
    x, y = data()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=TOTAL, cycle_momentum=False)
    model.train()
    for perm in shuffles(ROWS, 0, EPOCHS):
        for start in range(0, ROWS, BATCH):
            idx = perm[start:start + BATCH]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            sched.step()
    for k, v in model.state_dict().items():
        assert torch.equal(t.model.state_dict()[k], v), k


def test_wongs_mnist_cyclic_schedule_is_ours_one_batch_ahead():
    """locuslab/fast_adversarial ``MNIST/train_mnist.py``: ``lr_schedule(epoch + (i + 1) /
    len(train_loader))`` with ``np.interp([t], [0, epochs * 2 // 5, epochs], [0, lr_max, 0])``;
    ``cyclic`` with ``peak = 0.4`` (10 epochs: 2 * 10 // 5 = 4) takes its batch ``k + 1`` value
    at batch ``k`` (two float64 formulas for one triangle: a few roundings of lr_max apart)."""
    epochs, lr_max = 10, 5e-3
    t = trainer([regime({"name": "cyclic", "peak": 0.4}, lr=lr_max, epochs=epochs)], [0],
                stacked=False)
    ours = [lrs[0] for lrs in trained_lrs(t)]
    theirs = [np.interp([e + (i + 1) / BATCHES], [0, epochs * 2 // 5, epochs], [0, lr_max, 0])[0]
              for e in range(epochs) for i in range(BATCHES)]
    assert ours[0] == 0.0
    assert max(abs(a - b) for a, b in zip(ours[1:], theirs, strict=False)) <= 8 * 2**-53 * lr_max


def _resumable(state: dict) -> dict:
    """The state through ``torch.save`` and a ``weights_only`` load, as resume files go."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("spec", ["cosine", {"name": "step", "milestones": [1]},
                                  {"name": "cyclic", "cycle_momentum": True}, "one_cycle"])
def test_two_epochs_equal_one_and_a_resume_bit_for_bit(spec, stacked):
    lrs = [0.01, 0.02] if stacked else [0.01]

    def make():
        return trainer([regime(spec, lr=lr, epochs=2) for lr in lrs], list(range(len(lrs))),
                       stacked=stacked)

    whole = make()
    list(whole.epochs())
    first = make()
    epochs = first.epochs()
    assert next(epochs) == 1
    saved = _resumable({"model": first.model.state_dict(), "trainer": first.state()})
    resumed = make()
    resumed.model.load_state_dict(saved["model"])
    resumed.load_state(saved["trainer"], 1, [[] for _ in lrs])
    assert list(resumed.epochs()) == [2]
    for k, v in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[k], v), k
    assert resumed.schedule.lrs() == whole.schedule.lrs()


@pytest.mark.parametrize(("value", "message"), [
    ("linear", "lr_schedule.name must be one of constant, step, cosine, cyclic, one_cycle"),
    (3, "lr_schedule must be one of constant"),
    ({"name": "step"}, "lr_schedule.milestones must be a non-empty list of epochs from 1 to 9"),
    ({"name": "step", "milestones": [54, 74]}, "54 is epoch 54, after which no epoch trains"),
    ({"name": "step", "milestones": [0.51, 5]}, "lists epoch 5 twice"),
    ({"name": "step", "milestones": [2.5]}, "got 2.5 in it"),
    ({"name": "step", "milestones": [2], "gamma": 0}, "lr_schedule.gamma must be a finite"),
    ({"name": "cosine", "gamma": 0.1}, "lr_schedule.gamma: unknown for the cosine schedule; "
                                       "allowed: lr_min"),
    ({"name": "cyclic", "peak": 1.0}, "lr_schedule.peak must be a fraction of the run"),
    ({"name": "cyclic", "cycle_momentum": "yes"}, "lr_schedule.cycle_momentum must be true"),
    ({"name": "one_cycle", "anneal": "cosine"}, "lr_schedule.anneal must be one of cos, linear"),
    ({"name": "one_cycle", "div_factor": math.inf}, "lr_schedule.div_factor must be a finite"),
])
def test_bad_schedules_are_one_line_errors(value, message):
    with pytest.raises(ValueError) as caught:
        parse_schedule(value, 10)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_constant_is_no_scheduler_and_a_bad_key_fails_the_suite_before_running(tmp_path):
    from benchbench.engine.runner import validate_suite
    from benchbench.errors import SuiteError
    from benchbench.plugins import load_registry
    from benchbench.suite.load import load_suite

    assert parse_schedule("constant", 5) is None and parse_schedule({"name": "constant"}, 5) is None
    assert trainer([regime("constant")], [0], stacked=False).schedule is None
    path = tmp_path / "s.toml"
    path.write_text('[suite]\nname = "s"\nseeds = 1\n[dataset]\nname = "digits"\n'
                    'train = "train[:64]"\ntest = "test[:32]"\n[model]\nname = "mlp"\n'
                    '[regime]\nname = "standard"\nepochs = 3\n'
                    'lr_schedule = { name = "step", milestones = [7] }\n')
    registry = load_registry()
    with pytest.raises(SuiteError) as caught:
        validate_suite(load_suite(path, registry), registry)
    text = str(caught.value)
    assert "regime" in text and "lr_schedule.milestones" in text and "\n" not in text
