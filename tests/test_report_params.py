"""Reports print the parameters an attack ran with (``benchbench.attacks.params``), not the
suite's ``step_size = None``: per eps where they depend on it, the wrapped library's defaults
marked, and the value the report prints is the one the attack's own code uses."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch

import benchbench.art_attacks as art_attacks
from benchbench.attacks.params import (
    LibraryDefault,
    effective_params,
    effective_table,
    from_plain,
    to_plain,
)
from benchbench.attacks.pgd import PGD
from benchbench.engine.runner import run_suite
from benchbench.report.attack_params import NOT_RECORDED, params_text, stored_params
from benchbench.report.markdown import render_report
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import tiny_data, tiny_model

needs_art = pytest.mark.skipif(importlib.util.find_spec("art") is None,
                               reason="ART not installed (pip install 'benchbench[art]')")


def test_pgd_reports_the_step_it_runs_with(registry):
    entry = registry.get("attack", "pgd")
    params = {**registry.defaults_of("attack", "pgd"), "steps": 3, "random_start": False}
    assert params["step_size"] is None  # what the suite loader stores
    model, (x, y) = tiny_model(), tiny_data(16)
    for eps in (0.05, 0.2):
        used = effective_params(entry, params, eps)
        assert used["step_size"] == 2.5 * eps / 3  # the same expression: exact
        assert {k: v for k, v in used.items() if k != "step_size"} == {
            k: v for k, v in params.items() if k != "step_size"}
        # the printed step is the one the run takes: the same adversarial inputs, bit for bit
        unset = PGD(**params).perturb(model, x, y, eps=[eps])
        given = PGD(**{**params, "step_size": used["step_size"]}).perturb(model, x, y,
                                                                          eps=[eps])
        assert torch.equal(unset, given)
    assert params["step_size"] is None  # not changed
    table = effective_table(entry.obj, params, [0.05, 0.2])  # the class works as the entry
    assert table["rules"] == {"step_size": "2.5·ε/steps"} and table["library"] == []
    assert [row["step_size"] for row in table["values"]] == [2.5 * 0.05 / 3, 2.5 * 0.2 / 3]


def test_a_given_step_and_attacks_that_derive_nothing_run_with_their_params(registry):
    pgd = {**registry.defaults_of("attack", "pgd"), "step_size": 0.01}
    table = effective_table(registry.get("attack", "pgd"), pgd, [0.05, 0.2])
    assert table["values"] == [pgd, pgd] and table["rules"] == {}
    bim = registry.defaults_of("attack", "bim")  # BIM is PGD's: 10 steps, from x
    assert effective_params(registry.get("attack", "bim"), bim, 0.1)["step_size"] == 0.025
    fgsm = registry.defaults_of("attack", "fgsm")
    assert effective_params(registry.get("attack", "fgsm"), fgsm, 0.3) == {"loss": "ce"}

    class Plain:  # a plugin's attack that declares nothing
        def __init__(self, *, strength=None):
            raise AssertionError("never built: it derives nothing")

    assert effective_params(Plain, {"strength": None}, 0.1) == {"strength": None}


@needs_art
def test_art_keys_the_suite_left_out_are_arts_defaults_and_eps_step_the_adapters():
    adapters = art_attacks.adapters()
    table = effective_table(adapters["art.pgd"], {"max_iter": 7}, [0.1, 0.2])
    first = table["values"][0]
    assert [row["eps_step"] for row in table["values"]] == [0.1 / 4, 0.2 / 4]
    assert first["max_iter"] == 7 and first["batch_size"] == 32 and first["norm"] == "linf"
    assert table["rules"] == {"eps_step": "ε/4"} and table["library_name"] == "ART"
    assert "batch_size" in table["library"] and "max_iter" not in table["library"]
    assert "eps_step" not in table["library"] and "norm" not in table["library"]
    auto = effective_table(adapters["art.autoattack"], {}, [0.1])
    row = auto["values"][0]
    assert row["attacks"] == list(art_attacks.AUTOATTACK_MEMBERS) and row["batch_size"] is None
    text = params_text({}, from_plain(json.loads(json.dumps(to_plain(auto)))))
    assert "batch_size=the harness's chunk (all its rows)" in text
    assert "parallel_pool_size=0 (ART default)" in text


def test_an_adapters_library_defaults_are_read_from_its_signature_or_marked():
    def source(tries, scale=0.5, hook=print, **kwargs):
        """A wrapped library's constructor: ``tries`` has no default, ``hook`` no plain one."""

    class Wrapped:  # an adapter of another library, as benchbench.art_attacks's are
        library = "lib"
        mode = "fast"  # the adapter's own default for a key

        @classmethod
        def suite_params(cls):
            return ["tries", "scale", "hook", "mode", "given"]

        @classmethod
        def key_source(cls):
            return source

    table = effective_table(Wrapped, {"given": 1}, [0.1])
    assert table["values"] == [{"given": 1, "tries": LibraryDefault("lib"), "scale": 0.5,
                                "hook": LibraryDefault("lib"), "mode": "fast"}]
    assert table["library"] == ["hook", "scale", "tries"] and table["library_name"] == "lib"
    assert params_text({"given": 1}, table) == (
        "given=1, tries=lib default, scale=0.5 (lib default), hook=lib default, mode=fast")


def test_without_art_the_given_keys_are_shown(monkeypatch):
    def missing(name):
        raise ValueError(f"this attack {art_attacks.INSTALL}")

    monkeypatch.setattr(art_attacks, "art_class", missing)
    table = effective_table(art_attacks.adapters()["art.pgd"], {"max_iter": 3}, [0.1])
    assert table["values"] == [{"max_iter": 3}] and table["library"] == []


def test_params_text_per_eps_rules_and_library_defaults():
    stored = {"eps": [0.05, 0.2], "rules": {"step_size": "2.5·ε/steps"}, "library": ["decay"],
              "library_name": "ART",
              "values": [{"steps": 3, "step_size": 2.5 * 0.05 / 3, "decay": None,
                          "scale": 0.5, "tries": LibraryDefault("ART")},
                         {"steps": 3, "step_size": 2.5 * 0.2 / 3, "decay": None,
                          "scale": 0.7, "tries": LibraryDefault("ART")}]}
    assert params_text({"step_size": None}, stored) == (
        "steps=3, step_size=2.5·ε/steps (0.04167 at ε=0.05, 0.1667 at ε=0.2), "
        "decay=None (ART default), scale=(0.5 at ε=0.05, 0.7 at ε=0.2), tries=ART default")
    # a store written before attack_params: the spec's, a key left to the attack said so
    assert params_text({"steps": 3, "step_size": None}, None) == (
        f"steps=3, step_size={NOT_RECORDED}")
    plain = to_plain(stored)
    assert json.loads(json.dumps(plain))["values"][0]["tries"] == {"library_default": "ART"}
    assert from_plain(plain)["values"] == stored["values"]
    assert stored_params({"attack_params": "not json"}) == {} == stored_params({})


SUITE = """
[suite]
name = "steps"
seeds = [0]
[dataset]
name = "digits"
train = "train"
test = "test"
[model]
name = "mlp"
hidden = [8]
[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 1
checkpoints = [1]
[[attacks]]
name = "pgd"
steps = 2
eps = [0.05, 0.2]
"""


def test_a_run_stores_what_its_attacks_ran_with_and_the_report_prints_it(write_suite,
                                                                         registry, tmp_path):
    run_suite(load_suite(write_suite(text=SUITE), registry), registry=registry,
              out_dir=tmp_path / "run", device="cpu")
    report = (tmp_path / "run" / "report.md").read_text()
    assert ("Accuracy under `pgd` (pgd: norm=linf, steps=2, step_size=2.5·ε/steps (0.0625 at "
            "ε=0.05, 0.25 at ε=0.2), random_start=True, restarts=1, loss=ce):") in report
    assert "None" not in report.split("## Plugins")[0]
    with read_store(tmp_path / "run") as store:
        stored = stored_params(store.meta())["pgd"]
    assert stored["eps"] == [0.05, 0.2]
    assert [row["step_size"] for row in stored["values"]] == [0.0625, 0.25]


def test_an_old_store_says_the_step_was_not_recorded(tmp_path):
    shutil.copytree("tests/fixtures/store_v2", tmp_path / "old")
    with read_store(tmp_path / "old") as store:
        report = render_report(store)
    assert "step_size=the attack's default (not recorded)" in report
    assert "step_size=None" not in report
