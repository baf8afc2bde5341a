"""Executors: the same units on every executor store bit-identical numbers; killed workers are
retried and resume; a unit that keeps dying is stored as failed while the others finish.

Ray runs for real: one local instance (2 CPUs) for the module, shut down at its end."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.plugins import load_registry
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.plugins import executor_plugin

GRID = """
[suite]
name = "grid"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:600]"
test = "test[:200]"

[[model]]
name = "mlp"
label = "h16"
hidden = [16]

[[model]]
name = "mlp"
label = "h24"
hidden = [24]

[regime]
name = "{regime}"
lr = 0.01
batch_size = 100
epochs = 3
checkpoints = [1, 2, 3]
{extra}

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


@pytest.fixture(scope="module")
def registry():
    return load_registry(load_entry_points=False, extra=(executor_plugin,))


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def write(tmp_path, name="grid.toml", *, regime="standard", extra=""):
    path = tmp_path / name
    path.write_text(GRID.format(regime=regime, extra=extra))
    return path


def crashy(tmp_path, *, times: int, models: str = "both"):
    """A suite whose cells die at epoch 3 (after the checkpoint of epoch 2 saved their state)
    until ``marker`` counts ``times`` deaths in all."""
    marker = tmp_path / "deaths"
    return marker, f'die_at = 3\nmarker = "{marker}"\ntimes = {times}'


def numbers(run_dir):
    with read_store(run_dir) as store:
        tidy = store.tidy()
        cells = store.cells()
    # the device column names the thread count (provenance), which differs between executors
    return tidy.drop(columns=["finished", "engine", "device"]), cells


class Epochs(Events):
    def __init__(self) -> None:
        self.seen, self.logs = [], []

    def epoch_done(self, spec, epoch) -> None:
        self.seen.append((spec.model.label, epoch))

    def log(self, message) -> None:
        self.logs.append(message)


def run(suite, registry, out, executor="inline", events=None, **options):
    return run_suite(suite, registry=registry, out_dir=out, device="cpu", executor=executor,
                     executor_options=options, events=events)


def test_inline_local_and_ray_store_bit_identical_numbers(registry, tmp_path, ray_instance):
    suite = load_suite(write(tmp_path), registry)
    run(suite, registry, tmp_path / "inline")
    events = Epochs()
    local = run(suite, registry, tmp_path / "local", "local", events=events, workers=2)
    ray = run(suite, registry, tmp_path / "ray", "ray", cpus_per_unit=1)
    expect, cells = numbers(tmp_path / "inline")
    assert len(cells) == 4 and len(expect) > 0
    for other in ("local", "ray"):
        got, others = numbers(tmp_path / other)
        assert got.equals(expect), other  # exactly: same units, same numbers
        assert {c["engine"] for c in others} == {"stacked x2"}
    assert len(local.ran) == 4 and len(ray.ran) == 4
    # progress came back from the workers: every epoch of both units
    assert sorted(events.seen) == sorted((m, e) for m in ("h16", "h24") for e in (1, 2, 3))


def test_register_executors_offers_inline_local_and_ray(registry, tmp_path):
    """The built-ins arrive through the hook, and a plugin's executor is used by name."""
    from benchbench import hookimpl
    from benchbench.engine.units import run_caught

    assert {"inline", "local", "ray"} <= set(registry.entries["executor"])
    assert registry.get("executor", "local").source.distribution == "benchbench"
    ran = []

    class Reversed:
        """Runs units in reverse order, in this process."""

        in_process = True

        def run(self, units, *, emit, retries):
            for unit in reversed(units):
                ran.append(unit.uid)
                yield run_caught(unit, emit)

    class Plugin:
        @hookimpl
        def register_executors(self, register):
            register("reversed", Reversed)

    mine = load_registry(load_entry_points=False, extra=(executor_plugin, Plugin()))
    assert mine.get("executor", "reversed").summary.startswith("Runs units in reverse order")
    suite = load_suite(write(tmp_path), mine)
    run(suite, mine, tmp_path / "rev", "reversed")
    run(suite, mine, tmp_path / "inline")
    assert ran == [1, 0]  # arrival order changes no number
    assert numbers(tmp_path / "rev")[0].equals(numbers(tmp_path / "inline")[0])


def test_a_killed_local_worker_is_retried_and_resumes(registry, tmp_path):
    marker, extra = crashy(tmp_path, times=1)
    suite = load_suite(write(tmp_path, regime="crashy", extra=extra), registry)
    events = Epochs()
    summary = run(suite, registry, tmp_path / "killed", "local", events=events, workers=2)
    assert marker.read_text() == "1" and not summary.failed and len(summary.ran) == 4
    assert any("a worker died" in m for m in events.logs)
    # the unit that died resumed after epoch 2: its epoch 3 ran twice, epochs 1-2 once; a unit
    # killed beside it resumes from its own last checkpoint, which it may not have reached yet
    # (killed within its epoch 1: that epoch runs again), so its count is 1 or 2. Which unit
    # reaches epoch 3 first depends on the machine's load: the plugin notes which one died.
    died = (tmp_path / "deaths.0").read_text()
    beside = ({"h16", "h24"} - {died}).pop()
    assert events.seen.count((died, 1)) == 1 and events.seen.count((died, 3)) == 1
    assert events.seen.count((beside, 1)) in (1, 2)
    # the same suite, uninterrupted (already died: safe inline), with the workers' one thread
    # each: numbers depend on the thread count (float rounding), not on the executor
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(suite, registry, tmp_path / "whole")
    finally:
        torch.set_num_threads(threads)
    got, cells = numbers(tmp_path / "killed")
    assert got.equals(numbers(tmp_path / "whole")[0])
    assert len(cells) == 4 and {c["status"] for c in cells} == {"ok"}
    assert not (tmp_path / "killed" / "checkpoints" / "resume").exists() or not any(
        (tmp_path / "killed" / "checkpoints" / "resume").iterdir())


def test_a_unit_that_keeps_dying_fails_alone_on_the_local_pool(registry, tmp_path):
    marker, extra = crashy(tmp_path, times=100)
    text = write(tmp_path, regime="crashy", extra=extra).read_text()
    # the second model trains with standard training: it must finish
    text = text.replace('[regime]\nname = "crashy"', '[[regime]]\nname = "crashy"')
    text += ('\n[[regime]]\nname = "standard"\nlr = 0.01\nbatch_size = 100\nepochs = 3\n'
             'checkpoints = [1, 2, 3]\n')
    path = tmp_path / "mixed.toml"
    path.write_text(text)
    suite = load_suite(path, registry)
    summary = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        executor="local", executor_options={"workers": 2}, retries=1,
                        engine="auto")
    _, cells = numbers(tmp_path / "run")
    failed = [c for c in cells if c["status"] == "failed"]
    ok = [c for c in cells if c["status"] == "ok"]
    assert len(failed) == 4 and len(ok) == 4  # 2 models x 2 seeds each way
    assert {c["regime"] for c in failed} == {"crashy"}
    assert all("died 2 times" in c["error"] for c in failed)
    assert len(summary.failed) == 4 and len(summary.ran) == 4


def test_plugins_passed_in_memory_cannot_go_to_other_processes(tmp_path):
    from benchbench import hookimpl
    from benchbench.errors import BenchbenchError

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("mlp2", lambda **kw: None)

    mine = load_registry(load_entry_points=False, extra=(Plugin(),))
    suite = load_suite(write(tmp_path), mine)
    with pytest.raises(BenchbenchError, match="cannot be loaded by another process"):
        run(suite, mine, tmp_path / "run", "local", workers=2)
    assert not (tmp_path / "run").exists()


def test_a_killed_ray_task_is_retried_and_resumes(registry, tmp_path, ray_instance):
    marker, extra = crashy(tmp_path, times=1)
    suite = load_suite(write(tmp_path, regime="crashy", extra=extra), registry)
    summary = run(suite, registry, tmp_path / "killed", "ray")
    assert marker.read_text() == "1" and not summary.failed and len(summary.ran) == 4
    marker.write_text("1")
    run(suite, registry, tmp_path / "whole", "inline")  # already died: safe in this process
    got, cells = numbers(tmp_path / "killed")
    assert got.equals(numbers(tmp_path / "whole")[0]) and len(cells) == 4


def test_a_ray_task_that_keeps_dying_is_stored_as_failed(registry, tmp_path, ray_instance):
    marker, extra = crashy(tmp_path, times=100)
    suite = load_suite(write(tmp_path, regime="crashy", extra=extra), registry)
    summary = run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        executor="ray", retries=1)
    _, cells = numbers(tmp_path / "run")
    assert len(cells) == 4 and {c["status"] for c in cells} == {"failed"}
    assert all("Ray task failed after 1 retries" in c["error"] for c in cells)
    assert len(summary.failed) == 4 and int(marker.read_text()) == 4  # 2 units x 2 attempts


@pytest.mark.parametrize(("args", "expect"), [
    (["--workers", "0"], "--workers must be a whole number of at least 1"),
    (["--executor", "nope"], "unknown executor 'nope'"),
    (["--ray-address", "auto"], "--ray-address does not apply to --executor inline"),
    (["--executor", "local", "--ray-address", "auto"], "does not apply to --executor local"),
    (["--workers", "2", "--executor", "inline"], "--workers does not apply to --executor inline"),
    (["--retries", "-1"], "--retries must be a whole number from 0 to 100"),
    (["--executor", "ray", "--cpus-per-unit", "0"], "--cpus-per-unit must be more than 0"),
])
def test_bad_executor_flags_are_refused_on_one_line(tmp_path, args, expect):
    suite = write(tmp_path)
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "run"),
                                      "--device", "cpu", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.output
    assert not (tmp_path / "run").exists()


def test_ray_missing_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.util

    from benchbench.engine.executors import ray_tasks

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(app, ["run", str(write(tmp_path)), "--out",
                                      str(tmp_path / "run"), "--executor", "ray"])
    assert result.exit_code == 2 and ray_tasks.MISSING in result.output
    assert "pip install 'benchbench[ray]'" in result.output


@pytest.mark.parametrize(("device", "env", "count", "expect"), [
    ("cpu", {"CUDA_VISIBLE_DEVICES": "0,1"}, 2, []),  # a CPU run pins nothing
    ("cuda", {}, 1, []),  # one GPU: every worker shares it, nothing to spread
    ("cuda", {}, 3, ["0", "1", "2"]),
    ("cuda", {"CUDA_VISIBLE_DEVICES": "3, 5"}, 8, ["3", "5"]),  # as the user narrowed them
    ("cuda", {"CUDA_VISIBLE_DEVICES": "2"}, 8, []),
])
def test_local_workers_spread_over_the_visible_gpus(device, env, count, expect):
    """``--workers N --device cuda`` on several GPUs: worker i (in start order, replacements
    counted on) sees GPU i mod count alone. Exact: lists of ids; no GPU is needed to check the
    assignment (the CUDA runs themselves: tests/test_cuda.py)."""
    from benchbench.engine.executors.local import gpu_for, visible_gpus

    gpus = visible_gpus(device, env=env, count=count)
    assert gpus == expect
    if gpus:
        seen = [gpu_for(i, gpus) for i in range(2 * len(gpus) + 1)]
        assert seen == (gpus * 3)[:len(seen)]
