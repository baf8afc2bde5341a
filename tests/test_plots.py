"""The report's figures: drawn from the store alone, linked, the tables' numbers, deterministic,
skipped (and said so) when there is nothing to draw, never half-written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.runner import run_suite
from benchbench.errors import BenchbenchError
from benchbench.report import plots
from benchbench.report.markdown import render_report
from benchbench.report.plots import figure, plan_figures
from benchbench.report.tables import summary_tables
from benchbench.report.write import MARK, write_report
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite

SUITE = """
[suite]
name = "plots"
seeds = [0, 1]
[dataset]
name = "digits"
train = "train"
test = "test"
[model]
name = "mlp"
hidden = [16]
[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 3
checkpoints = [1, 2, 3]
[[attacks]]
name = "fgsm"
eps = [0.05, 0.2]
[[attacks]]
name = "pgd"
steps = 3
eps = [0.05, 0.2]
"""
FIGS = "figures/plots"


@pytest.fixture(scope="module")
def made(tmp_path_factory, registry):
    """A run directory, written once (tests copy it before changing anything)."""
    root = tmp_path_factory.mktemp("plots")
    (root / "suite.toml").write_text(SUITE)
    run_suite(load_suite(root / "suite.toml", registry), registry=registry,
              out_dir=root / "run", device="cpu")
    return root / "run"


@pytest.fixture
def run_dir(made, tmp_path):
    shutil.copytree(made, tmp_path / "run")
    return tmp_path / "run"


def linked(report: str) -> list[str]:
    return [line.split("](", 1)[1].rstrip(")") for line in report.splitlines()
            if line.startswith("![")]


def test_run_writes_every_figure_it_links_and_nothing_else(made):
    report = (made / "report.md").read_text()
    links = linked(report)
    names = {p.split("/")[-1] for p in links}
    assert {"mlp-standard-digits-epoch.png", "mlp-standard-digits-masking.png",
            "mlp-standard-digits-eps-linf.png"} <= names, names
    assert all(p.startswith(f"{FIGS}/") for p in links)
    on_disk = {p.name for p in (made / FIGS).iterdir()}
    assert on_disk == names | {MARK}
    for path in links:
        assert (made / path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in (made / "figures").iterdir() if p.name.startswith(".")]


def test_the_epoch_figure_draws_the_tables_numbers(made):
    with read_store(made) as store:
        tidy = store.tidy()
        text = render_report(store)
    table = summary_tables(tidy[tidy.split != "fit"])[0]
    spec = next(f for f in plan_figures(tidy, {}, base="b", title="t")[0]
                if f.name == "b-epoch.png")
    lines = {line.get_label(): line for line in figure(spec).axes[0].get_lines()}
    for label in ("fgsm ε=0.2", "pgd ε=0.05", "clean (test)"):
        column = "test acc" if label == "clean (test)" else label
        line = lines[label]
        assert list(line.get_xdata()) == list(table.mean.index)
        assert list(line.get_ydata()) == pytest.approx(list(100 * table.mean[column]))
    assert "Accuracy under `fgsm`" in text  # the same numbers, as a table


def test_the_eps_figure_has_the_first_and_last_checkpoint_per_norm(made):
    with read_store(made) as store:
        tidy = store.tidy()
    spec = next(f for f in plan_figures(tidy, {"fgsm": {"norm": "linf"}, "pgd": {"norm": "linf"}},
                                        base="b", title="t", chance=0.1)[0]
                if f.name == "b-eps-linf.png")
    assert [p.title for p in spec.panels] == ["epoch 1 (first checkpoint)",
                                              "epoch 3 (last checkpoint)"]
    fgsm = next(s for s in spec.panels[1].series if s.label == "fgsm")
    assert fgsm.x == (0.05, 0.2)
    sel = tidy[(tidy.attack == "fgsm") & (tidy.epoch == 3) & (tidy.eps == 0.2)]
    assert fgsm.mean[-1] == pytest.approx(sel.value.mean())
    assert "ε (L∞ radius" in spec.panels[0].xlabel


def test_figures_are_deterministic_and_carry_no_timestamp(run_dir):
    before = {p.name: p.read_bytes() for p in (run_dir / FIGS).iterdir()}
    with read_store(run_dir) as store:
        write_report(store, run_dir)
    after = {p.name: p.read_bytes() for p in (run_dir / FIGS).iterdir()}
    assert before == after
    for data in after.values():
        assert b"tEXt" not in data and b"matplotlib" not in data.lower()


def test_report_command_regenerates_figures_from_the_store_alone(run_dir, monkeypatch):
    shutil.rmtree(run_dir / "figures")
    shutil.rmtree(run_dir / "checkpoints")
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    result = CliRunner().invoke(app, ["report", str(run_dir), "--out",
                                      str(run_dir / "again.md")])
    assert result.exit_code == 0, result.output
    assert all((run_dir / p).is_file() for p in linked((run_dir / "again.md").read_text()))


def test_a_failed_drawing_leaves_the_old_report_and_figures(run_dir, monkeypatch):
    before = {p.name: p.read_bytes() for p in (run_dir / FIGS).iterdir()}
    report = (run_dir / "report.md").read_text()
    calls = []

    def broken(spec, path):
        calls.append(spec.name)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        path.write_bytes(b"half")

    monkeypatch.setattr(plots, "draw", broken)
    with read_store(run_dir) as store, pytest.raises(RuntimeError, match="disk full"):
        write_report(store, run_dir)
    assert {p.name: p.read_bytes() for p in (run_dir / FIGS).iterdir()} == before
    assert (run_dir / "report.md").read_text() == report
    assert sorted(p.name for p in (run_dir / "figures").iterdir()) == ["plots"]


def test_a_figures_folder_benchbench_did_not_write_is_refused(run_dir):
    shutil.rmtree(run_dir / FIGS)
    (run_dir / FIGS).mkdir()
    (run_dir / FIGS / "mine.txt").write_text("not yours")
    report = (run_dir / "report.md").read_text()
    with read_store(run_dir) as store, pytest.raises(BenchbenchError, match="did not write"):
        write_report(store, run_dir)
    assert sorted(p.name for p in (run_dir / FIGS).iterdir()) == ["mine.txt"]
    assert (run_dir / "report.md").read_text() == report


def tidy(points, epochs=(1, 2)) -> pd.DataFrame:
    """Tidy rows: (attack, eps, accuracy) at every epoch for two seeds, plus clean rows."""
    rows = []
    for epoch in epochs:
        for seed in (0, 1):
            rows.append(dict(epoch=epoch, seed=seed, split="test", attack="none", eps=0.0,
                             metric="accuracy", value=0.9))
            rows += [dict(epoch=epoch, seed=seed, split="test", attack=a, eps=e,
                          metric="accuracy", value=v + 0.01 * seed) for a, e, v in points]
    return pd.DataFrame(rows)


def test_one_eps_and_one_checkpoint_are_not_drawn_but_said():
    figures, notes = plan_figures(tidy([("fgsm", 0.1, 0.5)], epochs=(1,)), {}, base="b",
                                  title="t")
    assert figures == []
    assert any("one checkpoint only" in n for n in notes)
    assert any("one ε only" in n for n in notes)


def test_worst_case_rows_are_dashed_and_a_crowded_figure_splits_per_attack():
    points = [(a, e, 0.5 - e) for a in ("fgsm", "pgd", "bim") for e in (0.1, 0.2, 0.3)]
    points += [("worst_linf", e, 0.4 - e) for e in (0.1, 0.2, 0.3)]
    info = {a: {"norm": "linf"} for a in ("fgsm", "pgd", "bim")}
    figures, notes = plan_figures(tidy(points), info, base="b", title="t")
    names = [f.name for f in figures]
    assert names[:4] == ["b-epoch-bim.png", "b-epoch-fgsm.png", "b-epoch-pgd.png",
                         "b-epoch-worst-case.png"] and notes == []
    eps = next(f for f in figures if f.name == "b-eps-linf.png")
    drawn = {line.get_label(): line for line in figure(eps).axes[0].get_lines()}
    assert drawn["worst_linf"].get_linestyle() == "--"
    assert drawn["fgsm"].get_linestyle() == "-"
    few, notes = plan_figures(tidy([("fgsm", 0.1, 0.4), ("pgd", 0.1, 0.35),
                                    ("worst_linf", 0.1, 0.3)]), info, base="b", title="t")
    one = figure(few[0])
    assert [f.name for f in few] == ["b-epoch.png"] and "one ε only" in notes[0]
    styles = {line.get_label(): line.get_linestyle() for line in one.axes[0].get_lines()}
    assert styles["worst_linf ε=0.1"] == "--" and styles["fgsm ε=0.1"] == "-"
    assert one.legends  # outside the axes, on the figure
    # a norm with one attack: its worst case is that attack's curve, not drawn twice
    lone, _ = plan_figures(tidy([("fgsm", 0.1, 0.4), ("worst_linf", 0.1, 0.4)]), info,
                           base="b", title="t")
    assert [s.label for s in lone[0].panels[0].series] == ["clean (test)", "fgsm ε=0.1"]


def test_an_old_store_renders_with_figures(tmp_path):
    """A store written before figures existed (schema v2 fixture) gets them from its data."""
    shutil.copytree("tests/fixtures/store_v2", tmp_path / "old")
    with read_store(tmp_path / "old") as store:
        target = write_report(store, tmp_path / "old", out=tmp_path / "out" / "old.md")
    links = linked(target.read_text())
    assert links and all((tmp_path / "out" / p).is_file() for p in links)


def test_help_does_not_import_matplotlib():
    code = ("import sys; from typer.testing import CliRunner; from benchbench.cli import app; "
            "CliRunner().invoke(app, ['report', '--help']); "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def masking_rows(values: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """Clean accuracy and the masking fractions (zero-grad, p_y = 1) per epoch, for seeds 0
    and 1 (seed 1 a little higher, so the curves have a band)."""
    rows = []
    for epoch, (zero, saturated) in values.items():
        for seed in (0, 1):
            for metric, v in (("accuracy", 0.9), ("zero_grad_frac", zero),
                              ("saturated_frac", saturated)):
                rows.append(dict(epoch=epoch, seed=seed, split="test", attack="none", eps=0.0,
                                 metric=metric, value=v + (0.001 * seed if v < 0.9 else 0)))
    return pd.DataFrame(rows)


def masking_axes(values):
    spec = next(f for f in plan_figures(masking_rows(values), {}, base="b", title="t")[0]
                if f.name == "b-masking.png")
    return spec, figure(spec).axes[0]


def test_the_masking_figure_fits_its_axis_to_its_values():
    """Shares of 0-2% drawn on an axis from 0 to just above the highest band, not 0-100%."""
    spec, ax = masking_axes({1: (0.0, 0.005), 2: (0.01, 0.012), 3: (0.02, 0.015)})
    frame = masking_rows({1: (0.0, 0.005), 2: (0.01, 0.012), 3: (0.02, 0.015)})
    stats = frame[frame.metric != "accuracy"].groupby(["metric", "epoch"])["value"].agg(
        ["mean", "std"])
    top = 100 * float((stats["mean"] + stats["std"]).max())
    assert 2.0 < top < 2.2
    assert ax.get_ylim() == pytest.approx((-0.05 * top, 1.05 * top))  # 5% free each side
    assert spec.panels[0].ylim == pytest.approx(ax.get_ylim())
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == 2
    zero = list(lines["zero input gradient"].get_ydata())
    assert zero == pytest.approx([0.05, 1.05, 2.05])  # percent, the mean over the seeds
    lo, hi = ax.get_ylim()
    assert (max(zero) - min(zero)) / (hi - lo) > 0.8  # on 0-100%: 0.02, a flat line
    # nothing masked: the axis is 0 to the minimum span of one point, 0 at the bottom
    _, flat = masking_axes({1: (0.0, 0.0), 2: (0.0, 0.0)})
    assert flat.get_ylim() == pytest.approx((-0.05, 1.05))
    # shares up to 80%: fitted too, and never beyond 100% by more than the margin
    _, big = masking_axes({1: (0.5, 0.97), 2: (0.8, 0.999)})
    lo, hi = big.get_ylim()
    assert 100 < hi <= 105 and lo == pytest.approx(-0.05 * hi / 1.05)
    # the accuracy figures keep the whole 0-100% axis
    epoch = next(f for f in plan_figures(tidy([("fgsm", 0.1, 0.01)]), {}, base="b",
                                         title="t")[0] if f.name == "b-epoch.png")
    assert figure(epoch).axes[0].get_ylim() == (-3, 103)


def regime_rows(regimes=("slow", "fast"), attacks=(("fgsm", 0.1), ("pgd", 0.1)),
                epochs=(1, 2, 3)) -> pd.DataFrame:
    """Tidy checkpoint rows of one model: per regime, seed and epoch, clean accuracy and each
    (attack, eps)'s, different for every regime and seed."""
    rows = []
    for r, regime in enumerate(regimes):
        for seed in (0, 1):
            for epoch in epochs:
                base = dict(model="mlp", regime=regime, dataset="digits", seed=seed,
                            epoch=epoch, split="test", metric="accuracy")
                rows.append({**base, "attack": "none", "eps": 0.0,
                             "value": 0.9 - 0.1 * r + 0.01 * seed})
                rows += [{**base, "attack": a, "eps": e,
                          "value": 0.5 - 0.1 * r - e + 0.02 * epoch + 0.01 * seed - 0.01 * i}
                         for i, (a, e) in enumerate(attacks)]
    return pd.DataFrame(rows)


def test_regimes_side_by_side_one_line_per_regime_a_panel_per_attack_and_eps(tmp_path):
    from benchbench.report.markdown import render_with_figures
    from benchbench.report.order import SuiteOrder
    from benchbench.report.regime_plots import plan_regime_figures
    from tests.report_helpers import write_store

    frame = regime_rows()
    info = {"fgsm": {"norm": "linf"}, "pgd": {"norm": "linf"}}
    order = SuiteOrder(("mlp",), ("slow", "fast"), ("fgsm", "pgd"))
    (spec,), notes = plan_regime_figures(frame, info, order=order, used=set())
    assert notes == [] and spec.name == "mlp-digits-regimes.png"
    drawn = figure(spec)
    assert [ax.get_title() for ax in drawn.axes] == ["clean (test)", "fgsm ε=0.1",
                                                     "pgd ε=0.1"]
    for ax in drawn.axes:
        assert [line.get_label() for line in ax.get_lines()] == ["slow", "fast"]
        assert len(ax.collections) == 2  # a band per regime: two seeds
    sel = frame[(frame.regime == "fast") & (frame.attack == "pgd")]
    mean = sel.groupby("epoch")["value"].mean()
    fast = drawn.axes[2].get_lines()[1]
    assert list(fast.get_xdata()) == [1, 2, 3]
    assert list(fast.get_ydata()) == pytest.approx(list(100 * mean))
    assert [t.get_text() for t in drawn.legends[0].get_texts()] == ["slow", "fast"]
    assert "one line per regime" in spec.caption and "2 seed(s)" in spec.caption
    # one regime: no figure; one checkpoint: said, not drawn
    assert plan_regime_figures(frame[frame.regime == "slow"], info, order=order,
                               used=set()) == ([], [])
    figures, notes = plan_regime_figures(frame[frame.epoch == 3], info, order=order,
                                         used=set())
    assert figures == [] and "one checkpoint only" in notes[0]
    # in the report: its own section, linking the figure drawn beside the others
    run = write_store(tmp_path / "run", regimes=(("slow", "standard", {}),
                                                 ("fast", "standard", {})))
    with read_store(run) as store:
        text, made = render_with_figures(store)
    section = text.split("## Regimes side by side", 1)[1].split("\n## ")[0]
    assert "![regimes side by side: mlp · digits](figures/made/mlp-digits-regimes.png)" \
        in section
    assert "mlp-digits-regimes.png" in [f.name for f in made]
    with read_store(write_store(tmp_path / "one")) as store:
        assert "Regimes side by side" not in render_with_figures(store)[0]


def test_crowded_regimes_figure_draws_the_worst_cases_and_panels_wrap():
    from benchbench.report.order import SuiteOrder
    from benchbench.report.regime_plots import CROWDED_PANELS, plan_regime_figures

    names = ("a1", "a2", "a3", "a4", "a5")
    attacks = [(a, e) for a in names for e in (0.1, 0.2)]
    attacks += [("worst_linf", 0.1), ("worst_linf", 0.2), ("solo", 0.3)]
    info = {a: {"norm": "linf"} for a in names} | {"solo": {"norm": "l2"}}
    order = SuiteOrder(("mlp",), ("slow", "fast"), (*names, "solo"))
    (spec,), _ = plan_regime_figures(regime_rows(attacks=attacks), info, order=order,
                                     used=set())
    assert len(attacks) - 2 > CROWDED_PANELS
    # the worst case of L-inf at each eps; L2's single attack is its own worst case
    assert [p.title for p in spec.panels] == ["clean (test)", "solo ε=0.3",
                                              "worst case L∞ ε=0.1", "worst case L∞ ε=0.2"]
    assert "worst case over each norm's attacks" in spec.caption
    # six attack panels and the clean one: two rows of at most four, a y label on each row
    few = [(a, e) for a in names[:3] for e in (0.1, 0.2)]
    (wide,), _ = plan_regime_figures(regime_rows(attacks=few), info, order=order, used=set())
    drawn = figure(wide)
    assert len(drawn.axes) == len(wide.panels) == 7
    top, below = drawn.axes[0].get_position(), drawn.axes[4].get_position()
    assert below.y1 < top.y0 and below.x0 == pytest.approx(top.x0)
    assert drawn.axes[0].get_ylabel() == drawn.axes[4].get_ylabel() == "accuracy (%)"
    assert drawn.axes[1].get_ylabel() == ""
