"""The leaderboard figure, checked on the matplotlib objects it is drawn from (issue 19, item 2):
intervals with caps, one wider than the plot cut at the axes with a note, axes from the points,
colour by regime and marker by run, a label on each point that overlaps no other label or point.

Entries are written from the one the committed v2 store gives (no training), two seeds each, so
the 95% interval is ``t(0.975, 1) = 12.706`` times the standard error.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.leaderboard.board import board_data
from benchbench.leaderboard.entries import summary
from benchbench.leaderboard.plot import MIN_SPAN, axis_range, scatter, text_box

FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
SUMMARY = ("mean", "std", "ci95", "n", "values")

#: float32-free arithmetic on a few numbers: positions agree to rounding (1e-9 of a percent)
CLOSE = 1e-9


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("base") / "board"
    result = CliRunner().invoke(app, ["leaderboard", str(FIXTURE), "--norm", "linf", "--eps",
                                      "0.2", "--out", str(out)],
                                env={"BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    [path] = (out / "entries").glob("*.json")
    return json.loads(path.read_text())


def make(base: dict, key: str, clean: tuple, robust: tuple, *, regime: str = "standard",
         run: str = "r1", unreliable: bool = False) -> dict:
    e = copy.deepcopy(base)
    fields = {k: v for k, v in e["robust_accuracy"]["pgd"].items() if k not in SUMMARY}
    e.update(id=key, name=f"entry {key}", seeds=[0, 1], notes=[], flags="Z" if unreliable
             else "", flag_meanings={"Z": "zero"} if unreliable else {}, unreliable=unreliable,
             unreliable_because="Z" if unreliable else "")
    e["run"] = {**e["run"], "name": run}
    e["regime"] = {**e["regime"], "name": regime, "label": regime}
    e["clean_accuracy"] = summary(list(clean))
    e["robust_accuracy"] = {"pgd": {**fields, **summary(list(robust))}}
    e["worst_case"] = {"kind": "single_attack", "exact": True, "meaning": "one attack",
                       "attacks": ["pgd"], **summary(list(robust))}
    return e


def figure(entries: list[dict]):
    board = board_data(entries)
    return board, scatter(board["entries"], title="digits, L∞ ε = 0.2")


def lines(fig, gid: str) -> list:
    from matplotlib.lines import Line2D

    return [a for a in fig.findobj(Line2D) if a.get_gid() == gid]


def texts(fig, gid: str) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_gid() == gid]


def test_intervals_have_caps_and_one_wider_than_the_plot_is_cut_with_a_note(base):
    entries = [make(base, "a", (0.960, 0.962), (0.80, 0.81)),
               make(base, "b", (0.955, 0.957), (0.70, 0.72)),
               make(base, "wide", (0.958, 0.960), (0.30, 0.70))]  # robust ± 254 points
    board, fig = figure(entries)
    [ax] = fig.axes
    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    caps = [(float(c.get_xdata()[0]), float(c.get_ydata()[0])) for c in lines(fig, "ci-cap")]
    cut = [(float(c.get_xdata()[0]), float(c.get_ydata()[0]), c.get_marker())
           for c in lines(fig, "ci-cut")]
    for e in board["entries"]:
        x, y = 100 * e["clean_accuracy"]["mean"], 100 * e["ranked"]["mean"]
        (xlo, xhi), (ylo, yhi) = ([100 * v for v in e["clean_accuracy"]["ci95"]],
                                  [100 * v for v in e["ranked"]["ci95"]])
        assert xlim[0] <= xlo and xhi <= xlim[1]  # every clean interval fits: two caps each
        for end in (xlo, xhi):
            assert any(abs(cx - end) < CLOSE and abs(cy - y) < CLOSE for cx, cy in caps)
        if e["id"] == "wide":  # cut at both axes, an arrowhead there, no cap
            assert ylo < ylim[0] and yhi > ylim[1]
            assert sorted((m, cy) for cx, cy, m in cut if abs(cx - x) < CLOSE) == [
                ("^", ylim[1]), ("v", ylim[0])]
            assert not any(abs(cx - x) < CLOSE and abs(cy - yhi) < CLOSE for cx, cy in caps)
            half = 100 * (e["ranked"]["ci95"][1] - e["ranked"]["ci95"][0]) / 2
            assert half == pytest.approx(100 * 12.7062 * 0.2, rel=1e-5)  # t * std / sqrt(2)
        else:
            assert ylim[0] <= ylo and yhi <= ylim[1]
            for end in (ylo, yhi):
                assert any(abs(cx - x) < CLOSE and abs(cy - end) < CLOSE for cx, cy in caps)
    assert len(caps) == 2 * 3 + 2 * 2 and len(cut) == 2
    [note] = texts(fig, "cut-note")
    assert note.get_text() == ("Bars cut at the axes (95% interval wider than the plot): "
                               "3. entry wide (robust ±254.1)")
    # the cut interval (50 ± 254) does not stretch the axes to 0-100: they come from the points
    assert 25 < ylim[0] < 50


def test_axes_hold_the_points_at_least_ten_points_wide_and_cut_far_intervals():
    assert axis_range([88.0, 93.0], []) == (85.5, 95.5)  # the points 88 to 93: not a sliver
    lo, hi = axis_range([97.7, 98.3], [])  # within 0 to 100
    assert (lo, hi) == pytest.approx((90.0, 100.0)) and hi - lo == pytest.approx(MIN_SPAN)
    lo, hi = axis_range([40.0, 60.0], [38.0, 62.0])  # intervals that fit widen the axes a little
    assert lo < 38.0 and hi > 62.0 and hi - lo < 30.0
    lo, hi = axis_range([40.0, 60.0], [-50.0, 150.0])  # those that reach far are cut
    assert lo == pytest.approx(38.4 - 11.6 - 0.02 * 23.2) and hi == pytest.approx(
        61.6 + 11.6 + 0.02 * 23.2)
    assert axis_range([], []) == (0.0, 100.0)


def test_colour_is_the_regime_and_the_marker_the_run(base):
    entries = [make(base, "a", (0.96, 0.962), (0.80, 0.81), regime="pgd_at", run="r1"),
               make(base, "b", (0.95, 0.952), (0.70, 0.71), regime="pgd_at", run="r2"),
               make(base, "c", (0.97, 0.972), (0.10, 0.11), regime="standard", run="r1"),
               make(base, "d", (0.94, 0.942), (0.05, 0.06), regime="standard", run="r2",
                    unreliable=True)]
    board, fig = figure(entries)
    points = lines(fig, "point")
    assert len(points) == 4
    at = {(round(float(p.get_xdata()[0]), 6), round(float(p.get_ydata()[0]), 6)): p
          for p in points}
    drawn = {e["id"]: at[(round(100 * e["clean_accuracy"]["mean"], 6),
                          round(100 * e["ranked"]["mean"], 6))] for e in board["entries"]}
    assert drawn["a"].get_color() == drawn["b"].get_color() != drawn["c"].get_color()
    assert drawn["c"].get_color() == drawn["d"].get_color()
    assert drawn["a"].get_marker() == drawn["c"].get_marker() == "o"
    assert drawn["b"].get_marker() == drawn["d"].get_marker() == "s"
    assert drawn["d"].get_markerfacecolor() == "white" != drawn["c"].get_markerfacecolor()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend[:4] == ["pgd_at", "standard", "run: r1", "run: r2"]
    assert fig.axes[0].get_legend().get_title().get_text() == "colour: regime"
    assert not [t for t in legend if re.match(r"\d+[.:] ", t)]  # no numbered key: the labels


def test_each_point_is_labelled_and_no_label_overlaps_another_or_a_point(base):
    """Ten entries, eight of them within 1.5 points of clean and 4 of robust accuracy of each
    other (the regimes study's cluster, doubled)."""
    cluster = [(0.9821, 0.8493), (0.9802, 0.8413), (0.9782, 0.8220), (0.9777, 0.8147),
               (0.9790, 0.8300), (0.9810, 0.8450), (0.9765, 0.8160), (0.9830, 0.8380),
               (0.9769, 0.0347), (0.9811, 0.1498)]
    entries = [make(base, f"e{i}", (c, c + 0.001), (r, r + 0.002),
                    regime=("pgd_at", "trades", "fgsm_at")[i % 3])
               for i, (c, r) in enumerate(cluster)]
    entries[3]["name"] = "mlp · fgsm_at_alpha2 with a longer name than the others"
    board, fig = figure(entries)
    [ax] = fig.axes
    renderer = fig.canvas.get_renderer()
    labels = texts(fig, "point-label")
    assert sorted(t.get_text() for t in labels) == sorted(
        f"{e['rank']}. {e['name'][:37] + '...' if len(e['name']) > 40 else e['name']}"
        for e in board["entries"])
    boxes = [text_box(t, renderer) for t in labels]  # the text, not its leader line
    frame = ax.get_window_extent(renderer)
    for i, a in enumerate(boxes):
        assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (labels[i].get_text(), a, b)
    for p in lines(fig, "point"):
        px, py = ax.transData.transform((p.get_xdata()[0], p.get_ydata()[0]))
        for box in boxes:
            assert not (box.x0 < px + 5 and px - 5 < box.x1 and box.y0 < py + 5
                        and py - 5 < box.y1)


def test_labels_carry_the_group_and_an_upper_bound_mark(base):
    a = make(base, "a", (0.96, 0.962), (0.80, 0.81))
    b = make(base, "b", (0.95, 0.952), (0.70, 0.71))
    b["robust_accuracy"]["pgd"]["params"] = {**b["robust_accuracy"]["pgd"]["params"], "steps": 9}
    b["worst_case"].update(kind="upper_bound", exact=False)
    _, fig = figure([a, b])
    assert sorted(t.get_text() for t in texts(fig, "point-label")) == [
        "A1. entry a", "≤ B1. entry b"]
