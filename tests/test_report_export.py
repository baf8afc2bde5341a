"""Reports and exports are rendered from the results store alone."""

from __future__ import annotations

import io
import json
import shutil

import pandas as pd
import pytest

from benchbench.engine.runner import run_suite
from benchbench.errors import BenchbenchError, RunDirError
from benchbench.report.export import export_results
from benchbench.report.markdown import render_report
from benchbench.report.tables import summary_tables
from benchbench.store.results import TIDY_COLUMNS, read_store
from benchbench.suite.load import load_suite


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
    assert len(frame) == 3 * 2 * 8
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
