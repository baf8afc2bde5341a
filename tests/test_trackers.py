"""run --tensorboard / --mlflow: the real libraries, read back after a tiny digits run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app

SUITE = """
[suite]
name = "tracked"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:400]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [16]

[regime]
name = "fgsm_at"
eps = 0.1
monitor = false
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """One run of two seeds (a stack) with both trackers; returns its directories."""
    root = tmp_path_factory.mktemp("tracked")
    (root / "suite.toml").write_text(SUITE)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
        result = _cli("run", root / "suite.toml", "--out", root / "run", "--device", "cpu",
                      "--tensorboard", root / "tb", "--mlflow", root / "mlruns")
    assert result.exit_code == 0, result.output
    return root


def _stored(run_dir: Path):
    from benchbench.store.results import read_store
    from benchbench.store.worst import is_worst

    with read_store(run_dir) as store:
        tidy = store.tidy()
    tidy = tidy[~tidy["attack"].map(is_worst)]  # derived by the store, not a record
    return tidy[tidy["metric"] != "correct"]


def _name(row) -> str:
    from benchbench.engine.progress import record_name

    return record_name(row.split, row.attack, row.eps, row.metric)


def test_tensorboard_holds_every_stored_number_per_cell(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    stored = _stored(tracked / "run")
    assert {"fit", "train", "test"} <= set(stored["split"])  # per-epoch records + checkpoints
    for seed, rows in stored.groupby("seed"):
        events = EventAccumulator(str(tracked / "tb" / "tracked" / "mlp" / "fgsm_at"
                                      / f"seed_{seed}"))
        events.Reload()
        assert set(events.Tags()["scalars"]) == {_name(r) for r in rows.itertuples()}
        for row in rows.itertuples():
            got = {e.step: e.value for e in events.Scalars(_name(row))}
            # TensorBoard keeps scalars as float32: equal up to float32 rounding
            assert got[row.epoch] == pytest.approx(row.value, rel=2 ** -23)
        assert "fit/loss" in events.Tags()["scalars"]
        assert sorted(e.step for e in events.Scalars("fit/loss")) == [1, 2]
        assert "benchbench/cell/text_summary" in events.Tags()["tensors"]


def test_mlflow_has_one_run_per_cell_with_params_and_metrics(tracked):
    from mlflow.tracking import MlflowClient

    from benchbench.store.results import read_store

    client = MlflowClient(tracking_uri=(tracked / "mlruns").absolute().as_uri())
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    with read_store(tracked / "run") as store:
        cells = {c["cell_id"]: c for c in store.cells()}
    assert sorted(r.data.tags["benchbench.cell_id"] for r in runs) == sorted(cells)
    stored = _stored(tracked / "run")
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.info.run_name.startswith("mlp / fgsm_at / seed ")
        params = run.data.params
        assert (params["model"], params["regime"], params["regime.eps"], params["model.hidden"],
                params["attack.fgsm.eps"]) == ("mlp", "fgsm_at", "0.1", "[16]", "[0.1]")
        assert run.data.tags["benchbench.engine"] == "stacked x2"
        rows = stored[stored["seed"] == int(params["seed"])]
        assert set(run.data.metrics) == {_name(r) for r in rows.itertuples()}
        for row in rows.itertuples():
            history = {m.step: m.value for m in client.get_metric_history(run.info.run_id,
                                                                         _name(row))}
            assert history[row.epoch] == row.value  # float64 both ways: the same number


def test_a_missing_extra_is_one_line_exit_2_before_anything_runs(tmp_path, monkeypatch):
    (tmp_path / "suite.toml").write_text(SUITE)
    for flag, module, extra in (("--mlflow", "mlflow", "benchbench[mlflow]"),
                                ("--tensorboard", "tensorboard", "benchbench[tensorboard]")):
        with monkeypatch.context() as mp:
            mp.setitem(sys.modules, module, None)  # importlib.util.find_spec: not installed
            result = _cli("run", tmp_path / "suite.toml", "--out", tmp_path / "run", flag,
                          tmp_path / "where")
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and flag in lines[0] and f"pip install '{extra}'" in lines[0]
        assert not (tmp_path / "run").exists() and not (tmp_path / "where").exists()


def test_a_tracker_failing_mid_run_warns_once_and_the_store_is_complete(
        tmp_path, registry, capsys):
    from benchbench.cli_progress import Tee
    from benchbench.engine.cell import Events
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite
    from benchbench.tracking import TensorBoard

    (tmp_path / "suite.toml").write_text(SUITE.replace("epochs = 2", "epochs = 1")
                                         .replace("[1, 2]", "[1]")
                                         .replace('name = "fgsm_at"\neps = 0.1\nmonitor = false',
                                                  'name = "standard"'))
    tracker = TensorBoard(tmp_path / "tb", suite="tracked")

    def broken(**kwargs):
        raise OSError("No space left on device")

    tracker.writer_class = broken
    spec = load_suite(tmp_path / "suite.toml", registry)
    summary = run_suite(spec, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        events=Tee(Events(), tracker), engine="sequential")
    assert len(summary.ran) == 2 and not summary.failed
    warned = [line for line in capsys.readouterr().err.splitlines() if "--tensorboard" in line]
    assert len(warned) == 1 and "No space left on device" in warned[0]
    assert len(_stored(tmp_path / "run")["seed"].unique()) == 2


def test_a_failed_cell_is_a_failed_mlflow_run_without_metrics(tmp_path):
    from mlflow.tracking import MlflowClient

    from benchbench.engine.cell import CellOutcome
    from benchbench.engine.evaluate import Record
    from benchbench.suite.cells import CellSpec, ComponentRef, DatasetRef
    from benchbench.tracking import MLflow

    spec = CellSpec(suite="s", seed=4, dataset=DatasetRef("digits", "train", "test"),
                    model=ComponentRef("mlp", "wide", {"hidden": [64]}),
                    regime=ComponentRef("standard", "standard", {"lr": 0.5}))
    tracker = MLflow(f"file:{tmp_path / 'ml'}", suite="s", run_dir=tmp_path / "run")
    tracker.cell_finished(spec, CellOutcome(
        spec, [Record(1, "test", "none", 0.0, "accuracy", 0.5)], "float32", "cpu",
        "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:09+00:00", 9.0,
        error="diverged at epoch 1: the weights are not finite (lower the learning rate?)"))
    client = MlflowClient(tracking_uri=(tmp_path / "ml").as_uri())
    [run] = client.search_runs([client.get_experiment_by_name("s").experiment_id])
    assert run.info.status == "FAILED" and run.data.metrics == {}
    assert run.data.tags["benchbench.error"].startswith("diverged at epoch 1")
    assert (run.data.params["model.label"], run.data.params["model.hidden"],
            run.data.params["regime.lr"]) == ("wide", "[64]", "0.5")
    assert run.info.end_time - run.info.start_time == 9000  # ms, from the outcome's times
