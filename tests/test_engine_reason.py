"""Which engine each unit takes, and why (issue 17: "`--engine auto` silently ran [a CNN]
sequentially; say which engine each unit takes, and why, in the log and the report")."""

from __future__ import annotations

import pytest

from benchbench.engine.cell import Events
from benchbench.engine.runner import run_suite
from benchbench.report.markdown import render_with_figures
from benchbench.store.results import open_store, read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.plugins import alone_model

SUITE = """
[suite]
name = "why"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:200]"
test = "test[:100]"

[[model]]
name = "{model}"
{hidden}

[regime]
name = "standard"
lr = 0.01
batch_size = 50
epochs = 1
"""


class Log(Events):
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, message: str) -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def registry():
    return isolated_registry(alone_model)


@pytest.mark.parametrize(("model", "engine", "said"), [
    ("flat_linear", "auto", "model 'flat_linear' declares no stack"),
    ("mlp", "sequential", "--engine sequential"),
    ("mlp", "auto", None)])
def test_the_log_the_store_and_the_report_say_why_cells_run_one_by_one(
        tmp_path, registry, model, engine, said):
    path = tmp_path / "why.toml"
    path.write_text(SUITE.format(model=model, hidden="hidden = [8]" if model == "mlp" else ""))
    events = Log()
    run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
              device="cpu", engine=engine, events=events)
    lines = [line for line in events.lines if line.startswith("engine:")]
    with read_store(tmp_path / "run") as store:
        engines = {c["engine"] for c in store.cells()}
    with open_store(tmp_path / "run" / "results.sqlite") as store:
        report = render_with_figures(store)[0]
    if said is None:  # stacked: nothing to explain
        assert lines == [] and engines == {"stacked x2"}
        assert "engine stacked x2." in report
        return
    assert lines == [f"engine: 2 cell(s) one by one: {said}"]
    assert len(engines) == 1 and engines.pop().startswith(f"sequential: {said}")
    assert f"engine sequential: {said}" in report.replace("\\", "")


def test_validate_shows_the_reason_in_the_plan(tmp_path, registry):
    from benchbench.cli_info import unit_engine

    path = tmp_path / "why.toml"
    path.write_text(SUITE.format(model="flat_linear", hidden=""))
    cells = load_suite(path, registry).cells()
    assert unit_engine(cells[:1], registry, stack=True).startswith(
        "sequential (model 'flat_linear' declares no stack")
