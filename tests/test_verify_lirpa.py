"""benchbench's IBP, CROWN-IBP and CROWN equal auto_LiRPA's bounds to 1e-9 in float64.

The reference, tests/fixtures/lirpa_reference.safetensors, was computed once with auto_LiRPA
0.7.1 (github.com/Verified-Intelligence/auto_LiRPA at commit a050a3d6, installed with
``pip install --no-deps`` in a separate venv on torch 2.14.1; benchbench does not depend on
it) by tests/fixtures/make_lirpa_reference.py, whose docstring says how to regenerate it. It
holds the weights of a 16-20-12-5 MLP and of a small CNN (normalisation, two convolutions,
batch norm, average pooling, two linear layers), 6 inputs each (one labelled wrongly) and
auto_LiRPA's lower bounds of every margin ``logit_y - logit_j`` at 5 eps, L-inf within [0, 1].

Tolerance: both sides compute in float64 the same sums in different orders (the measured
differences are below 1e-15); 1e-9 leaves room for any summation order, never for a
different relaxation (a wrong slope or bound moves margins by 1e-4 and more).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from benchbench.verify import Normalize
from benchbench.verify.api import margin_bounds


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small products: one thread is several times faster than two on a busy machine
    (and strict MKL mode makes the bits the same); the setting is restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


FIXTURES = Path(__file__).parent / "fixtures"


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_lirpa_reference", FIXTURES / "make_lirpa_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


@pytest.fixture(scope="module")
def reference():
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = FIXTURES / "lirpa_reference.safetensors"
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    return load_file(path), meta


def model_of(tensors, name: str):
    model = GEN.build(name, Normalize)
    prefix = f"{name}.state."
    model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items()
                           if k.startswith(prefix)})
    return model.eval()


def test_fixture_says_where_it_came_from(reference):
    _, meta = reference
    assert meta["auto_LiRPA"] == "0.7.1" and meta["auto_LiRPA_commit"].startswith("a050a3d6")
    assert tuple(json.loads(meta["eps"])) == GEN.EPS


@pytest.mark.parametrize("name", ["mlp", "cnn"])
@pytest.mark.parametrize("method", ["ibp", "crown_ibp", "crown"])
def test_bounds_equal_auto_lirpa(reference, name, method):
    tensors, _ = reference
    model = model_of(tensors, name)
    x, y = tensors[f"{name}.x"], tensors[f"{name}.y"]
    for e_i, eps in enumerate(GEN.EPS):
        ref = tensors[f"{name}.{method}.{e_i}"]
        ours = margin_bounds(model, x, y, eps=eps, method=method)
        assert torch.equal(torch.isinf(ours), torch.isinf(ref))  # +inf at the label only
        finite = torch.isfinite(ref)
        assert torch.allclose(ours[finite], ref[finite], rtol=0, atol=1e-9), (name, method, eps)


def test_reference_is_not_degenerate(reference):
    """The fixture exercises what it should: CROWN tighter than CROWN-IBP tighter than IBP
    somewhere, unstable neurons (bounds below zero), and every method differing."""
    tensors, _ = reference
    for name in ("mlp", "cnn"):
        e_i = GEN.EPS.index(0.1)
        ibp, cibp, crown = (tensors[f"{name}.{m}.{e_i}"] for m in ("ibp", "crown_ibp", "crown"))
        finite = torch.isfinite(ibp)
        assert (crown[finite] > cibp[finite] + 1e-3).any()
        assert (cibp[finite] > ibp[finite] + 1e-3).any()
        assert (crown[finite] < 0).any() and (crown[finite] > 0).any()
