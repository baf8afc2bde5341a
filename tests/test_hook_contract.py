"""Each hook of the public contract, exercised by a real plugin file in tests/plugins/."""

from __future__ import annotations

import pytest

from benchbench.engine.runner import run_suite
from benchbench.plugins import load_registry
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.plugins import contract_plugin

SUITE = """
[suite]
name = "contract"
seeds = [0, 1]
[dataset]
name = "blobs"
train = "train"
test = "test[:100]"
n = 200
[model]
name = "linear"
[regime]
name = "full_batch"
epochs = 3
[[attacks]]
name = "fgsm_copy"
eps = [0.5, 3.0]
"""


@pytest.fixture(scope="module")
def registry():
    return load_registry(load_entry_points=False, extra=(contract_plugin,))


@pytest.fixture(scope="module")
def tidy(registry, tmp_path_factory):
    out = tmp_path_factory.mktemp("contract")
    (out / "suite.toml").write_text(SUITE)
    run_suite(load_suite(out / "suite.toml", registry), registry=registry, out_dir=out / "run",
              device="cpu")
    with read_store(out / "run") as store:
        return store.tidy()


def test_register_models_provides_a_model_the_suite_trains(registry, tidy):
    assert registry.get("model", "linear").source.plugin.endswith("contract_plugin")
    assert registry.params_of("model", "linear") == ["bias"]
    final = tidy[(tidy.epoch == 3) & (tidy.attack == "none") & (tidy.metric == "accuracy")]
    assert set(final.model) == {"linear"} and final.value.min() > 0.9  # blobs are separable


def test_register_datasets_provides_splits_and_bounds(registry, tidy):
    assert registry.params_of("dataset", "blobs") == ["n", "seed"]
    # 2 seeds x 3 epochs x (accuracy, loss, zero_grad_frac, saturated_frac)
    assert len(tidy[(tidy.split == "test") & (tidy.attack == "none")]) == 2 * 3 * 4
    assert set(tidy.dataset) == {"blobs"}


def test_register_regimes_yields_every_epoch(registry, tidy):
    assert set(tidy.regime) == {"full_batch"} and sorted(set(tidy.epoch)) == [1, 2, 3]


def test_register_attacks_with_a_summary(registry, tidy):
    assert registry.get("attack", "fgsm_copy").summary == "FGSM under another name"
    attacked = tidy[tidy.attack == "fgsm_copy"]
    by_eps = attacked.groupby("eps").value.mean()
    assert list(by_eps.index) == [0.5, 3.0] and by_eps[3.0] < by_eps[0.5]
