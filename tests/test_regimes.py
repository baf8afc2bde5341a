"""Training regimes: the built-ins pass the kit, the contract cannot run the wrong code, and a
diverging or failing member fails alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from benchbench import hookimpl
from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.regimes import Regime
from benchbench.regimes.adversarial import FGSMAT, MART, PGDAT, TRADES
from benchbench.regimes.standard import StandardTraining
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import check_regime, isolated_registry, regime_conformance

COLS = ["model", "regime", "seed", "epoch", "split", "attack", "eps", "metric", "value"]
AT_SUITE = """
[suite]
name = "at"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:400]"
test = "test"

[model]
name = "mlp"
hidden = [16]

{regimes}

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def regime_table(name: str, label: str | None = None, epochs: int = 2,
                 checkpoints: str = "[1, 2]", dtype: str = "float64", **keys) -> str:
    lines = ["[[regime]]", f'name = "{name}"', *([f'label = "{label}"'] if label else []),
             f"epochs = {epochs}", f"checkpoints = {checkpoints}", "batch_size = 50",
             f'dtype = "{dtype}"']
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value) if not isinstance(value, str) else value}")
    return "\n".join(lines) + "\n"


def tidy(out: Path):
    with read_store(out) as store:
        cells = store.cells()
        data = store.tidy()[COLS].sort_values(COLS[:-1]).reset_index(drop=True)
    return data, cells


def run(suite, registry, out, engine="auto", events=None):
    return run_suite(suite, registry=registry, out_dir=out, device="cpu", engine=engine,
                     events=events)


# --- the kit, on every built-in ---------------------------------------------------------------

@pytest.mark.parametrize(("cls", "params"), [
    (StandardTraining, {}),
    (FGSMAT, {}),
    (PGDAT, {"steps": 2, "adv_fraction": 0.5, "eps_ramp": 2}),
    (TRADES, {"steps": 2}),
    (MART, {"steps": 2, "early_stop": True}),
    (PGDAT, {"attack": {"name": "pgd", "steps": 2}}),  # a named attack with random starts
])
def test_built_in_regimes_pass_the_kit(cls, params):
    checks = check_regime(cls, **params)
    names = {c.name for c in checks}
    assert "stacked members equal their seeds trained alone" in names
    assert "interrupted and resumed equals uninterrupted" in names
    if cls is not StandardTraining:
        assert "crafted inputs inside the eps-ball" in names


class LeakyRegime(Regime):
    """Crafts outside the ball and draws from torch's global RNG: the kit must notice both."""

    eps = 0.1

    def craft(self, ctx, model, x, y):
        return (x + 0.5 * torch.rand_like(x)).clamp(0, 1)


def test_the_kit_catches_a_regime_that_breaks_its_promises():
    failed = {c.name for c in regime_conformance(LeakyRegime) if not c.passed}
    assert "crafted inputs inside the eps-ball" in failed
    assert "stacked members equal their seeds trained alone" in failed


def test_the_kit_fixture_is_registered(benchbench_check_regime):
    assert benchbench_check_regime is check_regime


# --- the contract cannot run the wrong code ---------------------------------------------------

class NoisyTraining(StandardTraining):
    """A subclass forwarding **kwargs: its base's keys stay suite keys; its craft must run."""

    calls = 0

    def __init__(self, *, sigma: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sigma = sigma

    def craft(self, ctx, model, x, y):
        type(self).calls += 1
        return ctx.project(x + ctx.uniform(x, -self.sigma, self.sigma), x, self.sigma)


class Overrides(StandardTraining):
    def train_stacked(self, **kwargs):  # the retired method: refused, never silently ignored
        raise AssertionError


class StopsEarly:
    """A self-driven regime that stops after epoch 1 although epoch 2 is scheduled."""

    def __init__(self, *, epochs: int = 2) -> None:
        self.epochs, self.dtype, self.checkpoint_epochs = epochs, "float64", (1, epochs)

    def train(self, *, model, x, y, seed):
        yield 1


class Neither:
    """Neither a Regime nor a train method."""

    def __init__(self, *, epochs: int = 2) -> None:
        self.epochs = epochs


@hookimpl
def register_regimes(register):
    register("noisy", NoisyTraining)
    register("overrides", Overrides)
    register("stops_early", StopsEarly)
    register("neither", Neither)
    register("leaky", LeakyRegime)


@pytest.fixture
def plugin_registry():
    return isolated_registry(sys.modules[__name__])


def test_a_subclass_forwarding_kwargs_keeps_its_base_keys_and_runs_its_own_craft(
        plugin_registry, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(AT_SUITE.format(regimes=regime_table("noisy", sigma=0.3, lr=0.01)))
    suite = load_suite(path, plugin_registry)
    assert suite.regimes[0].params["lr"] == 0.01 and suite.regimes[0].params["sigma"] == 0.3
    NoisyTraining.calls = 0
    run(suite, plugin_registry, tmp_path / "run")
    data, cells = tidy(tmp_path / "run")
    assert NoisyTraining.calls == 2 * 8  # 2 epochs x 8 batches, both seeds in one stack
    assert {c["engine"] for c in cells} == {"stacked x2"}
    assert {c["status"] for c in cells} == {"ok"}


@pytest.mark.parametrize(("name", "message"), [
    ("overrides", r"'overrides'.*defines train_stacked\(\)"),
    ("neither", r"'neither'.*has neither Regime's craft\(\)/loss\(\)"),
])
def test_a_regime_that_breaks_the_contract_is_refused_before_anything_runs(
        plugin_registry, tmp_path, name, message):
    path = tmp_path / "s.toml"
    path.write_text(AT_SUITE.format(regimes=f'[regime]\nname = "{name}"\n'))
    suite = load_suite(path, plugin_registry)
    with pytest.raises(SuiteError, match=message):
        run(suite, plugin_registry, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_regime_that_never_reaches_a_scheduled_checkpoint_fails(plugin_registry, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(AT_SUITE.format(regimes='[regime]\nname = "stops_early"\n'))
    summary = run(load_suite(path, plugin_registry), plugin_registry, tmp_path / "run")
    _, cells = tidy(tmp_path / "run")
    assert {c["status"] for c in cells} == {"failed"} and len(summary.failed) == 2
    assert all("checkpoints [2] were never reached" in c["error"] for c in cells)
    # self-driven: never stacked, and the store says why
    assert {c["engine"] for c in cells} == {
        "sequential: regime 'stops_early' runs its own loop (self-driven)"}


# --- adversarial regimes through the runner ---------------------------------------------------

def at_suite(tmp_path, **keys) -> Path:
    path = tmp_path / "at.toml"
    path.write_text(AT_SUITE.format(regimes=(
        regime_table("fgsm_at", eps=0.1, **keys)
        + regime_table("pgd_at", steps=2, eps=0.1, **keys)
        + regime_table("trades", steps=2, eps=0.1, **keys))))
    return path


def test_adversarial_regimes_stack_like_alone_and_record_training(registry, tmp_path):
    suite = load_suite(at_suite(tmp_path), registry)
    run(suite, registry, tmp_path / "stacked", "auto")
    run(suite, registry, tmp_path / "alone", "sequential")
    (stacked, cells), (alone, _) = tidy(tmp_path / "stacked"), tidy(tmp_path / "alone")
    assert {c["engine"] for c in cells} == {"stacked x2"}
    assert stacked[COLS[:-1]].equals(alone[COLS[:-1]])
    assert (stacked.value - alone.value).abs().max() <= 1e-9
    fit = stacked[stacked.split == "fit"]
    assert set(zip(fit.attack, fit.metric, strict=True)) == {
        ("none", "loss"), ("none", "adv_accuracy"), ("pgd_monitor", "accuracy")}
    assert sorted(fit.epoch.unique()) == [1, 2]  # every epoch, not only the checkpoints
    # adversarial training is not standard training: crafted inputs are harder
    assert (fit[fit.metric == "adv_accuracy"].value < 1).all()


class StopAfter(Events):
    def __init__(self, stop: int) -> None:
        self.stop, self.seen = stop, []

    def epoch_done(self, spec, epoch) -> None:
        self.seen.append(epoch)
        if epoch == self.stop:
            raise KeyboardInterrupt


def test_adversarial_regimes_resume_bit_for_bit(registry, tmp_path):
    path = tmp_path / "at.toml"
    path.write_text(AT_SUITE.format(regimes=regime_table(
        "trades", epochs=4, checkpoints="[2, 4]", steps=2, eps=0.1, early_stop=True)))
    suite = load_suite(path, registry)
    run(suite, registry, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, tmp_path / "resumed", events=StopAfter(3))
    events = StopAfter(0)
    run(suite, registry, tmp_path / "resumed", events=events)
    assert events.seen == [3, 4]
    assert tidy(tmp_path / "resumed")[0].equals(tidy(tmp_path / "whole")[0])


def test_early_stop_evaluates_each_seeds_best_epoch(registry, tmp_path):
    path = tmp_path / "at.toml"
    path.write_text(AT_SUITE.format(regimes=regime_table(
        "fgsm_at", epochs=4, checkpoints="[4]", eps=0.1, early_stop=True, lr=0.01)))
    run(load_suite(path, registry), registry, tmp_path / "run")
    data, _ = tidy(tmp_path / "run")
    for _, mine in data.groupby("seed"):
        monitor = mine[mine.attack == "pgd_monitor"].set_index("epoch").value
        best = int(mine[mine.metric == "best_epoch"].value.iloc[0])
        assert monitor[best] == monitor.max() and best == monitor.idxmax()
        evaluated = set(mine[(mine.split == "test") & (mine.attack == "fgsm")].epoch)
        assert evaluated == {4, best}


def test_a_named_crafting_attack_without_per_example_runs_member_by_member(registry, tmp_path):
    path = tmp_path / "at.toml"
    path.write_text(AT_SUITE.format(regimes=regime_table(
        "pgd_at", eps=0.1, attack='{ name = "pgd", steps = 2 }')))
    suite = load_suite(path, registry)
    logs = []

    class Log(Events):
        def log(self, message):
            logs.append(message)

    run(suite, registry, tmp_path / "stacked", events=Log())
    run(suite, registry, tmp_path / "alone", "sequential")
    stacked, alone = tidy(tmp_path / "stacked")[0], tidy(tmp_path / "alone")[0]
    assert (stacked.value - alone.value).abs().max() <= 1e-9
    assert any("member by member" in m for m in logs)


def test_an_unknown_crafting_attack_is_refused_before_running(registry, tmp_path):
    path = tmp_path / "at.toml"
    path.write_text(AT_SUITE.format(regimes=regime_table(
        "pgd_at", eps=0.1, attack='{ name = "pgdd" }')))
    with pytest.raises(SuiteError, match=r"regime.*attack.*pgdd"):
        suite = load_suite(path, registry)
        run(suite, registry, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- divergence and a failing member fail alone ---------------------------------------------

def test_a_diverging_grid_stores_the_sane_cells_and_reruns_clean(registry, tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text(AT_SUITE.format(regimes=(
        regime_table("standard", label="sane", optimizer='"sgd"', lr=0.1, dtype="float32")
        + regime_table("standard", label="wild", optimizer='"sgd"', lr=1e30,
                       dtype="float32"))))
    suite = load_suite(path, registry)
    summary = run(suite, registry, tmp_path / "run")
    _, cells = tidy(tmp_path / "run")
    status = {(c["regime"], c["seed"]): (c["status"], c["error"]) for c in cells}
    assert all(status[("sane", s)][0] == "ok" for s in (0, 1))
    assert all(status[("wild", s)][0] == "failed"
               and status[("wild", s)][1].startswith("diverged at epoch 1") for s in (0, 1))
    assert len(summary.failed) == 2
    again = run(suite, registry, tmp_path / "run")  # reruns only the failed cells, cleanly
    assert len(again.failed) == 2 and len(again.skipped) == 2


class FailsOnSeedOne:
    """Raises only on member seed 1 (the harness seeds each member's attack run)."""

    norm = "linf"

    def perturb(self, model, x, y, *, eps, bounds):
        if torch.initial_seed() // 100_003 == 1:
            raise RuntimeError("this attack breaks on seed 1")
        return x.unsqueeze(0).repeat(len(eps), *[1] * x.dim())


class FailsOnStacks:
    """Declares per_example but raises on a stacked model: rerun member by member, all pass."""

    norm = "linf"
    per_example = True

    def perturb(self, model, x, y, *, eps, bounds):
        if type(model).__name__ == "StackedMLP":
            raise RuntimeError("no stacks")
        return x.unsqueeze(0).repeat(len(eps), *[1] * x.dim())


@hookimpl
def register_attacks(register):
    register("fails_on_seed_one", FailsOnSeedOne)
    register("fails_on_stacks", FailsOnStacks)


def test_a_failing_member_fails_alone_with_its_own_error(plugin_registry, tmp_path):
    path = tmp_path / "s.toml"
    text = AT_SUITE.format(regimes=regime_table("standard")) + (
        '\n[[attacks]]\nname = "fails_on_seed_one"\neps = [0.1]\n'
        '\n[[attacks]]\nname = "fails_on_stacks"\neps = [0.1]\n')
    path.write_text(text)
    run(load_suite(path, plugin_registry), plugin_registry, tmp_path / "run")
    data, cells = tidy(tmp_path / "run")
    status = {c["seed"]: c for c in cells}
    assert status[0]["status"] == "ok" and status[1]["status"] == "failed"
    assert "RuntimeError: this attack breaks on seed 1" in status[1]["error"]
    assert set(data.seed) == {0}
    assert {"fails_on_stacks", "fails_on_seed_one"} <= set(data.attack)


# --- the founding numbers did not move --------------------------------------------------------

# Counts over n (accuracies, the masking fractions) are compared exactly on every CPU: they
# change only if an example crosses a decision boundary. Losses are means of float32
# cross-entropies, summed in another order by another CPU's kernels (and trained by weights that
# differ by that rounding): 18 steps x 6 epochs of float32 rounding (2**-24 ~ 6e-8 each, growing
# at most linearly) stay far below 1e-5 relative; measured between an Intel AVX-512 and an AMD
# Zen 4 machine (the engine before per-member products there): 7.6e-8 relative, counts
# identical. On the CPU kind, thread count and torch that made the fixture
# every bit must match.
COUNT_METRICS = {"accuracy", "zero_grad_frac", "saturated_frac"}
LOSS_RTOL = 1e-5


def test_quick_digits_numbers_match_the_reference_run(registry, tmp_path):
    import math

    from tests.reference_run import FIXTURE, cpu_kind, run_quick_digits

    reference = json.loads(FIXTURE.read_text())
    rows = run_quick_digits(registry, tmp_path / "run")
    assert [r[:6] for r in rows] == [r[:6] for r in reference["rows"]]
    if cpu_kind() == reference["cpu_kind"]:  # the same path twice: exact
        assert rows == reference["rows"]
        return
    for got, want in zip(rows, reference["rows"], strict=True):
        a, b = float.fromhex(got[6]), float.fromhex(want[6])
        if got[5] in COUNT_METRICS:
            assert a == b, got
        else:
            assert math.isclose(a, b, rel_tol=LOSS_RTOL), (got, want)
