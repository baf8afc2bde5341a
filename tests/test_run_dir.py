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


def test_update_keeps_the_cells_both_versions_have_and_archives_the_rest(write_suite, registry,
                                                                         tmp_path):
    """``run --update`` after editing a suite: a cell whose id is in both versions is the same
    training and measurements, so it stays; the old version's other cells (stored, or only
    checkpoints of an unfinished one) go to the archive with every number, never reported as
    this version's."""
    run_dir = tmp_path / "run"
    old = load_suite(write_suite(), registry)  # seeds 0 and 1
    run_suite(old, registry=registry, out_dir=run_dir, device="cpu", engine="sequential")
    before = (run_dir / "results.sqlite").read_bytes()
    ids = {c.seed: c.cell_id for c in old.cells()}
    ids[2] = next(c.cell_id for c in load_suite(write_suite("three.toml", seeds="[2]"),
                                                registry).cells())
    unfinished = run_dir / "checkpoints" / "0123456789abcdef"  # a cell killed mid-training
    unfinished.mkdir()
    (unfinished / "epoch_0001.safetensors").write_bytes(b"x")
    with read_store(run_dir) as store:
        kept_rows = store.tidy().query("seed == 1").reset_index(drop=True)
    new = load_suite(write_suite(seeds="[1, 2]"), registry)
    assert new.hash != old.hash and ids[1] in {c.cell_id for c in new.cells()}
    summary = run_suite(new, registry=registry, out_dir=run_dir, device="cpu",
                        engine="sequential", update=True)
    assert summary.skipped == [ids[1]] and summary.ran == [ids[2]]
    assert sorted(summary.dropped) == sorted([ids[0], unfinished.name])
    archive = summary.archive
    assert (archive / "results.sqlite").read_bytes() != before  # the copy says why
    with read_store(archive) as store:
        assert {c["seed"] for c in store.cells()} == {0, 1}
        assert "run --update" in store.meta()["archived"]
    assert (archive / "checkpoints" / ids[0]).is_dir() and not (run_dir / "checkpoints"
                                                                 / ids[0]).exists()
    assert (archive / "checkpoints" / unfinished.name / "epoch_0001.safetensors").is_file()
    with read_store(run_dir) as store:
        assert {c["seed"] for c in store.cells()} == {1, 2}
        assert store.meta()["suite_hash"] == new.hash
        again = store.tidy().query("seed == 1").reset_index(drop=True)
    assert again.drop(columns=[c for c in again if "run" in c]).equals(
        kept_rows.drop(columns=[c for c in kept_rows if "run" in c]))  # seed 1 untouched
    # nothing dropped: no archive; then a version with fewer cells drops the seed-2 cell
    same = run_suite(new, registry=registry, out_dir=run_dir, device="cpu", update=True)
    assert not same.dropped and same.archive is None and not same.ran
    fewer = run_suite(load_suite(write_suite(seeds="[1]"), registry), registry=registry,
                      out_dir=run_dir, device="cpu", update=True)
    assert fewer.dropped == [ids[2]] and not fewer.ran and fewer.skipped == [ids[1]]
    with read_store(run_dir) as store:
        assert [c["seed"] for c in store.cells()] == [1]


def test_update_is_offered_when_a_changed_suite_is_refused(write_suite, tmp_path):
    from typer.testing import CliRunner

    from benchbench.cli import app
    from benchbench.plugins import DISABLE_ENV

    run_dir = tmp_path / "run"
    args = ["run", str(write_suite()), "--out", str(run_dir), "--device", "cpu", "-q"]
    env = {DISABLE_ENV: "1"}
    assert CliRunner().invoke(app, args, env=env).exit_code == 0
    args[1] = str(write_suite(seeds="[1, 2]"))
    refused = CliRunner().invoke(app, args, env=env)
    assert refused.exit_code == 2 and "pass --update to keep the cells both versions have" \
        in refused.stderr
    updated = CliRunner().invoke(app, [*args, "--update"], env=env)
    assert updated.exit_code == 0, updated.output
    assert "skipped 1 already stored" in updated.output
    assert "archived 1 cell(s) the suite no longer has" in " ".join(updated.output.split())
