"""CROWN's faster paths give the bounds of the plain ones (benchbench/verify/crown.py).

* ``_tighten`` in blocks of rows (``BLOCK``) equals one block for all rows;
* ``_select`` from a convolution chain's dense matrix (``DENSE``) equals the adjoint of
  one-hot rows;
* ``_adjoint_live`` (only the columns of ReLUs not stably inactive multiplied) equals
  ``chain_adjoint`` of the whole matrix.

Tolerance: the same products summed in other orders (a block's or a gather's matrix product
is blocked differently by BLAS): 1e-12 relative to the largest bound, far above float64
rounding of these sums (~1e-15) and far below what a wrong row or column would move (1e-2).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbench.verify import crown
from benchbench.verify.api import margin_bounds
from benchbench.verify.ops import Linear, chain_adjoint


def _mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 30),
                          nn.ReLU(), nn.Linear(30, 5))
    with torch.no_grad():  # most first-layer neurons stably inactive: the gathered path runs
        model[1].bias[:30] -= 3.0
    return model.double().eval()


def _cnn():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 12), nn.ReLU(), nn.Linear(12, 5)).double().eval()


def _data(shape, n=8):
    g = torch.Generator().manual_seed(2)
    return (torch.rand((n, *shape), generator=g, dtype=torch.float64),
            torch.randint(0, 5, (n,), generator=g))


def _close(a, b):
    finite = torch.isfinite(a)
    assert torch.equal(finite, torch.isfinite(b))
    scale = a[finite].abs().max().clamp(min=1.0)
    assert (a[finite] - b[finite]).abs().max() <= 1e-12 * scale


@pytest.mark.parametrize("build, shape", [(_mlp, (1, 4, 4)), (_cnn, (1, 8, 8))])
def test_rows_in_blocks_give_the_bounds_of_one_block(monkeypatch, build, shape):
    model, (x, y) = build(), _data(shape)
    whole = margin_bounds(model, x, y, eps=0.1, method="crown")
    monkeypatch.setattr(crown, "BLOCK", 1)  # one row per block
    _close(whole, margin_bounds(model, x, y, eps=0.1, method="crown"))


def test_dense_select_gives_the_bounds_of_one_hot_rows(monkeypatch):
    model, (x, y) = _cnn(), _data((1, 8, 8))
    dense = margin_bounds(model, x, y, eps=0.1, method="crown")
    monkeypatch.setattr(crown, "DENSE", 0)  # no chain fits: one-hot rows pulled back
    _close(dense, margin_bounds(model, x, y, eps=0.1, method="crown"))


def test_live_columns_only_equal_the_whole_adjoint():
    g = torch.Generator().manual_seed(3)
    W, b = torch.randn(40, 16, generator=g, dtype=torch.float64), torch.randn(40, generator=g,
                                                                             dtype=torch.float64)
    live = torch.rand((6, 40), generator=g) < 0.3
    live[0] = False  # an example with no live column at all
    A = torch.randn((6, 10, 40), generator=g, dtype=torch.float64) * live.unsqueeze(1)
    bias = torch.randn((6, 10), generator=g, dtype=torch.float64)
    chain = [Linear(W, b)]
    got_A, got_b = crown._adjoint_live(chain, A, bias, live)
    want_A, want_b = chain_adjoint(chain, A, bias)
    assert got_A.shape == want_A.shape
    _close(want_A, got_A)
    _close(want_b, got_b)
    assert torch.equal(got_A[0], torch.zeros_like(got_A[0]))


def test_the_live_path_runs_on_a_mostly_inactive_layer(monkeypatch):
    """The MLP above has most first-layer neurons stably inactive at eps 0.1: the gathered
    product must be the one taken (else the test of its bounds tests nothing)."""
    model, (x, y) = _mlp(), _data((1, 4, 4))
    calls = []
    real = crown.chain_adjoint

    def spy(chain, A, bias):
        calls.append(tuple(type(op).__name__ for op in chain))
        return real(chain, A, bias)

    monkeypatch.setattr(crown, "chain_adjoint", spy)
    margin_bounds(model, x, y, eps=0.1, method="crown")
    # chain 0 is [Reshape, Linear]: the gathered path multiplies the Linear itself and pulls
    # back through the Reshape alone; the whole path would pass both
    assert ("Reshape",) in calls


def _cnn_to_crop(*, dilation=1, padding=1, bn=False):
    """Two convolutions on a 16x16 input (normalised first; batch norm after the first where
    ``bn``): layer 1's rows see a small window of the first convolution's output."""
    from benchbench.verify import Normalize

    torch.manual_seed(3)
    first = [Normalize(torch.tensor([0.4]), torch.tensor([0.3])),
             nn.Conv2d(1, 4, 4, stride=2, padding=padding, dilation=dilation)]
    if bn:
        first.append(nn.BatchNorm2d(4))
    model = nn.Sequential(*first, nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1),
                          nn.ReLU(), nn.Flatten(), nn.LazyLinear(5))
    model(torch.zeros(1, 1, 16, 16))
    if bn:
        with torch.no_grad():
            model[2].running_mean.uniform_(-0.2, 0.2)
            model[2].running_var.uniform_(0.5, 2.0)
            model[2].weight.uniform_(0.5, 1.5)
            model[2].bias.uniform_(-0.3, 0.3)
    return model.double().eval()


@pytest.mark.parametrize("kw", [{}, {"bn": True}, {"dilation": 2, "padding": 2},
                                {"padding": 0}])
def test_cropped_rows_through_the_first_convolution_give_the_dense_bounds(monkeypatch, kw):
    """``benchbench.verify.crop``: rows cut to their boxes, relaxed and pulled back on the
    window, bound exactly as the dense rows over the whole map (padding at the edges,
    dilation, normalisation and batch norm around the convolution)."""
    from benchbench.verify import crop

    model = _cnn_to_crop(**kw)
    x, y = _data((1, 16, 16), n=6)
    taken = []
    real = crop.pull_back_window
    monkeypatch.setattr(crown, "pull_back_window",
                        lambda *a: taken.append(a[1]) or real(*a))
    for eps in (0.02, 0.1):
        cropped = margin_bounds(model, x, y, eps=eps, method="crown")
        assert taken, "the cropped path did not run"
        taken.clear()
        monkeypatch.setattr(crop, "MAX_AREA", 0.0)  # every block dense
        dense = margin_bounds(model, x, y, eps=eps, method="crown")
        assert not taken
        monkeypatch.setattr(crop, "MAX_AREA", 0.5)
        _close(dense, cropped)


@pytest.mark.parametrize("method", ["ibp", "crown_ibp", "crown"])
def test_margins_from_the_label_pair_table_equal_the_folded_rows(monkeypatch, method):
    """``ibp._pairs``: the last layer folded with every label's margin rows once per network
    gives the bounds of ``C W`` built per example (``PAIRS = 0``: no table)."""
    from benchbench.verify import ibp

    model = _mlp()
    x, y = _data((1, 4, 4), n=12)
    for eps in (0.01, 0.1):
        table = margin_bounds(model, x, y, eps=eps, method=method)
        monkeypatch.setattr(ibp, "PAIRS", 0)
        folded = margin_bounds(model, x, y, eps=eps, method=method)
        monkeypatch.setattr(ibp, "PAIRS", 1 << 27)
        _close(folded, table)
