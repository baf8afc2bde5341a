"""A regime's own ``seeds`` key: costly regimes run fewer seeds than the suite's."""

from __future__ import annotations

import sqlite3

import pytest

from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.suite.load import load_suite
from tests.conftest import TINY_SUITE

BASE = TINY_SUITE.format(seeds="[0, 1, 2]", epochs=1, checkpoints="[1]", dtype="float32")
TWO = BASE.replace("[regime]", "[[regime]]").replace(
    '[[attacks]]', '[[regime]]\nname = "fgsm_at"\neps = 0.1\nlr = 0.01\nbatch_size = 100\n'
                   'epochs = 1\ncheckpoints = [1]\n{seeds}\n\n[[attacks]]', 1)


def test_regime_seeds_override_the_suite_seeds(write_suite, registry):
    suite = load_suite(write_suite(text=TWO.format(seeds="seeds = [2, 7]")), registry)
    assert [(c.regime.label, c.seed) for c in suite.cells()] == [
        ("standard", 0), ("standard", 1), ("standard", 2), ("fgsm_at", 2), ("fgsm_at", 7)]
    assert suite.seeds_of(0) == (0, 1, 2) and suite.seeds_of(1) == (2, 7)
    # a count works as at the suite level, and the key is not a parameter of the regime
    counted = load_suite(write_suite(text=TWO.format(seeds="seeds = 1")), registry)
    assert [c.seed for c in counted.cells() if c.regime.label == "fgsm_at"] == [0]
    assert "seeds" not in counted.regimes[1].params


def test_regime_seeds_keep_the_cells_of_the_suite_seeds(write_suite, registry):
    """Saying a regime's seeds adds or drops cells, never changes the others' ids."""
    plain = load_suite(write_suite("a.toml", text=TWO.format(seeds="")), registry)
    same = load_suite(write_suite("b.toml", text=TWO.format(seeds="seeds = 3")), registry)
    fewer = load_suite(write_suite("c.toml", text=TWO.format(seeds="seeds = [0]")), registry)
    ids = [c.cell_id for c in plain.cells()]
    assert [c.cell_id for c in same.cells()] == ids
    assert plain.hash == same.hash
    assert [c.cell_id for c in fewer.cells()] == ids[:4]


@pytest.mark.parametrize(("value", "expected"), [
    ("[0, 0]", "regime[1].seeds: must be a positive count"),
    ("0", "regime[1].seeds: must be a positive count"),
    ('"all"', "regime[1].seeds: must be a positive count"),
])
def test_bad_regime_seeds_name_the_key(write_suite, registry, value, expected):
    path = write_suite(text=TWO.format(seeds=f"seeds = {value}"))
    with pytest.raises(SuiteError) as info:
        load_suite(path, registry)
    assert str(info.value).startswith(str(path)) and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_run_trains_each_regime_for_its_own_seeds(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(text=TWO.format(seeds="seeds = [1]")), registry)
    summary = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    assert not summary.failed and len(summary.ran) == 4
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as db:
        rows = db.execute("SELECT spec FROM cells").fetchall()
    assert len(rows) == 4
    report = (tmp_path / "run" / "report.md").read_text()
    assert "fgsm_at" in report
