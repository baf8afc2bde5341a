"""The ART extra: registration with or without ART, cross-checks against ART, every adapter.

Skipped only where ART is absent (CI installs it with ``benchbench[art]``). Tolerances: built-in
FGSM equals ART's FastGradientMethod bit for bit; built-in PGD without random start matches
ART's ProjectedGradientDescent within 1e-6 (float32; ART averages the loss over the batch, so a
gradient can differ in its last bits, never in sign here).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch import nn

import benchbench.art_attacks as art_attacks
from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.harness import attack_batch
from benchbench.attacks.pgd import PGD
from benchbench.errors import SuiteError
from benchbench.plugins import load_registry
from benchbench.suite.load import load_suite

needs_art = pytest.mark.skipif(importlib.util.find_spec("art") is None,
                               reason="ART not installed (pip install 'benchbench[art]')")


@pytest.fixture
def model_and_data():
    from sklearn.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    x = torch.tensor(data.data[:200] / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    y = torch.tensor(data.target[:200])
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def test_adapters_register_through_the_entry_point(monkeypatch):
    monkeypatch.delenv("BENCHBENCH_DISABLE_PLUGINS", raising=False)
    registry = load_registry()
    names = {n for n in registry.entries["attack"] if n.startswith("art.")}
    assert names == set(art_attacks.SPECS) and len(names) == 8
    entry = registry.get("attack", "art.pgd")
    assert (entry.source.plugin, entry.source.distribution) == ("art", "benchbench")


def test_without_art_the_names_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)

    def missing(name):
        raise ValueError(f"this attack {art_attacks.INSTALL}")

    monkeypatch.setattr(art_attacks, "art_class", missing)
    registry = load_registry(load_entry_points=False, extra=(art_attacks,))
    assert "needs benchbench[art]" in registry.get("attack", "art.pgd").summary
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname = "s"\n[dataset]\nname = "digits"\ntrain = "train"\n'
                     'test = "test"\n[model]\nname = "mlp"\n[regime]\nname = "standard"\n'
                     '[[attacks]]\nname = "art.pgd"\neps = [0.1]\n')
    with pytest.raises(SuiteError, match=r"attacks\[0\]\.name: 'art.pgd': this attack needs "
                                         r"benchbench\[art\]: pip install 'benchbench\[art\]'"):
        load_suite(suite, registry)


@needs_art
def test_unknown_art_parameter_lists_what_art_accepts():
    with pytest.raises(ValueError, match="unknown parameter.*max_iter"):
        art_attacks.adapters()["art.pgd"](max_iters=10)
    with pytest.raises(ValueError, match="norm must be one of linf, l2"):
        art_attacks.adapters()["art.pgd"](norm="l1")
    with pytest.raises(ValueError, match="attacks must be a list of apgd_ce, apgd_dlr"):
        art_attacks.adapters()["art.autoattack"](attacks=["fab"])


@needs_art
def test_builtin_fgsm_equals_art_fgm_bit_for_bit(model_and_data):
    model, x, y = model_and_data
    eps = (0.05, 0.1, 0.3)
    ours = attack_batch(FGSM(), model, x, y, eps=eps, bounds=(0.0, 1.0))
    art = attack_batch(art_attacks.adapters()["art.fgsm"](), model, x, y, eps=eps,
                       bounds=(0.0, 1.0))
    assert torch.equal(ours.x_adv, art.x_adv)
    assert torch.equal(ours.correct, art.correct)


@needs_art
def test_builtin_pgd_matches_art_pgd(model_and_data):
    model, x, y = model_and_data
    eps, steps, step = 0.1, 10, 0.02
    ours = attack_batch(PGD(steps=steps, step_size=step, random_start=False), model, x, y,
                        eps=(eps,), bounds=(0.0, 1.0))
    theirs = attack_batch(art_attacks.adapters()["art.pgd"](max_iter=steps, eps_step=step,
                                                            num_random_init=0),
                          model, x, y, eps=(eps,), bounds=(0.0, 1.0))
    assert (ours.x_adv - theirs.x_adv).abs().max() <= 1e-6
    assert ours.n_correct == theirs.n_correct


FAST = {"art.fgsm": {}, "art.pgd": {"max_iter": 3}, "art.cw_l2": {"max_iter": 3,
        "binary_search_steps": 1}, "art.cw_linf": {"max_iter": 3},
        "art.deepfool": {"max_iter": 3},
        "art.autoattack": {"attacks": ["apgd_ce", "square"], "max_iter": 5,
                           "square_max_iter": 5, "square_nb_restarts": 1},
        "art.square": {"max_iter": 5}, "art.hopskipjump": {"max_iter": 1, "max_eval": 20,
                                                           "init_eval": 5}}


@needs_art
@pytest.mark.parametrize("name", sorted(FAST))
def test_every_adapter_runs_under_the_harness(model_and_data, name):
    model, x, y = model_and_data
    x, y = x[:6], y[:6]
    torch.manual_seed(0)
    attack = art_attacks.adapters()[name](**FAST[name])
    result = attack_batch(attack, model, x, y, eps=(0.1, 0.3), bounds=(0.0, 1.0))
    assert result.x_adv.shape == (2, *x.shape) and result.x_adv.dtype == x.dtype
    delta = (result.x_adv - x).flatten(2)
    size = delta.abs().amax(2) if attack.norm == "linf" else delta.norm(dim=2)
    assert (size <= torch.tensor([[0.1], [0.3]]) + 1e-6).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
