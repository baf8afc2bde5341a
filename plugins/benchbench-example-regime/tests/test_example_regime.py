"""Tests of the noise_training regime on its own: the kit's conformance checks, its keys, its
crafting, and a tiny digits suite run through benchbench's engine. Offline, seconds."""

from __future__ import annotations

import math
from pathlib import Path

import benchbench_example_regime
import pytest
import torch
from benchbench_example_regime import NoiseTraining, register_regimes
from safetensors.torch import load_file

from benchbench.engine.runner import run_suite
from benchbench.errors import BenchbenchError
from benchbench.regimes.context import TrainContext
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry, tiny_data

SUITE = """
[suite]
name = "noise_vs_standard"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [16]

[[regime]]
name = "standard"
lr = 0.01
epochs = 2
checkpoints = [1, 2]

[[regime]]
name = "noise_training"
lr = 0.01
epochs = 2
checkpoints = [1, 2]
sigma = {sigma}
record = true

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def test_passes_benchbench_conformance(benchbench_check_regime):
    from benchbench_example_regime import NoiseTraining

    checks = benchbench_check_regime(NoiseTraining, sigma=0.1)  # raises naming each failure
    assert len(checks) >= 6


def test_conformance_includes_stacking_and_resume(benchbench_check_regime) -> None:
    """A stackable Regime gets the two checks that matter most: each stacked seed ends where it
    ends alone, and a run interrupted after epoch 1 resumes bit for bit."""
    names = {c.name for c in benchbench_check_regime(NoiseTraining, sigma=0.1, epochs=3)}
    assert {"stacked members equal their seeds trained alone",
            "interrupted and resumed equals uninterrupted"} <= names


def test_passes_conformance_recording_its_loss(benchbench_check_regime):
    benchbench_check_regime(NoiseTraining, sigma=0.3, record=True, optimizer="sgd")


@pytest.mark.parametrize("sigma", [0, -0.1, math.nan, math.inf, True, "0.1", None])
def test_bad_sigma_is_rejected_with_what_is_allowed(sigma) -> None:
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0; got"):
        NoiseTraining(sigma=sigma)


def test_bad_record_and_base_keys_are_rejected() -> None:
    with pytest.raises(ValueError, match="record must be true or false"):
        NoiseTraining(record="yes")
    with pytest.raises(ValueError, match="epochs must be an integer"):
        NoiseTraining(epochs=0)  # Regime's own keys are checked too


def context(seeds) -> TrainContext:
    return TrainContext(len(seeds), tuple(seeds), (0.0, 1.0), torch.float32, "cpu")


def test_craft_adds_noise_within_sigma_and_the_bounds_from_each_member_stream() -> None:
    x, y = tiny_data(8)
    before = x.clone()
    regime = NoiseTraining(sigma=0.2)
    out = regime.craft(context([0]), None, x, y)
    assert torch.equal(x, before)  # the data is not modified
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out - x).abs().max() <= 0.2 + 1e-6
    assert out.min() >= 0.0 and out.max() <= 1.0
    inner = (x > 0.2) & (x < 0.8)  # away from the bounds nothing is clipped: real noise
    assert (out - x)[inner].abs().mean() > 0.05
    assert torch.equal(out, regime.craft(context([0]), None, x, y))  # seeded, repeatable
    assert not torch.equal(out, regime.craft(context([1]), None, x, y))
    # a stack of seeds 0 and 1: member i's rows get exactly the noise seed i gets alone
    pair = regime.craft(context([0, 1]), None, torch.cat([x, x]), torch.cat([y, y]))
    assert torch.equal(pair[:8], out)
    assert torch.equal(pair[8:], regime.craft(context([1]), None, x, y))


def test_hook_registers_noise_training() -> None:
    seen = {}
    register_regimes(register=lambda name, obj, *, summary=None: seen.update({name: obj}))
    assert seen == {"noise_training": NoiseTraining}
    assert NoiseTraining.stackable is True


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """The tiny suite, standard beside noise_training, through benchbench's own runner."""
    registry = isolated_registry(benchbench_example_regime)
    out = tmp_path_factory.mktemp("noise")
    (out / "suite.toml").write_text(SUITE.format(sigma=0.2), encoding="utf-8")
    run_suite(load_suite(out / "suite.toml", registry), registry=registry, out_dir=out / "run",
              device="cpu", engine="auto")
    return out / "run"


def test_suite_cells_are_stored_ok_and_stacked(run) -> None:
    with read_store(run) as store:
        cells = store.cells()
        tidy = store.tidy()
    assert {(c["regime"], c["seed"], c["status"], c["engine"]) for c in cells} == {
        (regime, seed, "ok", "stacked x2") for regime in ("standard", "noise_training")
        for seed in (0, 1)}
    noise = tidy[tidy.regime == "noise_training"]
    clean = noise[(noise.split == "test") & (noise.attack == "none")
                  & (noise.metric == "accuracy")]
    assert sorted(zip(clean.seed, clean.epoch, strict=True)) == [(0, 1), (0, 2), (1, 1), (1, 2)]
    assert clean[clean.epoch == 2].value.min() > 0.5  # it learns the digits (chance: 0.1)
    fitted = noise[(noise.split == "fit") & (noise.metric == "loss")]  # ctx.record, per epoch
    assert len(fitted) == 4 and fitted.value.between(0.0, 10.0).all()
    assert tidy[(tidy.regime == "standard") & (tidy.split == "fit")].empty


def test_noise_training_really_ran_its_craft(run) -> None:
    """Same model, seed, shuffles and optimiser as standard: only the crafted inputs differ,
    so different weights mean noise_training's craft was called (not standard's loop)."""
    with read_store(run) as store:
        cell_of = {(c["regime"], c["seed"]): c["cell_id"] for c in store.cells()}
    for seed in (0, 1):
        std, noisy = (load_file(run / "checkpoints" / cell_of[(regime, seed)]
                                / "epoch_0002.safetensors")
                      for regime in ("standard", "noise_training"))
        assert std.keys() == noisy.keys()
        assert max(float((std[k] - noisy[k]).abs().max()) for k in std) > 1e-3, seed


def test_a_bad_sigma_in_a_suite_is_refused_before_it_runs(tmp_path) -> None:
    registry = isolated_registry(benchbench_example_regime)
    (tmp_path / "suite.toml").write_text(SUITE.format(sigma=0), encoding="utf-8")
    with pytest.raises(BenchbenchError, match="sigma must be a finite number > 0"):
        run_suite(load_suite(tmp_path / "suite.toml", registry), registry=registry,
                  out_dir=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run" / "results.sqlite").exists()
