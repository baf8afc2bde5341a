"""Cells measured by other versions than the installed ones: named by ``run`` (and
``stale_cells`` for report and leaderboard), measured again by ``run --force`` with the old
numbers archived."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from benchbench import __version__
from benchbench.cli import app
from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.store.examples import read_examples
from benchbench.store.results import read_store
from benchbench.store.versions import (
    Difference,
    describe_stale,
    installed_versions,
    stale_cells,
    torch_version,
)
from benchbench.suite.load import load_suite


class Log(Events):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


def _age(run_dir, cell_id: str, *, plugin="attack:fgsm", benchbench=None) -> None:
    """Pretend an older fgsm (and benchbench) measured ``cell_id``."""
    conn = sqlite3.connect(run_dir / "results.sqlite")
    with conn:
        plugins = json.loads(conn.execute("SELECT plugins FROM cells WHERE cell_id = ?",
                                          (cell_id,)).fetchone()[0])
        plugins[plugin] = "benchbench 0.0.9"
        conn.execute("UPDATE cells SET plugins = ? WHERE cell_id = ?",
                     (json.dumps(plugins), cell_id))
        if benchbench:
            conn.execute("UPDATE cells SET benchbench_version = ? WHERE cell_id = ?",
                         (benchbench, cell_id))
    conn.close()


def _numbers(run_dir, cell_id: str) -> list[tuple]:
    conn = sqlite3.connect(run_dir / "results.sqlite")
    try:
        return conn.execute("SELECT epoch, split, attack, eps, metric, value FROM results "
                            "WHERE cell_id = ? ORDER BY 1, 2, 3, 4, 5", (cell_id,)).fetchall()
    finally:
        conn.close()


@pytest.fixture
def stored(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(epochs=1, checkpoints="[1]"), registry)
    run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    with read_store(tmp_path / "run") as store:
        cells = [c["cell_id"] for c in store.cells()]
    return suite, tmp_path / "run", cells


def test_installed_versions_name_what_cells_store_without_importing_torch(registry):
    installed = installed_versions(registry)
    assert installed["benchbench"] == __version__ and installed["torch"] == torch.__version__
    assert installed["attack:fgsm"] == f"benchbench {__version__}"
    code = ("import sys; from benchbench.store.versions import torch_version; "
            "v = torch_version(); print(v, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == [torch.__version__, "False"]
    assert torch_version() == torch.__version__


def test_a_current_store_has_no_stale_cells(stored, registry):
    _, run_dir, _ = stored
    with read_store(run_dir) as store:
        assert stale_cells(store, installed=installed_versions(registry)) == []
    assert describe_stale([]) == ""


def test_stale_cells_say_what_differs(stored, registry):
    _, run_dir, cells = stored
    _age(run_dir, cells[0], benchbench="0.0.9")
    installed = {**installed_versions(registry), "torch": "9.9.9"}
    with read_store(run_dir) as store:
        stale = stale_cells(store, installed=installed)
    assert [s.cell_id for s in stale] == cells  # torch differs for both
    assert set(stale[0].differences) == {
        Difference("attack:fgsm", "benchbench 0.0.9", f"benchbench {__version__}"),
        Difference("benchbench", "0.0.9", __version__),
        Difference("torch", torch.__version__, "9.9.9")}
    assert stale[1].differences == (Difference("torch", torch.__version__, "9.9.9"),)
    line = describe_stale(stale, total=2)
    assert line.startswith("2 of 2 stored cells were measured with other versions")
    assert f"torch {torch.__version__} (installed: 9.9.9)" in line
    assert f"attack:fgsm from benchbench 0.0.9 (installed: benchbench {__version__})" in line
    gone = {k: v for k, v in installed.items() if k != "model:mlp"}
    with read_store(run_dir) as store:
        assert Difference("model:mlp", f"benchbench {__version__}", "not installed") in \
            stale_cells(store, installed=gone)[0].differences


def test_run_warns_about_stale_cells_and_keeps_them(stored, registry):
    suite, run_dir, cells = stored
    _age(run_dir, cells[1])
    before = _numbers(run_dir, cells[1])
    log = Log()
    summary = run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", events=log)
    assert not summary.ran and [s.cell_id for s in summary.stale] == [cells[1]]
    warning = [line for line in log.lines if line.startswith("warning: ")]
    assert len(warning) == 1 and "1 of 2 stored cell was measured" in warning[0]
    assert "attack:fgsm from benchbench 0.0.9" in warning[0] and "--force" in warning[0]
    assert _numbers(run_dir, cells[1]) == before and not (run_dir / "archive").exists()


def test_the_run_command_prints_the_warning(stored, monkeypatch):
    suite, run_dir, cells = stored
    _age(run_dir, cells[0])
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    result = CliRunner().invoke(app, ["run", str(suite.path), "--out", str(run_dir),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "warning: 1 of 2 stored cell was measured with other versions" in result.stderr
    assert "pass --force to measure them again" in result.stderr


def test_the_report_command_says_which_cells_are_stale(stored, monkeypatch):
    _, run_dir, cells = stored
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    current = CliRunner().invoke(app, ["report", str(run_dir)])
    assert current.exit_code == 0 and "warning" not in current.stderr
    _age(run_dir, cells[0])
    result = CliRunner().invoke(app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "warning: 1 of 2 stored cell was measured with other versions" in result.stderr
    assert "attack:fgsm from benchbench 0.0.9" in result.stderr and "--force" in result.stderr
    # the published report says so too, in its header (not only the terminal)
    text = (run_dir / "report.md").read_text()
    assert "- **stale: 1 of 2 stored cell was measured with other versions" in text
    assert "attack:fgsm from benchbench 0.0.9 (installed: benchbench" in text


def test_the_report_of_a_current_store_names_no_stale_cells(stored, monkeypatch):
    _, run_dir, _ = stored
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    assert CliRunner().invoke(app, ["report", str(run_dir)]).exit_code == 0
    assert "stale" not in (run_dir / "report.md").read_text()


def test_force_measures_stale_cells_again_and_archives_the_old_numbers(stored, registry):
    suite, run_dir, cells = stored
    _age(run_dir, cells[0], benchbench="0.0.9")
    old = _numbers(run_dir, cells[0])
    kept = _numbers(run_dir, cells[1])
    checkpoint = run_dir / "checkpoints" / cells[0] / "epoch_0001.safetensors"
    old_weights = checkpoint.read_bytes()
    log = Log()
    summary = run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", force=True,
                        events=log)
    assert summary.remeasured == [cells[0]] and summary.ran == [cells[0]]
    assert summary.skipped == [cells[1]] and not summary.stale
    assert any("--force: measuring them again" in line for line in log.lines)
    # the live store: the cell measured by the installed code, the other cell untouched
    with read_store(run_dir) as store:
        assert stale_cells(store, installed=installed_versions(registry)) == []
        cell = next(c for c in store.cells() if c["cell_id"] == cells[0])
        assert cell["benchbench_version"] == __version__
        assert {e.cell_id for e in read_examples(store)} == set(cells)
    assert _numbers(run_dir, cells[1]) == kept
    assert _numbers(run_dir, cells[0]) == old  # the same code measures the same numbers
    # the archive: the whole store as it was, readable like any run directory
    archive = summary.archive
    assert archive.parent == run_dir / "archive"
    with read_store(archive) as store:
        assert "run --force measured again" in store.meta()["archived"]
        cell = next(c for c in store.cells() if c["cell_id"] == cells[0])
        assert cell["benchbench_version"] == "0.0.9"
        assert len(store.tidy()) == len(old) + len(kept)
    assert _numbers(archive, cells[0]) == old
    assert (archive / "checkpoints" / cells[0] / "epoch_0001.safetensors").read_bytes() \
        == old_weights
    assert checkpoint.is_file() and (archive / "report.md").is_file()
    assert (archive / "figures").is_dir() == (run_dir / "figures").is_dir()
    again = run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", force=True)
    assert not again.ran and not again.remeasured
    assert len(list((run_dir / "archive").iterdir())) == 1


def test_cells_leaving_the_store_take_their_verdicts(write_suite, registry, tmp_path):
    """``--force`` and ``--update`` remove a cell's rows from every table, its verifier
    verdicts too (they once stayed behind: harmless for --force, which rewrites them, but
    --update's dropped cells would have left orphans in the live store)."""
    verifiers = '\n[[verifiers]]\nname = "ibp"\neps = [0.01]\nrows = 20\n'
    run_dir = tmp_path / "run"

    def suite_of(seeds):
        path = write_suite(epochs=1, checkpoints="[1]", seeds=seeds)
        path.write_text(path.read_text() + verifiers)
        return load_suite(path, registry)

    def verdicts(where):
        conn = sqlite3.connect(where / "results.sqlite")
        try:
            return conn.execute("SELECT cell_id, epoch, method, eps, n, robust FROM verdicts "
                                "ORDER BY 1").fetchall()
        finally:
            conn.close()

    suite = suite_of("[0]")
    run_suite(suite, registry=registry, out_dir=run_dir, device="cpu")
    (cell,) = [c.cell_id for c in suite.cells()]
    old = verdicts(run_dir)
    assert [(v[0], v[4]) for v in old] == [(cell, 20)]
    _age(run_dir, cell, benchbench="0.0.9")
    summary = run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", force=True)
    assert summary.remeasured == [cell] and not summary.failed
    assert verdicts(run_dir) == old and verdicts(summary.archive) == old
    moved = run_suite(suite_of("[1]"), registry=registry, out_dir=run_dir, device="cpu",
                      update=True)
    assert moved.dropped == [cell] and verdicts(moved.archive)[0] == old[0]
    assert [v[0] for v in verdicts(run_dir)] == moved.ran
