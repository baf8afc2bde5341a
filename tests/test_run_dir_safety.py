"""A run directory someone hands you cannot make benchbench write (or read) outside it.

Every path benchbench owns inside a run directory (the store and SQLite's files beside it,
``report.md``, ``figures/``, ``checkpoints/`` and all under them, ``archive/``, the marker, the
lock's files) is checked with ``lstat``: a symbolic link is refused with one line naming it,
exit 2, and whatever it points to is left as it was. Each row of issue 16's table is one test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.errors import RunFault
from benchbench.store.results import read_store
from benchbench.store.rundir import MARKER
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "safety"
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
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (links not followed) with its content's hash."""
    out = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        out[key] = ("link:" + os.readlink(p) if p.is_symlink() else "dir" if p.is_dir()
                    else hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def refused(result, *needles: str) -> str:
    """The one-line, exit-2 contract; returns the line."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def made(tmp_path_factory, registry):
    """One finished run of SUITE, to copy from."""
    root = tmp_path_factory.mktemp("made")
    (root / "safety.toml").write_text(SUITE)
    run_suite(load_suite(root / "safety.toml", registry), registry=registry,
              out_dir=root / "run", device="cpu", command="benchbench run safety.toml")
    return root


@pytest.fixture
def work(made, tmp_path) -> Path:
    """A copy of the finished run (tmp_path/run), its suite, and an outside folder."""
    shutil.copytree(made / "run", tmp_path / "run", symlinks=True)
    shutil.copy(made / "safety.toml", tmp_path / "safety.toml")
    (tmp_path / "outside").mkdir()
    return tmp_path


def fresh(work: Path) -> Path:
    """A marked run directory with nothing run yet (tmp_path/new)."""
    new = work / "new"
    new.mkdir()
    (new / MARKER).write_text("made by benchbench\n")
    return new


def run(cli, work: Path, out: Path, *extra):
    return cli("run", work / "safety.toml", "--out", out, "--device", "cpu", *extra)


def link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


# the rows: figures, checkpoints, results.sqlite, archive, a dangling marker ----------------------
@pytest.mark.parametrize("command", ["run", "report"])
def test_a_figures_link_is_refused_and_nothing_is_drawn_outside(cli, work, command):
    outside = work / "outside"
    link(work / "run" / "figures", outside)
    before = snapshot(work)
    result = run(cli, work, work / "run") if command == "run" else cli("report", work / "run")
    refused(result, str(work / "run" / "figures"), "symbolic link")
    assert snapshot(work) == before and not list(outside.iterdir())


def test_a_link_for_the_suites_figures_folder_is_refused(cli, work):
    outside = work / "outside"
    link(work / "run" / "figures" / "safety", outside)
    before = snapshot(work)
    refused(cli("report", work / "run"), "figures/safety", "symbolic link")
    assert snapshot(work) == before


def test_a_checkpoints_link_is_refused_and_nothing_is_written_outside(cli, work):
    new = fresh(work)
    (new / "checkpoints").symlink_to(work / "outside")
    before = snapshot(work)
    refused(run(cli, work, new), str(new / "checkpoints"), "symbolic link")
    assert snapshot(work) == before and not list((work / "outside").iterdir())


@pytest.mark.parametrize("where", ["cell folder", "checkpoint file", "resume folder"])
def test_a_link_inside_checkpoints_is_refused(cli, work, where):
    new = fresh(work)
    with read_store(work / "run") as store:
        cell = store.cells()[0]["cell_id"]
    if where == "cell folder":
        (new / "checkpoints").mkdir()
        (new / "checkpoints" / cell).symlink_to(work / "outside")
    elif where == "checkpoint file":
        (new / "checkpoints" / cell).mkdir(parents=True)
        (work / "outside" / "victim").write_text("mine")
        (new / "checkpoints" / cell / "epoch_0001.safetensors").symlink_to(
            work / "outside" / "victim")
    else:
        (new / "checkpoints").mkdir()
        (new / "checkpoints" / "resume").symlink_to(work / "outside")
    before = snapshot(work)
    refused(run(cli, work, new), "symbolic link", str(new / "checkpoints"))
    assert snapshot(work) == before


@pytest.mark.parametrize("command", ["run", "report", "export"])
def test_a_results_sqlite_link_is_refused_and_the_outside_store_untouched(cli, work, command):
    outside = work / "outside" / "results.sqlite"
    shutil.move(work / "run" / "results.sqlite", outside)
    (work / "run" / "results.sqlite").symlink_to(outside)
    # a run that would store something: the suite gains a seed
    (work / "safety.toml").write_text(SUITE.replace("seeds = [0]", "seeds = [0, 1]"))
    before = snapshot(work)
    result = (run(cli, work, work / "run") if command == "run"
              else cli(command, work / "run"))
    refused(result, str(work / "run" / "results.sqlite"), "symbolic link")
    assert snapshot(work) == before


@pytest.mark.parametrize("side", ["-journal", "-wal"])
def test_a_link_beside_the_store_is_refused(cli, work, side):
    (work / "run" / f"results.sqlite{side}").symlink_to(work / "outside" / "journal")
    before = snapshot(work)
    refused(cli("report", work / "run"), f"results.sqlite{side}", "symbolic link")
    assert snapshot(work) == before and not list((work / "outside").iterdir())


def test_force_with_an_archive_link_moves_nothing_into_its_target(cli, work):
    (work / "run" / "archive").symlink_to(work / "outside")
    # another version of the suite: --force would archive the store, report and checkpoints
    (work / "safety.toml").write_text(SUITE.replace("epochs = 2", "epochs = 3")
                                      .replace("[1, 2]", "[1, 3]"))
    before = snapshot(work)
    refused(run(cli, work, work / "run", "--force"), str(work / "run" / "archive"),
            "symbolic link")
    assert snapshot(work) == before and not list((work / "outside").iterdir())


def test_a_dangling_marker_link_is_refused_and_no_file_is_made_outside(cli, work):
    (work / "run" / MARKER).unlink()  # an older benchbench's directory: its store marks it
    (work / "run" / MARKER).symlink_to(work / "outside" / "created")
    before = snapshot(work)
    refused(run(cli, work, work / "run"), MARKER, "symbolic link")
    assert snapshot(work) == before and not (work / "outside" / "created").exists()


def test_a_report_md_link_is_refused(cli, work):
    (work / "outside" / "notes.md").write_text("my notes")
    link(work / "run" / "report.md", work / "outside" / "notes.md")
    before = snapshot(work)
    refused(cli("report", work / "run"), "report.md", "symbolic link")
    assert snapshot(work) == before


# the lock --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [".benchbench-lock", ".benchbench-lock.json"])
@pytest.mark.parametrize("dangling", [True, False])
def test_a_lock_link_is_one_line_not_a_traceback(cli, work, name, dangling):
    target = work / "outside" / "lock"
    if not dangling:
        target.write_text("")
    (work / "run" / name).symlink_to(target)
    before = snapshot(work)
    refused(run(cli, work, work / "run"), name, "symbolic link")
    assert snapshot(work) == before


# at the point of use, not only at the start -----------------------------------------------------
class LinkAtStart(Events):
    """Makes ``checkpoints/<cell>`` a link to ``target`` when the cell starts (after every
    check a run makes at its start): the write itself must refuse it."""

    def __init__(self, checkpoints: Path, target: Path) -> None:
        self.checkpoints, self.target = checkpoints, target

    def cell_started(self, spec, epochs, index, total) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        (self.checkpoints / spec.cell_id).symlink_to(self.target)


def test_a_link_made_during_a_run_is_refused_where_it_is_written(work, registry):
    new = fresh(work)
    suite = load_suite(work / "safety.toml", registry)
    with pytest.raises(RunFault, match="checkpoints/.*is a symbolic link"):
        run_suite(suite, registry=registry, out_dir=new, device="cpu",
                  events=LinkAtStart(new / "checkpoints", work / "outside"))
    assert not list((work / "outside").iterdir())
    with read_store(new) as store:  # the fault is not the cell's: nothing recorded as failed
        assert store.cells() == []
        assert store.runs()[-1]["status"] == "interrupted"
