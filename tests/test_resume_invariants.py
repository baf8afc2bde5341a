"""Numbers that come from files (a resume file, a results store) obey their invariants.

A resume file with its identity intact but edited numbers is ignored, said on one line, and its
cells are trained again from the first epoch; a store whose rows break an invariant is refused
with one line naming the row (``run --force`` archives it, like any damaged store). Crafted
pickles in resume files never run (``weights_only=True``): the file is ignored, on one line.
"""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "inv"
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
eps = [0.1]
"""
COLS = ["model", "regime", "seed", "epoch", "split", "attack", "eps", "metric", "value"]


class Seen(Events):
    """Every epoch trained and every line logged; Ctrl-C (KeyboardInterrupt) at ``stop``."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.epochs, self.lines = stop, [], []

    def log(self, message: str) -> None:
        self.lines.append(message)

    def epoch_done(self, spec, epoch) -> None:
        self.epochs.append(epoch)
        if epoch == self.stop:
            raise KeyboardInterrupt


def numbers(run_dir: Path):
    with read_store(run_dir) as store:
        frame = store.tidy()
    return frame[COLS].sort_values(COLS[:-1]).reset_index(drop=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registry):
    """An uninterrupted run, and one stopped in epoch 3 (its resume file is from epoch 2)."""
    root = tmp_path_factory.mktemp("inv")
    (root / "inv.toml").write_text(SUITE)
    suite = load_suite(root / "inv.toml", registry)
    run_suite(suite, registry=registry, out_dir=root / "whole", device="cpu")
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, registry=registry, out_dir=root / "stopped", device="cpu",
                  events=Seen(stop=3))
    return root, suite


@pytest.fixture
def stopped(runs, tmp_path):
    root, suite = runs
    shutil.copytree(root / "stopped", tmp_path / "run")
    (resume,) = (tmp_path / "run" / "checkpoints" / "resume").glob("*.pt")
    return tmp_path / "run", resume


def edit(path: Path, change) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    change(state)
    torch.save(state, path)


def set_record(state, pick, value) -> None:
    """Set the value of the first record of member 0 that ``pick`` chooses."""
    records = json.loads(state["records"])
    i = next(i for i, r in enumerate(records[0]) if pick(r))
    records[0][i][5] = value
    state["records"] = json.dumps(records)


def fgsm_accuracy(r) -> bool:
    return r[2] == "fgsm" and r[4] == "accuracy" and r[0] == 2


EDITS = {  # issue 16's row, and each invariant on its own
    "accuracy 0.999 and elapsed -1e9": lambda s: (set_record(s, fgsm_accuracy, 0.999),
                                                 s.update(elapsed_s=-1e9)),
    "elapsed nan": lambda s: s.update(elapsed_s=math.nan),
    "accuracy 0.999 (bits unchanged)": lambda s: set_record(s, fgsm_accuracy, 0.999),
    "accuracy 1.5": lambda s: set_record(s, fgsm_accuracy, 1.5),
    "loss inf": lambda s: set_record(s, lambda r: r[4] == "loss", math.inf),
    "a record after the epoch": lambda s: s.update(epoch=1),
}
WHY = {"accuracy 0.999 and elapsed -1e9": "elapsed_s",
       "elapsed nan": "elapsed_s", "accuracy 0.999 (bits unchanged)": "per-example bits give",
       "accuracy 1.5": "outside [0, 1]",
       "loss inf": "not a finite number", "a record after the epoch": "after the epoch 1"}


@pytest.mark.parametrize("what", EDITS)
def test_an_edited_resume_file_is_ignored_on_one_line_and_the_cells_retrained(
        runs, stopped, registry, what):
    root, suite = runs
    run_dir, resume = stopped
    edit(resume, EDITS[what])
    events = Seen()
    run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", events=events)
    said = [line for line in events.lines if "resume file ignored" in line]
    assert len(said) == 1 and "\n" not in said[0], events.lines
    assert str(resume) in said[0] and WHY[what] in said[0], said[0]
    assert events.epochs == [1, 2, 3]  # trained again from the first epoch
    assert numbers(run_dir).equals(numbers(root / "whole"))  # same code path: exact
    with read_store(run_dir) as store:
        assert all(c["wall_s"] >= 0 for c in store.cells())
    report = (run_dir / "report.md").read_text()
    assert "-" not in report.split("- wall time:")[1].split("\n")[0].split("(")[0]


def test_an_intact_resume_file_is_still_used(runs, stopped, registry):
    root, suite = runs
    run_dir, _ = stopped
    events = Seen()
    run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", events=events)
    assert events.epochs == [3] and not [x for x in events.lines if "ignored" in x]
    assert numbers(run_dir).equals(numbers(root / "whole"))


class Payload:
    """Unpickling this would run code: it writes the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_a_crafted_pickle_in_a_resume_file_never_runs_and_is_ignored(runs, stopped, registry,
                                                                     tmp_path):
    root, suite = runs
    run_dir, resume = stopped
    marker = tmp_path / "pwned"
    state = torch.load(resume, map_location="cpu", weights_only=True)
    state["trainer"] = Payload(marker)
    torch.save(state, resume)
    events = Seen()
    run_suite(suite, registry=registry, out_dir=run_dir, device="cpu", events=events)
    assert not marker.exists()
    said = [line for line in events.lines if "resume file ignored" in line]
    assert len(said) == 1 and "\n" not in said[0] and "read safely" in said[0], events.lines
    assert events.epochs == [1, 2, 3]
    assert numbers(run_dir).equals(numbers(root / "whole"))


# a results store whose rows break an invariant ---------------------------------------------------
@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def accuracy_of(attack: str) -> str:
    return (f"UPDATE results SET value = {{}} WHERE attack = '{attack}' AND metric = 'accuracy' "
            "AND epoch = 2 AND split = 'test' AND rowid = (SELECT MIN(rowid) FROM results WHERE "
            f"attack = '{attack}' AND metric = 'accuracy' AND epoch = 2)")


STORE_EDITS = {
    "fgsm 0.999 (bits unchanged)": (accuracy_of("fgsm").format(0.999), "per-example bits"),
    "fgsm 1.5": (accuracy_of("fgsm").format(1.5), "outside [0, 1]"),
    "fgsm -0.5": (accuracy_of("fgsm").format(-0.5), "outside [0, 1]"),
    "worst above an attack": (accuracy_of("worst_linf").format(1.0), "above"),
    "loss inf": ("UPDATE results SET value = 9e999 WHERE metric = 'loss' AND rowid = "
                 "(SELECT MIN(rowid) FROM results WHERE metric = 'loss')", "finite"),
    "loss -1": ("UPDATE results SET value = -1 WHERE metric = 'loss' AND split = 'test' AND "
                "rowid = (SELECT MIN(rowid) FROM results WHERE metric = 'loss' AND split = "
                "'test')", "cross-entropy"),
    "a text value": (accuracy_of("fgsm").format("'high'"), "not a finite number"),
    "cell wall_s -1e9": ("UPDATE cells SET wall_s = -1e9", "wall_s"),
    "run wall_s -1e9": ("UPDATE runs SET wall_s = -1e9", "wall_s"),
}


@pytest.fixture
def whole(runs, tmp_path) -> Path:
    root, _ = runs
    shutil.copytree(root / "whole", tmp_path / "whole")
    return tmp_path / "whole"


@pytest.mark.parametrize("what", STORE_EDITS)
@pytest.mark.parametrize("command", ["report", "export"])
def test_a_store_row_breaking_an_invariant_is_refused_on_one_line(cli, whole, what, command):
    sql, needle = STORE_EDITS[what]
    with sqlite3.connect(whole / "results.sqlite") as conn:
        assert conn.execute(sql).rowcount >= 1
    before = (whole / "results.sqlite").read_bytes()
    result = cli(command, whole)
    assert result.exit_code == 2, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert "results.sqlite: damaged results store" in lines[0] and needle in lines[0], lines[0]
    assert (whole / "results.sqlite").read_bytes() == before


def test_run_force_archives_a_store_breaking_an_invariant(cli, runs, whole):
    root, _ = runs
    with sqlite3.connect(whole / "results.sqlite") as conn:
        conn.execute(accuracy_of("fgsm").format(0.999))
    result = cli("run", root / "inv.toml", "--out", whole, "--device", "cpu")
    assert result.exit_code == 2 and "per-example bits" in result.stderr
    result = cli("run", root / "inv.toml", "--out", whole, "--device", "cpu", "--force")
    assert result.exit_code == 0, (result.output, result.exception)
    assert numbers(whole).equals(numbers(root / "whole"))
    assert len(list((whole / "archive").glob("*/results.sqlite"))) == 1


def test_the_ignored_resume_file_is_one_line_on_stderr(cli, runs, stopped):
    """Through the CLI: the line is not wrapped, nor its brackets read as markup."""
    root, _ = runs
    run_dir, resume = stopped
    edit(resume, EDITS["accuracy 0.999 and elapsed -1e9"])
    result = cli("run", root / "inv.toml", "--out", run_dir, "--device", "cpu")
    assert result.exit_code == 0, (result.output, result.exception)
    said = [line for line in result.stderr.splitlines() if "resume file ignored" in line]
    assert len(said) == 1 and str(resume) in said[0] and said[0].endswith("from the first epoch")
