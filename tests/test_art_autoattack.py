"""``art.autoattack`` builds ART's own default ensemble, checked member by member against what
ART's ``AutoAttack(estimator)`` constructs when it is given no attacks (its
``art/attacks/evasion/auto_attack.py``), and its keys change only what they name.

Skipped where ART is absent (CI installs it with ``benchbench[art]``). Every comparison is of
constructor parameters (integers, floats copied as given, strings), so it is exact.
"""

from __future__ import annotations

import pytest

pytest.importorskip("art")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from art.attacks import evasion  # noqa: E402

import benchbench.art_attacks as art_attacks  # noqa: E402
from benchbench.attacks.params import effective_table  # noqa: E402
from benchbench.testing import tiny_data, tiny_model  # noqa: E402

EPS = 0.1


def params(attack) -> tuple:
    """An ART attack's class and constructor parameters, less ``verbose`` (benchbench turns
    ART's progress bars off) and the estimator (the same object on both sides); a method an
    attack binds to itself (Square's default loss and criterion) by its name."""
    def plain(value):
        return getattr(value, "__qualname__", None) or value if callable(value) else value

    return type(attack).__name__, {p: plain(getattr(attack, p)) for p in attack.attack_params
                                   if p not in ("verbose", "estimator")}


def built_members(monkeypatch, **keys) -> tuple[list, object]:
    """The members and the AutoAttack the adapter builds at EPS (its ``generate`` stubbed
    out: construction is what is compared), with the estimator they share."""
    seen = []

    def generate(self, x, y=None, **kwargs):
        seen.append(self)
        return x

    monkeypatch.setattr(evasion.AutoAttack, "generate", generate)
    model, (x, y) = tiny_model(), tiny_data(8)
    art_attacks.adapters()["art.autoattack"](**keys).perturb(model, x, y, eps=(EPS,),
                                                             bounds=(0.0, 1.0))
    (auto,) = seen
    return auto.attacks, auto


def test_the_default_is_arts_own_ensemble(monkeypatch):
    # ART's default batch of 32 given, so that the whole construction is ART's
    ours, auto = built_members(monkeypatch, batch_size=32)
    theirs = evasion.AutoAttack(auto.estimator, norm=np.inf, eps=EPS).attacks
    assert [params(a) for a in ours] == [params(a) for a in theirs]
    assert [type(a).__name__ for a in ours] == [
        "AutoProjectedGradientDescent", "AutoProjectedGradientDescent", "DeepFool", "SquareAttack"]
    # what the issue found built otherwise: Square 5,000 iterations and 5 restarts, DeepFool
    # epsilon 1e-3, APGD's first step ART's 0.1 (not eps / 4)
    square, deepfool, apgd = ours[3], ours[2], ours[0]
    assert (square.max_iter, square.nb_restarts, square.p_init) == (5000, 5, 0.8)
    assert (deepfool.epsilon, deepfool.max_iter, deepfool.nb_grads) == (1e-3, 100, 10)
    assert (apgd.eps_step, apgd.max_iter, apgd.nb_random_init) == (0.1, 100, 5)
    assert not any(a.verbose for a in ours)
    assert (auto.eps, auto.eps_step, auto.batch_size) == (EPS, 0.1, 32)


def test_l2_and_the_harness_batch(monkeypatch):
    ours, auto = built_members(monkeypatch, norm="l2")
    theirs = evasion.AutoAttack(auto.estimator, norm=2, eps=EPS, batch_size=8).attacks
    assert [params(a) for a in ours] == [params(a) for a in theirs]
    assert auto.batch_size == 8  # the harness's chunk: all its rows (tiny_data(8))
    assert ours[3].batch_size == 128  # Square keeps its own batch, as in ART


def test_keys_change_only_what_they_name(monkeypatch):
    ours, _ = built_members(monkeypatch, attacks=["square", "apgd_dlr"], max_iter=7,
                            nb_random_init=2, square_max_iter=30, square_nb_restarts=1,
                            eps_step=0.02)
    square, apgd = ours
    assert (type(square).__name__, square.max_iter, square.nb_restarts) == ("SquareAttack", 30, 1)
    assert (apgd.loss_type, apgd.max_iter, apgd.nb_random_init, apgd.eps_step) == (
        "difference_logits_ratio", 7, 2, 0.02)
    ours, _ = built_members(monkeypatch, attacks=["deepfool"], max_iter=9)
    assert (ours[0].max_iter, ours[0].epsilon) == (9, 1e-3)


@pytest.mark.parametrize("key", art_attacks.ENSEMBLE_KEYS)
def test_member_keys_are_checked(key):
    with pytest.raises(ValueError, match=f"{key} must be a positive integer; got 0"):
        art_attacks.adapters()["art.autoattack"](**{key: 0})


@pytest.mark.parametrize(("members", "iterative"), [
    (None, True), ([], True),  # ART's ensemble: all four, APGD among them
    (["apgd_dlr"], True), (["square", "apgd_ce"], True),
    (["deepfool", "square"], None), (["square"], None),  # no gradient steps: no flag compares
])
def test_the_iterative_capability_follows_the_members(members, iterative):
    """Flag I compares iterative attacks against single-step ones: an ensemble without an
    APGD member is neither (DeepFool: minimal perturbation; Square: random search)."""
    params = {} if members is None else {"attacks": members}
    attack = art_attacks.adapters()["art.autoattack"](**params)
    assert attack.iterative is iterative


def test_the_report_shows_arts_values():
    auto = art_attacks.adapters()["art.autoattack"]
    table = effective_table(auto, {}, [EPS])
    row = table["values"][0]
    assert (row["max_iter"], row["nb_random_init"], row["square_max_iter"],
            row["square_nb_restarts"], row["eps_step"]) == (100, 5, 5000, 5, 0.1)
    assert {"max_iter", "square_max_iter", "eps_step"} <= set(table["library"])
    assert "eps_step" not in table["rules"]


def test_a_short_run_is_inside_the_ball():
    from benchbench.attacks.harness import attack_batch

    model, (x, y) = tiny_model(), tiny_data(6)
    attack = art_attacks.adapters()["art.autoattack"](attacks=["apgd_ce", "square"], max_iter=5,
                                                      square_max_iter=20, square_nb_restarts=1)
    torch.manual_seed(0)
    result = attack_batch(attack, model, x, y, eps=(0.1, 0.3), bounds=(0.0, 1.0))
    size = (result.x_adv - x).flatten(2).abs().amax(2)
    assert (size <= torch.tensor([[0.1], [0.3]]) + 1e-6).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1


def test_the_default_ensembles_change_marks_cells_measured_before_it_stale():
    """Cells measured by the old ensemble keep their spec (the same keys), so the adapter's
    revision is what tells them apart (benchbench.store.versions)."""
    import benchbench.art_attacks as art_attacks
    from benchbench.store.versions import plugin_version
    from benchbench.testing import isolated_registry

    registry = isolated_registry(art_attacks)
    assert plugin_version(registry.get("attack", "art.autoattack")).endswith(" revision 2")
    assert "revision" not in plugin_version(registry.get("attack", "art.pgd"))
