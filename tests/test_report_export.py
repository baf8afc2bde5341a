"""Reports and exports are rendered from the results store alone."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections import namedtuple

import pandas as pd
import pytest

from benchbench.engine.runner import run_suite
from benchbench.errors import BenchbenchError, RunDirError
from benchbench.report.export import SPEC_COLUMNS, export_results
from benchbench.report.markdown import render_report
from benchbench.report.tables import summary_tables
from benchbench.store.results import TIDY_COLUMNS, open_store, read_store
from benchbench.suite.load import load_suite
from tests.test_resume import Epochs


@pytest.fixture
def run_dir(write_suite, registry, tmp_path):
    run_suite(load_suite(write_suite(seeds=3), registry), registry=registry,
              out_dir=tmp_path / "run", device="cpu", command="benchbench run tiny.toml")
    return tmp_path / "run"


def test_report_has_tables_suite_command_versions_and_wall_time(run_dir):
    report = (run_dir / "report.md").read_text()
    for needle in ("# benchbench report: tiny", "## mlp · standard · digits",
                   "Mean ± standard deviation over 3 seed(s) [0, 1, 2]",
                   "epoch | train acc", "test acc", "Accuracy under `fgsm` (fgsm: loss=ce)",
                   "| ε=0.05 ", "| ε=0.2 ",
                   "command: `benchbench run tiny.toml`", "wall time:", "torch ",
                   "machine:", "```toml", 'name = "tiny"', "cells finished: 3"):
        assert needle in report, needle


def test_report_names_the_cells_an_interrupted_run_left_unfinished(write_suite, registry,
                                                                   tmp_path):
    suite = load_suite(write_suite(seeds=3), registry)
    with pytest.raises(KeyboardInterrupt):  # seed 0 finishes, seed 1 stops in its epoch 2
        run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                  engine="sequential", events=_StopAt(3))
    with read_store(tmp_path / "run") as store:
        report = render_report(store)
    assert "cells finished: 1, failed: 0" in report
    assert ("**not finished: 2 of the suite's 3 cells** (not run yet, or stopped before they "
            "finished; `benchbench run` goes on with them): mlp / standard / seed 1, mlp / "
            "standard / seed 2") in report
    run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
              engine="sequential")
    assert "not finished" not in (tmp_path / "run" / "report.md").read_text()


class _StopAt(Epochs):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the ``n``-th epoch trained in the run."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def epoch_done(self, spec, epoch) -> None:
        self.seen.append(epoch)
        if len(self.seen) == self.n:
            raise KeyboardInterrupt


def test_report_values_are_mean_and_std_over_seeds(run_dir):
    with read_store(run_dir) as store:
        tidy = store.tidy()
        table = summary_tables(tidy)[0]
    sel = tidy[(tidy.epoch == 2) & (tidy.split == "test") & (tidy.attack == "fgsm")
               & (tidy.eps == 0.2)]
    assert len(sel) == 3
    assert table.mean.loc[2, "fgsm ε=0.2"] == pytest.approx(sel.value.mean())
    assert table.std.loc[2, "fgsm ε=0.2"] == pytest.approx(sel.value.std(ddof=1))
    cell = table.formatted().loc[2, "fgsm ε=0.2"]
    assert cell == f"{sel.value.mean() * 100:.2f} ± {sel.value.std() * 100:.2f}"


def test_report_rerenders_identically_without_checkpoints(run_dir):
    shutil.rmtree(run_dir / "checkpoints")
    with read_store(run_dir) as store:
        assert render_report(store) == (run_dir / "report.md").read_text()


def test_export_csv_and_json_are_tidy_long_rows(run_dir, tmp_path):
    with read_store(run_dir) as store:
        csv_text = export_results(store, fmt="csv")
        export_results(store, fmt="json", out=tmp_path / "out.json")
        with pytest.raises(BenchbenchError, match="use one of csv, json"):
            export_results(store, fmt="xml")
    frame = pd.read_csv(io.StringIO(csv_text))
    assert list(frame.columns[:len(TIDY_COLUMNS)]) == list(TIDY_COLUMNS)
    assert len(frame) == 3 * 2 * (8 + 2)  # 8 measurements and worst_linf at both eps
    clean = frame[frame.attack == "none"]
    assert set(clean.eps) == {0.0} and set(clean.metric) == {
        "accuracy", "loss", "zero_grad_frac", "saturated_frac"}
    assert set(frame[frame.attack == "fgsm"].eps) == {0.05, 0.2}
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == len(frame) and rows[0]["dataset"] == "digits"
    assert {"suite_hash", "torch_version", "device", "dtype", "plugins"} <= set(rows[0])


def test_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirError, match="no results.sqlite here"):
        read_store(tmp_path)


def test_exports_carry_each_cells_model_regime_dataset_and_attack_parameters(run_dir):
    with read_store(run_dir) as store:
        csv_rows = pd.read_csv(io.StringIO(export_results(store, fmt="csv")))
        json_rows = json.loads(export_results(store, fmt="json"))
        specs = {c["cell_id"]: json.loads(c["spec"]) for c in store.cells()}
    assert list(csv_rows.columns[-len(SPEC_COLUMNS):]) == list(SPEC_COLUMNS)
    assert list(json_rows[0])[-len(SPEC_COLUMNS):] == list(SPEC_COLUMNS)
    for rows in (csv_rows.to_dict("records"), json_rows):
        for row in rows:
            spec = specs[row["cell_id"]]
            assert row["model_name"] == "mlp" and row["regime_name"] == "standard"
            assert json.loads(row["model_params"]) == spec["model"]["params"]
            assert json.loads(row["model_params"])["hidden"] == [16]
            assert json.loads(row["regime_params"]) == spec["regime"]["params"]
            assert json.loads(row["regime_params"])["lr"] == 0.01
            assert json.loads(row["dataset_params"]) == {"train": "train", "test": "test"}
            if row["attack"] == "fgsm":
                assert row["attack_name"] == "fgsm"
                assert json.loads(row["attack_params"]) == {"loss": "ce"}
            else:  # clean and worst-case rows belong to no one attack
                assert pd.isna(row["attack_name"]) and pd.isna(row["attack_params"])
            assert pd.isna(row["attack_rows"])  # every attack ran on all test rows
    assert {r["attack"] for r in json_rows} == {"none", "fgsm", "worst_linf"}


def test_exports_keep_every_float_exactly(tmp_path):
    Rec = namedtuple("Rec", "epoch split attack eps metric value")
    values = [1 / 3, 2 / 3, 0.1 + 0.2, 1e-300, 123456.78901234567]
    spec = {"model": {"label": "m", "name": "mlp", "params": {"lr_scale": 1 / 7}},
            "regime": {"label": "r", "name": "standard", "params": {}},
            "dataset": {"name": "digits", "params": {}, "train": "train", "test": "test"},
            "attacks": [{"label": "fgsm", "name": "fgsm", "params": {}, "rows": 7,
                         "eps": [1 / 3], "split": "test"}]}
    with open_store(tmp_path / "results.sqlite") as store:
        store.add_cell(cell_id="c", status="ok", spec=json.dumps(spec), model="m", regime="r",
                       dataset="digits", seed=0, run_id=1,
                       records=[Rec(1, "test", "none", 0.0, f"m{i}", v)
                                for i, v in enumerate(values)]
                       + [Rec(1, "test", "fgsm", 1 / 3, "accuracy", 1 / 3)])
    with read_store(tmp_path) as store:
        rows = json.loads(export_results(store, fmt="json"))
        csv_rows = list(csv.DictReader(io.StringIO(export_results(store, fmt="csv"))))
    by_metric = {r["metric"]: r for r in rows}
    assert [by_metric[f"m{i}"]["value"] for i in range(len(values))] == values
    assert by_metric["accuracy"]["eps"] == 1 / 3 and by_metric["accuracy"]["attack_rows"] == 7
    assert json.loads(by_metric["m0"]["model_params"])["lr_scale"] == 1 / 7
    assert by_metric["m0"]["attack_rows"] is None  # null, not NaN: the file is strict JSON
    by_metric = {r["metric"]: r for r in csv_rows}
    assert [float(by_metric[f"m{i}"]["value"]) for i in range(len(values))] == values
    assert float(by_metric["accuracy"]["eps"]) == 1 / 3
