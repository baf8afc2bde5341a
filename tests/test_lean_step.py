"""lean_step: fused Adam's step without its bookkeeping, bit-identical to ``opt.step``."""

from __future__ import annotations

import pytest
import torch

from benchbench.regimes.lean_step import lean_step


def train(step_of, **adam):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.01, fused=True, **adam)
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


def test_lean_step_leaves_what_it_does_not_cover_to_opt_step():
    params = [torch.nn.Parameter(torch.ones(3))]
    for opt in (torch.optim.SGD(params, lr=0.1, fused=True),
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
