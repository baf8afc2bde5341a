"""The flags read what attacks declare (``iterative``), not the built-ins' names: a third-party
iterative attack gets the "I" check, a single-step or undeclared one does not, and stores
written before attacks declared it fall back to the built-in names."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchbench.art_attacks import adapters
from benchbench.attacks import attack_capabilities
from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.pgd import BIM, PGD
from benchbench.engine.runner import run_suite
from benchbench.plugins import load_registry
from benchbench.report.flags import flags_by_epoch, stored_attack_info
from benchbench.report.training import split_fit
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.plugins import iterative_plugin

SUITE = """
[suite]
name = "capability"
seeds = [0]
[dataset]
name = "digits"
train = "train"
test = "test"
[model]
name = "mlp"
hidden = [32]
[regime]
name = "standard"
lr = 0.01
epochs = 2
checkpoints = [2]
""" + "".join(f"""
[[attacks]]
name = "{name}"
eps = [0.1]
""" + ("steps = 3\n" if name == "pgd" else "") for name in (
    "fgsm", "pgd", "lazy_iterative", "lazy_step", "lazy_undeclared", "sharp_step"))


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """(tidy checkpoint rows, attack info read from the store, report text) of one run."""
    registry = load_registry(load_entry_points=False, extra=(iterative_plugin,))
    out = tmp_path_factory.mktemp("capability")
    (out / "suite.toml").write_text(SUITE)
    suite = load_suite(out / "suite.toml", registry)
    run_suite(suite, registry=registry, out_dir=out / "run", device="cpu")
    with read_store(out / "run") as store:
        info = stored_attack_info(store.meta(), [c for c in store.cells()
                                                 if c["status"] == "ok"])
        tidy = split_fit(store.tidy())[0]
    return tidy, info, out


def flags(stored, *attacks: str) -> str:
    tidy, info, _ = stored
    rows = tidy[tidy.attack.isin(("none", *attacks))]
    return flags_by_epoch(rows, info, chance=0.1, span=1.0)[2]


def test_the_store_carries_what_each_attack_declared(stored):
    _, info, _ = stored
    assert {label: (a["norm"], a["iterative"]) for label, a in info.items()} == {
        "fgsm": ("linf", False), "pgd": ("linf", True), "lazy_iterative": ("linf", True),
        "lazy_step": ("linf", False), "lazy_undeclared": ("linf", None),
        "sharp_step": ("linf", False)}


@pytest.mark.parametrize(("attacks", "flagged"), [
    (("fgsm", "lazy_iterative"), True),  # a plugin's iterative attack gets the "I" check
    (("sharp_step", "lazy_iterative"), True),  # against a plugin's single step too
    (("fgsm", "lazy_step"), False),  # a weak single step is not checked as iterative
    (("fgsm", "lazy_undeclared"), False),  # nor is an attack that declares nothing
    (("fgsm", "pgd"), False),  # a working PGD is no weaker than FGSM
    (("lazy_step", "pgd"), False),
])
def test_the_iterative_check_follows_the_declared_capability(stored, attacks, flagged):
    assert ("I" in flags(stored, *attacks)) is flagged


def test_the_report_shows_the_plugin_attacks_flag(stored):
    _, _, out = stored
    from benchbench.report.markdown import render_report

    with read_store(out / "run") as store:
        text = render_report(store)
    assert "- **I**: an iterative attack is weaker than a single-step attack" in text


def test_a_run_stores_what_its_attacks_declare(tmp_path, registry, write_suite):
    run_suite(load_suite(write_suite(), registry), registry=registry, out_dir=tmp_path / "r",
              device="cpu")
    with read_store(tmp_path / "r") as store:
        assert json.loads(store.meta()["attack_capabilities"]) == {
            "fgsm": {"norm": "linf", "iterative": False}}


def rows(points):
    return pd.DataFrame([dict(epoch=1, split="test", attack=a, eps=e, metric="accuracy",
                              value=v, seed=0) for a, e, v in points])


def test_a_store_without_capabilities_falls_back_to_the_builtin_names():
    """The schema-v2 fixture (written before attacks declared ``iterative``): pgd and bim
    iterative, fgsm single-step, others undeclared; pgd_l2 is L2, so never checked against
    the L-inf FGSM."""
    with read_store("tests/fixtures/store_v2") as store:
        info = stored_attack_info(store.meta(), store.cells())
    assert {k: (v["norm"], v["iterative"]) for k, v in info.items()} == {
        "fgsm": ("linf", False), "pgd": ("linf", True), "pgd_l2": ("l2", True)}
    weak_pgd = rows([("fgsm", 0.2, 0.3), ("pgd", 0.2, 0.5)])
    assert flags_by_epoch(weak_pgd, info, chance=None, span=None) == {1: "I"}
    weak_l2 = rows([("fgsm", 0.2, 0.3), ("pgd_l2", 0.2, 0.5)])
    assert flags_by_epoch(weak_l2, info, chance=None, span=None) == {1: ""}


def test_worst_case_rows_are_not_attacks_to_the_flags():
    info = {"fgsm": {"name": "fgsm", "params": {"loss": "ce"}, "norm": "linf",
                     "iterative": False}}
    # as an attack this would read "M" (rises with eps) and "C" (above chance at 30% of range)
    points = [("fgsm", 0.1, 0.3), ("fgsm", 0.4, 0.0), ("worst_linf", 0.1, 0.2),
              ("worst_linf", 0.4, 0.9)]
    assert flags_by_epoch(rows(points), info, chance=0.1, span=1.0) == {1: ""}


def test_builtins_declare_the_capability_like_any_plugin():
    assert attack_capabilities(FGSM()) == {"norm": "linf", "iterative": False}
    assert attack_capabilities(PGD(norm="l2")) == {"norm": "l2", "iterative": True}
    assert attack_capabilities(BIM())["iterative"] is True
    assert attack_capabilities(PGD(steps=1))["iterative"] is False  # one step is one step
    art = adapters()
    assert (art["art.fgsm"].iterative, art["art.pgd"].iterative,
            art["art.autoattack"].iterative) == (False, True, True)
    assert art["art.cw_l2"].iterative is None and art["art.square"].iterative is None


def test_autoattack_without_gradient_members_declares_nothing_as_art_square_does():
    """Square alone is random search, not one gradient step: undeclared (None), as
    ``art.square`` is, so flag I never takes it for a single-step reference (it was False)."""
    pytest.importorskip("art")
    cls = adapters()["art.autoattack"]
    assert cls(attacks=["square"]).iterative is None
    assert cls(attacks=["square"]).iterative is adapters()["art.square"].iterative
    assert cls(attacks=["apgd_ce", "square"]).iterative is True


def test_a_capability_that_is_not_a_bool_is_refused():
    class Vague:
        norm, iterative = "linf", "yes"

    with pytest.raises(ValueError, match="iterative must be True, False or absent"):
        attack_capabilities(Vague())
