"""Faults that must lose nothing and touch nothing that is not benchbench's.

Damaged stores, directories benchbench did not make, runs killed with ``kill -9``, a deleted
store beside its checkpoints, output paths that are directories or lie under files, plugins
whose constructor raises. Every refusal: exit 2, one line on stderr, no traceback, and the
directory tree byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.files import OutputError, write_atomic
from benchbench.engine.runner import run_suite
from benchbench.store.results import SCHEMA_VERSION, read_store
from benchbench.store.rundir import MARKER
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "faults"
seeds = [0]

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
epochs = 1
checkpoints = [1]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


# helpers -------------------------------------------------------------------------------------
def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content's hash ("dir" for directories)."""
    return {str(p.relative_to(root)): "dir" if p.is_dir() else
            hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))}


def refused(result, *needles: str) -> str:
    """Assert the one-line, exit-2 contract; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def garbage_page(path: Path) -> None:
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[size:2 * size] = random.Random(0).randbytes(size)  # page 2
    path.write_bytes(bytes(data))


def truncated_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def zeroed_header(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(bytes(100) + data[100:])


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE = {"garbage page": garbage_page, "truncated half": truncated_half,
          "zeroed header": zeroed_header, "0 bytes": empty}


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory, registry):
    """One finished run of SUITE, to copy from."""
    root = tmp_path_factory.mktemp("made")
    (root / "faults.toml").write_text(SUITE)
    run_suite(load_suite(root / "faults.toml", registry), registry=registry,
              out_dir=root / "run", device="cpu", command="benchbench run faults.toml")
    return root


@pytest.fixture
def work(made, tmp_path) -> Path:
    """A copy of the finished run (tmp_path/run) and its suite (tmp_path/faults.toml)."""
    shutil.copytree(made / "run", tmp_path / "run")
    shutil.copy(made / "faults.toml", tmp_path / "faults.toml")
    return tmp_path


def said(result) -> str:
    """The command's output as one line (rich wraps long log lines)."""
    return " ".join(result.output.split())


def count(run_dir: Path) -> int:
    with read_store(run_dir) as store:
        return store.count_results()


# damaged stores ------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", ["report", "export", "run"])
def test_a_damaged_store_is_refused_untouched(cli, work, damage, command):
    store = work / "run" / "results.sqlite"
    DAMAGE[damage](store)
    before = snapshot(work)
    args = {"report": ["report", work / "run"],
            "export": ["export", work / "run", "--format", "csv"],
            "run": ["run", work / "faults.toml", "--out", work / "run", "--device", "cpu"]}
    line = refused(cli(*args[command]), str(store), "damaged results store", "move it aside",
                   "--force")
    assert snapshot(work) == before, line


@pytest.mark.parametrize("damage", DAMAGE)
def test_run_force_archives_a_damaged_store_and_starts_over(cli, made, work, damage):
    run_dir = work / "run"
    DAMAGE[damage](run_dir / "results.sqlite")
    damaged = (run_dir / "results.sqlite").read_bytes()
    checkpoints = snapshot(run_dir / "checkpoints")
    result = cli("run", work / "faults.toml", "--out", run_dir, "--device", "cpu", "--force")
    assert result.exit_code == 0, result.output
    assert "is damaged" in said(result) and "moved results.sqlite" in said(result)
    [archive] = (run_dir / "archive").iterdir()
    assert (archive / "results.sqlite").read_bytes() == damaged
    assert snapshot(archive / "checkpoints") == checkpoints
    assert count(run_dir) == count(made / "run") == 8  # 4 clean, 2 masking, fgsm, worst_linf
    assert (run_dir / "report.md").is_file()


def test_a_kill_inside_a_write_is_rolled_back_not_called_damage(cli, work):
    """A writer killed mid-transaction leaves a hot journal: the store is what was committed."""
    store = work / "run" / "results.sqlite"
    n = count(work / "run")
    writer = textwrap.dedent(f"""
        import sqlite3, sys, time
        conn = sqlite3.connect({str(store)!r})
        conn.execute("PRAGMA cache_size = 1")
        conn.execute("BEGIN")
        conn.execute("DELETE FROM results")
        for i in range(500):
            conn.execute("INSERT INTO meta VALUES (?, ?)", (f"k{{i}}", "v" * 500))
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    assert store.with_name("results.sqlite-journal").stat().st_size > 0
    result = cli("report", work / "run")
    assert result.exit_code == 0, result.output
    assert count(work / "run") == n


# directories benchbench did not make ---------------------------------------------------------
@pytest.fixture
def user_dir(tmp_path) -> Path:
    """A user's own directory: a report.md and a checkpoints/ of their own."""
    user = tmp_path / "user"
    (user / "checkpoints").mkdir(parents=True)
    (user / "report.md").write_text("my own notes\n")
    (user / "checkpoints" / "model.pt").write_bytes(b"mine")
    (user / "results.csv").write_text("a,b\n")
    return user


@pytest.mark.parametrize("force", [False, True])
def test_a_users_directory_is_refused_and_never_touched(cli, tmp_path, user_dir, force,
                                                       monkeypatch):
    (tmp_path / "faults.toml").write_text(SUITE)
    before = snapshot(tmp_path)
    flags = ["--force"] if force else []
    refused(cli("run", tmp_path / "faults.toml", "--out", user_dir, "--device", "cpu", *flags),
            str(user_dir), "not a benchbench run directory", "new or empty directory")
    monkeypatch.chdir(user_dir)  # what a suite named "." or ".." used to do: the cwd
    refused(cli("run", tmp_path / "faults.toml", "--out", ".", "--device", "cpu", *flags),
            "not a benchbench run directory")
    assert snapshot(tmp_path) == before


def test_a_foreign_results_sqlite_is_not_taken_for_ours(cli, tmp_path):
    """An SQLite file of the user's, named results.sqlite, in an unmarked directory."""
    (tmp_path / "faults.toml").write_text(SUITE)
    (tmp_path / "user").mkdir()
    with sqlite3.connect(tmp_path / "user" / "results.sqlite") as conn:
        conn.execute("CREATE TABLE mine (x)")
    before = snapshot(tmp_path)
    refused(cli("run", tmp_path / "faults.toml", "--out", tmp_path / "user", "--device", "cpu",
                "--force"), "not a benchbench run directory", "not a benchbench results store")
    assert snapshot(tmp_path) == before


def test_an_empty_directory_is_taken_and_marked(cli, tmp_path):
    (tmp_path / "faults.toml").write_text(SUITE)
    (tmp_path / "empty").mkdir()
    result = cli("run", tmp_path / "faults.toml", "--out", tmp_path / "empty", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "empty" / MARKER).is_file()
    assert {p.name for p in (tmp_path / "empty").iterdir()} == {
        MARKER, "results.sqlite", "report.md", "checkpoints"}


def test_force_moves_only_what_benchbench_wrote(cli, work):
    """A user's file beside benchbench's in a run directory stays where it is."""
    (work / "run" / "notes.txt").write_text("mine")
    (work / "faults.toml").write_text(SUITE.replace("lr = 0.01", "lr = 0.02"))
    refused(cli("run", work / "faults.toml", "--out", work / "run", "--device", "cpu"),
            "different version of suite 'faults'")
    result = cli("run", work / "faults.toml", "--out", work / "run", "--device", "cpu", "--force")
    assert result.exit_code == 0, result.output
    [archive] = (work / "run" / "archive").iterdir()
    assert {p.name for p in archive.iterdir()} == {"results.sqlite", "report.md", "checkpoints"}
    assert (work / "run" / "notes.txt").read_text() == "mine"
    assert (work / "run" / MARKER).is_file()


def test_a_run_dir_of_an_older_benchbench_keeps_working(cli, work):
    """No marker, schema 1 (runs without host/pid): report reads it, run migrates and marks."""
    run_dir = work / "run"
    (run_dir / MARKER).unlink()
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        for column in ("host", "pid", "pid_started"):
            conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    assert cli("report", run_dir).exit_code == 0
    result = cli("run", work / "faults.toml", "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0 and "skipped 1 already stored" in result.output
    assert (run_dir / MARKER).is_file()
    with read_store(run_dir) as store:
        assert store.meta()["schema_version"] == str(SCHEMA_VERSION)
        assert {"host", "pid", "pid_started"} <= set(store.runs()[0])


# --out and report/export --out ----------------------------------------------------------------
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_out_that_is_or_lies_under_a_file_is_refused(cli, tmp_path, where):
    (tmp_path / "faults.toml").write_text(SUITE)
    (tmp_path / "taken").write_text("a file")
    out = tmp_path / "taken" if where == "a file" else tmp_path / "taken" / "run"
    before = snapshot(tmp_path)
    refused(cli("run", tmp_path / "faults.toml", "--out", out, "--device", "cpu"), str(out),
            "is a file")
    assert snapshot(tmp_path) == before


def test_out_that_cannot_be_written_is_refused(cli, tmp_path, monkeypatch):
    """(Permissions are simulated: the tests may run as root, who writes anywhere.)"""
    (tmp_path / "faults.toml").write_text(SUITE)
    (tmp_path / "locked").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: real(path, mode, **kw) and not (
        mode & os.W_OK and Path(path) == tmp_path / "locked"))
    before = snapshot(tmp_path)
    refused(cli("run", tmp_path / "faults.toml", "--out", tmp_path / "locked" / "run",
                "--device", "cpu"), "cannot be made", "locked is not writable")
    refused(cli("run", tmp_path / "faults.toml", "--out", tmp_path / "locked", "--device",
                "cpu"), "locked: is not writable")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["report", "export"])
def test_report_or_export_out_that_is_a_directory_is_refused(cli, work, command):
    (work / "target").mkdir()
    before = snapshot(work)
    args = ["export", work / "run", "--format", "csv"] if command == "export" else [
        "report", work / "run"]
    refused(cli(*args, "--out", work / "target"), str(work / "target"), "is a directory")
    assert snapshot(work) == before


def test_write_atomic_leaves_no_temp_file_when_it_fails(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match="No space left on device"):
        write_atomic(tmp_path / "report.md", "text")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        write_atomic(tmp_path / "file" / "report.md", "text")
    write_atomic(tmp_path / "new" / "report.md", "text")
    assert (tmp_path / "new" / "report.md").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["report.md"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# a run killed with kill -9 ---------------------------------------------------------------------
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def add_running_run(run_dir: Path, *, pid: int, host: str) -> int:
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        cur = conn.execute("INSERT INTO runs (started, command, device, status, host, pid) "
                           "VALUES ('2024-01-01T00:00:00', 'benchbench run killed', 'cpu', "
                           "'running', ?, ?)", (host, pid))
        return cur.lastrowid


def statuses(run_dir: Path) -> dict[int, str]:
    with read_store(run_dir) as store:
        return {r["run_id"]: r["status"] for r in store.runs()}


def test_a_killed_run_is_shown_and_then_stored_as_interrupted(cli, work):
    run_dir = work / "run"
    killed = add_running_run(run_dir, pid=dead_pid(), host=socket.gethostname())
    alive = add_running_run(run_dir, pid=os.getpid(), host=socket.gethostname())
    elsewhere = add_running_run(run_dir, pid=dead_pid(), host="another-host.invalid")
    assert cli("report", run_dir).exit_code == 0
    rows = {line.split("|")[1].strip(): line for line in
            (run_dir / "report.md").read_text().splitlines()
            if line.startswith("|") and "benchbench run killed" in line}
    assert "| interrupted |" in rows[str(killed)]
    assert "| running |" in rows[str(alive)] and "| running |" in rows[str(elsewhere)]
    assert statuses(run_dir)[killed] == "running"  # report reads; run writes
    result = cli("run", work / "faults.toml", "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0
    assert f"run {killed} ended without recording how" in said(result)
    assert statuses(run_dir) == {1: "ok", killed: "interrupted", alive: "running",
                                 elsewhere: "running"}


def test_a_run_records_its_process(work):
    with read_store(work / "run") as store:
        [run] = store.runs()
    assert run["host"] == socket.gethostname() and run["pid"] == os.getpid()


# a deleted store beside its checkpoints -------------------------------------------------------
def test_checkpoints_without_their_store_are_archived_not_overwritten(cli, made, work):
    run_dir = work / "run"
    (run_dir / "results.sqlite").unlink()
    old = snapshot(run_dir / "checkpoints")
    result = cli("run", work / "faults.toml", "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "has no results.sqlite" in said(result)
    assert "moved report.md, checkpoints to" in said(result)
    [archive] = (run_dir / "archive").iterdir()
    assert snapshot(archive / "checkpoints") == old
    assert count(run_dir) == count(made / "run")


# plugins whose constructor raises -------------------------------------------------------------
@pytest.mark.parametrize("error", [RuntimeError("kaput"), KeyError("k"), ZeroDivisionError("z")])
def test_a_plugin_raising_in_its_constructor_is_named(tmp_path, monkeypatch, error):
    from benchbench import hookimpl
    from benchbench.plugins import load_registry

    class Boom:
        norm = "linf"

        def __init__(self) -> None:
            raise error

        def perturb(self, model, x, y, *, eps, bounds):
            return x

    class Plugin:
        @hookimpl
        def register_attacks(self, register):
            register("boom", Boom)

    monkeypatch.setattr("benchbench.cli._registry",
                        lambda: load_registry(load_entry_points=False, extra=(Plugin(),)))
    suite = tmp_path / "boom.toml"
    suite.write_text(SUITE + "\n[[attacks]]\nname = \"boom\"\neps = [0.1]\n")
    before = snapshot(tmp_path)
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "run"),
                                      "--device", "cpu"])
    line = refused(result, str(suite), f"attacks[1]: plugin 'boom' raised "
                                       f"{type(error).__name__}: ")
    assert line.endswith(str(error)), line
    assert snapshot(tmp_path) == before
