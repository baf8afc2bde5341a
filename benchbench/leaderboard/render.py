"""Rendering a leaderboard from its entry files alone: Markdown, JSON, a web page and a figure.

``load_entries`` reads ``OUT/entries/*.json`` (and nothing else), checks each one as untrusted
input (``validate.load_entry``: the shipped JSON Schema and the invariants it cannot say), and
refuses entries that do not share one threat model. ``render_files`` ranks them
(``board.board_data``: by worst-case robust accuracy within each group of entries evaluated with
the same attacks, or by a protocol's number) and returns every output file's content; the
templates are package data under ``templates/``. ``index.html`` embeds the figure as a
``data:`` URI, so the page alone is the whole board.

Entry text is escaped wherever it lands: jinja's autoescape in the page (HTML, attributes
included), ``md_text`` on every expression of the Markdown (the environment's ``finalize``: HTML,
table and inline syntax), ``md_url`` for the one link (already limited to relative paths and
http(s) URLs by the schema), ``plot`` draws labels literally (no mathtext, no TeX), and
``leaderboard.json`` is strict JSON (``allow_nan=False``). The page's Content-Security-Policy
lets only its own script (by hash) run, so even a missed escape could not run one.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from markupsafe import Markup

from benchbench.leaderboard.attack_sets import describe_attack, params_text
from benchbench.leaderboard.board import SHARED, board_data, board_warnings, rank_label
from benchbench.leaderboard.entries import INFORMATIVE
from benchbench.leaderboard.runs import LeaderboardError

FIGURE = "leaderboard.png"
OUTPUTS = ("leaderboard.md", "leaderboard.json", "index.html", FIGURE)
V1_NOTE = ("entry schema version 1: the attacks' parameters are those its suite stored (keys "
           "left at their defaults may be missing); rebuild the entry from its run to record "
           "them in full")
__all__ = ["SHARED", "board_data", "board_warnings", "load_entries", "render_files"]
NORM_NAMES = {"linf": "L∞", "l2": "L2", "l1": "L1"}
#: inline Markdown syntax a backslash turns into text (CommonMark: any ASCII punctuation may be
#: escaped); ``$`` is GitHub's math, ``~`` GFM's strikethrough, ``|`` a table cell's end
_MD_ESCAPED = frozenset("\\`*_[]|~$!{}")
_MD_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}


def md_text(value) -> str:
    """``value`` as Markdown text that renders as exactly that text, on one line, in a table
    cell: inline syntax backslash-escaped, ``<``, ``>`` and ``&`` as entities (no raw HTML, no
    autolink, no entity), line breaks and other unprintable characters as spaces."""
    if isinstance(value, Markup):  # already Markdown (md_url)
        return value
    out = []
    for ch in str(value):
        if ch in _MD_ESCAPED:
            out.append("\\" + ch)
        elif ch in _MD_ENTITIES:
            out.append(_MD_ENTITIES[ch])
        elif not ch.isprintable():
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def md_url(link: str):
    """A link destination for Markdown: ``link`` (a relative path or an http(s) URL, which the
    schema limits to URL characters) with ``&``, ``(`` and ``)`` backslash-escaped, so no entity
    (``&#106;``) is decoded into a scheme and no parenthesis ends the destination."""
    return Markup("".join("\\" + ch if ch in "&()\\<> " else ch for ch in str(link)))


def load_entries(entries_dir: Path) -> list[dict]:
    """Every ``*.json`` in ``entries_dir``, checked; ``LeaderboardError`` names a bad file."""
    from benchbench.leaderboard.validate import load_entry

    entries_dir = Path(entries_dir)
    files = sorted(entries_dir.glob("*.json")) if entries_dir.is_dir() else []
    if not files:
        raise LeaderboardError(f"{entries_dir}: no entry files (*.json); build them with "
                               "benchbench leaderboard RUN... --out DIR")
    entries, ids = [], {}
    for path in files:
        entry = load_entry(path)
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


def pct(value) -> str:
    return "" if value is None else f"{100 * value:.2f}"


def half_ci(stat) -> str:
    """The 95% interval's half-width in points, or '' for one seed."""
    ci = (stat or {}).get("ci95")
    return "" if not ci else f"{100 * (ci[1] - ci[0]) / 2:.2f}"


def threat_title(board: dict) -> str:
    norm = NORM_NAMES.get(board["threat_model"], board["threat_model"])
    return f"{board['dataset']}, {norm} ε = {board['eps']:g}"


def _environment(kind: str):
    """The jinja environment for ``kind``: ``html`` autoescapes every expression (markupsafe),
    ``md`` passes every expression through ``md_text``."""
    import jinja2

    html = kind == "html"
    env = jinja2.Environment(loader=jinja2.PackageLoader("benchbench.leaderboard", "templates"),
                             autoescape=html, finalize=None if html else md_text,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(pct=pct, half_ci=half_ci, md_url=md_url, rank_label=rank_label,
                       attack_lines=attack_lines, params_text=params_text)
    return env


def page_script() -> str:
    """The page's one script (sortable columns), package data beside the templates."""
    from importlib.resources import files

    return files("benchbench.leaderboard").joinpath("templates/sort.js").read_text("utf-8")


def content_security_policy(script: str) -> str:
    """Nothing fetched, nothing run but ``script`` (by its SHA-256): no inline handler, no
    ``javascript:`` URL, no injected script could run even if an escape were missed."""
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode("ascii")
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data:; base-uri 'none'; form-action 'none'")


def grouped_notes(board: dict) -> list[tuple[str, list[dict]]]:
    """Each distinct note with the entries it is about (in rank order); a version-1 entry's
    missing parameters are one of them."""
    notes: dict[str, list[dict]] = {}
    for e in board["entries"]:
        for note in [*e["notes"], *([V1_NOTE] if e["schema_version"] < 2 else [])]:
            notes.setdefault(str(note), []).append(e)
    return list(notes.items())


def attack_lines(e: dict) -> list[tuple[str, str, dict]]:
    """(label, its full description, the attack) for each of ``e``'s attacks, by label."""
    return [(label, describe_attack(label, a), a) for label, a in
            sorted(e["robust_accuracy"].items())]


def render_files(entries_dir: Path, *, protocol=None,
                 warn=lambda message: None) -> dict[str, bytes]:
    """Each output file's name -> content, from the entry files in ``entries_dir`` alone, ranked
    under ``protocol`` (a ``protocols.Protocol``) when given; ``warn`` gets each line of
    ``board_warnings``."""
    from benchbench.leaderboard.plot import scatter_png

    board = board_data(load_entries(entries_dir), protocol=protocol)
    for line in board_warnings(board):
        warn(line)
    board["figure"] = FIGURE
    title = threat_title(board)
    png = scatter_png(board["entries"], title=title, protocol=board["protocol"])
    script = page_script()
    groups = [(g, [e for e in board["entries"] if e["group"] == g["id"]])
              for g in board["groups"]]
    context = {"board": board, "title": title, "figure": FIGURE, "notes": grouped_notes(board),
               "groups": groups, "protocol": board["protocol"],
               "informative": " or ".join(sorted(INFORMATIVE)),
               # the certified and gap columns, where some entry's run had verifiers
               "certified": any(e.get("certified") for e in board["entries"]),
               # the page carries its figure (self-contained); the Markdown links the file
               "figure_uri": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}
    page = {**context, "script": Markup(script), "csp": content_security_policy(script)}
    return {  # strict JSON: no NaN or Infinity (the entries were checked; this says so twice)
        "leaderboard.json": (json.dumps(board, indent=1, ensure_ascii=False, allow_nan=False)
                             + "\n").encode(),
        "leaderboard.md": _environment("md").get_template("leaderboard.md").render(context)
        .encode(),
        "index.html": _environment("html").get_template("index.html").render(page).encode(),
        FIGURE: png,
    }
