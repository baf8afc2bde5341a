"""Leaderboard entries are untrusted input (issue 16, item 3): one test per row of its table.

Every test drives the real ``benchbench leaderboard`` CLI on entry files it writes: a board is
built from the committed v2 store (tests/fixtures/store_v2, no training), its entry replaced by
hand-written ones (two seeds, numbers made consistent with ``entries.summary``), and re-rendered
with ``benchbench leaderboard --out DIR``. A bad entry must give exit code 2, one line naming
the file, the key (a JSON pointer) and what is allowed, and leave DIR byte for byte as it was.
"""

from __future__ import annotations

import copy
import html
import json
import re
import shutil
import tomllib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.leaderboard.entries import summary

ROOT = Path(__file__).parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
RAW = "@@raw@@"  # where dumps_raw puts JSON text json.dumps cannot write (NaN, 10**5000, ...)
SUMMARY = ("mean", "std", "ci95", "n", "values")


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """The entry the v2 store gives at linf eps 0.2 (fgsm and pgd: an upper bound)."""
    out = tmp_path_factory.mktemp("base") / "board"
    result = CliRunner().invoke(app, ["leaderboard", str(FIXTURE), "--norm", "linf", "--eps",
                                      "0.2", "--out", str(out)],
                                env={"BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    [path] = (out / "entries").glob("*.json")
    return json.loads(path.read_text())


def make(base: dict, key: str, worst: float, *, flags: str = "") -> dict:
    """A consistent two-seed entry whose worst case (the minimum over fgsm and pgd) is
    ``worst`` on both seeds."""
    e = copy.deepcopy(base)
    because = "".join(sorted(set(flags) - {"S"}))
    e.update(id=key, name=f"entry {key}", seeds=[0, 1], flags=flags, unreliable=bool(because),
             unreliable_because=because, flag_meanings={f: f"meaning of {f}" for f in flags},
             notes=[])
    e["clean_accuracy"] = summary([0.95, 0.97])
    fields = lambda label: {k: v for k, v in e["robust_accuracy"][label].items()  # noqa: E731
                            if k not in SUMMARY}  # attack, norm, params, ...: all but numbers
    e["robust_accuracy"] = {"fgsm": {**fields("fgsm"), **summary([min(1.0, worst + 0.1)] * 2)},
                            "pgd": {**fields("pgd"), **summary([worst] * 2)}}
    e["worst_case"] = {**{k: e["worst_case"][k] for k in ("kind", "exact", "meaning")},
                       "attacks": ["fgsm", "pgd"], **summary([worst] * 2)}
    return e


def dumps_raw(entry: dict, raw: str) -> str:
    """``entry`` as JSON with the value ``RAW`` replaced by the JSON text ``raw``."""
    return json.dumps(entry, indent=1).replace(json.dumps(RAW), raw)


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["leaderboard", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def good_board(tmp_path_factory, base) -> Path:
    """A board of three good entries (a, c, d), rendered from their files (once: a figure
    costs about a second here)."""
    out = tmp_path_factory.mktemp("good") / "board"
    (out / "entries").mkdir(parents=True)
    for key, worst in (("a", 0.3), ("c", 0.5), ("d", 0.4)):
        (out / "entries" / f"{key}.json").write_text(json.dumps(make(base, key, worst)))
    result = CliRunner().invoke(app, ["leaderboard", "--out", str(out)],
                                env={"BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def board(good_board, tmp_path) -> Path:
    """A copy of ``good_board`` of this test's own."""
    shutil.copytree(good_board, tmp_path / "board")
    return tmp_path / "board"


@pytest.mark.parametrize("flags", [["--eps", "0.1"], ["--norm", "l2"],
                                   ["--checkpoint", "best"], ["--report-dir", "reports"]])
def test_a_re_render_refuses_what_only_building_from_runs_takes(board, flags):
    """No RUN: the board is drawn from its entries as they are, so a flag that chooses how
    entries are built would do nothing: refused on one line, exit 2, nothing rewritten."""
    before = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    result = CliRunner().invoke(app, ["leaderboard", "--out", str(board), *flags],
                                env={"BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert result.exit_code == 2, result.output
    assert f"{flags[0]} choose(s) how entries are built from runs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before


def tree(out: Path) -> dict[str, bytes | None]:
    return {p.relative_to(out).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(out.rglob("*"))}


def refused(cli, out: Path, path: Path, text: str) -> str:
    """Write ``text`` to ``path``, re-render ``out``: refused, one line, nothing changed; the
    line."""
    path.write_text(text, encoding="utf-8")
    before = tree(out)
    result = cli("--out", out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: /"), result.stderr
    assert tree(out) == before  # nothing written, nothing removed
    return lines[0]


def strict_json(text: str):
    def refuse(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


# row: a worst_case.mean = NaN among 4 entries ---------------------------------------------------
def test_nan_mean_among_four_entries_is_refused_and_the_board_stays_strict_json(
        board, base, cli):
    board_json = (board / "leaderboard.json").read_text()
    assert [e["id"] for e in strict_json(board_json)["entries"]] == ["c", "d", "a"]
    nan = make(base, "b", 0.2)
    nan["worst_case"]["mean"] = float("nan")
    line = refused(cli, board, board / "entries" / "b.json", json.dumps(nan))
    assert line == (f"error: {board / 'entries' / 'b.json'}: /worst_case/mean: NaN is not a "
                    "finite number; allowed: the mean of values: a finite number in [0, 1]")
    nan = make(base, "b", 0.2)
    nan["robust_accuracy"]["pgd"]["values"][1] = float("nan")
    assert refused(cli, board, board / "entries" / "b.json", json.dumps(nan)).endswith(
        "/robust_accuracy/pgd/values/1: NaN is not a finite number; allowed: a fraction: a "
        "finite number in [0, 1]")
    assert (board / "leaderboard.json").read_text() == board_json


# row: means of Infinity, 1e308, 1.5, -5; worst <= each attack ---------------------------------
def _set(path: tuple, value):
    def edit(e):
        node = e
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _worst_above_pgd(e):
    e["robust_accuracy"]["pgd"].update(summary([0.1, 0.3]))  # min of 0.1 and 0.2 is 0.1


def _not_over_every_attack(e):
    e["worst_case"]["attacks"] = ["pgd"]


@pytest.mark.parametrize(("edit", "raw", "message"), [
    (_set(("worst_case", "mean"), RAW), "Infinity",
     "/worst_case/mean: Infinity is not a finite number; allowed: the mean of values"),
    (_set(("worst_case", "mean"), RAW), "-Infinity",
     "/worst_case/mean: -Infinity is not a finite number; allowed: the mean of values"),
    (_set(("worst_case", "mean"), RAW), "1e400",
     "/worst_case/mean: 1e400 is not a finite number; allowed: the mean of values"),
    (_set(("worst_case", "mean"), 1e308), None,
     "/worst_case/mean: 1e+308 is out of range; allowed: the mean of values: a finite number "
     "in [0, 1]"),
    (_set(("worst_case", "mean"), 1.5), None, "/worst_case/mean: 1.5 is out of range"),
    (_set(("worst_case", "mean"), -5), None, "/worst_case/mean: -5 is out of range"),
    (_set(("clean_accuracy", "values"), [1.5, 0.5]), None,
     "/clean_accuracy/values/0: 1.5 is out of range; allowed: a fraction: a finite number in "
     "[0, 1]"),
    (_set(("worst_case", "mean"), 0.3), None,
     "/worst_case/mean: 0.3 is not the mean of values (0.2); allowed: the mean of values "
     "(within 1e-09)"),
    (_worst_above_pgd, None,
     "/worst_case/values/0: 0.2 is above the value of attack 'pgd' on the same seed (0.1); "
     "allowed: at most each attack's value on the same seeds and test inputs"),
    (_not_over_every_attack, None,
     "/worst_case/attacks: 'pgd' are not the attacks of robust_accuracy ('fgsm', 'pgd'); "
     "allowed: exactly the labels of robust_accuracy"),
    (_set(("worst_case", "exact"), True), None,
     "/worst_case/exact: true for kind 'upper_bound'; allowed: false for an upper bound"),
    (_set(("worst_case", "ci95"), [0.3, 0.25]), None,
     "/worst_case/ci95: [0.3, 0.25] does not hold the mean 0.2; allowed: [low, high] with "
     "low <= mean <= high (a non-negative half-width)"),
    (_set(("worst_case", "std"), -0.1), None, "/worst_case/std: -0.1 is out of range"),
    (_set(("worst_case", "std"), 0.1), None,
     "/worst_case/std: 0.1 is not the sample standard deviation of values (0.0)"),
    (_set(("worst_case", "n"), 1), None, "/worst_case/n: 1 is not the number of values (2)"),
    (_set(("unreliable",), False), "", None),  # with flag Z: below
])
def test_numbers_out_of_range_or_against_their_definitions_are_refused(
        board, base, cli, edit, raw, message):
    entry = make(base, "b", 0.2, flags="Z" if message is None else "")
    edit(entry)
    text = dumps_raw(entry, raw) if raw else json.dumps(entry)
    line = refused(cli, board, board / "entries" / "b.json", text)
    expected = message or ("/unreliable: false with flags 'Z'; allowed: true exactly when flags "
                           "has a letter other than S")
    assert line.startswith(f"error: {board / 'entries' / 'b.json'}: {expected}"), line


def test_robust_above_clean_is_kept_since_no_definition_excludes_it(board, base, cli):
    """The harness counts an adversarial input as robust when classified correctly, whether
    the clean one was or not ("label leaking"), so robust > clean is a measurement, not a lie."""
    entry = make(base, "b", 0.98)
    (board / "entries" / "b.json").write_text(json.dumps(entry))
    result = cli("--out", board)
    assert result.exit_code == 0, result.output
    assert json.loads((board / "leaderboard.json").read_text())["entries"][0]["id"] == "b"


# row: "link": "javascript:..." ------------------------------------------------------------------
LINK_ALLOWED = ("null, a relative path (no scheme, not starting with /; URL characters only, "
                "percent-encoded otherwise) or an http:// or https:// URL, at most 2,000 "
                "characters")


@pytest.mark.parametrize("link", [
    "javascript:alert(document.domain)", "JavaScript:alert(1)", " javascript:alert(1)",
    "java\tscript:alert(1)", "javascript%3Aalert(1)x:", "vbscript:msgbox(1)",
    "data:text/html,<script>alert(1)</script>", "file:///etc/passwd", "//evil.example/x",
    "/etc/passwd", "\\\\evil.example\\x", "report.md\n", "http:/evil.example", "ftp://x.example",
    "",
])
def test_links_other_than_relative_paths_and_http_are_refused(board, base, cli, link):
    entry = make(base, "b", 0.2)
    entry["link"] = link
    line = refused(cli, board, board / "entries" / "b.json", json.dumps(entry))
    problem = "an empty string" if link == "" else f"{link!r} is not allowed"
    assert line == (f"error: {board / 'entries' / 'b.json'}: /link: "
                    + problem.replace("\t", "\\t").replace("\n", "\\n")
                    + f"; allowed: {LINK_ALLOWED}")


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text, of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def markdown_html(text: str) -> str:
    """``text`` rendered as CommonMark with GFM tables and raw HTML passed through, as a
    permissive renderer would."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(
        text)


SAFE_LINKS = ["../runs/lb/report.md", "reports/a%20b.md#worst-case",
              "https://example.org/r?a=1&b=(2)", "HTTP://example.org/x",
              "&#106;avascript:alert(1)", "./javascript:alert(1)", "?javascript:alert(1)"]


def test_allowed_links_stay_what_they_say_in_the_page_and_the_markdown(board, base, cli):
    for i, link in enumerate(SAFE_LINKS):
        entry = make(base, f"l{i}", 0.2)
        entry["link"] = link
        (board / "entries" / f"l{i}.json").write_text(json.dumps(entry))
    result = cli("--out", board)
    assert result.exit_code == 0, result.output
    page = Tags((board / "index.html").read_text())
    hrefs = sorted(a["href"] for tag, a in page.tags if tag == "a")
    assert hrefs == sorted(SAFE_LINKS)  # exactly as written: entities stay text
    md = Tags(markdown_html((board / "leaderboard.md").read_text()))
    assert sorted(a["href"] for tag, a in md.tags if tag == "a") == sorted(
        link.replace(" ", "%20") for link in SAFE_LINKS)
    for href in hrefs:
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", href)
        assert scheme is None or scheme.group(1).lower() in ("http", "https"), href


# row: HTML/Markdown in entry fields ---------------------------------------------------------
PAYLOAD = ("x|y\n<script>alert(1)</script><img src=x onerror=alert(2)> ![i](https://e.ex/"
           "i.png) [l](javascript:alert(3)) `c` **b** _i_ $\\frac{a}$ &amp; &#106; \\| ~~s~~ "
           "<a href=javascript:alert(4)>a</a>\r\x1b[2J\u2028.")
SHORT = "<b>|`x`</b>\n![i](u)&lt;"  # for dtype (at most 50 characters)
assert len(PAYLOAD) <= 200 and len(SHORT) <= 50


def everywhere(entry: dict, text: str, short: str) -> dict:
    """``entry`` with ``text`` in every text field, attack labels and parameters included
    (``short`` where at most 64 characters are allowed)."""
    e = copy.deepcopy(entry)
    e.update(name=text, dataset=text, test_split=text, train_split=text, architecture=text,
             dtype=short, device=text, engine=text, suite_hash=text, finished=short,
             notes=[text, "plain note"], stale=[{"name": text, "stored": text, "installed": text}],
             flags="Z", unreliable=True, unreliable_because="Z", flag_meanings={"Z": text},
             link="../report.md")
    e["run"] = {"name": text, "dir": text, "description": text, "suite_path": text}
    e["checkpoint"]["how"] = text
    e["worst_case"]["meaning"] = text
    e["model"] = {"label": text, "name": text, "params": {text: text}}
    e["regime"] = {"label": text, "name": text, "params": {text: [text]}}
    attack = e["robust_accuracy"].pop("pgd")
    e["robust_accuracy"][text] = {**attack, "attack": text, "params": {text: text}}
    e["worst_case"]["attacks"] = ["fgsm", text]
    return e


def flat(text: str) -> str:
    """What a text shows on one line: unprintable characters as spaces."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def text_board(out: Path, base: dict, cli, text: str, short: str) -> tuple[str, str]:
    """A board of three entries with ``text`` everywhere in the one ranked last and in the
    shared dataset and split of all: (leaderboard.md, index.html)."""
    (out / "entries").mkdir(parents=True)
    for key, worst in (("a", 0.3), ("c", 0.5), ("d", 0.4)):
        entry = make(base, key, worst)
        entry.update(dataset=text, test_split=text)
        if key == "a":
            entry = everywhere(entry, text, short)
        (out / "entries" / f"{key}.json").write_text(json.dumps(entry))
    result = cli("--out", out)
    assert result.exit_code == 0, result.output
    return (out / "leaderboard.md").read_text(), (out / "index.html").read_text()


def test_html_and_markdown_in_every_field_are_escaped_in_page_and_markdown(tmp_path, base, cli):
    md_text, page = text_board(tmp_path / "bad", base, cli, PAYLOAD, SHORT)
    plain_md, plain_page = text_board(tmp_path / "plain", base, cli, "plain text", "plain")
    assert "<script" not in md_text and "<img" not in md_text
    assert not re.search(r"(?<!\\)\]\(javascript", md_text)  # only as `\](`: text
    # a CommonMark renderer (raw HTML on, GFM tables) makes the same elements of the payload
    # as of plain text: no tag, link, image, emphasis, code, cell or row more
    for bad, plain in ((markdown_html(md_text), markdown_html(plain_md)), (page, plain_page)):
        bad_tags, plain_tags = Tags(bad).tags, Tags(plain).tags
        assert [t for t, _ in bad_tags] == [t for t, _ in plain_tags]
        assert [a["href"] for t, a in bad_tags if t == "a" and not a["href"].startswith(
            "#group-")] == ["../report.md"]  # the rest: the page's links to its own groups
        assert not [(t, k) for t, attrs in bad_tags for k in attrs if k.startswith("on")]
    # the Markdown shows the text exactly, on one line
    # its attack (named by the payload) makes it an evaluation of its own: group B's first
    [row] = [r for r in Cells(markdown_html(md_text)).rows if r and r[0] == "B1"]
    assert row[1] == flat(PAYLOAD) + " (stale)" and row[9] == flat(PAYLOAD)
    assert row[8] == f"fgsm 40.00, {flat(PAYLOAD)} 30.00" and row[14] == flat(SHORT)
    assert row[10] == row[11] == flat(PAYLOAD)  # architecture, trained on
    assert "<script>alert" not in page and "<img src=x" not in page
    assert html.escape("<script>alert(1)</script>") in page
    [row] = [r for r in Cells(page).rows if r and r[0] == "B1"]
    assert row[1].startswith(PAYLOAD.replace("\r", "\n"))  # text in the page, nothing lost
    # (read_text reads the raw CR as a line break)


class Cells(HTMLParser):
    """The text of each table row's cells."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


# row: entries missing worst_case.ci95, a string where a number goes, 10**400 -----------------
def _drop(path: tuple):
    def edit(e):
        node = e
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
    return edit


def _deep(e):
    nested = "leaf"
    for _ in range(40):
        nested = [nested]
    e["model"]["params"]["deep"] = nested


@pytest.mark.parametrize(("edit", "raw", "message"), [
    (_drop(("worst_case", "ci95")), None,
     "/worst_case/ci95: missing; allowed: the 95% t-interval [low, high] of the mean (finite "
     "numbers, low <= mean <= high), or null for one seed"),
    (_drop(("clean_accuracy",)), None,
     "/clean_accuracy: missing; allowed: a summary (mean, std, ci95, n, values) of fractions, "
     "or null"),
    (_set(("worst_case", "mean"), "0.2"), None,
     "/worst_case/mean: '0.2' is a string; allowed: the mean of values: a finite number in "
     "[0, 1]"),
    (_set(("robust_accuracy", "pgd", "values"), ["a", "b"]), None,
     "/robust_accuracy/pgd/values/0: 'a' is a string; allowed: a fraction"),
    (_set(("worst_case", "n"), True), None, "/worst_case/n: true is a boolean"),
    (_set(("worst_case", "n"), RAW), "2.0", "/worst_case/n: 2.0 is a number; allowed: the "
     "number of values: an integer in [1, 1000]"),
    (_set(("worst_case", "mean"), RAW), str(10 ** 400),
     "/worst_case/mean: 100000000000...(401 digits) is too large for a 64-bit integer; "
     "allowed: the mean of values"),
    (_set(("worst_case", "n"), RAW), "1" + "0" * 5000,
     "/worst_case/n: 100000000000...(5001 digits) is too large for a 64-bit integer; allowed: "
     "the number of values: an integer in [1, 1000]"),
    (_set(("model", "params", "hidden"), RAW), str(2 ** 64),
     "/model/params/hidden: 18446744073709551616 is too large for a 64-bit integer; allowed: a "
     "value"),
    (_set(("seeds",), "0, 1"), None, "/seeds: '0, 1' is a string; allowed: 1 to 1,000 distinct "
     "seeds"),
    (_set(("run",), None), None, "/run: null is null; allowed: the run: an object"),
    (_set(("name",), "n" * 10_000), None,
     "/name: 10,000 characters are too many; allowed: the display name: a string of 1 to 200 "
     "characters"),
    (_set(("notes",), ["x"] * 101), None, "/notes: 101 items; allowed: at most 100 notes"),
    (_set(("lnik",), "report.md"), None, "/lnik: not a key of the entry format; allowed: the "
     "keys architecture, catastrophic_overfitting, certified, checkpoint"),
    (_set(("worst_case", "kind"), "guess"), None, "/worst_case/kind: 'guess' is not allowed; "
     "allowed: \"per_example\", \"single_attack\" or \"upper_bound\""),
    (_set(("id",), "../../evil"), None, "/id: '../../evil' is not allowed; allowed: a unique "
     "id: 1 to 200 of A-Z a-z 0-9 _ . -"),
    (_set(("seeds",), [0, 0]), None, "/seeds: holds a value twice"),
    (_deep, None, "/model/params/deep" + "/0" * 30 + ": nested more than 32 deep; allowed: at "
     "most 32 levels"),
])
def test_malformed_entries_get_one_line_not_a_traceback(board, base, cli, edit, raw, message):
    entry = make(base, "b", 0.2)
    edit(entry)
    text = dumps_raw(entry, raw) if raw else json.dumps(entry)
    line = refused(cli, board, board / "entries" / "b.json", text)
    assert line.startswith(f"error: {board / 'entries' / 'b.json'}: {message}"), line


def test_a_key_given_twice_or_a_file_too_large_is_refused(board, base, cli):
    text = json.dumps(make(base, "b", 0.2)).replace('"worst_case": {',
                                                    '"worst_case": {"mean": 0.9, ', 1)
    assert refused(cli, board, board / "entries" / "b.json", text).endswith(
        "/worst_case/mean: given twice in one object (JSON readers disagree on which one "
        "counts); allowed: each key once")
    path = board / "entries" / "b.json"
    path.write_text(json.dumps(make(base, "b", 0.2)) + " " * 1_000_000)
    before = tree(board)
    result = cli("--out", board)
    assert result.exit_code == 2 and result.stderr == (
        f"error: {path}: more than 1,000,000 bytes; an entry file is at most 1,000,000 bytes\n")
    assert tree(board) == before


# row: no entry text reaches matplotlib's mathtext ------------------------------------------
MATH = r"net $\frac{a}$ and $x^$"  # not valid mathtext: parsing it raises


def test_entry_text_is_drawn_literally_never_as_mathtext_or_tex(board, base, cli, monkeypatch):
    import matplotlib

    for key in ("a", "c", "d"):
        path = board / "entries" / f"{key}.json"
        entry = json.loads(path.read_text())
        entry.update(name=f"{MATH} {key}", dataset=MATH)
        entry["run"]["name"] = MATH
        path.write_text(json.dumps(entry))
    result = cli("--out", board)
    assert result.exit_code == 0, result.output
    assert (board / "leaderboard.png").read_bytes().startswith(b"\x89PNG")
    # a matplotlibrc asking for TeX changes nothing: no label is handed to latex
    monkeypatch.setitem(matplotlib.rcParams, "text.usetex", True)
    result = cli("--out", board)
    assert result.exit_code == 0, result.output

    from matplotlib.text import Text

    from benchbench.leaderboard.plot import scatter
    from benchbench.leaderboard.render import board_data, load_entries, threat_title

    data = board_data(load_entries(board / "entries"))
    fig = scatter(data["entries"], title=threat_title(data))
    texts = [t for t in fig.findobj(Text) if "$" in t.get_text()]
    assert len(texts) >= 4  # the title, the run and the three entries in the legend
    assert all(not t.get_parse_math() and not t.get_usetex() for t in texts)


# what held, kept tested ----------------------------------------------------------------------
def test_no_file_is_named_from_an_entry_id(board, base, cli):
    entry = make(base, "written-by-hand", 0.2)
    (board / "entries" / "plain.json").write_text(json.dumps(entry))
    before = set(tree(board))
    result = cli("--out", board)
    assert result.exit_code == 0, result.output
    assert set(tree(board)) == before  # the same files: only the outputs were rewritten
    assert not list(board.rglob("written-by-hand*"))


def test_committed_example_boards_are_valid_entries():
    from benchbench.leaderboard.validate import load_entry

    paths = sorted((ROOT / "reports" / "leaderboard").glob("*/entries/*.json"))
    assert paths
    for path in paths:
        assert load_entry(path)["schema"] == "benchbench-leaderboard-entry"


def test_the_schema_is_draft_2020_12_and_shipped_as_package_data():
    from importlib.resources import files

    from jsonschema import Draft202012Validator

    from benchbench.leaderboard.entry_schema import SCHEMA_FILE, entry_schema

    schema = json.loads(files("benchbench.leaderboard").joinpath(SCHEMA_FILE).read_text())
    assert schema == entry_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert SCHEMA_FILE in pyproject["tool"]["setuptools"]["package-data"]["benchbench.leaderboard"]
    assert any(d.startswith("jsonschema") for d in pyproject["project"]["dependencies"])
    # the README documents every top-level key the schema has
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("#### The entry format"):readme.index(
        "#### Checking the page in a browser")]
    assert all(f"`{key}`" in section for key in schema["properties"])


def test_entries_built_from_a_store_are_held_to_the_format_before_anything_is_written(
        cli, tmp_path, monkeypatch):
    """Defence in depth behind the store's own checks: a number that is not finite on its way
    from a store to an entry stops the build on one line, and --out is not even created."""
    from benchbench.leaderboard import build

    real = build.run_entries

    def corrupted(*args, **kwargs):
        found = real(*args, **kwargs)
        found[0]["worst_case"]["mean"] = float("nan")
        return found

    monkeypatch.setattr(build, "run_entries", corrupted)
    out = tmp_path / "new"
    result = cli(FIXTURE, "--norm", "linf", "--eps", "0.2", "--out", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[-1] == (
        f"error: {FIXTURE}: entry store_v2--mlp--standard: /worst_case/mean: nan is not a "
        "finite number; allowed: the mean of values: a finite number in [0, 1]")
    assert not out.exists()
