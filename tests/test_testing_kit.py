"""The plugin authors' kit: the conformance checks catch broken attacks and pass good ones."""

from __future__ import annotations

import os

import pytest
import torch
from typer.testing import CliRunner

from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.pgd import BIM, PGD
from benchbench.cli import app
from benchbench.testing import check_attack, conformance, isolated_registry, tiny_data


def failed(cls, **params) -> set[str]:
    return {c.name.split(" (")[0] for c in conformance(cls, **params) if not c.passed}


@pytest.mark.parametrize(("cls", "params"), [(FGSM, {}), (FGSM, {"loss": "margin"}),
                                             (PGD, {"steps": 3}), (BIM, {"steps": 3}),
                                             (PGD, {"norm": "l2", "steps": 3})])
def test_builtin_attacks_conform(cls, params):
    assert len(check_attack(cls, **params)) >= 13


class InPlace:
    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        x.mul_(0.5)
        return torch.stack([x + e for e in eps])


class Overshoot:
    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        return torch.stack([x + 2 * e + 0.01 for e in eps])


class Random:
    norm = "linf"
    per_example = True  # a lie: it draws random numbers per batch

    def perturb(self, model, x, y, *, eps, bounds):
        noise = torch.empty_like(x).uniform_(-1, 1)
        return torch.stack([x + e * noise for e in eps])


class Unseeded:
    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        # a draw no torch seed controls (torch.seed() % 7 repeated itself one run in seven)
        noise = torch.tensor(int.from_bytes(os.urandom(4), "little") / 2**32, dtype=x.dtype)
        return torch.stack([x + e * noise for e in eps])


class WrongShape:
    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        return x.float()


@pytest.mark.parametrize(("cls", "expected"), [
    (InPlace, {"input not modified in place"}),
    (Overshoot, {"inside the eps-ball", "eps 0 is the identity"}),
    (Random, {"per_example holds"}),
    (Unseeded, {"deterministic under a seed"}),
])
def test_broken_attacks_are_caught(cls, expected):
    assert expected <= failed(cls)


def test_wrong_shape_and_no_norm_are_caught():
    assert "shape and dtype kept" in failed(WrongShape)

    class NoNorm(FGSM):
        norm = "l1"

    assert "declares a norm" in failed(NoNorm)
    with pytest.raises(AssertionError, match="inside the eps-ball"):
        check_attack(Overshoot)
    assert failed(FGSM, loss="nope") == {"builds"}


def test_fixture_is_available_to_plugin_tests(benchbench_check_attack):
    assert benchbench_check_attack is check_attack
    x, y = tiny_data(4)
    assert x.shape == (4, 1, 8, 8) and x.max() <= 1


def test_isolated_registry_has_only_builtins_and_given_plugins():
    from tests.plugins import contract_plugin

    registry = isolated_registry(contract_plugin)
    assert "linear" in registry.entries["model"] and "random_sign" not in registry.entries[
        "attack"]


def test_cli_plugins_check(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    ok = runner.invoke(app, ["plugins", "check", "pgd", "--param", "steps=2"])
    assert ok.exit_code == 0, ok.output
    assert "checks passed" in ok.stdout and "FAIL" not in ok.stdout
    bad = runner.invoke(app, ["plugins", "check", "fgsm", "--param", "loss='hinge'"])
    assert bad.exit_code == 1 and "builds" in bad.stdout
    typo = runner.invoke(app, ["plugins", "check", "pgdd"])
    assert typo.exit_code == 2 and "did you mean 'pgd'" in typo.stderr
    assert runner.invoke(app, ["plugins", "--json"]).exit_code == 0
