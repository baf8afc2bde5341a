"""MemberwiseOptimizer: each member of a stacked tensor stepped as its own torch optimizer."""

from __future__ import annotations

import pytest
import torch

from benchbench.regimes.memberwise import MemberwiseOptimizer

HYPERS = {
    "adam": [{"lr": 0.01, "weight_decay": 0.0}, {"lr": 0.01, "weight_decay": 0.0},
             {"lr": 0.003, "weight_decay": 0.1}],
    "sgd": [{"lr": 0.1, "weight_decay": 0.0, "momentum": 0.9},
            {"lr": 0.05, "weight_decay": 0.01, "momentum": 0.0},
            {"lr": 0.05, "weight_decay": 0.01, "momentum": 0.0}],
}


def own_optimizer(kind, params, h):
    if kind == "adam":
        return torch.optim.Adam(params, lr=h["lr"], weight_decay=h["weight_decay"], fused=True)
    return torch.optim.SGD(params, lr=h["lr"], momentum=h["momentum"],
                           weight_decay=h["weight_decay"], fused=True)


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_each_member_is_bit_identical_to_its_own_optimizer(kind):
    hypers = HYPERS[kind]
    torch.manual_seed(0)
    stacked = [torch.nn.Parameter(torch.randn(3, 4, 5)), torch.nn.Parameter(torch.randn(3, 1, 4))]
    alone = [[torch.nn.Parameter(p[i].detach().clone()) for p in stacked] for i in range(3)]
    opt = MemberwiseOptimizer(stacked, hypers, kind)
    assert [(lo, hi) for lo, hi, _ in opt.runs] == ([(0, 2), (2, 3)] if kind == "adam"
                                                     else [(0, 1), (1, 3)])
    own = [own_optimizer(kind, params, h) for params, h in zip(alone, hypers, strict=True)]
    for _ in range(5):
        grads = [torch.randn_like(p) for p in stacked]
        for p, g in zip(stacked, grads, strict=True):
            p.grad = g
        opt.step()
        for i, (params, o) in enumerate(zip(alone, own, strict=True)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g[i].clone()
            o.step()
    for i, params in enumerate(alone):
        for p, q in zip(stacked, params, strict=True):
            assert torch.equal(p[i], q), (kind, i)


def test_rejects_what_it_cannot_step():
    with pytest.raises(ValueError, match="kind must be one of adam, sgd"):
        MemberwiseOptimizer([torch.zeros(2, 3)], [{}, {}], "rmsprop")
    with pytest.raises(ValueError, match="2 members in dim 0"):
        MemberwiseOptimizer([torch.zeros(3, 3)], [{}, {}], "adam")


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_a_parameter_without_gradient_is_skipped(kind):
    hypers = HYPERS[kind][:2]
    used, unused = torch.nn.Parameter(torch.ones(2, 3)), torch.nn.Parameter(torch.ones(2, 4))
    opt = MemberwiseOptimizer([used, unused], hypers, kind)
    own = [own_optimizer(kind, [torch.nn.Parameter(torch.ones(3))], h) for h in hypers]
    for _ in range(3):
        grad = torch.randn(2, 3)
        used.grad = grad
        opt.step()
        for i, o in enumerate(own):
            o.param_groups[0]["params"][0].grad = grad[i].clone()
            o.step()
    assert torch.equal(unused, torch.ones(2, 4))
    for i, o in enumerate(own):
        assert torch.equal(used[i], o.param_groups[0]["params"][0])
    unused.grad, used.grad = None, None
    opt.step()  # nothing to do is fine
