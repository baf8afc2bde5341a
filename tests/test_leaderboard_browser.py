"""The leaderboard page in a real browser: Debian's headless Chromium driven by selenium.

Boards: the entry the committed v2 store gives (tests/fixtures/store_v2, no training needed)
turned into four entries with other numbers, each with an ``autoattack`` (version standard)
among its attacks, rendered under ``--protocol autoattack-standard``; and the committed example
board (reports/leaderboard/mnist-linf-0.1: seven real entries in two evaluation groups),
re-rendered. What the page shows is read from the browser's layout (``getBoundingClientRect``
of cells and of their contents), at 1280 and 390 px wide, with every entry's details closed and
open; screenshots of both widths are saved. Skipped, saying why, where Chromium or its driver is
not installed (``scripts/ensure_chromium.sh`` installs them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app

ROOT = Path(__file__).parent.parent
FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
EXAMPLE = ROOT / "reports" / "leaderboard" / "mnist-linf-0.1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="headless Chromium not installed: run scripts/ensure_chromium.sh")
# id -> (clean, worst case, flags, attacks): ranks by worst case are d, a, c, b; by clean
# b, c, a, d; by the number of attacks d (10), b (9), c (2), a (1), as text "9" > "2" > "10"
ENTRIES = {"a": (0.90, 0.60, "", 1), "b": (0.97, 0.10, "M", 9), "c": (0.95, 0.30, "S", 2),
           "d": (0.50, 0.70, "Z", 10)}
MEANINGS = {"M": "accuracy rises with eps", "S": "p_y is exactly 1.0", "Z": "zero gradients"}
AUTOATTACK = {"attack": "autoattack", "norm": "linf", "params_complete": True, "params_filled": [],
              "params": {"norm": "Linf", "seed": 0, "version": "standard"}, "rows": None,
              "std": None, "ci95": None, "n": 1}
PROTOCOL = ("--protocol", "autoattack-standard")


@pytest.fixture
def board(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    out = tmp_path / "board"
    run = CliRunner().invoke(app, ["leaderboard", str(FIXTURE), "--norm", "linf", "--eps",
                                   "0.2", "--out", str(out)])
    assert run.exit_code == 0, run.output
    [source] = (out / "entries").glob("*.json")
    entry = json.loads(source.read_text())
    source.unlink()
    attack = entry["robust_accuracy"]["pgd"]
    for key, (clean, worst, flags, attacks) in ENTRIES.items():
        # one seed: every summary is its one value; each attack at the worst case (the minimum)
        because = "".join(sorted(set(flags) - {"S"}))
        entry.update(id=key, name=f"entry {key}", flags=flags, unreliable=bool(because),
                     unreliable_because=because, flag_meanings={f: MEANINGS[f] for f in flags})
        entry["clean_accuracy"] = {**entry["clean_accuracy"], "mean": clean, "values": [clean]}
        entry["robust_accuracy"] = {
            ("aa" if i == 0 else f"attack{i}"): {**(AUTOATTACK if i == 0 else attack),
                                                 "mean": worst, "values": [worst]}
            for i in range(attacks)}
        entry["worst_case"] = {**entry["worst_case"], "mean": worst, "values": [worst],
                               "attacks": sorted(entry["robust_accuracy"])}
        (out / "entries" / f"{key}.json").write_text(json.dumps(entry))
    run = CliRunner().invoke(app, ["leaderboard", "--out", str(out), *PROTOCOL])
    assert run.exit_code == 0, run.output
    return out


@pytest.fixture
def certified(board) -> Path:
    """The protocol board with a certified accuracy and gap on every entry (issue 18): the
    Certified and Gap columns it adds must fit too."""
    for source in (board / "entries").glob("*.json"):
        entry = json.loads(source.read_text())
        worst = entry["worst_case"]["mean"]
        proved = round(worst / 3, 4)
        entry["certified"] = {"mean": proved, "std": None, "ci95": None, "n": 1,
                              "values": [proved], "verifiers": ["crown", "mip"],
                              "gap": {"mean": round(worst - proved, 4), "std": None,
                                      "ci95": None, "n": 1,
                                      "values": [round(worst - proved, 4)]}}
        source.write_text(json.dumps(entry))
    run = CliRunner().invoke(app, ["leaderboard", "--out", str(board), *PROTOCOL])
    assert run.exit_code == 0, run.output
    assert "Certified" in (board / "index.html").read_text()
    return board


@pytest.fixture
def example(tmp_path, monkeypatch) -> Path:
    """The committed example board at eps 0.1, re-rendered from its entries."""
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    out = tmp_path / "example"
    shutil.copytree(EXAMPLE, out)
    run = CliRunner().invoke(app, ["leaderboard", "--out", str(out)])
    assert run.exit_code == 0, run.output
    return out


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed "
                                    "(pip install -e '.[dev]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-extensions", "--no-first-run", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    driver.set_page_load_timeout(10)
    yield driver
    driver.quit()


def row_ids(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard tbody tr'), "
        "r => r.id);")


def test_page_sorts_by_a_clicked_column_and_explains_flags(board, browser, tmp_path):
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 900)
    browser.get((board / "index.html").as_uri())
    assert row_ids(browser) == ["d", "a", "c", "b"]  # ranked by the protocol's number
    header = browser.find_element(By.XPATH, "//th[button[normalize-space()='Clean']]")
    header.click()
    assert row_ids(browser) == ["b", "c", "a", "d"]  # clean, highest first
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    assert row_ids(browser) == ["d", "a", "c", "b"]  # clean, lowest first
    assert header.get_attribute("aria-sort") == "ascending"
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard tbody tr'), "
        "r => r.querySelector('td.clean').textContent.trim().split(' ')[0]);")
    assert cells == ["50.00", "90.00", "95.00", "97.00"]
    browser.find_element(By.XPATH, "//th[button[normalize-space()='Entry']]").click()
    assert row_ids(browser) == ["a", "b", "c", "d"]  # text: A to Z
    attacks = browser.find_element(By.XPATH, "//th[button[starts-with(normalize-space(), "
                                             "'Attacks')]]")
    attacks.click()
    assert row_ids(browser) == ["d", "b", "c", "a"]  # 10, 9, 2, 1: counted, not spelled
    assert attacks.get_attribute("aria-sort") == "descending"
    attacks.click()
    assert row_ids(browser) == ["a", "c", "b", "d"]
    browser.find_element(By.XPATH, "//th[button[normalize-space()='Rank']]").click()
    assert row_ids(browser) == ["d", "a", "c", "b"]  # back to the ranking
    flag = browser.find_element(By.CSS_SELECTOR, "tr#b abbr.flag")
    assert (flag.text, flag.get_attribute("title")) == ("M", MEANINGS["M"])
    legend = browser.find_element(By.ID, "legend").text
    assert all(f"{letter}\n{meaning}" in legend for letter, meaning in MEANINGS.items())
    assert browser.find_element(By.CSS_SELECTOR, "tr#b").get_attribute("class") == "unreliable"
    assert browser.find_element(By.CSS_SELECTOR, "tr#b .badge").text == "unreliable"
    # the protocol is on the page, its column ranks
    assert "under the protocol autoattack-standard" in browser.find_element(
        By.TAG_NAME, "p").text
    assert browser.find_element(By.CSS_SELECTOR, "th.ranked").text.startswith(
        "AutoAttack (standard)")
    # details open on a click, with every attack's parameters
    details = browser.find_element(By.CSS_SELECTOR, "tr#a details")
    assert not details.get_attribute("open")
    details.find_element(By.TAG_NAME, "summary").click()
    assert details.get_attribute("open")
    assert "aa 60.00: autoattack(norm=Linf, seed=0, version=standard)" in details.text
    assert browser.execute_script("return document.querySelector('figure img').naturalWidth") > 0
    (board / "leaderboard.png").unlink()  # the page carries its figure itself
    browser.get((board / "index.html").as_uri())
    assert browser.execute_script("return document.querySelector('figure img').naturalWidth") > 0


GEOMETRY = """
const box = e => { const r = e.getBoundingClientRect();
                   return [r.left, r.right, r.width, r.height]; };
const content = e => { const r = document.createRange(); r.selectNodeContents(e);
                       const b = r.getBoundingClientRect(); return [b.left, b.right]; };
const shown = e => getComputedStyle(e).display !== 'none' && e.getClientRects().length > 0;
return {
  page: document.documentElement.scrollWidth, viewport: window.innerWidth,
  wraps: Array.from(document.querySelectorAll('.table-wrap'),
                    w => [w.scrollWidth, w.clientWidth]),
  headers: Array.from(document.querySelectorAll('table.leaderboard th'),
                      th => [th.textContent.trim(), shown(th), box(th)]),
  rows: Array.from(document.querySelectorAll('table.leaderboard tbody tr'), tr => ({
    id: tr.id,
    cells: Array.from(tr.cells, td => [td.className, shown(td), box(td), content(td)])})),
};
"""


def geometry(browser, width: int, *, open_details: bool) -> dict:
    browser.set_window_size(width, 900)
    if open_details:
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
    return browser.execute_script(GEOMETRY)


def fully_visible(g: dict, left: float, right: float) -> None:
    """Nothing scrolls sideways; every shown cell, and what is in it, within [left, right]."""
    assert g["page"] <= g["viewport"], g["page"]
    assert all(scroll <= client for scroll, client in g["wraps"]), g["wraps"]
    for name, shown, (x0, x1, w, _h) in g["headers"]:
        assert not shown or (left <= x0 and x1 <= right and w > 0), (name, x0, x1)
    for row in g["rows"]:
        for cls, shown, (x0, x1, w, h), (c0, c1) in row["cells"]:
            if shown:
                assert left <= x0 and x1 <= right and w > 0 and h > 0, (row["id"], cls, x0, x1)
                assert left <= c0 and c1 <= right, (row["id"], cls, "content", c0, c1)


@pytest.mark.parametrize("which", ["board", "certified", "example"])
def test_page_fits_1280_and_shows_the_ranked_number_at_390(which, request, browser, tmp_path):
    out = request.getfixturevalue(which)
    browser.set_window_size(1280, 900)
    browser.get((out / "index.html").as_uri())
    for open_details in (False, True):
        g = geometry(browser, 1280, open_details=open_details)
        fully_visible(g, 0, g["viewport"])
        # every column is shown at 1280 px
        assert all(shown for _, shown, _ in g["headers"])
    browser.save_screenshot(str(tmp_path / f"{which}-1280.png"))
    browser.get((out / "index.html").as_uri())
    for open_details in (False, True):
        g = geometry(browser, 390, open_details=open_details)
        fully_visible(g, 0, g["viewport"])
        shown = {name.split(" ")[0] for name, visible, _ in g["headers"] if visible}
        assert {"Rank", "Entry", "Clean"} <= shown  # and the ranked number:
        for row in g["rows"]:
            visible = [cls for cls, shown_, _, _ in row["cells"] if shown_]
            assert visible == ["num rank", "name", "num ranked", "num clean"], visible
    browser.save_screenshot(str(tmp_path / f"{which}-390.png"))
    for name in (f"{which}-1280.png", f"{which}-390.png"):
        assert (tmp_path / name).stat().st_size > 10_000


# issue 16: entry text and links are untrusted ------------------------------------------------
HOSTILE = ('<img src=x onerror="window.__pwned = 1"><script>window.__pwned = 2</script>'
           '<a href="javascript:window.__pwned = 3">click</a> [l](javascript:alert(1))')
SAFE_LINKS = {"a": "&#106;avascript:window.__pwned=4", "b": "?javascript:window.__pwned=5",
              "c": "./javascript:window.__pwned=6", "d": "https://example.org/report?a=1&b=2"}


def test_no_entry_text_or_link_runs_script_in_the_page(board, browser, tmp_path):
    """HTML in every text field stays text, and a link the schema allows (relative, or
    http(s)) is never a javascript: URL, entity tricks included; "javascript:..." itself is
    refused before a page is written (tests/test_leaderboard_untrusted.py)."""
    from selenium.common.exceptions import NoAlertPresentException

    path = board / "entries" / "a.json"  # a javascript: link: refused, the page not rewritten
    entry = json.loads(path.read_text())
    path.write_text(json.dumps({**entry, "link": "javascript:window.__pwned = 7"}))
    run = CliRunner().invoke(app, ["leaderboard", "--out", str(board)])
    assert run.exit_code == 2 and "/link: 'javascript:window.__pwned = 7' is not allowed" in (
        run.stderr)
    browser.get((board / "index.html").as_uri())
    assert browser.execute_script(  # the page rendered before: no entry has a link
        "return Array.from(document.querySelectorAll('a'), a => a.protocol)") == []
    for key, link in SAFE_LINKS.items():
        path = board / "entries" / f"{key}.json"
        entry = json.loads(path.read_text())
        entry.update(name=f"{HOSTILE} {key}", link=link, notes=[HOSTILE])
        entry["run"]["name"] = HOSTILE
        entry["flag_meanings"] = {f: HOSTILE for f in entry["flags"]}
        path.write_text(json.dumps(entry))
    run = CliRunner().invoke(app, ["leaderboard", "--out", str(board)])
    assert run.exit_code == 0, run.output
    browser.get((board / "index.html").as_uri())
    links = browser.execute_script(  # the entries' links (not the page's to its own groups)
        "return Array.from(document.querySelectorAll('a:not([href^=\"#group-\"])'), "
        "a => [a.getAttribute('href'), a.protocol]);")
    assert sorted(href for href, _ in links) == sorted(SAFE_LINKS.values())
    assert {protocol for _, protocol in links} <= {"file:", "https:"}
    assert browser.execute_script("return document.querySelectorAll('img').length") == 1
    assert browser.execute_script("return document.querySelectorAll('script').length") == 1
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.leaderboard td.name .entry-name'), "
        "e => e.textContent);")
    assert sorted(names) == sorted(f"{HOSTILE} {key}" for key in SAFE_LINKS)  # shown as text
    for key in "abc":  # following each relative link runs nothing either
        browser.get((board / "index.html").as_uri())
        browser.execute_script(f"document.querySelector('tr#{key} a').click();")
        assert browser.execute_script("return window.__pwned === undefined")
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
    browser.get((board / "index.html").as_uri())
    assert browser.execute_script("return window.__pwned === undefined")
