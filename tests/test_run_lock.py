"""One writer per run directory, a lock a killed process does not leave stuck, consistent reads
while a run writes, and a parallel run killed with ``kill -9`` that a rerun completes."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.store.lock import HOLDER, LOCK
from benchbench.store.results import read_store

ROOT = Path(__file__).parents[1]
SUITE = """
[suite]
name = "locked"
seeds = [0]

[dataset]
name = "digits"
train = "train[:600]"
test = "test[:200]"
{models}
[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 3
checkpoints = [1, 3]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""
MODEL = '\n[[model]]\nname = "mlp"\nlabel = "h{h}"\nhidden = [{h}, {h}]\n'


def suite(tmp_path, hidden=(8,)) -> Path:
    path = tmp_path / "locked.toml"
    path.write_text(SUITE.format(models="".join(MODEL.format(h=h) for h in hidden)))
    return path


def python(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "BENCHBENCH_DISABLE_PLUGINS": "1"})


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def first_stored(main: subprocess.Popen, run_dir: Path) -> list:
    """Poll the store (read-only) while ``main`` runs: the (cell_id, finished) rows of the
    finished cells, as soon as there is one (or [] when ``main`` ended or 240 s passed)."""
    stored: list = []
    deadline = time.monotonic() + 240
    while not stored and time.monotonic() < deadline and main.poll() is None:
        time.sleep(0.05)
        try:
            with sqlite3.connect(f"file:{run_dir / 'results.sqlite'}?mode=ro", uri=True,
                                 timeout=10) as conn:
                stored = conn.execute("SELECT cell_id, finished FROM cells "
                                      "WHERE status = 'ok'").fetchall()
        except sqlite3.Error:  # not created yet
            continue
    return stored


def test_a_second_run_is_refused_naming_the_first_and_a_killed_holder_does_not_block(tmp_path):
    run_dir = tmp_path / "run"
    holder = python(f"from benchbench.store.lock import hold_run_dir\nimport time\n"
                    f"with hold_run_dir({str(run_dir)!r}, command='benchbench run x.toml'):\n"
                    f"    print('held', flush=True); time.sleep(120)\n")
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        result = cli("run", suite(tmp_path), "--out", run_dir, "--device", "cpu")
        assert time.perf_counter() - t0 < 30  # refused at once, never waiting
        assert result.exit_code == 2
        [line] = result.output.strip().splitlines()
        assert "another benchbench run is writing here" in line
        assert f"pid {holder.pid} on {socket.gethostname()}, running since 20" in line
        assert "benchbench run x.toml" in line
    finally:
        holder.send_signal(signal.SIGKILL)  # its lock file stays; its flock dies with it
        holder.wait()
    assert (run_dir / LOCK).exists() and (run_dir / HOLDER).exists()
    result = cli("run", suite(tmp_path), "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert not (run_dir / LOCK).exists() and not (run_dir / HOLDER).exists()


def test_export_and_report_read_one_snapshot_while_another_process_writes(tmp_path):
    from benchbench.store.results import open_store

    run_dir = tmp_path / "run"
    with open_store(run_dir / "results.sqlite") as store:
        store.set_meta(suite_name="s", suite_hash="h")
    # each "unit": 20 cells of 50 numbers, stored in one transaction
    writer = python(
        "import time\nfrom benchbench.engine.evaluate import Record\n"
        "from benchbench.store.results import open_store\n"
        f"with open_store({str(run_dir / 'results.sqlite')!r}) as s:\n"
        "    print('open', flush=True)\n"
        "    for u in range(60):\n"
        "        s.add_cells([dict(cell_id=f'{u}-{c}', status='ok', spec='{}', records=[\n"
        "            Record(1, 'test', 'none', 0.0, f'm{i}', 0.5) for i in range(50)])\n"
        "            for c in range(20)])\n"
        "        time.sleep(0.02)\n")
    try:
        assert writer.stdout.readline().strip() == "open"
        seen = set()
        while writer.poll() is None:
            with read_store(run_dir) as store:
                cells = store.cells()
                time.sleep(0.03)  # the writer commits meanwhile: this snapshot must not move
                assert store.count_results() == 50 * len(cells) and len(cells) % 20 == 0
                seen.add(len(cells))
            result = cli("export", run_dir, "--format", "csv")
            assert result.exit_code == 0, result.output
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and len(seen) > 1  # it read while the writer wrote


def test_a_killed_parallel_run_loses_and_duplicates_nothing(tmp_path):
    # two quick units, then two slow ones: the kill lands while the slow ones train
    path = suite(tmp_path, hidden=(8, 10, 1200, 1300))
    run_dir = tmp_path / "run"
    main = subprocess.Popen(
        [str(Path(sys.executable).parent / "benchbench"), "run", str(path), "--out", str(run_dir),
         "--device", "cpu", "--workers", "2"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "BENCHBENCH_DISABLE_PLUGINS": "1"})
    try:
        stored = first_stored(main, run_dir)
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()
    assert 1 <= len(stored) < 4, "the run ended before it could be killed mid-way"
    result = cli("run", path, "--out", run_dir, "--device", "cpu", "--workers", "2")
    assert result.exit_code == 0, result.output
    assert f"ran {4 - len(stored)} cell(s), skipped {len(stored)} already stored" in \
        result.output
    with read_store(run_dir) as store:
        cells, runs = store.cells(), store.runs()
        per_cell = store.tidy().groupby("cell_id").size()
    assert len(cells) == 4 and {c["status"] for c in cells} == {"ok"}
    assert dict(stored).items() <= {c["cell_id"]: c["finished"] for c in cells}.items()
    assert len(set(per_cell)) == 1  # every cell has the same rows: none lost, none twice
    assert [r["status"] for r in runs] == ["interrupted", "ok"]


def test_sigterm_stops_a_run_as_ctrl_c_does_and_the_next_run_goes_on(tmp_path):
    """``kill`` (or a scheduler's preemption) is an interrupt, not a crash: exit 143 with the
    line saying how to go on, the run row stored as interrupted, the lock given back, and the
    same command again finishes what was left (the stored cell skipped)."""
    path = suite(tmp_path, hidden=(8, 1300))  # one quick cell, then a slow one
    run_dir = tmp_path / "run"
    main = subprocess.Popen(
        [str(Path(sys.executable).parent / "benchbench"), "run", str(path), "--out", str(run_dir),
         "--device", "cpu", "--engine", "sequential"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BENCHBENCH_DISABLE_PLUGINS": "1"})
    try:
        stored = first_stored(main, run_dir)
        main.send_signal(signal.SIGTERM)
        _, err = main.communicate(timeout=120)
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
    assert len(stored) == 1, "the run ended before it could be stopped mid-way"
    assert main.returncode == 143, err
    assert f"terminated (SIGTERM): finished cells are stored in {run_dir}" in err
    with read_store(run_dir) as store:
        assert [r["status"] for r in store.runs()] == ["interrupted"]
    result = cli("run", path, "--out", run_dir, "--device", "cpu", "--engine", "sequential")
    assert result.exit_code == 0, result.output
    assert "ran 1 cell(s), skipped 1 already stored" in result.output

