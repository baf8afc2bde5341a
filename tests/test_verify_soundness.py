"""Soundness of the bounds, tested so that they cannot pass by accident.

On random small networks (every layer kind) and points, no input found by dense sampling
(uniform points and corners of the domain) or by targeted PGD on every margin ever has a
margin below a proved lower bound, nor a pre-activation outside its intermediate bounds; and
the bounds are not vacuous (they are finite and at eps 0 equal the margins). Per example,
certified <= exact <= worst attack <= clean. A property with a built-in counterexample is
never proved. A hypothesis fuzz test draws networks, points, eps, norms and methods.

Tolerance: a bound and a sampled margin are both float64 evaluations of the same function by
different sums (rounding ~1e-15 at these scales); 1e-10 absorbs that, never a real violation
(those show up at 1e-3 and more).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from benchbench.attacks.pgd import PGD
from benchbench.testing import tiny_data, tiny_model
from benchbench.testing_verifiers import SHAPE, layer_nets, planted
from benchbench.verify import NOT_ROBUST, ROBUST, Normalize
from benchbench.verify.api import bound_chunk, margin_bounds, verdicts, verify
from benchbench.verify.attack import margin_attack, misclassified
from benchbench.verify.bounds import build_network
from benchbench.verify.domain import make_domain


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small products: one thread is several times faster than two on a busy machine
    (and strict MKL mode makes the bits the same); the setting is restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


ATOL = 1e-10
METHODS = ("ibp", "crown_ibp", "crown")


def deep_cnn():
    return nn.Sequential(
        Normalize(torch.full((1, 1, 1), 0.5), torch.full((1, 1, 1), 0.3)),
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 2, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 12),
        nn.BatchNorm1d(12), nn.ReLU(), nn.Linear(12, 12), nn.ReLU(), nn.Linear(12, 4))


NETS = {**{k: f for k, f in layer_nets().items() if k in ("Linear", "Conv2d", "AvgPool2d",
                                                           "BatchNorm1d", "Normalize")},
        "deep_cnn": deep_cnn}


def build(name: str, seed: int):
    torch.manual_seed(seed)
    model = NETS[name]().double()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.3, 2.0)
                m.weight.uniform_(-1.5, 1.5)  # negative scales too
    return model.eval()


def batch(model, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, *SHAPE), generator=g, dtype=torch.float64)
    with torch.no_grad():
        y = model(x).argmax(1)
    return x, y


def sample(x, eps: float, norm: str, n: int, g):
    """``[N, n, *x]`` points of each example's domain: uniform, and corners (L-inf) or points
    on the sphere (L2), within [0, 1]."""
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    u = torch.rand((len(x), n, *x.shape[1:]), generator=g, dtype=x.dtype)
    if norm == "linf":
        u[:, : n // 4] = u[:, : n // 4].round()
        return lo.unsqueeze(1) + u * (hi - lo).unsqueeze(1)
    d = torch.randn(u.shape, generator=g, dtype=x.dtype).flatten(2)
    radius = eps * u.flatten(2)[..., :1] ** (1 / d.shape[2])
    radius[:, : n // 4] = eps
    d = d / d.norm(dim=2, keepdim=True) * radius
    return (x.unsqueeze(1) + d.view_as(u)).clamp(0, 1)


def margins_of(model, pts, y):
    """``[N, n, K]``: ``logit_y - logit_j`` at each point."""
    with torch.no_grad():
        out = model(pts.flatten(0, 1)).view(*pts.shape[:2], -1)
    return out.gather(2, y.view(-1, 1, 1).expand(-1, out.shape[1], 1)) - out


def lowest_margins(model, x, y, eps, norm, *, n=1000, seed=0, steps=40):
    """``[N, K]``: the smallest margin found for each target by sampling and PGD."""
    g = torch.Generator().manual_seed(seed)
    found = margins_of(model, sample(x, eps, norm, n, g), y).amin(1)
    attacked, _ = margin_attack(model, x, y, eps=eps, bounds=(0, 1), norm=norm, steps=steps)
    return torch.minimum(found, attacked)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(NETS))
def test_no_sampled_or_pgd_input_beats_a_bound(name, norm):
    model = build(name, 0)
    x, y = batch(model, 6, 1)
    for eps in (0.01, 0.05, 0.2):
        found = lowest_margins(model, x, y, eps, norm)
        for method in METHODS:
            lower = margin_bounds(model, x, y, eps=eps, method=method, norm=norm)
            finite = torch.isfinite(lower)
            assert bool((lower[finite] <= found[finite] + ATOL).all()), (name, norm, eps, method)
            assert int(finite.sum()) == len(x) * (lower.shape[1] - 1)


@pytest.mark.parametrize("name", ["deep_cnn", "BatchNorm1d"])
def test_every_sampled_preactivation_lies_in_its_intermediate_bounds(name):
    model = build(name, 2)
    x, y = batch(model, 4, 3)
    net = build_network(model, x.shape[1:])
    g = torch.Generator().manual_seed(4)
    for method in METHODS:
        for eps in (0.02, 0.1):
            dom = make_domain(x, eps, (0, 1))
            _, layers = bound_chunk(net, dom, y, method)
            pts = sample(x, eps, "linf", 500, g)  # [N, n, *]
            z = pts.flatten(0, 1)
            from benchbench.verify.ops import chain_forward

            for k, (lo, hi) in enumerate(layers):
                z = chain_forward(net.chains[k], z)
                pre = z.view(len(x), -1, *z.shape[1:])
                assert bool((pre >= lo.unsqueeze(1) - ATOL).all()), (method, eps, k)
                assert bool((pre <= hi.unsqueeze(1) + ATOL).all()), (method, eps, k)
                z = z.clamp(min=0)


def test_at_eps_zero_every_bound_is_the_margin():
    model = build("deep_cnn", 5)
    x, y = batch(model, 8, 6)
    exact = margins_of(model, x.unsqueeze(1), y)[:, 0]
    exact.scatter_(1, y.unsqueeze(1), float("inf"))
    for method in METHODS:
        for norm in ("linf", "l2"):
            lower = margin_bounds(model, x, y, eps=0.0, method=method, norm=norm)
            finite = torch.isfinite(exact)
            assert torch.allclose(lower[finite], exact[finite], rtol=0, atol=1e-12)


def test_ibp_bounds_only_loosen_as_eps_grows():
    model = build("deep_cnn", 7)
    x, y = batch(model, 8, 8)
    previous = None
    for eps in (0.0, 0.01, 0.03, 0.1, 0.3):
        lower = margin_bounds(model, x, y, eps=eps, method="ibp")
        if previous is not None:
            finite = torch.isfinite(lower)
            assert bool((lower[finite] <= previous[finite] + ATOL).all())
        previous = lower


def test_certified_exact_attack_clean_per_example():
    """certified (CROWN) => exact robust (mip) => no PGD success => clean correct, per
    example; and each not-robust verdict's counterexample misclassifies."""
    x, y = tiny_data(40, dtype=torch.float64)
    model = tiny_model(dtype=torch.float64)
    eps = (0.02, 0.05, 0.1)
    certified = verify(model, x, y, eps=eps, method="crown")
    exact = verdicts(model, x, y, eps=eps, method="mip", time_limit=10)
    torch.manual_seed(0)
    pgd = PGD(steps=50, restarts=3, loss="margin").perturb(model, x, y, eps=eps)
    with torch.no_grad():
        clean = model(x).argmax(1) == y
        survives = torch.stack([model(p).argmax(1) == y for p in pgd])
    robust = exact == ROBUST
    assert bool((certified <= robust).all())
    assert bool((robust <= survives).all())
    assert bool((survives <= clean).all())
    assert bool(((exact == NOT_ROBUST) | survives).all())  # a PGD success is never robust
    assert int(certified.sum()) < int(robust.sum()) < len(x) * len(eps)  # not vacuous


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_a_property_with_a_built_in_counterexample_is_never_proved(norm):
    model, x, y, eps = planted()
    assert not bool(misclassified(model, x, y))
    corner = x.clone()
    corner[0, 0, 0, 0] += eps
    assert bool(misclassified(model, corner, y))  # the counterexample, 1e-4 past the boundary
    for method in METHODS:
        assert not bool(verify(model, x, y, eps=[eps], method=method, norm=norm).any())
        assert bool(verify(model, x, y, eps=[0.01], method=method, norm=norm).all())
    if norm == "linf":
        assert int(verdicts(model, x, y, eps=[eps], method="mip")[0, 0]) == NOT_ROBUST


def test_float32_models_proofs_survive_float32_attacks():
    x, y = tiny_data(24)
    model = tiny_model()
    for eps in (0.02, 0.05):
        proved = verify(model, x, y, eps=[eps], method=["crown", "ibp"])[0]
        assert 0 < int(proved.sum()) < len(x)
        torch.manual_seed(1)
        adv = PGD(steps=30, restarts=2, loss="margin").perturb(model, x, y, eps=[eps])[0]
        assert bool((~proved | ~misclassified(model, adv, y)).all())
        found = lowest_margins(model, x, y, eps, "linf", n=300, steps=20)
        lower = margin_bounds(model, x, y, eps=eps, method="crown")
        finite = torch.isfinite(lower)
        # the float32 model's margins exceed float64 bounds up to float32 rounding (1e-5 here)
        assert bool((lower[finite] <= found[finite].double() + 1e-5).all())


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(NETS)), seed=st.integers(0, 10_000),
       eps=st.floats(0.0, 0.4), norm=st.sampled_from(["linf", "l2"]),
       method=st.sampled_from(METHODS))
def test_fuzz_bounds_are_sound(name, seed, eps, norm, method):
    model = build(name, seed)
    x, y = batch(model, 3, seed + 1)
    lower = margin_bounds(model, x, y, eps=eps, method=method, norm=norm)
    found = lowest_margins(model, x, y, eps, norm, n=200, seed=seed, steps=10)
    finite = torch.isfinite(lower)
    assert bool((lower[finite] <= found[finite] + ATOL).all())
