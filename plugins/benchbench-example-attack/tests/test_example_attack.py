"""Tests of the random_sign attack on its own: offline, tiny tensors, no training."""

from __future__ import annotations

import pytest
import torch
from benchbench_example_attack import RandomSign, register_attacks

from benchbench.attacks.harness import attack_batch

EPS = (0.0, 0.05, 0.3)


@pytest.fixture
def batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 4, 4, generator=gen)
    y = torch.randint(0, 3, (6,), generator=gen)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    return model, x, y


def test_shape_dtype_and_device_follow_x(batch) -> None:
    model, x, y = batch
    for xx in (x, x.double()):
        out = RandomSign().perturb(model, xx, y, eps=EPS)
        assert out.shape == (len(EPS), *x.shape)
        assert out.dtype == xx.dtype and out.device == xx.device


def test_every_coordinate_moves_exactly_eps(batch) -> None:
    model, x, y = batch
    out = RandomSign(seed=1).perturb(model, x, y, eps=EPS)
    for e, adv in zip(EPS, out, strict=True):
        delta = (adv - x).abs()
        assert delta.max() <= e + 1e-6  # inside the L-inf ball
        torch.testing.assert_close(delta, torch.full_like(x, e))  # on its surface: ±eps
    signs = torch.sign(out[-1] - x)
    assert (signs == 1).any() and (signs == -1).any()


def test_eps_zero_is_identity(batch) -> None:
    model, x, y = batch
    out = RandomSign(seed=5).perturb(model, x, y, eps=(0.0,))
    assert torch.equal(out[0], x)


def test_same_seed_same_output_other_seed_differs(batch) -> None:
    model, x, y = batch
    first = RandomSign(seed=3).perturb(model, x, y, eps=EPS)
    again = RandomSign(seed=3).perturb(model, x, y, eps=EPS)
    attack = RandomSign(seed=3)
    twice = [attack.perturb(model, x, y, eps=EPS) for _ in range(2)]
    other = RandomSign(seed=4).perturb(model, x, y, eps=EPS)
    assert torch.equal(first, again)
    assert torch.equal(twice[0], twice[1])  # stateless: a call does not advance a stream
    assert not torch.equal(first, other)


def test_unaffected_by_global_rng(batch) -> None:
    model, x, y = batch
    torch.manual_seed(0)
    first = RandomSign(seed=2).perturb(model, x, y, eps=EPS)
    torch.manual_seed(1)
    assert torch.equal(first, RandomSign(seed=2).perturb(model, x, y, eps=EPS))


def test_x_not_modified_in_place(batch) -> None:
    model, x, y = batch
    before = x.clone()
    out = RandomSign().perturb(model, x, y, eps=EPS)
    assert torch.equal(x, before)
    out.add_(1.0)  # the result shares no storage with x
    assert torch.equal(x, before)


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True])
def test_bad_seed_is_rejected_with_what_is_allowed(seed) -> None:
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        RandomSign(seed=seed)


def test_passes_the_harness_threat_model(batch) -> None:
    model, x, y = batch
    result = attack_batch(RandomSign(seed=1), model, x, y, eps=EPS, bounds=(0.0, 1.0))
    assert result.x_adv.shape == (len(EPS), *x.shape)
    assert ((result.x_adv - x).abs() <= torch.tensor(EPS).view(-1, 1, 1, 1, 1) + 1e-6).all()
    assert result.x_adv.min() >= 0.0 and result.x_adv.max() <= 1.0
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).sum().item()
    assert result.n_correct[0] == clean  # eps 0 changes nothing


def test_hook_registers_random_sign() -> None:
    seen = {}
    register_attacks(register=lambda name, obj, *, summary=None: seen.update({name: obj}))
    assert seen == {"random_sign": RandomSign}
    assert RandomSign.norm == "linf"


def test_passes_benchbench_conformance(benchbench_check_attack):
    """The kit every attack plugin should run: shapes, ball, bounds, purity, determinism."""
    from benchbench_example_attack import RandomSign

    assert len(benchbench_check_attack(RandomSign, seed=3)) >= 13
