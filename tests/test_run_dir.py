"""Run directories: resume, no duplicate work, refusing a changed suite, failures kept apart."""

from __future__ import annotations

import sqlite3

import pytest

from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.errors import RunDirError
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite


def rows(run_dir):
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]


class StopAfter(Events):
    """Interrupts the run (like Ctrl-C) when the n-th cell starts."""

    def __init__(self, n: int) -> None:
        self.n, self.started = n, 0

    def cell_started(self, spec, epochs, index, total) -> None:
        self.started += 1
        if self.started > self.n:
            raise KeyboardInterrupt


def test_rerun_does_no_work_and_adds_no_rows(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(), registry)
    first = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    assert len(first.ran) == 2 and not first.skipped
    n = rows(tmp_path / "run")
    # 2 cells x 2 checkpoints x (4 clean + 2 masking checks + 2 fgsm eps + 2 worst_linf eps)
    assert n == 2 * 2 * 10
    second = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    assert not second.ran and len(second.skipped) == 2
    assert rows(tmp_path / "run") == n
    with read_store(tmp_path / "run") as store:
        assert len(store.runs()) == 1


def test_interrupted_run_resumes_at_first_unfinished_cell(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(seeds=3), registry)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                  events=StopAfter(1), engine="sequential")
    with read_store(tmp_path / "run") as store:
        assert [c["seed"] for c in store.cells()] == [0]
        assert store.runs()[0]["status"] == "interrupted"
    resumed = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        engine="sequential")
    assert len(resumed.skipped) == 1 and len(resumed.ran) == 2
    fresh = run_suite(suite, registry=registry, out_dir=tmp_path / "fresh", device="cpu",
                      engine="sequential")
    with read_store(tmp_path / "run") as a, read_store(tmp_path / "fresh") as b:
        cols = ["model", "seed", "epoch", "split", "attack", "eps", "metric", "value"]
        assert a.tidy()[cols].equals(b.tidy()[cols])
    assert len(fresh.ran) == 3


def test_changed_suite_is_refused_then_archived_with_force(write_suite, registry, tmp_path):
    run_dir = tmp_path / "run"
    run_suite(load_suite(write_suite(), registry), registry=registry, out_dir=run_dir,
              device="cpu")
    before = (run_dir / "results.sqlite").read_bytes()
    changed = load_suite(write_suite(epochs=3, checkpoints="[3]"), registry)
    with pytest.raises(RunDirError, match="different version of suite 'tiny'.*--force"):
        run_suite(changed, registry=registry, out_dir=run_dir, device="cpu")
    assert (run_dir / "results.sqlite").read_bytes() == before
    run_suite(changed, registry=registry, out_dir=run_dir, device="cpu", force=True)
    archived = list((run_dir / "archive").glob("*/results.sqlite"))
    assert len(archived) == 1 and archived[0].read_bytes() == before
    assert rows(run_dir) == 2 * 1 * 10  # with 2 worst_linf rows a checkpoint


def test_comments_do_not_change_the_suite(write_suite, registry, tmp_path):
    a = load_suite(write_suite(), registry)
    path = write_suite()
    path.write_text("# a comment\n" + path.read_text())
    assert load_suite(path, registry).hash == a.hash


def test_a_failing_cell_is_recorded_and_the_run_goes_on(write_suite, registry, tmp_path,
                                                        monkeypatch):
    import benchbench.engine.stacked as runner  # where every executor's units call run_unit

    real = runner.run_unit

    def flaky(unit, ctx, **kw):
        if unit[0].seed == 0:
            raise RuntimeError("boom")
        return real(unit, ctx, **kw)

    monkeypatch.setattr(runner, "run_unit", flaky)
    suite = load_suite(write_suite(), registry)
    summary = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        engine="sequential")
    assert list(summary.failed.values()) == ["RuntimeError: boom"] and len(summary.ran) == 1
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Failed cells" in report and "RuntimeError: boom" in report
    monkeypatch.setattr(runner, "run_unit", real)
    again = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    assert len(again.ran) == 1 and not again.failed
