"""Plain progress lines where stderr is not a terminal (nohup, SLURM): their format, their rate,
--quiet and --verbose, and the events that reach them from worker processes."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.cli_progress import PlainEvents, QuietEvents, duration, make_events
from benchbench.engine.cell import CellOutcome
from benchbench.suite.cells import CellSpec, ComponentRef, DatasetRef

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
SUITE = """
[suite]
name = "watched"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:300]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [8]

[regime]
name = {regime}
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def _spec(seed: int = 0) -> CellSpec:
    return CellSpec(suite="s", seed=seed, dataset=DatasetRef("digits", "train", "test"),
                    model=ComponentRef("mlp", "mlp"), regime=ComponentRef("standard", "standard"))


def _outcome(spec) -> CellOutcome:
    return CellOutcome(spec, [], "float32", "cpu", "", "", 1.0)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _events(**kwargs):
    out, clock = io.StringIO(), Clock()
    return PlainEvents(stream=out, clock=clock, **kwargs), out, clock


def test_a_subprocess_with_piped_output_writes_timestamped_lines_of_each_kind(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.format(regime='"fgsm_at"\neps = 0.1\nmonitor = false'))
    done = subprocess.run([sys.executable, "-m", "benchbench", "run", str(suite), "--out",
                           str(tmp_path / "run"), "--device", "cpu", "--engine", "sequential"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines and all(STAMP.match(line) for line in lines), lines  # every line stamped
    text = "\n".join(lines)
    assert "run: 2 cell(s) to run in 2 unit(s)" in text
    for seed, where in ((0, "[1/2]"), (1, "[2/2]")):
        cell = f"{where} mlp / fgsm_at / seed {seed}"
        assert f"{cell}: started, 2 epoch(s)" in text
        # the first epoch always has a line: the regime's training numbers, speed, ETAs
        assert re.search(re.escape(cell) + r": epoch 1/2, loss [\d.]+, adv_accuracy [\d.]+%, "
                         r"[\d.e+-]+ s/epoch, ETA \d+s, run ETA \d+s", text), text
        for epoch in (1, 2):
            assert re.search(re.escape(cell) + f": checkpoint {epoch} evaluated: train acc "
                             r"[\d.]+%, train loss [\d.]+, test acc [\d.]+%, test loss [\d.]+, "
                             r"fgsm@0.1 [\d.]+%", text), text
        assert re.search(re.escape(cell) + r": done in \d+s", text)
    assert "\x1b[" not in done.stderr  # no terminal control codes in a log
    assert "ran 2 cell(s)" in done.stdout


def test_quiet_prints_no_progress_and_verbose_every_step(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE.format(regime='"standard"'))
    quiet = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "q"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""  # no progress, no messages
    assert quiet.stdout.splitlines()[0].startswith("ran 2 cell(s)")  # no tables either
    verbose = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "v"), "-v"])
    assert verbose.exit_code == 0, verbose.output
    lines = verbose.stderr.splitlines()
    assert all(STAMP.match(line) for line in lines)
    for epoch in (1, 2):  # every epoch, every evaluation step (one stack of both seeds)
        assert sum(f": epoch {epoch}/2, " in line for line in lines) == 1
        for what in ("clean train", "clean test", "gradient-masking checks", "fgsm"):
            assert sum(f"epoch {epoch}, evaluating {what}" in line for line in lines) == 1
    both = CliRunner().invoke(app, ["run", str(suite), "--quiet", "--verbose"])
    assert both.exit_code == 2 and "give one or the other" in both.stderr


def test_quiet_still_says_warnings_and_nothing_else():
    """``--quiet`` drops progress and routine messages, never a warning (a resume file ignored,
    stale cells): those go to stderr as they are."""
    out = io.StringIO()
    events = QuietEvents(stream=out)
    events.log("data: cache")
    events.log("resuming mlp / standard / seed 0 after epoch 1")
    events.log("warning: runs/x/checkpoints/resume/abc.pt: resume file ignored (torn)")
    assert out.getvalue() == "warning: runs/x/checkpoints/resume/abc.pt: resume file ignored " \
        "(torn)\n"


def test_epoch_lines_come_at_most_every_interval_per_unit():
    events, out, clock = _events(interval=20.0)
    a, b = _spec(0), _spec(1)
    events.planned([(0, 1, False), (1, 1, False)])
    events.cell_started(a, 100, 0, 2)
    events.cell_started(b, 100, 1, 2)
    for epoch in range(1, 101):  # one epoch a second, two units side by side
        clock.t += 1.0
        events.epoch_metrics(a, epoch, {"fit/loss": 1.0 / epoch})
        events.epoch_done(a, epoch)
        events.epoch_done(b, epoch)
    lines = out.getvalue().splitlines()
    for where in ("[1/2]", "[2/2]"):
        epochs = [int(m.group(1)) for line in lines if where in line
                  for m in [re.search(r": epoch (\d+)/100", line)] if m]
        assert epochs == [1, 21, 41, 61, 81]  # the first, then one every 20 s
    assert "[1/2] mlp / standard / seed 0: epoch 21/100, loss 0.04762, 1 s/epoch, ETA 1m 19s" \
        in out.getvalue()
    clock.t += 5
    events.checkpoint_done(a, 100, {"test/accuracy": 0.5})  # always said
    events.cell_finished(a, _outcome(a))
    events.cell_finished(b, _outcome(b))
    tail = out.getvalue().splitlines()[len(lines):]
    assert [line[20:] for line in tail] == [
        "[1/2] mlp / standard / seed 0: checkpoint 100 evaluated: test acc 50.0%",
        # (the other unit is at its last epoch too: the run is as good as done)
        "[1/2] mlp / standard / seed 0: done in 1m 45s (1/2 cells done, run ETA 0s)",
        "[2/2] mlp / standard / seed 1: done in 1m 45s (2/2 cells done, run ETA 0s)"]


def test_a_stack_is_one_unit_and_verbose_says_every_epoch():
    events, out, clock = _events(verbose=True)
    members = [_spec(s) for s in range(3)]
    events.planned([(0, 3, True)])
    events.cell_started(members[0], 3, 0, 3)
    for epoch in (1, 2, 3):
        clock.t += 2
        events.epoch_done(members[0], epoch)
    for spec in members:
        events.cell_finished(spec, _outcome(spec))
    lines = [line[20:] for line in out.getvalue().splitlines()]
    assert lines[0] == "run: 3 cell(s) to run in 1 unit(s), 1 of them stacks of seeds trained " \
                       "as one model"
    assert lines[1] == "[1-3/3] mlp / standard / seed 0 (+2 seed(s), one stack): started, " \
                       "3 epoch(s)"
    assert [line.split(": ")[1].split(",")[0] for line in lines[2:5]] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert lines[5:] == ["[1-3/3] mlp / standard / seed 0 (+2 seed(s), one stack): done in 6s "
                         "(3/3 cells done, run ETA 0s)"]


def test_the_display_follows_the_terminal():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert type(make_events(stream=io.StringIO())).__name__ == "PlainEvents"
    assert type(make_events(stream=Tty())).__name__ == "RichEvents"
    assert type(make_events(stream=Tty(), verbose=True)).__name__ == "PlainEvents"
    assert type(make_events(quiet=True)).__name__ == "QuietEvents"
    assert [duration(s) for s in (0.4, 59, 61, 3599, 7260)] == ["0s", "59s", "1m 01s",
                                                               "59m 59s", "2h 01m"]


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _run_on(executor: str, registry, tmp_path, **options) -> str:
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    (tmp_path / "s.toml").write_text(SUITE.format(regime='"standard"'))
    out = io.StringIO()
    summary = run_suite(load_suite(tmp_path / "s.toml", registry), registry=registry,
                        out_dir=tmp_path / executor, device="cpu", engine="sequential",
                        events=PlainEvents(stream=out), executor=executor,
                        executor_options=options)
    assert len(summary.ran) == 2 and not summary.failed
    return out.getvalue()


def _every_unit_reported(text: str) -> None:
    for seed, where in ((0, "[1/2]"), (1, "[2/2]")):
        cell = f"{where} mlp / standard / seed {seed}"
        for what in (": started, 2 epoch(s)", ": epoch 1/2, ", ": checkpoint 1 evaluated: ",
                     ": checkpoint 2 evaluated: ", ": done in "):
            assert cell + what in text, text


def test_lines_from_two_local_workers(registry, tmp_path):
    _every_unit_reported(_run_on("local", registry, tmp_path, workers=2))


def test_lines_from_ray_tasks(registry, tmp_path, ray_instance):
    _every_unit_reported(_run_on("ray", registry, tmp_path, cpus_per_unit=1))
