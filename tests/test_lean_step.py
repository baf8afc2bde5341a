"""lean_step: fused Adam's and SGD's step without their bookkeeping, bit-identical to
``opt.step``, and member by member for a stack."""

from __future__ import annotations

import pytest
import torch

from benchbench.regimes.lean_step import lean_step


def train(step_of, kind="adam", **options):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    make = torch.optim.Adam if kind == "adam" else torch.optim.SGD
    opt = make(model.parameters(), lr=0.01 if kind == "adam" else 0.05, fused=True, **options)
    step = step_of(opt)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    for i in range(7):
        opt.zero_grad(set_to_none=i % 2 == 0)  # fresh and reused .grad tensors alike
        torch.nn.functional.cross_entropy(model(x[i:i + 20]), y[i:i + 20]).backward()
        step()
    return model.state_dict(), opt.state_dict()["state"]


@pytest.mark.parametrize("adam", [{}, {"weight_decay": 0.1}, {"maximize": True},
                                  {"betas": (0.5, 0.9), "eps": 1e-3}])
def test_lean_step_is_bit_identical_to_opt_step(adam):
    weights, state = train(lean_step, **adam)
    ref_weights, ref_state = train(lambda opt: opt.step, **adam)
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
    for i, ref in ref_state.items():
        assert all(torch.equal(state[i][k], ref[k]) for k in ("step", "exp_avg", "exp_avg_sq"))


@pytest.mark.parametrize("sgd", [{}, {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": 0.1},
                                 {"momentum": 0.5, "dampening": 0.1}, {"maximize": True},
                                 {"momentum": 0.9, "nesterov": True}])
def test_lean_sgd_is_bit_identical_to_opt_step(sgd):
    # the same kernel on the same tensors: exact on any CPU
    weights, state = train(lean_step, "sgd", **sgd)
    ref_weights, ref_state = train(lambda opt: opt.step, "sgd", **sgd)
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
    assert state.keys() == ref_state.keys()
    for i, ref in ref_state.items():
        assert (state[i]["momentum_buffer"] is None) == (ref["momentum_buffer"] is None)
        if ref["momentum_buffer"] is not None:
            assert torch.equal(state[i]["momentum_buffer"], ref["momentum_buffer"])


# Shapes whose element counts are and are not multiples of every vector width (4 to 16 lanes):
# the digits MLP's last bias (10) is all scalar tail alone but vector lanes inside a stack.
MEMBER_SHAPES = [(1, 10), (32, 64), (1, 7), (3, 5)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_each_member_of_a_stack_steps_exactly_as_its_own_tensor(kind, dtype):
    # Exact on any CPU: with members=S the kernel gets each member's slice as a tensor of its
    # own, so a member's elements take the same (vector or tail) path as the member alone.
    members = 5
    gen = torch.Generator().manual_seed(0)
    stacked = [torch.nn.Parameter(torch.randn(members, *s, generator=gen, dtype=dtype))
               for s in MEMBER_SHAPES]
    alone = [[torch.nn.Parameter(p.detach()[i].clone()) for p in stacked]
             for i in range(members)]

    def make(params):
        if kind == "adam":
            return torch.optim.Adam(params, lr=0.01, weight_decay=0.01, fused=True)
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01, fused=True)

    opt = make(stacked)
    step = lean_step(opt, members=members)
    singles = [make(ps) for ps in alone]
    single_steps = [lean_step(o) for o in singles]
    for _ in range(6):
        for p in stacked:
            p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
        for i, ps in enumerate(alone):
            for p, q in zip(ps, stacked, strict=True):
                p.grad = q.grad[i].clone()
        step()
        for s in single_steps:
            s()
    for i, ps in enumerate(alone):
        for p, q in zip(ps, stacked, strict=True):
            assert torch.equal(p.detach(), q.detach()[i]), (kind, i, tuple(p.shape))
    # the stacked optimiser's state is torch.optim's own, and resumes like it
    assert torch.optim.Adam is not type(opt) or all(
        set(opt.state[p]) == {"step", "exp_avg", "exp_avg_sq"} for p in stacked)


def test_lean_step_leaves_what_it_does_not_cover_to_opt_step():
    params = [torch.nn.Parameter(torch.ones(3))]
    for opt in (torch.optim.SGD(params, lr=0.1),  # not fused
                torch.optim.Adam(params, lr=0.1),  # not fused
                torch.optim.Adam(params, lr=0.1, fused=True, amsgrad=True),
                torch.optim.Adam(params, lr=torch.tensor(0.1), fused=True)):
        assert lean_step(opt) == opt.step


def test_a_parameter_without_gradient_is_skipped_as_opt_step_skips_it():
    def run(step_of):
        torch.manual_seed(0)
        lin, unused = torch.nn.Linear(4, 3), torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.Adam([*lin.parameters(), unused], lr=0.1, fused=True)
        step = step_of(opt)
        for _ in range(3):
            opt.zero_grad()
            lin(torch.randn(5, 4)).square().sum().backward()
            step()
        return [p.detach().clone() for p in (*lin.parameters(), unused)]

    for a, b in zip(run(lean_step), run(lambda opt: opt.step), strict=True):
        assert torch.equal(a, b)
