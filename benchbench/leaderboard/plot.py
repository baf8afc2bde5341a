"""The leaderboard figure: the ranked number against clean accuracy, one point per entry.

Drawn from the ranked entries alone (matplotlib, Agg). Colour: the entry's training regime;
marker shape: its run (when the board has several); hollow markers: potentially unreliable
evaluations; a label beside each point: its rank and name (``≤`` first when the worst case is
only an upper bound), placed where it overlaps no other label or point (``place_labels``).
Bars are the 95% t-intervals over seeds, with caps; an interval reaching further than half the
points' span beyond them is cut at the axes (an arrowhead there instead of a cap), and a note
under the plot names it with its half-width. The dashed diagonal is robust = clean.

Entry text (names, run names, the dataset in the title) is drawn literally: every text of the
figure has ``parse_math`` off and ``usetex`` off (``literal``), so a ``$`` never starts mathtext
and no label ever reaches TeX, whatever the user's matplotlibrc says.
"""

from __future__ import annotations

import io
import math
import textwrap

MARKERS = "osDP^<>pXh*"  # one per run, in the order the runs first appear
MIN_SPAN = 10.0  # percentage points: a board of close entries is not zoomed into a sliver
LABEL_CHARS = 40
#: where a label may go, in points from its point: (dx, dy, ha, va); beside it first, then on
#: rings farther out (every 30 degrees), which get a leader line
_NEAR = [(7, 4, "left", "bottom"), (7, -4, "left", "top"), (-7, 4, "right", "bottom"),
         (-7, -4, "right", "top"), (0, 9, "center", "bottom"), (0, -9, "center", "top")]


def _ring(radius: float) -> list[tuple[float, float, str, str]]:
    out = []
    for degrees in range(0, 360, 30):
        dx = radius * math.cos(math.radians(degrees))
        dy = radius * math.sin(math.radians(degrees))
        ha = "left" if dx > 1 else "right" if dx < -1 else "center"
        va = "bottom" if dy > 1 else "top" if dy < -1 else "center"
        out.append((dx, dy, ha, va))
    return out


_FAR = [c for radius in (18, 30, 45, 65, 90, 120) for c in _ring(radius)]


def shown(text: str, limit: int = 60) -> str:
    """``text`` for a figure: unprintable characters as spaces, at most ``limit`` characters
    (a hand-written entry's 200-character name would squeeze the axes away)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _run_label(entry: dict) -> str:
    return shown(entry["run"].get("name") or entry["run"].get("dir") or "?")


def _regime_label(entry: dict) -> str:
    regime = entry.get("regime") or {}
    return shown(regime.get("name") or regime.get("label") or "?", 30)


def literal(fig) -> None:
    """Every text of ``fig`` drawn as written: no mathtext, no TeX."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
        text.set_usetex(False)


def _interval(stat: dict | None) -> tuple[float | None, tuple[float, float] | None]:
    """(mean, (low, high)) in percent; the interval ``None`` for one seed."""
    if not stat or stat.get("mean") is None:
        return None, None
    ci = stat.get("ci95")
    return 100 * stat["mean"], (None if not ci else (100 * ci[0], 100 * ci[1]))


def axis_range(points: list[float], ends: list[float]) -> tuple[float, float]:
    """Axis limits (percent): the points padded (at least ``MIN_SPAN`` wide, within [0, 100]),
    widened for interval ends up to half that span beyond it; ends farther out are cut."""
    if not points:
        return 0.0, 100.0
    lo, hi = min(points), max(points)
    pad = max(1.0, 0.08 * (hi - lo))
    lo, hi = lo - pad, hi + pad
    if hi - lo < MIN_SPAN:
        middle = (lo + hi) / 2
        lo, hi = middle - MIN_SPAN / 2, middle + MIN_SPAN / 2
    if lo < 0:
        lo, hi = 0.0, min(100.0, hi - lo)
    if hi > 100:
        lo, hi = max(0.0, lo - (hi - 100)), 100.0
    span = hi - lo
    reach = (max(0.0, lo - span / 2), min(100.0, hi + span / 2))
    inside = [min(max(v, reach[0]), reach[1]) for v in ends]
    margin = 0.02 * span
    return (max(0.0, min([lo, *(v - margin for v in inside)])),
            min(100.0, max([hi, *(v + margin for v in inside)])))


def _bar(ax, at: float, mean: float, interval, limits, *, vertical: bool, color) -> bool:
    """One 95% interval around ``mean`` with caps, cut at ``limits`` (an arrowhead where it is
    cut); whether it was cut."""
    low, high = interval
    cut_low, cut_high = low < limits[0], high > limits[1]
    a, b = max(low, limits[0]), min(high, limits[1])
    xs, ys = ([at, at], [a, b]) if vertical else ([a, b], [at, at])
    ax.plot(xs, ys, color=color, lw=1.2, alpha=0.85, solid_capstyle="butt", zorder=2, gid="ci")
    for end, cut, arrow in ((a, cut_low, "v" if vertical else "<"),
                            (b, cut_high, "^" if vertical else ">")):
        x, y = (at, end) if vertical else (end, at)
        if cut:
            ax.plot(x, y, marker=arrow, markersize=6, color=color, ls="none", zorder=2,
                    clip_on=False, gid="ci-cut")
        else:
            ax.plot(x, y, marker="_" if vertical else "|", markersize=7, markeredgewidth=1.2,
                    color=color, ls="none", zorder=2, gid="ci-cap")
    return cut_low or cut_high


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def text_box(annotation, renderer):
    """Where an annotation's text is, in pixels, without its leader line."""
    from matplotlib.text import Text

    annotation.update_positions(renderer)
    return Text.get_window_extent(annotation, renderer)


def place_labels(ax, labelled: list[tuple[str, float, float]], renderer) -> list:
    """Annotate each (text, x, y) in order where its box overlaps no label placed before and no
    point (nor leaves the axes): the nearest free place of ``_NEAR``, else of ``_FAR`` with a
    leader line, else the least crowded one. The texts placed, in order."""
    from matplotlib.transforms import Bbox

    frame = ax.get_window_extent(renderer)
    dots = []
    for _, x, y in labelled:
        px, py = ax.transData.transform((x, y))
        dots.append(Bbox.from_extents(px - 6, py - 6, px + 6, py + 6))
    taken, out = list(dots), []
    for text, x, y in labelled:
        best = None
        for i, (dx, dy, ha, va) in enumerate(_NEAR + _FAR):
            far = i >= len(_NEAR)
            label = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                fontsize=7.5, zorder=4, gid="point-label", annotation_clip=False,
                arrowprops=({"arrowstyle": "-", "color": "0.45", "lw": 0.6, "shrinkA": 0,
                             "shrinkB": 4} if far else None))
            label.set_parse_math(False)
            label.set_usetex(False)
            box = text_box(label, renderer)
            outside = (max(0, frame.x0 - box.x0) + max(0, box.x1 - frame.x1)
                       + max(0, frame.y0 - box.y0) + max(0, box.y1 - frame.y1))
            crowd = sum(_overlap(box, other) for other in taken) + 1e3 * outside
            if best is None or crowd < best[0]:
                if best is not None:
                    best[1].remove()
                best = (crowd, label, box)
            else:
                label.remove()
            if crowd == 0:
                break
        taken.append(best[2])
        out.append(best[1])
    return out


def scatter_png(entries: list[dict], *, title: str, protocol: dict | None = None) -> bytes:
    """PNG bytes of the scatter; ``entries`` ranked (``board.board_data``)."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        fig = scatter(entries, title=title, protocol=protocol)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def scatter(entries: list[dict], *, title: str, protocol: dict | None = None):
    """The scatter as a matplotlib ``Figure`` (Agg canvas), every text literal (``literal``)."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        return _scatter(entries, title=title, protocol=protocol)


def _scatter(entries: list[dict], *, title: str, protocol: dict | None):
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    from benchbench.leaderboard.board import rank_label

    fig = Figure(figsize=(9.6, 5.6), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"]
    regimes = list(dict.fromkeys(_regime_label(e) for e in entries))
    runs = list(dict.fromkeys(_run_label(e) for e in entries))
    points = []
    for e in entries:
        x, xci = _interval(e.get("clean_accuracy"))
        y, yci = _interval(e["ranked"])
        if x is not None:
            points.append((e, x, xci, y, yci))
    xlim = axis_range([p[1] for p in points], [v for p in points if p[2] for v in p[2]])
    ylim = axis_range([p[3] for p in points], [v for p in points if p[4] for v in p[4]])
    cut = []
    for e, x, xci, y, yci in points:
        color = colors(regimes.index(_regime_label(e)) % 10)
        what = []
        if yci and _bar(ax, x, y, yci, ylim, vertical=True, color=color):
            what.append(f"robust ±{(yci[1] - yci[0]) / 2:.1f}")
        if xci and _bar(ax, y, x, xci, xlim, vertical=False, color=color):
            what.append(f"clean ±{(xci[1] - xci[0]) / 2:.1f}")
        if what:
            cut.append(f"{rank_label(e)}. {shown(e['name'], 30)} ({', '.join(what)})")
        marker = MARKERS[runs.index(_run_label(e)) % len(MARKERS)] if len(runs) > 1 else "o"
        ax.plot(x, y, marker=marker, markersize=8, color=color, linestyle="none", zorder=3,
                markerfacecolor="white" if e.get("unreliable") else color, markeredgewidth=1.6,
                gid="point")
    ax.plot([0, 100], [0, 100], ls="--", color="0.6", lw=0.8, zorder=1)
    metric = (f"{shown(protocol['title'], 40)} robust accuracy (%)" if protocol
              else "worst-case robust accuracy (%)")
    ax.set(xlim=xlim, ylim=ylim, xlabel="clean accuracy (%)", ylabel=metric,
           title=f"Leaderboard: {shown(title, 90)}")
    ax.grid(alpha=0.15, lw=0.6)
    handles = [Line2D([], [], marker="o", ls="none", color=colors(i % 10), label=regime)
               for i, regime in enumerate(regimes)]
    if len(runs) > 1:
        handles += [Line2D([], [], marker=MARKERS[i % len(MARKERS)], ls="none", color="0.35",
                           label=f"run: {run}") for i, run in enumerate(runs)]
    handles += [Line2D([], [], marker="o", ls="none", color="0.35", markerfacecolor="white",
                       label="potentially unreliable"),
                Line2D([], [], marker="|", ls="-", color="0.35", label="95% interval")]
    if any(not e["ranked"].get("exact", True) for e in entries):
        handles.append(Line2D([], [], ls="none", label="≤ before a label: upper bound"))
    if max(xlim[0], ylim[0]) < min(xlim[1], ylim[1]):  # robust = clean in view
        handles.append(Line2D([], [], ls="--", color="0.6", label="robust = clean"))
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="colour: regime", title_fontsize=8, frameon=False)
    if cut:  # wrapped here: matplotlib's own wrapping measures text as mathtext
        text = ("Bars cut at the axes (95% interval wider than the plot): " + "; ".join(cut[:6])
                + (f"; and {len(cut) - 6} more" if len(cut) > 6 else ""))
        note = fig.supxlabel("\n".join(textwrap.wrap(text, 150)), fontsize=7.5, color="0.3")
        note.set_gid("cut-note")
    literal(fig)
    fig.canvas.draw()  # the layout, fixed before the labels are placed inside the axes
    fig.set_layout_engine("none")
    place_labels(ax, [(("≤ " if not e["ranked"].get("exact", True) else "")
                       + f"{rank_label(e)}. {shown(e['name'], LABEL_CHARS)}", x, y)
                      for e, x, _, y, _ in points], fig.canvas.get_renderer())
    literal(fig)
    return fig
