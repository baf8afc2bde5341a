"""mip agrees with brute force on tiny networks, its MILP's minimum is the exact minimum, and
what reaches the solver, what it answers and what counts as a counterexample are as promised.

The brute force: a 2-8-2 ReLU network is piecewise linear on the plane, so its margin's
minimum over a box is attained at a vertex of the arrangement of its 8 ReLU lines within the
box (box corners, lines crossing the box's edges, two lines crossing inside). Evaluating every
such vertex gives the exact minimum (up to float64 rounding, ~1e-15); a 201 x 201 grid search
is the cross-check (never below the exact minimum, and above it by at most the margin's
Lipschitz constant times the grid step).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from benchbench.testing import tiny_data, tiny_model
from benchbench.verify import NOT_ROBUST, ROBUST, UNKNOWN, mip
from benchbench.verify.api import threshold
from benchbench.verify.attack import misclassified
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


def net_2_8_2(seed: int):
    """Random weights whose 8 ReLU lines all cross the unit square (through random points of
    it), so that the boxes of the tests cut many linear regions."""
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2)).double().eval()
    with torch.no_grad():
        w = torch.randn((8, 2), generator=g, dtype=torch.float64) * 3
        through = torch.rand((8, 2), generator=g, dtype=torch.float64)
        model[0].weight.copy_(w)
        model[0].bias.copy_(-(w * through).sum(1))
        model[2].weight.copy_(torch.randn((2, 8), generator=g, dtype=torch.float64))
        model[2].bias.copy_(torch.randn(2, generator=g, dtype=torch.float64) * 0.1)
    return model


def margin(model, pts, y: int):
    with torch.no_grad():
        out = model(torch.as_tensor(pts, dtype=torch.float64))
    return (out[:, y] - out[:, 1 - y]).numpy()


def vertices(model, lo, hi):
    """Every vertex of the box cut by the first layer's lines ``w . x + b = 0``."""
    W, b = model[0].weight.detach().numpy(), model[0].bias.detach().numpy()
    pts = [np.array(c) for c in itertools.product(*zip(lo, hi, strict=True))]
    for (w, c) in zip(W, b, strict=True):
        for axis, value in itertools.product((0, 1), (lo, hi)):
            other = 1 - axis
            if abs(w[other]) > 1e-15:
                p = np.empty(2)
                p[axis] = value[axis]
                p[other] = -(c + w[axis] * value[axis]) / w[other]
                pts.append(p)
    for i, j in itertools.combinations(range(len(W)), 2):
        A = np.stack([W[i], W[j]])
        if abs(np.linalg.det(A)) > 1e-12:
            pts.append(np.linalg.solve(A, -np.array([b[i], b[j]])))
    pts = np.array([p for p in pts if np.all(p >= lo - 1e-12) and np.all(p <= hi + 1e-12)])
    return np.clip(pts, lo, hi)


def exact_min(model, x, y, eps):
    lo, hi = np.clip(x - eps, 0, 1), np.clip(x + eps, 0, 1)
    return float(margin(model, vertices(model, lo, hi), y).min()), lo, hi


def test_vertex_minimum_agrees_with_grid_search():
    model = net_2_8_2(0)
    x, eps = np.array([0.4, 0.6]), 0.2
    m, lo, hi = exact_min(model, x, 0, eps)
    g = np.stack(np.meshgrid(np.linspace(lo[0], hi[0], 201), np.linspace(lo[1], hi[1], 201)),
                 -1).reshape(-1, 2)
    grid = float(margin(model, g, 0).min())
    W1, W2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    lipschitz = np.abs((W2[0] - W2[1])[:, None] * W1).sum()  # L1 bound on the gradient's norm
    step = float((hi - lo).max()) / 200
    assert m <= grid + 1e-12 and grid - m <= lipschitz * step / 2 + 1e-12


def no_attack(model, x, y, *, eps, bounds, targets=None, start=None, **kwargs):
    """An attack that finds nothing: its points are the starts, its margins unknown."""
    K = int(model(x[:1]).shape[1])
    points = (x if start is None else start).unsqueeze(1).repeat(1, K, *[1] * (x.dim() - 1))
    return torch.full((len(x), K), float("inf"), dtype=torch.float64), points


def test_mip_agrees_with_brute_force(monkeypatch):
    """With no attack before it, the solver decides every example CROWN does not prove: 6
    random networks, 16 points each, 4 eps; every verdict matches the vertex minimum."""
    from benchbench.verify import attack

    monkeypatch.setattr(attack, "margin_attack", no_attack)
    decided = {}
    for seed in range(6):
        model = net_2_8_2(seed)
        g = torch.Generator().manual_seed(seed)
        x = torch.rand((16, 2), generator=g, dtype=torch.float64)
        with torch.no_grad():
            y = model(x).argmax(1)
        thr = threshold(model, x)
        for eps in (0.05, 0.15, 0.3, 0.5):
            result = mip.mip_verdicts(model, x, y, eps=eps, time_limit=10)
            for i in range(len(x)):
                m, lo, hi = exact_min(model, x[i].numpy(), int(y[i]), eps)
                code, where = int(result.codes[i]), (seed, eps, i, m, result.stage[i])
                assert code != UNKNOWN, where
                if m > float(thr[i]) + 1e-9:
                    assert code == ROBUST, where
                elif m < -1e-9:
                    assert code == NOT_ROBUST, where
                if code == NOT_ROBUST:
                    z = result.counterexamples[i].numpy()
                    assert np.all(z >= lo) and np.all(z <= hi)
                    assert margin(model, z[None], int(y[i]))[0] < 0
                if result.stage[i] == "mip":
                    decided[code] = decided.get(code, 0) + 1
    assert decided.get(ROBUST, 0) >= 5 and decided.get(NOT_ROBUST, 0) >= 5, decided


@pytest.mark.parametrize("seed", range(4))
def test_milp_minimum_is_the_exact_minimum(seed):
    """The MILP minimising the margin with no bound on it reaches the vertex minimum (HiGHS's
    tolerances: 1e-6 absolute on this scale)."""
    from benchbench.verify.crown import layer_bounds

    model = net_2_8_2(seed)
    x = torch.tensor([[0.3, 0.7]], dtype=torch.float64)
    y = int(model(x).argmax(1))
    net = build_network(model, (2,))
    for eps in (0.05, 0.25):
        dom = make_domain(x, eps, (0, 1))
        layers, _ = layer_bounds(net, dom)
        program = mip._Program(mip._dense_layers(net),
                               [(lo[0].numpy(), hi[0].numpy()) for lo, hi in layers],
                               dom.lower[0].numpy(), dom.upper[0].numpy())
        c = np.eye(2)[y] - np.eye(2)[1 - y]
        status, point = program.solve(c, 1e9, 10.0, minimise=True)
        assert status == "feasible"
        m, _, _ = exact_min(model, x[0].numpy(), y, eps)
        assert abs(margin(model, point[None], y)[0] - m) < 1e-6


@pytest.fixture(scope="module")
def digits():
    x, y = tiny_data(30, dtype=torch.float64)
    return tiny_model(dtype=torch.float64), x, y


def test_only_undecided_examples_reach_the_solver(digits, monkeypatch):
    model, x, y = digits
    built = []
    init = mip._Program.__init__

    def spy(self, dense, layers, lower, upper):
        built.append(lower.copy())
        init(self, dense, layers, lower, upper)

    monkeypatch.setattr(mip._Program, "__init__", spy)
    result = mip.mip_verdicts(model, x, y, eps=0.1, time_limit=10)
    stages = result.stage
    assert len(built) == stages.count("mip") + stages.count("timeout") + stages.count(
        "unchecked") and {"bounds", "attack"} <= set(stages)
    dom = make_domain(x, 0.1, (0, 1))
    solved = [i for i, s in enumerate(stages) if s == "mip"]
    assert [np.array_equal(b, dom.lower[i].flatten().numpy())
            for b, i in zip(built, solved, strict=True)] == [True] * len(solved)


def test_a_solver_point_the_model_classifies_correctly_is_no_counterexample(digits,
                                                                             monkeypatch):
    model, x, y = digits

    def solve(self, c_row, rhs, time_limit, *, minimise=False):
        return "feasible", x_i.copy()  # the clean input itself

    monkeypatch.setattr(mip._Program, "solve", solve)
    wrongs = []
    for i in range(len(x)):
        x_i = x[i].flatten().numpy()
        r = mip.mip_verdicts(model, x[i:i + 1], y[i:i + 1], eps=0.1, attack_steps=1,
                             attack_restarts=1)
        wrongs.append((r.stage[0], int(r.codes[0])))
    reached = [c for s, c in wrongs if s in ("mip", "unchecked")]
    assert reached and all(c == UNKNOWN for c in reached)  # never "not robust"


def test_running_out_of_time_is_unknown(digits, monkeypatch):
    model, x, y = digits
    monkeypatch.setattr(mip._Program, "solve", lambda *a, **k: ("limit", None))
    r = mip.mip_verdicts(model, x, y, eps=0.1, attack_steps=1, attack_restarts=1)
    assert "timeout" in r.stage
    assert all(int(c) == UNKNOWN for c, s in zip(r.codes, r.stage, strict=True)
               if s == "timeout")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_digits_decided_and_counterexamples_checked_in_the_models_dtype(digits, dtype):
    _, x, y = digits
    model, x = tiny_model(dtype=dtype), x.to(dtype)
    r = mip.mip_verdicts(model, x, y, eps=0.1, time_limit=10)
    assert int((r.codes == UNKNOWN).sum()) == 0, r.stage
    broken = r.codes == NOT_ROBUST
    assert bool(misclassified(model, r.counterexamples[broken], y[broken]).all())
    assert r.counterexamples.dtype == dtype
    assert bool(((r.counterexamples[broken] - x[broken]).abs() <= 0.1 + 1e-7).all())
