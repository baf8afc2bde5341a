"""The report keeps the suite's order: its sections (models, then regimes), each section's attacks
and each attack's eps as the suite file lists them, whatever order the store sorts or holds
them in (by name; a resumed cell last)."""

from __future__ import annotations

import re

from benchbench.report.markdown import render_with_figures
from benchbench.report.order import suite_order
from benchbench.report.plots import figure
from benchbench.report.tables import summary_tables
from benchbench.store.results import read_store
from tests.report_helpers import write_store

# every list against the alphabet: a sort by name would reverse each
MODELS = (("zeta", "mlp", {}), ("alpha", "mlp", {}))
REGIMES = (("slow", "standard", {}), ("fast", "standard", {}))
ATTACKS = (("pgd", "pgd", (0.2, 0.05), {}), ("fgsm", "fgsm", (0.3, 0.1), {}))


def headings(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.M)


def attack_lines(section: str) -> list[str]:
    return re.findall(r"^Accuracy under `([^`]+)`", section, flags=re.M)


def eps_headers(section: str) -> list[list[str]]:
    """The eps columns of each attack table of a section, in order."""
    return [re.findall(r"ε=([0-9.]+)", line) for line in section.splitlines()
            if line.startswith("|   epoch | ε=")]


def test_sections_attacks_and_eps_come_in_the_suites_order(tmp_path):
    # stored in reverse: the order a resumed run leaves (its first cells stored last)
    run = write_store(tmp_path / "run", models=MODELS, regimes=REGIMES, attacks=ATTACKS,
                      cell_order=lambda cells: cells[::-1])
    with read_store(run) as store:
        text, figures = render_with_figures(store)
    assert headings(text)[:4] == ["zeta · slow · digits", "zeta · fast · digits",
                                  "alpha · slow · digits", "alpha · fast · digits"]
    first = text.split("## zeta · slow · digits")[1].split("\n## ")[0]
    assert attack_lines(first) == ["pgd", "fgsm"]
    assert eps_headers(first) == [["0.2", "0.05"], ["0.3", "0.1"]]
    # the figures too: the epoch figure's curves, the regimes figure's panels
    epoch = next(f for f in figures if f.name == "zeta-slow-digits-epoch.png")
    assert [s.label for s in epoch.panels[0].series] == [
        "clean (test)", "clean (train)", "pgd ε=0.2", "pgd ε=0.05", "fgsm ε=0.3", "fgsm ε=0.1"]
    sides = [f for f in figures if f.name.endswith("-regimes.png")]
    assert [f.name for f in sides] == ["zeta-digits-regimes.png", "alpha-digits-regimes.png"]
    assert [p.title for p in sides[0].panels] == [
        "clean (test)", "pgd ε=0.2", "pgd ε=0.05", "fgsm ε=0.3", "fgsm ε=0.1"]
    assert [s.label for s in sides[0].panels[1].series] == ["slow", "fast"]
    legend = [t.get_text() for t in figure(sides[0]).legends[0].get_texts()]
    assert legend == ["slow", "fast"]


def test_the_store_sorts_by_name_and_the_order_comes_from_the_suite(tmp_path):
    """What the order is recovered from: the store's tidy rows are sorted by name, the suite
    text names models and regimes, the specs attacks and eps."""
    run = write_store(tmp_path / "run", models=MODELS, regimes=REGIMES, attacks=ATTACKS)
    with read_store(run) as store:
        tidy, meta, cells = store.tidy(), store.meta(), store.cells()
    assert list(tidy["model"].unique()) == ["alpha", "zeta"]  # the store's own order
    order = suite_order(meta, cells)
    assert (order.models, order.regimes, order.attacks) == (("zeta", "alpha"),
                                                            ("slow", "fast"), ("pgd", "fgsm"))
    assert order.eps == {"pgd": (0.2, 0.05), "fgsm": (0.3, 0.1)}
    tables = summary_tables(tidy, order)
    assert [(t.model, t.regime) for t in tables] == [("zeta", "slow"), ("zeta", "fast"),
                                                     ("alpha", "slow"), ("alpha", "fast")]
    assert [name for name, _ in tables[0].groups] == ["clean", "pgd", "fgsm"]
    # without an order: as before, the frame's (the store's) order
    assert [t.model for t in summary_tables(tidy)][:1] == ["alpha"]


def test_without_the_suite_text_models_and_regimes_keep_the_cells_order(tmp_path):
    """A store whose suite text is missing (or no longer parses): the order the cells table
    first holds each model and regime in."""
    run = write_store(tmp_path / "run", models=MODELS, regimes=REGIMES, attacks=ATTACKS,
                      meta={"suite_toml": "this is [not toml"})
    with read_store(run) as store:
        order = suite_order(store.meta(), store.cells())
        text, _ = render_with_figures(store)
    assert (order.models, order.regimes) == (("zeta", "alpha"), ("slow", "fast"))
    assert headings(text)[0] == "zeta · slow · digits"


def test_worst_case_rows_follow_their_attacks_eps_order(tmp_path):
    """A worst-case row has no eps list of its own: its eps come in its norm's attacks' order,
    and it comes after every attack."""
    run = write_store(tmp_path / "run", attacks=ATTACKS)
    with read_store(run) as store:
        order = suite_order(store.meta(), store.cells())
    keys = sorted([("worst_linf", 0.05), ("worst_linf", 0.3), ("worst_linf", 0.2),
                   ("fgsm", 0.1), ("pgd", 0.05), ("worst_linf", 0.1)],
                  key=lambda k: (order.attack_key(k[0]), order.eps_key(*k)))
    assert keys == [("pgd", 0.05), ("fgsm", 0.1), ("worst_linf", 0.2), ("worst_linf", 0.05),
                    ("worst_linf", 0.3), ("worst_linf", 0.1)]
    assert order.attack_key("unlisted") > order.attack_key("worst_linf")
