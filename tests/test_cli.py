"""The command line, through Typer's CliRunner (and one real subprocess for import cost)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from benchbench.cli import app


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from benchbench.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'run' in r.output; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('torch', 'torchvision', 'pandas', 'sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_loading_the_registry_does_not_import_torch():
    """Registration must stay cheap (hookspecs): `benchbench plugins` and suite validation."""
    code = ("import sys; from benchbench.plugins import load_registry; "
            "load_registry(load_entry_points=False); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_run_prints_table_writes_store_and_report(cli, write_suite, tmp_path):
    result = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "mlp · standard · digits" in result.output and "fgsm" in result.output
    assert "ran 2 cell(s)" in result.output
    assert (tmp_path / "run" / "results.sqlite").is_file()
    assert (tmp_path / "run" / "report.md").is_file()
    again = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cpu")
    assert "ran 0 cell(s), skipped 2 already stored" in again.output


def test_default_run_dir_is_runs_suite_name(cli, write_suite, tmp_path, monkeypatch):
    suite = write_suite(seeds=1, epochs=1, checkpoints="[1]")
    monkeypatch.chdir(tmp_path)
    assert cli("run", suite, "--device", "cpu").exit_code == 0
    assert (tmp_path / "runs" / "tiny" / "report.md").is_file()


def test_bad_suite_exits_2_with_one_line_and_writes_nothing(cli, write_suite, tmp_path):
    path = write_suite()
    path.write_text(path.read_text().replace('optimizer', 'x').replace(
        "lr = 0.01", 'lr = 0.01\noptimizer = "rmsprop"'))
    result = cli("run", path, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {path}: regime: optimizer must be one of adam, "
                                     "sgd; got 'rmsprop'")
    assert not (tmp_path / "run").exists()


def test_bad_device_and_missing_cuda(cli, write_suite, tmp_path):
    result = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "tpu")
    assert result.exit_code == 2 and "use one of auto, cpu, cuda" in result.stderr
    import torch

    if not torch.cuda.is_available():
        result = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cuda")
        assert result.exit_code == 2 and "no CUDA device" in result.stderr
    assert not (tmp_path / "run").exists()


def test_report_and_export_commands(cli, write_suite, tmp_path):
    cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cpu")
    result = cli("report", tmp_path / "run", "--out", tmp_path / "again.md")
    assert result.exit_code == 0
    assert (tmp_path / "again.md").read_text() == (tmp_path / "run" / "report.md").read_text()
    result = cli("export", tmp_path / "run", "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith(
        "model,regime,dataset,seed,epoch,split,attack,eps,metric,value")
    result = cli("export", tmp_path / "run", "--format", "json", "--out", tmp_path / "x.json")
    assert result.exit_code == 0 and len(json.loads((tmp_path / "x.json").read_text())) == 40
    bad = cli("export", tmp_path / "run", "--format", "xml")
    assert bad.exit_code == 2 and "use one of csv, json" in bad.stderr
    missing = cli("report", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "no results.sqlite here" in missing.stderr


def test_plugins_command_lists_builtins_with_sources(cli):
    result = cli("plugins", "--json")
    assert result.exit_code == 0
    listed = {(p["kind"], p["name"]): p for p in json.loads(result.stdout)["plugins"]}
    assert {("model", "mlp"), ("dataset", "mnist"), ("dataset", "digits"), ("attack", "fgsm"),
            ("regime", "standard")} <= set(listed)
    assert listed[("attack", "fgsm")]["distribution"] == "benchbench"
    table = cli("plugins")
    assert table.exit_code == 0 and "fgsm" in table.stdout


def test_data_fetch(cli):
    result = cli("data", "fetch", "digits")
    assert result.exit_code == 0 and "digits: ready (bundled with scikit-learn)" in result.stdout
    result = cli("data", "fetch", "mnits")
    assert result.exit_code == 2 and "did you mean 'mnist'" in result.stderr


def test_a_raising_plugin_fails_its_cells_and_the_run_exits_1(write_suite, tmp_path,
                                                              monkeypatch):
    """The broken model's cells are recorded with the error; the other model's cells finish."""
    from torch import nn

    from benchbench import hookimpl
    from benchbench.plugins import load_registry

    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(64, 10)

        def forward(self, x):
            raise RuntimeError("kernel not found")

    def build_broken(*, input_shape, num_classes):
        """A model that fails at its first forward pass."""
        return Broken()

    class Plugin:
        @hookimpl
        def register_models(self, register):
            register("broken", build_broken)

    monkeypatch.setattr("benchbench.cli._registry",
                        lambda: load_registry(load_entry_points=False, extra=(Plugin(),)))
    text = write_suite(seeds="[0, 1]").read_text().replace("[model]", "[[model]]")
    bad = write_suite("bad.toml", text=text + '\n[[model]]\nname = "broken"\n')
    result = CliRunner().invoke(app, ["run", str(bad), "--out", str(tmp_path / "run"),
                                      "--device", "cpu"])
    assert result.exit_code == 1
    assert "ran 2 cell(s), skipped 0 already stored, 2 failed" in result.output
    assert "RuntimeError: kernel not found" in result.output
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Failed cells" in report and report.count("kernel not found") == 2
    assert "## mlp · standard · digits" in report


def interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_ctrl_c_before_the_run_starts_says_nothing_was_written(cli, write_suite, tmp_path,
                                                                monkeypatch):
    """Ctrl-C while plugins load or the suite is read: one line, exit 130, no traceback."""
    monkeypatch.setattr("benchbench.suite.load.load_suite", interrupted)
    result = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 130
    assert "interrupted before the run started: nothing was written" in result.output
    assert not (tmp_path / "run").exists()


def test_ctrl_c_exits_130_saying_how_to_go_on(cli, write_suite, tmp_path, monkeypatch):
    """Ctrl-C during a run: one line on what is kept and how to resume (tests/test_resume.py
    covers the resuming itself)."""
    monkeypatch.setattr("benchbench.engine.runner.run_suite", interrupted)
    result = cli("run", write_suite(), "--out", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 130
    assert "interrupted: finished cells are stored in" in result.output
    assert "run the same command again" in result.output
