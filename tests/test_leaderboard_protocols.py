"""Leaderboard entries over different attacks, protocols, and each attack's full parameters
(issue 19, items 1 and 2).

No training: boards are built from copies of the committed v2 store (tests/fixtures/store_v2:
fgsm and pgd, steps 3, at linf eps 0.2; pgd alone at 0.1), some with their cell specs edited, or
from entries written by hand from the one that store gives (numbers made consistent with
``entries.summary``), re-rendered with ``benchbench leaderboard --out DIR``.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.leaderboard import SCHEMA_VERSION
from benchbench.leaderboard.entries import summary

FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
SUMMARY = ("mean", "std", "ci95", "n", "values")
PGD3 = {"loss": "ce", "norm": "linf", "random_start": True, "restarts": 1, "step_size": None,
        "steps": 3}


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["leaderboard", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    """The entry the v2 store gives at linf eps 0.2 (fgsm and pgd)."""
    out = tmp_path_factory.mktemp("base") / "board"
    result = CliRunner().invoke(app, ["leaderboard", str(FIXTURE), "--norm", "linf", "--eps",
                                      "0.2", "--out", str(out)],
                                env={"BENCHBENCH_DISABLE_PLUGINS": "1"})
    assert result.exit_code == 0, result.output
    [path] = (out / "entries").glob("*.json")
    return json.loads(path.read_text())


def attack(base: dict, name: str, values: list[float], *, rows=None, **params) -> dict:
    """An attack of ``base``'s kind (its fields, pgd's parameters) named ``name``."""
    fields = {k: v for k, v in base["robust_accuracy"]["pgd"].items() if k not in SUMMARY}
    return {**fields, "attack": name, "params": params or dict(PGD3), "rows": rows,
            **summary(values)}


def entry(base: dict, key: str, attacks: dict[str, dict], *, clean=(0.95, 0.97)) -> dict:
    """A two-seed entry over ``attacks`` (label -> attack), its worst case their per-seed
    minimum (an upper bound)."""
    e = copy.deepcopy(base)
    e.update(id=key, name=f"entry {key}", seeds=[0, 1], notes=[], flags="", flag_meanings={},
             unreliable=False, unreliable_because="")
    e["clean_accuracy"] = summary(list(clean))
    e["robust_accuracy"] = attacks
    worst = [min(v) for v in zip(*(a["values"] for a in attacks.values()), strict=True)]
    e["worst_case"] = {"kind": "upper_bound", "exact": False, "meaning": "upper bound",
                       "attacks": sorted(attacks), **summary(worst)}
    return e


def write(out: Path, *entries: dict) -> Path:
    (out / "entries").mkdir(parents=True, exist_ok=True)
    for e in entries:
        (out / "entries" / f"{e['id']}.json").write_text(json.dumps(e))
    return out


def tree(out: Path) -> dict[str, bytes | None]:
    return {p.relative_to(out).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(out.rglob("*"))}


# different attack sets are not ranked against each other ---------------------------------------
def issue_board(base: dict, out: Path) -> Path:
    """The issue's three evaluations: {fgsm, pgd}, {mifgsm, pgd}, {fgsm, mifgsm, pgd}, the
    first with two entries."""
    fgsm = lambda v: attack(base, "fgsm", v, loss="ce")  # noqa: E731
    mifgsm = lambda v: attack(base, "mifgsm", v, loss="ce", steps=10)  # noqa: E731
    pgd = lambda v: attack(base, "pgd", v)  # noqa: E731
    return write(out,
                 entry(base, "p", {"fgsm": fgsm([0.6, 0.62]), "pgd": pgd([0.5, 0.52])}),
                 entry(base, "q", {"fgsm": fgsm([0.5, 0.5]), "pgd": pgd([0.3, 0.34])}),
                 entry(base, "r", {"mifgsm": mifgsm([0.45, 0.47]), "pgd": pgd([0.4, 0.42])}),
                 entry(base, "s", {"fgsm": fgsm([0.7, 0.7]), "mifgsm": mifgsm([0.2, 0.22]),
                                   "pgd": pgd([0.3, 0.3])}))


def test_entries_over_different_attacks_are_ranked_in_groups_with_a_warning(cli, base,
                                                                           tmp_path):
    out = issue_board(base, tmp_path / "b")
    result = cli("--out", out)
    assert result.exit_code == 0, result.output
    [warning] = result.stderr.splitlines()  # one line
    assert warning.startswith("warning: the entries' worst cases are over 3 different sets of "
                              "attacks (or parameters), so each set is ranked on its own (A, 2 "
                              "entries: fgsm(loss=ce), pgd(loss=ce, norm=linf, random_start=true, "
                              "restarts=1, step_size=null, steps=3); B, 1 entry: ")
    assert warning.endswith("pass --protocol (autoattack-standard) to rank entries under one "
                            "protocol")
    board = json.loads((out / "leaderboard.json").read_text())
    assert [(e["group"], e["rank"], e["id"]) for e in board["entries"]] == [
        ("A", 1, "p"), ("A", 2, "q"), ("B", 1, "r"), ("C", 1, "s")]
    assert [g["entries"] for g in board["groups"]] == [["p", "q"], ["r"], ["s"]]
    assert board["groups"][1]["attacks"] == ["mifgsm(loss=ce, steps=10)", "pgd(loss=ce, "
                                             "norm=linf, random_start=true, restarts=1, "
                                             "step_size=null, steps=3)"]
    assert board["protocol"] is None and board["excluded"] == []
    page = (out / "index.html").read_text()
    assert page.count('<table class="leaderboard"') == 3
    assert 'id="groups-note"' in page and "<h2>Evaluation C</h2>" in page
    md = (out / "leaderboard.md").read_text()
    assert "## Evaluation B" in md and "| B1 | entry r |" in md
    assert "- mifgsm(loss=ce, steps=10)" in md  # the attacks' parameters are on the board


def test_the_same_attacks_with_other_parameters_are_another_group(cli, tmp_path):
    """Two stores of the same suite but for pgd's steps (3 and 5): two groups, by parameter."""
    runs = []
    for steps in (3, 5):
        run = tmp_path / f"steps{steps}"
        shutil.copytree(FIXTURE, run)
        with sqlite3.connect(run / "results.sqlite") as conn:
            for cell_id, text in conn.execute("SELECT cell_id, spec FROM cells").fetchall():
                spec = json.loads(text)
                for a in spec["attacks"]:
                    a["params"]["steps"] = steps if a["name"] == "pgd" else None
                    a["params"] = {k: v for k, v in a["params"].items() if v is not None}
                conn.execute("UPDATE cells SET spec = ? WHERE cell_id = ?",
                             (json.dumps(spec), cell_id))
        runs.append(run)
    result = cli(*runs, "--norm", "linf", "--eps", "0.1", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if "different sets" in line]
    assert "steps=3)" in warning and "steps=5)" in warning
    board = json.loads((tmp_path / "b" / "leaderboard.json").read_text())
    assert [(e["group"], e["rank"]) for e in board["entries"]] == [("A", 1), ("B", 1)]
    # the same steps everywhere: one group, ranked together, no warning
    result = cli(runs[0], "--norm", "linf", "--eps", "0.1", "--out", tmp_path / "one")
    assert "different sets" not in result.stderr
    board = json.loads((tmp_path / "one" / "leaderboard.json").read_text())
    assert [g["id"] for g in board["groups"]] == [None] and board["entries"][0]["group"] is None


# protocols ---------------------------------------------------------------------------------
def autoattack(base, values, *, rows=None, version="standard"):
    return attack(base, "autoattack", values, rows=rows, norm="Linf", seed=0, version=version)


def protocol_board(base: dict, out: Path) -> Path:
    pgd = lambda v: attack(base, "pgd", v)  # noqa: E731
    return write(
        out,
        # standard AutoAttack only
        entry(base, "std", {"aa": autoattack(base, [0.50, 0.52])}),
        # standard AutoAttack and a PGD that finds more: ranked by its AutoAttack number
        entry(base, "plus", {"aa": autoattack(base, [0.60, 0.62]), "pgd": pgd([0.10, 0.12])}),
        entry(base, "rand", {"aa": autoattack(base, [0.7, 0.7], version="rand")}),
        entry(base, "rows", {"aa": autoattack(base, [0.7, 0.7], rows=500)}),
        entry(base, "none", {"pgd": pgd([0.8, 0.8])}))


def test_a_protocol_admits_only_entries_evaluated_under_it_and_ranks_its_number(cli, base,
                                                                              tmp_path):
    out = protocol_board(base, tmp_path / "b")
    result = cli("--out", out, "--protocol", "autoattack-standard")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [  # one line for each entry left out
        "warning: entry none (entry none, store_v2): not evaluated under protocol "
        "autoattack-standard: no autoattack(version=standard) at eps 0.2; its attacks: pgd; "
        "left out",
        "warning: entry rand (entry rand, store_v2): not evaluated under protocol "
        "autoattack-standard: no autoattack(version=standard) at eps 0.2 (aa: version=rand, not "
        "standard); its attacks: aa; left out",
        "warning: entry rows (entry rows, store_v2): not evaluated under protocol "
        "autoattack-standard: no autoattack(version=standard) at eps 0.2 (aa: on the first 500 "
        "test inputs only); its attacks: aa; left out"]
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["protocol"]["name"] == "autoattack-standard"
    assert [(e["rank"], e["id"]) for e in board["entries"]] == [(1, "plus"), (2, "std")]
    plus = board["entries"][0]
    # RobustBench's rule: the AutoAttack number is ranked, not the worst case over every attack
    assert plus["ranked"]["by"] == "protocol" and plus["ranked"]["attacks"] == ["aa"]
    assert plus["ranked"]["values"] == [0.60, 0.62] and plus["ranked"]["exact"]
    assert plus["worst_case"]["values"] == [0.10, 0.12]
    assert sorted(x["id"] for x in board["excluded"]) == ["none", "rand", "rows"]
    page = (out / "index.html").read_text()
    assert "under the protocol <code>autoattack-standard</code>" in page
    assert "Worst case, all attacks" in page and "<h2>Not ranked under autoattack-standard</h2>" \
        in page
    md = (out / "leaderboard.md").read_text()
    assert "**under the protocol `autoattack-standard`**" in md
    assert "| 1 | entry plus | 61.00 | 12.71 | 96.00 | 12.71 | ≤ 11.00 |" in md  # t(0.975, 1)
    assert "- entry rows (store\\_v2): no autoattack(version=standard)" in md
    # without the protocol the same entries are grouped by their attacks again
    result = cli("--out", out)
    assert result.exit_code == 0 and "different sets of attacks" in result.stderr
    assert json.loads((out / "leaderboard.json").read_text())["protocol"] is None


def test_an_entry_lacking_the_protocol_attack_on_a_seed_is_left_out(cli, base, tmp_path):
    half = entry(base, "half", {"pgd": attack(base, "pgd", [0.3, 0.3])})
    half["robust_accuracy"]["aa"] = autoattack(base, [0.5])  # seed 0 only
    half["worst_case"]["attacks"] = ["aa", "pgd"]
    out = write(tmp_path / "b", entry(base, "ok", {"aa": autoattack(base, [0.4, 0.4])}), half)
    result = cli("--out", out, "--protocol", "autoattack-standard")
    assert result.exit_code == 0, result.output
    assert "(aa: on 1 of 2 seeds)" in result.stderr
    board = json.loads((out / "leaderboard.json").read_text())
    assert [e["id"] for e in board["entries"]] == ["ok"]


@pytest.mark.parametrize(("args", "message"), [
    (("--protocol", "robustbench"), "error: --protocol 'robustbench' is not a protocol "
                                    "benchbench knows; use one of autoattack-standard"),
    (("--protocol", "autoattack-standard"),
     "error: --protocol autoattack-standard: no entry was evaluated under it "
     "(autoattack(version=standard) at the board's norm and eps, on the whole test split, on "
     "every seed): none: no autoattack(version=standard) at eps 0.2; its attacks: pgd; run the "
     "protocol's attack in the suites, or leave --protocol out"),
])
def test_a_protocol_nothing_meets_or_none_known_is_refused_on_one_line(cli, base, tmp_path,
                                                                      args, message):
    out = write(tmp_path / "b", entry(base, "none", {"pgd": attack(base, "pgd", [0.8, 0.8])}))
    assert cli("--out", out).exit_code == 0
    before = tree(out)
    result = cli("--out", out, *args)
    assert result.exit_code == 2 and result.stderr == message + "\n"
    assert tree(out) == before  # nothing written
    result = cli(FIXTURE, "--norm", "linf", "--eps", "0.2", "--out", tmp_path / "new", *args)
    assert result.exit_code == 2 and result.stderr.splitlines()[-1].startswith(
        message.split(":")[0])
    assert not (tmp_path / "new").exists()


# every attack's parameters, in full --------------------------------------------------------
def edited_store(tmp_path: Path) -> Path:
    """The v2 store with pgd's ``restarts`` missing from its specs (a key added after the suite
    ran, say) and fgsm renamed to an attack not installed here."""
    run = tmp_path / "store_v2"
    shutil.copytree(FIXTURE, run)
    with sqlite3.connect(run / "results.sqlite") as conn:
        for cell_id, text in conn.execute("SELECT cell_id, spec FROM cells").fetchall():
            spec = json.loads(text)
            for a in spec["attacks"]:
                if a["label"] == "pgd":
                    del a["params"]["restarts"]
                if a["label"] == "fgsm":
                    a["name"] = "not_installed"
            conn.execute("UPDATE cells SET spec = ? WHERE cell_id = ?",
                         (json.dumps(spec), cell_id))
    return run


def test_entries_carry_each_attacks_parameters_in_full(cli, tmp_path):
    from benchbench.plugins import load_registry

    result = cli(FIXTURE, "--norm", "linf", "--eps", "0.2", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    [e] = [json.loads(p.read_text()) for p in (tmp_path / "b" / "entries").glob("*.json")]
    assert e["schema_version"] == SCHEMA_VERSION == 2
    registry = load_registry(load_entry_points=False)
    for label, name in (("fgsm", "fgsm"), ("pgd", "pgd")):
        a = e["robust_accuracy"][label]
        assert a["attack"] == name and a["norm"] == "linf" and a["params_complete"]
        assert set(a["params"]) == set(registry.params_of("attack", name))  # every key
        assert a["params_filled"] == []  # the store had them all
    assert e["robust_accuracy"]["pgd"]["params"] == PGD3
    # a key the store lacks comes from the installed attack's defaults, and says so
    result = cli(edited_store(tmp_path), "--norm", "linf", "--eps", "0.2", "--out",
                 tmp_path / "c")
    assert result.exit_code == 0, result.output
    [e] = [json.loads(p.read_text()) for p in (tmp_path / "c" / "entries").glob("*.json")]
    pgd, fgsm = e["robust_accuracy"]["pgd"], e["robust_accuracy"]["fgsm"]
    assert pgd["params"] == PGD3 and pgd["params_filled"] == ["restarts"]
    assert pgd["params_complete"]
    assert registry.defaults_of("attack", "pgd")["restarts"] == PGD3["restarts"]
    # an attack not installed: only what the store had, and not claimed complete
    assert fgsm["params"] == {"loss": "ce"} and fgsm["params_filled"] == []
    assert not fgsm["params_complete"]
    assert any(n.startswith("parameters not known in full for fgsm") for n in e["notes"])
    board = json.loads((tmp_path / "c" / "leaderboard.json").read_text())
    assert board["entries"][0]["params_incomplete"] == ["fgsm"]
    # the page's details show them
    page = (tmp_path / "c" / "index.html").read_text()
    assert ("pgd(loss=ce, norm=linf, random_start=true, restarts=1, step_size=null, steps=3)"
            in page)
    assert "not_installed(loss=ce) <em>(parameters not known in full)</em>" in page


def v1(e: dict) -> dict:
    """``e`` as version 1 wrote it: attacks with attack, params and rows only."""
    old = copy.deepcopy(e)
    old["schema_version"] = 1
    for label, a in old["robust_accuracy"].items():
        old["robust_accuracy"][label] = {k: v for k, v in a.items()
                                         if k in ("attack", "params", "rows", *SUMMARY)}
    return old


def test_version_1_entries_are_read_and_marked_as_lacking_parameters(cli, base, tmp_path):
    pgd = attack(base, "pgd", [0.5, 0.5])
    out = write(tmp_path / "b", v1(entry(base, "old", {"pgd": pgd})),
                entry(base, "new", {"pgd": attack(base, "pgd", [0.4, 0.4])}))
    result = cli("--out", out)
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        "warning: 1 entry is of schema version 1 (old), which does not record the attacks' "
        "parameters in full; marked so on the board (rebuild from the runs to record them)"]
    board = json.loads((out / "leaderboard.json").read_text())
    old = next(e for e in board["entries"] if e["id"] == "old")
    assert old["schema_version"] == 1 and old["params_incomplete"] == ["pgd"]
    assert [e["group"] for e in board["entries"]] == [None, None]  # same attack, same params
    page = (out / "index.html").read_text()
    assert page.count("entry schema version 1: not recorded in full") == 1
    assert "entry schema version 1: the attacks' parameters are those its suite stored" in (
        out / "leaderboard.md").read_text()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda e: e["robust_accuracy"]["pgd"].pop("norm"),
     "/robust_accuracy/pgd/norm: missing; allowed: the norm the attack declared: \"linf\", "
     "\"l2\" or null (not declared)"),
    (lambda e: e["robust_accuracy"]["pgd"].pop("params_complete"),
     "/robust_accuracy/pgd/params_complete: missing; allowed: true or false: whether params "
     "holds every parameter the attack accepts"),
    (lambda e: e["robust_accuracy"]["pgd"].update(params_filled=["restarts", "nope"]),
     "/robust_accuracy/pgd/params_filled: 'nope' is not a key of params; allowed: keys of "
     "params"),
    (lambda e: e["robust_accuracy"]["pgd"].update(norm="l1"),
     "/robust_accuracy/pgd/norm: 'l1' is not allowed"),
    (lambda e: e.update(schema_version=3), None),
])
def test_version_2_fields_are_checked(cli, base, tmp_path, edit, message):
    good = entry(base, "good", {"pgd": attack(base, "pgd", [0.5, 0.5])})
    bad = entry(base, "bad", {"pgd": attack(base, "pgd", [0.5, 0.5])})
    edit(bad)
    out = write(tmp_path / "b", good)
    assert cli("--out", out).exit_code == 0
    write(out, bad)
    before = tree(out)
    result = cli("--out", out)
    path = out / "entries" / "bad.json"
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    expected = (f"error: {path}: {message}" if message else
                f"error: {path}: schema_version 3; this benchbench reads up to 2")
    assert result.stderr.startswith(expected), result.stderr
    assert tree(out) == before


# the protocol on a real AutoAttack run ---------------------------------------------------------
AUTOATTACK_SUITE = """
[suite]
name = "aa"
seeds = [0]

[dataset]
name = "digits"
train = "train"
test = "test[:30]"   # the whole test split of this suite: small, so AutoAttack stays cheap

[model]
name = "mlp"
hidden = [16]

[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [2]

[[attacks]]
name = "fgsm"
eps = [0.2]

[[attacks]]
name = "autoattack"
eps = [0.2]

"""


def test_a_real_autoattack_run_is_admitted_and_ranked_by_its_number(cli, tmp_path):
    """A digits run with the autoattack plugin (version standard by default) beside fgsm:
    admitted under autoattack-standard, ranked by that attack's own stored accuracy."""
    pytest.importorskip("pyautoattack", reason="needs benchbench[autoattack]")
    plugin = pytest.importorskip("benchbench.autoattack_attack")
    from benchbench.engine.runner import run_suite
    from benchbench.store.results import read_store
    from benchbench.suite.load import load_suite
    from benchbench.testing import isolated_registry

    registry = isolated_registry(plugin)
    (tmp_path / "aa.toml").write_text(AUTOATTACK_SUITE)
    run_suite(load_suite(tmp_path / "aa.toml", registry), registry=registry,
              out_dir=tmp_path / "aa", device="cpu")
    result = cli(tmp_path / "aa", "--out", tmp_path / "b", "--protocol", "autoattack-standard")
    assert result.exit_code == 0, result.output
    board = json.loads((tmp_path / "b" / "leaderboard.json").read_text())
    [e] = board["entries"]
    aa = e["robust_accuracy"]["autoattack"]
    assert aa["attack"] == "autoattack" and aa["params"]["version"] == "standard"
    assert aa["norm"] == "linf" and aa["rows"] is None
    assert e["ranked"]["attacks"] == ["autoattack"] and e["ranked"]["exact"]
    with read_store(tmp_path / "aa") as store:
        tidy = store.tidy()
    stored = tidy[(tidy.attack == "autoattack") & (tidy.split == "test")
                  & (tidy.metric == "accuracy") & (tidy.epoch == 2)].value.tolist()
    assert e["ranked"]["values"] == stored
    assert e["worst_case"]["mean"] <= e["ranked"]["mean"]
