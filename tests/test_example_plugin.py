"""The installed third-party plugins (plugins/benchbench-example-attack and
plugins/benchbench-example-regime) work end to end.

These tests use the real entry points of the installed distributions, so they fail (rather than
skip) when one is missing: ``make test`` installs both into the venv.
"""

from __future__ import annotations

import csv
import io
import json
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.plugins import DISABLE_ENV, ENTRY_POINT_GROUP, load_registry

DIST = "benchbench-example-attack"
ENTRY_POINT = "example_attack"
REGIME_DIST = "benchbench-example-regime"
REGIME_ENTRY_POINT = "example_regime"


def install_hint(dist: str) -> str:
    return (f"the example plugin {dist!r} is not installed in this environment; run "
            f"`make test` (which installs it), or `.venv/bin/pip install -e plugins/{dist}`")


SUITE = """
# quick_digits's shape, cut down: 1 seed, 2 epochs, the third-party attack beside fgsm.
[suite]
name = "example_plugin"
seeds = 1

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [64, 32]
activation = "relu"
init = "xavier_uniform"

[regime]
name = "standard"
optimizer = "adam"
lr = 0.002
batch_size = 50
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "random_sign"
eps = [0.1]
seed = 3

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


@pytest.fixture(autouse=True)
def no_disabled_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BENCHBENCH_DISABLE_PLUGINS set in the caller's shell must not hide the plugin."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)


def require_installed(dist_name: str = DIST, entry_point: str = ENTRY_POINT) -> None:
    """Fail (never skip) with the fix when the distribution or its entry point is missing."""
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        dist = None
    if dist is None:
        pytest.fail(install_hint(dist_name), pytrace=False)
    names = [ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if names != [entry_point]:
        pytest.fail(f"{dist_name} declares entry points {names} in group "
                    f"{ENTRY_POINT_GROUP!r}, expected [{entry_point!r}]; reinstall it: "
                    f"{install_hint(dist_name)}", pytrace=False)


def test_cli_plugins_json_shows_random_sign_from_its_distribution() -> None:
    require_installed()
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["failures"] == []
    [row] = [r for r in data["plugins"] if (r["kind"], r["name"]) == ("attack", "random_sign")]
    assert row["distribution"] == DIST
    assert row["version"] == "0.1.0"
    assert row["plugin"] == ENTRY_POINT
    assert row["summary"]  # first line of the class docstring


def test_disabling_the_entry_point_hides_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    require_installed()
    monkeypatch.setenv(DISABLE_ENV, ENTRY_POINT)
    attacks = load_registry().entries["attack"]
    assert "random_sign" not in attacks
    assert "fgsm" in attacks


def test_a_suite_using_random_sign_runs_and_exports(tmp_path: Path) -> None:
    require_installed()
    suite = tmp_path / "example_plugin.toml"
    suite.write_text(SUITE, encoding="utf-8")
    run_dir = tmp_path / "run"
    runner = CliRunner()

    result = runner.invoke(app, ["run", str(suite), "--out", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output + "\n" + str(result.exception)

    result = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    attacked = [r for r in rows if r["attack"] == "random_sign"]
    assert {(int(r["epoch"]), r["split"], float(r["eps"]), r["metric"]) for r in attacked} == {
        (1, "test", 0.1, "accuracy"), (2, "test", 0.1, "accuracy")}
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in attacked)
    assert {r["attack"] for r in rows} == {"none", "random_sign", "fgsm", "worst_linf"}
    plugins = json.loads(attacked[0]["plugins"])  # provenance names the third-party version
    assert plugins["attack:random_sign"] == f"{DIST} 0.1.0"
    assert plugins["attack:fgsm"].startswith("benchbench ")
    assert f"{DIST} 0.1.0" in (run_dir / "report.md").read_text(encoding="utf-8")


REGIME_SUITE = """
# the third-party regime beside standard: 2 seeds (one stack each), 2 epochs, loss recorded
[suite]
name = "example_regime"
seeds = 2

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
sigma = 0.2
record = true

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def test_cli_plugins_json_shows_noise_training_from_its_distribution() -> None:
    require_installed(REGIME_DIST, REGIME_ENTRY_POINT)
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["failures"] == []
    [row] = [r for r in data["plugins"] if (r["kind"], r["name"]) == ("regime",
                                                                       "noise_training")]
    assert row["distribution"] == REGIME_DIST
    assert row["version"] == "0.1.0"
    assert row["plugin"] == REGIME_ENTRY_POINT
    assert row["summary"].startswith("Train on inputs plus uniform noise")


def test_disabling_the_regime_entry_point_hides_only_it(monkeypatch: pytest.MonkeyPatch) -> None:
    require_installed(REGIME_DIST, REGIME_ENTRY_POINT)
    monkeypatch.setenv(DISABLE_ENV, REGIME_ENTRY_POINT)
    registry = load_registry()
    assert "noise_training" not in registry.entries["regime"]
    assert "standard" in registry.entries["regime"]
    assert "random_sign" in registry.entries["attack"]  # the other plugin still loads


def test_a_suite_using_noise_training_runs_stacked_and_exports(tmp_path: Path) -> None:
    require_installed(REGIME_DIST, REGIME_ENTRY_POINT)
    suite = tmp_path / "example_regime.toml"
    suite.write_text(REGIME_SUITE, encoding="utf-8")
    run_dir = tmp_path / "run"
    runner = CliRunner()

    result = runner.invoke(app, ["run", str(suite), "--out", str(run_dir), "--device", "cpu"])
    assert result.exit_code == 0, result.output + "\n" + str(result.exception)

    result = runner.invoke(app, ["export", str(run_dir), "--format", "csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    noisy = [r for r in rows if r["regime"] == "noise_training"]
    assert {r["engine"] for r in noisy} == {"stacked x2"}  # both seeds trained as one stack
    assert {(r["seed"], int(r["epoch"])) for r in noisy
            if (r["split"], r["attack"], r["metric"]) == ("test", "none", "accuracy")} == {
        ("0", 1), ("0", 2), ("1", 1), ("1", 2)}
    fitted = [r for r in noisy if (r["split"], r["metric"]) == ("fit", "loss")]
    assert len(fitted) == 4  # ctx.record: one mean training loss per seed and epoch
    standard = {(r["seed"], r["epoch"], r["split"], r["attack"], r["eps"], r["metric"]):
                r["value"] for r in rows if r["regime"] == "standard"}
    assert any(standard.get((r["seed"], r["epoch"], r["split"], r["attack"], r["eps"],
                             r["metric"])) != r["value"] for r in noisy if r["split"] == "test")
    plugins = json.loads(noisy[0]["plugins"])  # provenance names the third-party version
    assert plugins["regime:noise_training"] == f"{REGIME_DIST} 0.1.0"
    assert f"{REGIME_DIST} 0.1.0" in (run_dir / "report.md").read_text(encoding="utf-8")
