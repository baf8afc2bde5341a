"""A store written by benchbench before schema version 3 (tests/fixtures/store_v2, made by commit
57dda85's code) opens, reports and exports, and ``run`` migrates it and goes on."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.runner import run_suite
from benchbench.store.examples import read_examples
from benchbench.store.results import SCHEMA_VERSION, read_store
from benchbench.suite.load import load_suite

FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
SEED0, SEED1 = "083d682a375cbe83", "33bc8501621498e9"


@pytest.fixture
def v2(tmp_path) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(FIXTURE / "results.sqlite", run_dir / "results.sqlite")
    shutil.copy(FIXTURE / "store_v2.toml", tmp_path / "store_v2.toml")
    return run_dir


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def _worst(frame) -> dict:
    rows = frame[frame.attack.str.startswith("worst_")]
    return {(r.epoch, r.attack, r.eps): r.value for r in rows.itertuples()}


def _accuracy(frame, attack: str, eps: float, epoch: int) -> float:
    row = frame[(frame.attack == attack) & (frame.eps == eps) & (frame.epoch == epoch)
                & (frame.metric == "accuracy")]
    assert len(row) == 1
    return float(row.value.iloc[0])


def test_the_fixture_is_a_version_2_store_made_before_bits():
    assert SCHEMA_VERSION >= 3  # the fixture predates version 3 (bits), and 4 (verdicts)
    assert (FIXTURE / "results.sqlite").stat().st_size < 200_000
    with read_store(FIXTURE) as store:
        assert store.meta()["schema_version"] == "2"
        assert read_examples(store) == []
        assert [c["cell_id"] for c in store.cells()] == [SEED0]


def test_a_v2_store_reads_with_worst_rows_only_where_exact(v2):
    before = (v2 / "results.sqlite").read_bytes()
    with read_store(v2) as store:
        tidy = store.tidy()
    # fgsm alone at 0.05, pgd alone at 0.1, pgd_l2 the only l2 attack; at 0.2 fgsm and pgd
    # both ran and without bits their ensemble is unknown: no row
    assert set(_worst(tidy)) == {(e, a, eps) for e in (1, 2) for a, eps in (
        ("worst_linf", 0.05), ("worst_linf", 0.1), ("worst_l2", 0.5))}
    for (epoch, _, eps), value in _worst(tidy).items():
        single = {0.05: "fgsm", 0.1: "pgd", 0.5: "pgd_l2"}[eps]
        assert value == _accuracy(tidy, single, eps, epoch)
    assert tidy.attack.tolist().index("worst_l2") > tidy.attack.tolist().index("pgd_l2")
    assert (v2 / "results.sqlite").read_bytes() == before  # read-only: nothing written


def test_report_and_export_of_a_v2_store(v2, cli, tmp_path):
    before = (v2 / "results.sqlite").read_bytes()
    result = cli("report", v2, "--out", tmp_path / "report.md")
    assert result.exit_code == 0, result.output
    assert "fgsm" in (tmp_path / "report.md").read_text()
    result = cli("export", v2, "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert set(frame.cell_id) == {SEED0} and "worst_linf" in set(frame.attack)
    result = cli("export", v2, "--format", "json", "--out", tmp_path / "out.json")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out.json").read_text())
    assert len(rows) == len(frame)
    assert (v2 / "results.sqlite").read_bytes() == before


def test_run_migrates_a_v2_store_and_goes_on(v2, registry):
    with read_store(v2) as store:
        old = store.tidy()
    suite = load_suite(v2.parent / "store_v2.toml", registry)
    summary = run_suite(suite, registry=registry, out_dir=v2, device="cpu")
    assert summary.skipped == [SEED0] and summary.ran == [SEED1] and not summary.failed
    with read_store(v2) as store:
        assert store.meta()["schema_version"] == str(SCHEMA_VERSION)
        tidy = store.tidy()
        bits = read_examples(store)
        assert [r["status"] for r in store.runs()] == ["ok", "ok"]
    # seed 0's numbers are untouched, and its worst rows are what reading it as v2 gave
    mine = tidy[tidy.cell_id == SEED0].reset_index(drop=True)
    assert mine.equals(old[mine.columns].reset_index(drop=True))
    # seed 1, measured now, has bits, so a worst row at every eps, 0.2 included
    assert {b.cell_id for b in bits} == {SEED1}
    new = tidy[tidy.cell_id == SEED1]
    assert set(_worst(new)) == {(e, a, eps) for e in (1, 2) for a, eps in (
        ("worst_linf", 0.05), ("worst_linf", 0.1), ("worst_linf", 0.2), ("worst_l2", 0.5))}
    for epoch in (1, 2):
        assert _worst(new)[(epoch, "worst_linf", 0.2)] <= min(
            _accuracy(new, "fgsm", 0.2, epoch), _accuracy(new, "pgd", 0.2, epoch))
    again = run_suite(suite, registry=registry, out_dir=v2, device="cpu")
    assert not again.ran and sorted(again.skipped) == sorted([SEED0, SEED1])
