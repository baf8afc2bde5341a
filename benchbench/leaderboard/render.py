"""Rendering a leaderboard from its entry files alone: Markdown, JSON, a web page and a figure.

``load_entries`` reads ``OUT/entries/*.json`` (and nothing else), checks each file's schema and
the fields the rendering needs, and refuses entries that do not share one threat model.
``render_files`` ranks them by worst-case robust accuracy (then clean accuracy) and returns every
output file's content; the templates are package data under ``templates/``. ``index.html``
embeds the figure as a ``data:`` URI, so the page alone is the whole board.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from benchbench.leaderboard import BOARD_SCHEMA, ENTRY_SCHEMA, SCHEMA_VERSION
from benchbench.leaderboard.entries import INFORMATIVE
from benchbench.leaderboard.runs import LeaderboardError

FIGURE = "leaderboard.png"
OUTPUTS = ("leaderboard.md", "leaderboard.json", "index.html", FIGURE)
#: fields the rendering reads, with their JSON types (the rest is carried along as is)
REQUIRED = {"schema": str, "schema_version": int, "id": str, "name": str, "run": dict,
            "dataset": str, "test_split": str, "threat_model": str, "eps": (int, float),
            "seeds": list, "checkpoint": dict, "clean_accuracy": (dict, type(None)),
            "robust_accuracy": dict, "worst_case": dict, "flags": str, "flag_meanings": dict,
            "unreliable": bool, "stale": list, "notes": list}
SHARED = ("dataset", "test_split", "threat_model", "eps")
NORM_NAMES = {"linf": "L∞", "l2": "L2", "l1": "L1"}


def _check(path: Path, entry) -> dict:
    if not isinstance(entry, dict):
        raise LeaderboardError(f"{path}: not a leaderboard entry (a JSON object is expected)")
    if entry.get("schema") != ENTRY_SCHEMA:
        raise LeaderboardError(f"{path}: schema {entry.get('schema')!r} is not "
                               f"{ENTRY_SCHEMA!r}; move files other than entries out of the "
                               "entries folder")
    version = entry.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise LeaderboardError(f"{path}: schema_version {version!r}; this benchbench reads up "
                               f"to {SCHEMA_VERSION} (upgrade benchbench, or rebuild the entry)")
    for key, kind in REQUIRED.items():
        if key not in entry:
            raise LeaderboardError(f"{path}: key {key!r} missing; rebuild the entry with "
                                   "benchbench leaderboard RUN... --out DIR")
        if not isinstance(entry[key], kind) or (kind is int and isinstance(entry[key], bool)):
            raise LeaderboardError(f"{path}: key {key!r} has the wrong type "
                                   f"({type(entry[key]).__name__})")
    mean = entry["worst_case"].get("mean")
    if not isinstance(mean, (int, float)) or isinstance(mean, bool):
        raise LeaderboardError(f"{path}: key 'worst_case.mean' must be a number")
    return entry


def load_entries(entries_dir: Path) -> list[dict]:
    """Every ``*.json`` in ``entries_dir``, checked; ``LeaderboardError`` names a bad file."""
    entries_dir = Path(entries_dir)
    files = sorted(entries_dir.glob("*.json")) if entries_dir.is_dir() else []
    if not files:
        raise LeaderboardError(f"{entries_dir}: no entry files (*.json); build them with "
                               "benchbench leaderboard RUN... --out DIR")
    entries, ids = [], {}
    for path in files:
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise LeaderboardError(f"{path}: cannot read it ({exc})") from None
        except json.JSONDecodeError as exc:
            raise LeaderboardError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})"
                                   ) from None
        entry = _check(path, entry)
        if entry["id"] in ids:
            raise LeaderboardError(f"{path}: id {entry['id']!r} is also in {ids[entry['id']]}; "
                                   "ids must be unique")
        ids[entry["id"]] = path.name
        entries.append(entry)
    for key in SHARED:
        values = {}
        for path, entry in zip(files, entries, strict=True):
            values.setdefault(entry[key], []).append(path.name)
        if len(values) > 1:
            raise LeaderboardError(f"entries differ in {key.replace('_', ' ')}: " + "; ".join(
                f"{v!r} ({', '.join(names[:3])}{' ...' if len(names) > 3 else ''})"
                for v, names in values.items()) + "; a leaderboard ranks one threat model")
    return entries


def rank(entries: list[dict]) -> list[dict]:
    """Entries with ``rank``: highest worst-case robust accuracy first, then clean accuracy."""
    def key(e):
        clean = (e["clean_accuracy"] or {}).get("mean")
        return (-e["worst_case"]["mean"], -(clean if clean is not None else -1.0), e["id"])
    return [{"rank": i, **e} for i, e in enumerate(sorted(entries, key=key), start=1)]


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def half_ci(stat) -> str:
    """The 95% interval's half-width in points, or '' for one seed."""
    ci = (stat or {}).get("ci95")
    return "" if not ci else f"{100 * (ci[1] - ci[0]) / 2:.2f}"


def threat_title(board: dict) -> str:
    norm = NORM_NAMES.get(board["threat_model"], board["threat_model"])
    return f"{board['dataset']}, {norm} ε = {board['eps']:g}"


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("benchbench.leaderboard", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(pct=pct, half_ci=half_ci,
                       md=lambda text: str(text).replace("|", "\\|").replace("\n", " "))
    return env


def board_data(entries: list[dict]) -> dict:
    """What ``leaderboard.json`` holds: the threat model, the legend and the ranked entries."""
    ranked = rank(entries)
    legend = {}
    for e in ranked:
        legend.update(e["flag_meanings"])
    first = ranked[0]
    return {"schema": BOARD_SCHEMA, "schema_version": SCHEMA_VERSION,
            **{key: first[key] for key in SHARED},
            "checkpoint_rules": sorted({e["checkpoint"].get("rule", "?") for e in ranked}),
            "ranked_by": "worst_case.mean (descending), then clean_accuracy.mean",
            "flag_legend": dict(sorted(legend.items())), "figure": FIGURE, "entries": ranked}


def grouped_notes(board: dict) -> list[tuple[str, list[dict]]]:
    """Each distinct note with the entries it is about (in rank order)."""
    notes: dict[str, list[dict]] = {}
    for e in board["entries"]:
        for note in e["notes"]:
            notes.setdefault(str(note), []).append(e)
    return list(notes.items())


def render_files(entries_dir: Path) -> dict[str, bytes]:
    """Each output file's name -> content, from the entry files in ``entries_dir`` alone."""
    from benchbench.leaderboard.plot import scatter_png

    board = board_data(load_entries(entries_dir))
    title = threat_title(board)
    png = scatter_png(board["entries"], title=title)
    env = _environment()
    context = {"board": board, "title": title, "figure": FIGURE, "notes": grouped_notes(board),
               "informative": " or ".join(sorted(INFORMATIVE)),
               # the page carries its figure (self-contained); the Markdown links the file
               "figure_uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}
    return {
        "leaderboard.json": (json.dumps(board, indent=1, ensure_ascii=False) + "\n").encode(),
        "leaderboard.md": env.get_template("leaderboard.md").render(context).encode(),
        "index.html": env.get_template("index.html").render(context).encode(),
        FIGURE: png,
    }
