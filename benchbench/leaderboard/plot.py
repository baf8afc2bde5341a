"""The leaderboard figure: worst-case robust accuracy against clean accuracy, one point per entry.

Drawn from the ranked entries alone (matplotlib, Agg). Each point carries its rank; bars are the
95% t-intervals over seeds; hollow markers are potentially unreliable evaluations, downward
triangles worst cases that are only upper bounds. The dashed diagonal is robust = clean.

Entry text (names, run names, the dataset in the title) is drawn literally: every text of the
figure has ``parse_math`` off and ``usetex`` off (``literal``), so a ``$`` never starts mathtext
and no label ever reaches TeX, whatever the user's matplotlibrc says.
"""

from __future__ import annotations

import io

KEYED = 15  # up to this many entries, the legend says which rank is which


def _limits(values: list[float], pad: float) -> tuple[float, float]:
    """Axis limits around ``values`` (percent), padded, within [0, 100]."""
    if not values:
        return 0.0, 100.0
    low, high = min(values), max(values)
    pad = max(pad, 0.08 * (high - low))
    return max(0.0, low - pad), min(100.0, high + pad)


def _pct(stat: dict | None):
    if not stat or stat.get("mean") is None:
        return None, None
    ci = stat.get("ci95")
    err = None if not ci else [[100 * (stat["mean"] - ci[0])], [100 * (ci[1] - stat["mean"])]]
    return 100 * stat["mean"], err


def shown(text: str, limit: int = 60) -> str:
    """``text`` for a figure: unprintable characters as spaces, at most ``limit`` characters
    (a hand-written entry's 200-character name would squeeze the axes away)."""
    text = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _run_label(entry: dict) -> str:
    return shown(entry["run"].get("name") or entry["run"].get("dir") or "?")


def literal(fig) -> None:
    """Every text of ``fig`` drawn as written: no mathtext, no TeX."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        text.set_parse_math(False)
        text.set_usetex(False)


def scatter_png(entries: list[dict], *, title: str) -> bytes:
    """PNG bytes of the scatter; ``entries`` ranked (``render.rank``)."""
    import matplotlib

    with matplotlib.rc_context({"text.usetex": False}):
        fig = scatter(entries, title=title)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def scatter(entries: list[dict], *, title: str):
    """The scatter as a matplotlib ``Figure``, every text literal (``literal``)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(9, 5.2), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    colors = matplotlib.colormaps["tab10"]
    runs = list(dict.fromkeys(_run_label(e) for e in entries))
    xs, ys = [], []
    for e in entries:
        x, xerr = _pct(e.get("clean_accuracy"))
        y, yerr = _pct(e["worst_case"])
        if x is None:
            continue
        color = colors(runs.index(_run_label(e)) % 10)
        exact = e["worst_case"].get("exact", True)
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor=color, alpha=0.6, lw=1)
        ax.plot(x, y, marker="o" if exact else "v", markersize=8, color=color,
                markerfacecolor="white" if e.get("unreliable") else color, markeredgewidth=1.6,
                linestyle="none")
        ax.annotate(str(e["rank"]), (x, y), textcoords="offset points", xytext=(6, 4),
                    fontsize=8)
        xs.append(x)
        ys.append(y)
    xlim, ylim = _limits(xs, 0.5), _limits(ys, 2.0)
    diagonal = max(xlim[0], ylim[0]) < min(xlim[1], ylim[1])  # robust = clean in view
    ax.plot([0, 100], [0, 100], ls="--", color="0.6", lw=0.8)
    ax.set(xlim=xlim, ylim=ylim, xlabel="clean accuracy (%)",
           ylabel="worst-case robust accuracy (%)", title=f"Leaderboard: {shown(title, 90)}")
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], marker="o", ls="none", color=colors(i % 10), label=run)
               for i, run in enumerate(runs)]
    handles += [Line2D([], [], marker="o", ls="none", color="0.3", markerfacecolor="white",
                       label="potentially unreliable"),
                Line2D([], [], marker="v", ls="none", color="0.3", label="upper bound")]
    if diagonal:
        handles.append(Line2D([], [], ls="--", color="0.6", label="robust = clean"))
    if len(entries) <= KEYED:  # which rank is which entry, beside the plot
        several = len(runs) > 1
        handles += [Line2D([], [], ls="none", label=f"{e['rank']}: {shown(e['name'])}" + (
            f" ({_run_label(e)})" if several else "")) for e in entries]
    ax.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
              title="points labelled by rank", title_fontsize=8, frameon=False)
    literal(fig)
    return fig
