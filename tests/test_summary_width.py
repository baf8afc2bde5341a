"""The summary `run` prints is readable in an 80-column terminal: nothing folded to `7…`."""

from __future__ import annotations

import io
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from benchbench.cli_tables import summary_renderables
from benchbench.report.tables import summary_tables, terminal_columns

ATTACKS = ("fgsm", "pgd40", "pgd40_margin", "worst_linf")
EPS = (0.05, 0.1, 0.2, 0.3)
CLEAN = [("train", "accuracy"), ("test", "accuracy"), ("train", "loss"), ("test", "loss"),
         ("test", "zero_grad_frac"), ("test", "saturated_frac")]


def tidy_frame(seeds=(0, 1, 2), epochs=(1, 10, 100, 181)) -> pd.DataFrame:
    """A suite's tidy rows: clean metrics, four attacks x four eps, several seeds and epochs."""
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for epoch in epochs:
            keys = [(s, "none", 0.0, m) for s, m in CLEAN]
            keys += [("test", a, e, "accuracy") for a in ATTACKS for e in EPS]
            for split, attack, eps, metric in keys:
                value = rng.uniform(0, 3) if metric == "loss" else rng.uniform(0, 1)
                rows.append(dict(model="mlp", regime="standard", dataset="mnist", seed=seed,
                                 epoch=epoch, split=split, attack=attack, eps=eps,
                                 metric=metric, value=value))
    return pd.DataFrame(rows)


def render(tidy: pd.DataFrame, width: int = 80) -> str:
    console = Console(width=width, file=io.StringIO(), force_terminal=False)
    for table in summary_renderables(summary_tables(tidy), width=width):
        console.print(table)
    return console.file.getvalue()


@pytest.mark.parametrize("seeds", [(0, 1, 2), (0,)])
def test_summary_fits_80_columns_and_shows_every_number(seeds):
    tidy = tidy_frame(seeds=seeds)
    text = render(tidy)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    (table,) = summary_tables(tidy)
    columns = terminal_columns(table)
    assert len(columns) == len(CLEAN) + len(ATTACKS) * len(EPS)
    expected = Counter(cell for _, cells in columns for cell in cells)
    shown = Counter(re.split(r"[\s│┃]+", text))
    assert not expected - shown, expected - shown  # every number, as often as it occurs
    assert "mlp · standard · mnist (1/" in text
    for attack in ATTACKS:
        assert attack in text
    for eps in EPS:
        assert f"ε={eps:g} %" in text
    if len(seeds) > 1:
        mean = tidy[(tidy.epoch == 181) & (tidy.attack == "pgd40") & (tidy.eps == 0.2)].value
        assert f"{mean.mean() * 100:.1f}±{mean.std() * 100:.1f}" in text
    else:
        assert "±" not in text


def test_each_epoch_row_appears_in_every_part():
    text = render(tidy_frame())
    parts = text.count("mlp · standard · mnist (")
    assert parts >= 3
    for epoch in (1, 10, 100, 181):
        assert len(re.findall(rf"^\s+{epoch}\s", text, flags=re.M)) == parts


def test_a_wide_terminal_gets_fewer_parts():
    assert render(tidy_frame(), width=300).count("mlp · standard · mnist") == 1
    assert "…" not in render(tidy_frame(), width=300)


def test_the_report_keeps_its_full_form():
    """terminal_columns is for the terminal only: the markdown report's cells are unchanged."""
    (table,) = summary_tables(tidy_frame())
    sel = tidy_frame()
    sel = sel[(sel.epoch == 10) & (sel.attack == "fgsm") & (sel.eps == 0.1)].value
    assert table.formatted().loc[10, "fgsm ε=0.1"] == (f"{sel.mean() * 100:.2f} ± "
                                                      f"{sel.std() * 100:.2f}")


def test_the_printed_summary_keeps_the_suite_order(tmp_path, capsys):
    """The tables `run` prints come in the suite's order, as the report's do (regime "zeta"
    before "alpha"; alphabetically it came last)."""
    from benchbench.cli_tables import print_summary
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite
    from benchbench.testing import isolated_registry

    registry = isolated_registry()
    path = tmp_path / "order.toml"
    path.write_text("""
[suite]
name = "order"

[dataset]
name = "digits"
train = "train[:100]"
test = "test[:50]"

[model]
name = "mlp"
hidden = [8]

[[regime]]
name = "standard"
label = "zeta"
epochs = 1

[[regime]]
name = "standard"
label = "alpha"
epochs = 1
""")
    summary = run_suite(load_suite(path, registry), registry=registry,
                        out_dir=tmp_path / "run", device="cpu")
    capsys.readouterr()
    print_summary(summary)
    text = capsys.readouterr().out
    assert text.index("mlp · zeta") < text.index("mlp · alpha"), text
