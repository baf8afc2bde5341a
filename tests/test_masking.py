"""Gradient-masking measurements and flags: a model whose gradients vanish must be flagged."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchbench.engine.runner import run_suite
from benchbench.plugins import load_registry
from benchbench.report.flags import attack_info, flags_by_epoch
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.plugins import masking_plugin

SUITE = """
[suite]
name = "masking"
seeds = [0, 1]
[dataset]
name = "digits"
train = "train"
test = "test"
[[model]]
name = "mlp"
hidden = [32]
[[model]]
name = "saturated"
[regime]
name = "standard"
lr = 0.01
epochs = 3
checkpoints = [3]
[[attacks]]
name = "fgsm"
eps = [0.1]
[[attacks]]
name = "fgsm"
label = "fgsm_stable"
loss = "ce_stable"
eps = [0.1]
[[attacks]]
name = "bim"
eps = [0.1]
steps = 5
[[attacks]]
name = "still_l2"
eps = [0.1, 0.4]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    registry = load_registry(load_entry_points=False, extra=(masking_plugin,))
    out = tmp_path_factory.mktemp("masking")
    (out / "suite.toml").write_text(SUITE)
    run_suite(load_suite(out / "suite.toml", registry), registry=registry, out_dir=out / "run",
              device="cpu")
    with read_store(out / "run") as store:
        assert json.loads(store.meta()["attack_norms"]) == {
            "fgsm": "linf", "fgsm_stable": "linf", "bim": "linf", "still_l2": "l2"}
        return store.tidy(), (out / "run" / "report.md").read_text()


def value(tidy, model, attack, metric, eps=0.0):
    sel = tidy[(tidy.model == model) & (tidy.attack == attack) & (tidy.metric == metric)
               & (tidy.eps == eps) & (tidy.split == "test")]
    return sel.value.mean()


def test_saturated_model_has_zero_gradients_and_saturated_probabilities(run):
    tidy, _ = run
    assert value(tidy, "saturated", "none", "zero_grad_frac") > 0.5
    assert value(tidy, "saturated", "none", "saturated_frac") > 0.3
    assert value(tidy, "mlp", "none", "zero_grad_frac") == 0
    assert value(tidy, "mlp", "none", "saturated_frac") == 0


def test_stable_loss_sees_through_saturation(run):
    tidy, _ = run
    plain = value(tidy, "saturated", "fgsm", "accuracy", 0.1)
    stable = value(tidy, "saturated", "fgsm_stable", "accuracy", 0.1)
    assert stable < plain - 0.1


def test_report_flags_the_saturated_model_only(run):
    _, report = run
    rows = {line.split("|")[1].strip(): line for line in report.splitlines()
            if line.startswith("|") and line.split("|")[1].strip() == "3"}
    sections = report.split("## ")
    saturated = next(s for s in sections if s.startswith("saturated"))
    healthy = next(s for s in sections if s.startswith("mlp ·"))
    def flags_of(section: str) -> str:
        """The flags cell of the last row of the section's first table (clean metrics)."""
        first = section.split("\n\n")[2]
        header, *_, row = first.splitlines()
        assert header.rstrip(" |").endswith("flags")
        return row.rstrip(" |").rsplit("|", 1)[1].strip()

    flags_sat, flags_ok = flags_of(saturated), flags_of(healthy)
    assert {"Z", "S", "L"} <= set(flags_sat), flags_sat
    # still_l2 keeps clean accuracy at eps 0.4 (40% of the range): "C" is for L-inf attacks only
    assert not {"Z", "S", "L", "C"} & set(flags_ok), flags_ok
    assert "- **Z**: some test inputs have an exactly zero input gradient" in report
    assert rows


def tidy_rows(points):
    return pd.DataFrame([dict(epoch=1, split="test", attack=a, eps=e, metric="accuracy",
                              value=v, seed=s) for a, e, v in points for s in (0, 1)])


INFO = {"fgsm": {"name": "fgsm", "params": {"loss": "ce"}, "norm": "linf", "iterative": False},
        "fgsm_m": {"name": "fgsm", "params": {"loss": "margin"}, "norm": "linf",
                   "iterative": False},
        "pgd": {"name": "pgd", "params": {}, "norm": "linf", "iterative": True}}


@pytest.mark.parametrize(("points", "expected"), [
    ([("fgsm", 0.1, 0.5), ("fgsm", 0.2, 0.3), ("pgd", 0.1, 0.4)], ""),
    ([("fgsm", 0.1, 0.3), ("fgsm", 0.2, 0.5)], "M"),
    ([("fgsm", 0.1, 0.3), ("pgd", 0.1, 0.6)], "I"),
    ([("fgsm", 0.1, 0.5), ("fgsm_m", 0.1, 0.3)], "L"),
    ([("pgd", 0.3, 0.4)], "C"),
    ([("pgd", 0.3, 0.12)], ""),
])
def test_flag_rules(points, expected):
    flags = flags_by_epoch(tidy_rows(points), INFO, chance=0.1, span=1.0)
    assert flags == {1: expected}


@pytest.mark.parametrize(("norms", "name", "params", "expected"), [
    (None, "fgsm", {}, "C"),  # stored before attack_norms: benchbench's own attacks are L-inf
    (None, "pgd", {"norm": "l2"}, ""),  # the spec's norm
    (None, "bim", {}, "C"),
    (None, "deepfool", {}, ""),  # a plugin's default norm is unknown: no L-inf rule
    ({"a": "l2"}, "fgsm", {}, ""),  # the stored norm wins
    ({"a": "linf"}, "deepfool", {}, "C"),
])
def test_chance_flag_follows_the_stored_norm(norms, name, params, expected):
    cells = [{"spec": json.dumps({"attacks": [{"label": "a", "name": name, "params": params}]})}]
    info = attack_info(cells, norms)
    flags = flags_by_epoch(tidy_rows([("a", 0.4, 0.9)]), info, chance=0.1, span=1.0)
    assert flags == {1: expected}
