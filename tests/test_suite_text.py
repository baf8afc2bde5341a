"""Text from suites reaches terminals, report.md and figures only as itself.

Control characters are refused when a suite is validated (one line naming the file and key);
whatever a store holds is escaped in ``report.md`` (HTML, Markdown, table syntax) and drawn
literally in figures (no mathtext), also for a store written before those checks existed.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.report.mdtext import code, fence, md
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "text"
seeds = [0]
description = {description}

[dataset]
name = "digits"
train = "train[:300]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [8]
label = {model_label}

[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.05, 0.1]
label = {attack_label}
"""
SAFE = {"description": '"a study"', "model_label": '"net"', "attack_label": '"fgsm"'}


def suite_text(**override: str) -> str:
    return SUITE.format(**{**SAFE, **override})


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


# control characters: refused at validation ------------------------------------------------------
@pytest.mark.parametrize(("key", "override"), [
    ("model.label", {"model_label": r'"net\u001b[2J"'}),  # clears the screen
    ("attacks[0].label", {"attack_label": r'"\u001b]8;;https://evil.example\u0007fgsm"'}),
    ("model.label", {"model_label": r'"net\u009b2J"'}),  # C1 CSI, one byte
    ("suite.description", {"description": r'"a \u001b[31mred\u001b[0m study"'}),
    ("suite.description", {"description": r'"a \u009b31m study"'}),
    ("model.label", {"model_label": r'"net\nnext line"'}),
    ("model.label", {"model_label": r'"abc\u202edcba"'}),  # bidi override
])
def test_control_characters_in_labels_and_descriptions_are_refused(cli, tmp_path, key,
                                                                   override):
    path = tmp_path / "text.toml"
    path.write_text(suite_text(**override), encoding="utf-8")
    result = cli("run", path, "--out", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: {key}: "), result.stderr
    assert "control character U+" in lines[0] and lines[0].isprintable()
    assert "\x1b" not in result.output and "\x9b" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_c1_control_character_in_a_comment_is_refused_naming_the_line(registry, tmp_path):
    path = tmp_path / "text.toml"
    path.write_text("# a comment \x9b2J\n" + suite_text(), encoding="utf-8")
    with pytest.raises(SuiteError, match=r"text\.toml: line 1: .*U\+009B \(CSI\)"):
        load_suite(path, registry)


def test_a_multi_line_description_is_allowed(registry, tmp_path):
    path = tmp_path / "text.toml"
    path.write_text(suite_text(description='"""\nfirst line\n\tsecond line\n"""'))
    assert load_suite(path, registry).description == "first line\n\tsecond line\n"


# report.md: every piece of suite text escaped ----------------------------------------------------
HOSTILE = {
    "description": '"""# Not a heading\n<script>alert(1)</script> | cell ![t](https://evil.example/t.png)\n- not a list"""',  # noqa: E501
    "model_label": '"a|b <img src=x onerror=alert(1)>"',
    "attack_label": '"f`g|<b>s</b>"',
}


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, registry) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "text.toml").write_text(suite_text(**HOSTILE), encoding="utf-8")
    run_suite(load_suite(root / "text.toml", registry), registry=registry,
              out_dir=root / "run", device="cpu", command="benchbench run text.toml")
    return root / "run"


def table_widths(report: str) -> set[int]:
    """The number of unescaped ``|`` in each table row of ``report``."""
    return {len(re.findall(r"(?<!\\)\|", line)) for line in report.splitlines()
            if line.startswith("|") and not line.startswith("|--")}


def test_html_and_markdown_in_suite_text_are_escaped_in_the_report(hostile_run):
    report = (hostile_run / "report.md").read_text(encoding="utf-8")
    body = report.split("## Suite")[0]  # the suite file itself is shown verbatim, fenced
    for raw in ("<script", "<img", "![t](", "\n# Not a heading", "\n- not a list"):
        assert raw not in body, raw
    assert "&lt;script&gt;" in body and "&lt;img src=x onerror=alert(1)&gt;" in body
    assert "## a\\|b &lt;img" in body  # the table's title, one heading
    assert "``f`g|<b>s</b>``" in body  # inline code (HTML is literal there) the ` cannot close
    assert "<b>" not in body.replace("``f`g|<b>s</b>``", "")
    fenced = report.split("## Suite", 1)[1]
    assert fenced.count("```") == 2  # the suite's own text stays inside one code block
    # every table row keeps its columns: no label adds a cell
    for table in report.split("\n\n"):
        if table.startswith("|"):
            assert len(table_widths(table)) == 1, table


def test_the_escapes(tmp_path):
    assert md("a|b") == "a\\|b" and md("<x>&") == "&lt;x&gt;&amp;"
    assert md("# h") == "\\# h" and md("1. x") == "1\\. x" and md("- a") == "\\- a"
    assert md("fgsm_at") == "fgsm_at" and md("_em_") == "\\_em\\_"
    assert md("[a](b) ![i](u) $x$") == "\\[a\\](b) !\\[i\\](u) \\$x\\$"
    assert md("two\nlines") == "two lines" and md("\x1b[2J") == "\\\\x1b\\[2J"
    assert code("a`b") == "``a`b``" and code("|", table=True) == "`\\|`"
    assert fence("x\n```\ny") == ["````", "x", "```", "y", "````"]


# figures: labels drawn literally ----------------------------------------------------------------
MATH = r'"net $\\frac{a}$"'


def test_a_mathtext_label_runs_and_is_drawn(cli, tmp_path):
    path = tmp_path / "text.toml"
    path.write_text(suite_text(model_label=MATH, attack_label=r'"fgsm $x^"'))
    result = cli("run", path, "--out", tmp_path / "run", "--device", "cpu")
    assert result.exit_code == 0, (result.output, result.exception)
    figures = list((tmp_path / "run" / "figures" / "text").glob("*.png"))
    assert len(figures) >= 2  # accuracy against epoch and against eps, at least
    assert "net \\$\\\\frac{a}\\$" in (tmp_path / "run" / "report.md").read_text()


def test_a_store_written_before_the_checks_still_reports(cli, hostile_run, tmp_path):
    """A store made before labels were checked: a mathtext label and control characters in
    it. ``report`` draws every figure and writes no control character into report.md."""
    run_dir = tmp_path / "old"
    shutil.copytree(hostile_run, run_dir)
    with sqlite3.connect(run_dir / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET model = ?", ("net $\\frac{a}$ \x1b[2J\x9b",))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'suite_description'",
                     ("old \x1b]8;;https://evil.example\x07link",))
    shutil.rmtree(run_dir / "figures")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = cli("report", run_dir)
    assert result.exit_code == 0, (result.output, result.exception)
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert not any(ch in report for ch in "\x1b\x9b\x07")
    assert "\\\\x1b" in report  # shown, as an escape
    assert list((run_dir / "figures" / "text").glob("*.png"))
    assert not [w for w in caught if "missing from font" in str(w.message)]  # drawn escaped
