"""A disk that fills during a run: one line saying so, the run stops, no cell is failed for it.

Simulated in-process (no root, no tiny filesystem): ``torch.save`` failing as it does on a full
disk (``[enforce fail at inline_container.cc:672] ... unexpected pos``, or ``ENOSPC``), a plain
write of a checkpoint or a figure failing with ``ENOSPC``, and SQLite genuinely refusing to grow
the store (``PRAGMA max_page_count``: a real ``SQLITE_FULL``, "database or disk is full"). After
each, a run with space recovers bit for bit what an uninterrupted run measures.
"""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine import runner as runner_module
from benchbench.engine.files import disk_full
from benchbench.engine.runner import run_suite
from benchbench.store.results import open_store, read_store
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "full"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:300]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [8]

[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 3
checkpoints = [1, 2, 3]

[[attacks]]
name = "fgsm"
eps = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14, 0.15]
"""
COLS = ["model", "regime", "seed", "epoch", "split", "attack", "eps", "metric", "value"]
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def whole(tmp_path_factory, registry) -> Path:
    """An uninterrupted run of SUITE, with space."""
    root = tmp_path_factory.mktemp("whole")
    (root / "full.toml").write_text(SUITE)
    run_suite(load_suite(root / "full.toml", registry), registry=registry,
              out_dir=root / "run", device="cpu")
    return root / "run"


@pytest.fixture
def suite(tmp_path) -> Path:
    (tmp_path / "full.toml").write_text(SUITE)
    return tmp_path / "full.toml"


def numbers(run_dir: Path):
    with read_store(run_dir) as store:
        frame = store.tidy()
    return frame[COLS].sort_values(COLS[:-1]).reset_index(drop=True)


def one_full_line(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()  # progress bars and logs, then the error
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "the disk is full" in errors[0] and "no cell was recorded as failed" in errors[0]
    return errors[0]


def no_failed_cells(run_dir: Path) -> None:
    with read_store(run_dir) as store:
        assert [c for c in store.cells() if c["status"] != "ok"] == []
        assert store.runs()[-1]["status"] == "interrupted"
    assert not list(run_dir.rglob("*.tmp"))  # no partial file left behind


def recovers(cli, suite: Path, run_dir: Path, whole: Path) -> None:
    """A rerun with space: exit 0, the numbers and checkpoints of an uninterrupted run."""
    result = cli("run", suite, "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0, (result.output, result.exception)
    assert numbers(run_dir).equals(numbers(whole))  # same code path twice: exact
    for path in (whole / "checkpoints").rglob("*.safetensors"):
        a, b = load_file(path), load_file(run_dir / path.relative_to(whole))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("error", [RuntimeError(TORCH_FULL),
                                   OSError(errno.ENOSPC, "No space left on device")],
                         ids=["unexpected-pos", "ENOSPC"])
def test_torch_save_on_a_full_disk_stops_the_run_on_one_line(cli, suite, tmp_path,
                                                             monkeypatch, whole, error):
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):  # the second resume state (after epoch 2) fails
        calls.append(1)
        if len(calls) == 2:
            raise error
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    line = one_full_line(cli("run", suite, "--out", tmp_path / "run", "--device", "cpu"))
    assert "checkpoints/resume/" in line and str(error).split()[-1] in line
    no_failed_cells(tmp_path / "run")
    assert len(list((tmp_path / "run" / "checkpoints" / "resume").glob("*.pt"))) == 1
    monkeypatch.undo()
    recovers(cli, suite, tmp_path / "run", whole)


class FullFile:
    """A file whose writes fail with ENOSPC, as on a full disk."""

    def __init__(self, f) -> None:
        self.f = f

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.f.close()


def test_a_checkpoint_write_on_a_full_disk_stops_the_run(cli, suite, tmp_path, monkeypatch,
                                                         whole):
    real, seen = os.fdopen, []

    def fdopen(fd, *args, **kwargs):  # the third checkpoint file written fails
        f = real(fd, *args, **kwargs)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if ".safetensors." in name and name.endswith(".tmp"):
            seen.append(1)
            if len(seen) == 3:
                return FullFile(f)
        return f

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to tell which file is being written")
    monkeypatch.setattr(os, "fdopen", fdopen)
    line = one_full_line(cli("run", suite, "--out", tmp_path / "run", "--device", "cpu"))
    assert "epoch_0002.safetensors" in line and "No space left on device" in line
    no_failed_cells(tmp_path / "run")
    monkeypatch.undo()
    recovers(cli, suite, tmp_path / "run", whole)


def test_sqlite_full_while_storing_stops_the_run(cli, suite, tmp_path, monkeypatch, whole):
    """A real SQLITE_FULL: the store may not grow by a page while the cells are stored (their
    rows need several: 2 cells x 3 checkpoints x 15 eps)."""
    def capped(path):
        store = open_store(path)
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")
        return store

    monkeypatch.setattr(runner_module, "open_store", capped)
    line = one_full_line(cli("run", suite, "--out", tmp_path / "run", "--device", "cpu"))
    assert "results.sqlite" in line and "database or disk is full" in line
    no_failed_cells(tmp_path / "run")
    monkeypatch.undo()
    recovers(cli, suite, tmp_path / "run", whole)


def test_a_figure_write_on_a_full_disk_stops_the_run_and_keeps_the_cells(
        cli, suite, tmp_path, monkeypatch, whole):
    from benchbench.report import plots

    def draw(spec, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(plots, "draw", draw)
    line = one_full_line(cli("run", suite, "--out", tmp_path / "run", "--device", "cpu"))
    assert "figures" in line
    with read_store(tmp_path / "run") as store:  # measured and stored before the report
        assert {c["status"] for c in store.cells()} == {"ok"}
    assert not (tmp_path / "run" / "report.md").exists()
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".figures")]
    monkeypatch.undo()
    recovers(cli, suite, tmp_path / "run", whole)
    assert (tmp_path / "run" / "report.md").is_file()


def test_what_counts_as_a_full_disk():
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk_full(sqlite3.OperationalError("database or disk is full"))
    assert disk_full(RuntimeError(TORCH_FULL))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . writing") from None
    except RuntimeError as chained:  # torch.save into a file object: the OSError as context
        assert disk_full(chained)
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    shutil.disk_usage("/")  # (the real disk is not touched by these tests)
