"""Tests of the lenet5 model on its own: the kit's conformance checks, its keys, and a small
suite of synthetic 28x28 images run through benchbench's engine. Offline, seconds."""

from __future__ import annotations

import sys

import benchbench_example_model
import pytest
import torch
from benchbench_example_model import build_lenet5
from safetensors.torch import load_file

from benchbench import hookimpl
from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only waits
    yield
    torch.set_num_threads(threads)


def test_passes_benchbench_conformance(benchbench_check_model):
    checks = benchbench_check_model(build_lenet5, input_shape=(1, 28, 28))  # raises on failure
    assert len(checks) >= 20


def test_passes_conformance_with_batchnorm_and_normalisation(benchbench_check_model):
    names = {c.name for c in benchbench_check_model(
        build_lenet5, input_shape=(3, 32, 32), batchnorm=True, mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25])}
    assert {"BatchNorm: train mode updates the running statistics",
            "BatchNorm: train and eval mode differ"} <= names


def test_hook_registers_lenet5():
    seen = {}
    benchbench_example_model.register_models(
        register=lambda name, obj, *, summary=None: seen.update({name: obj}))
    assert seen == {"lenet5": build_lenet5}
    assert not hasattr(build_lenet5, "stack")  # trains one seed at a time


def test_normalisation_stays_out_of_the_state_dict():
    torch.manual_seed(0)
    plain = build_lenet5(input_shape=(1, 28, 28), num_classes=10)
    torch.manual_seed(0)
    normed = build_lenet5(input_shape=(1, 28, 28), num_classes=10, mean=[0.5], std=[0.25])
    assert list(normed.state_dict()) == list(plain.state_dict())
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(normed(x), plain((x - 0.5) / 0.25))


@pytest.mark.parametrize(("params", "message"), [
    ({"input_shape": (1, 8, 8)}, r"lenet5 needs images .* at least 12x12; .* \(1, 8, 8\)"),
    ({"batchnorm": "yes"}, r"lenet5: batchnorm must be true or false"),
    ({"mean": 0.5}, r"lenet5: mean must be a list of 1 numbers"),
    ({"std": [0.0]}, r"lenet5: std must be a list of 1 numbers > 0"),
])
def test_bad_keys_are_refused_naming_the_key(params, message):
    with pytest.raises(ValueError, match=message):
        build_lenet5(**{"input_shape": (1, 28, 28), "num_classes": 10, **params})


class Bars:
    """Synthetic 1x28x28 images: class k is a bright band at rows 2k+4 and 2k+5, on noise."""

    splits = ("train", "test")
    num_classes = 10
    input_shape = (1, 28, 28)
    bounds = (0.0, 1.0)

    def prepare(self, *, data_dir=None, log=print) -> str:
        return "generated"

    def load(self, split, *, data_dir=None):
        n = 300 if split == "train" else 100
        gen = torch.Generator().manual_seed(int(split == "test"))
        y = torch.arange(n) % 10
        x = torch.rand(n, 1, 28, 28, generator=gen) * 0.3
        for i, k in enumerate(y.tolist()):
            x[i, 0, 2 * k + 4:2 * k + 6] += 0.6
        return x.clamp(0, 1), y


@hookimpl
def register_datasets(register):  # this module is a plugin too (registered in the suite test)
    register("bars", Bars)


SUITE = """
[suite]
name = "lenet"
seeds = [0, 1]

[dataset]
name = "{dataset}"
train = "train"
test = "test"

[model]
name = "lenet5"
batchnorm = true

[regime]
name = "standard"
optimizer = "adam"
lr = 0.01
batch_size = 50
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def test_a_suite_trains_and_attacks_lenet5(tmp_path):
    registry = isolated_registry(benchbench_example_model, sys.modules[__name__])
    (tmp_path / "suite.toml").write_text(SUITE.format(dataset="bars"))
    run_suite(load_suite(tmp_path / "suite.toml", registry), registry=registry,
              out_dir=tmp_path / "run", device="cpu")
    with read_store(tmp_path / "run") as store:
        cells, tidy = store.cells(), store.tidy()
    alone = "sequential: model 'lenet5' declares no stack"  # one seed at a time, and why
    assert {(c["seed"], c["status"], c["engine"]) for c in cells} == {
        (0, "ok", alone), (1, "ok", alone)}
    clean = tidy[(tidy.split == "test") & (tidy.attack == "none") & (tidy.metric == "accuracy")
                 & (tidy.epoch == 2)]
    assert len(clean) == 2 and (clean.value > 0.9).all()  # the bands are easy (chance: 0.1)
    weights = load_file(tmp_path / "run" / "checkpoints" / cells[0]["cell_id"]
                        / "epoch_0002.safetensors")
    assert "features.1.running_mean" in weights  # BatchNorm statistics are checkpointed


def test_digits_are_too_small_and_refused_before_running(tmp_path):
    registry = isolated_registry(benchbench_example_model)
    (tmp_path / "suite.toml").write_text(SUITE.format(dataset="digits"))
    with pytest.raises(SuiteError, match=r"model: lenet5 needs images .* at least 12x12"):
        run_suite(load_suite(tmp_path / "suite.toml", registry), registry=registry,
                  out_dir=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run" / "results.sqlite").exists()
