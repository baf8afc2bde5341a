"""``benchbench leaderboard``: entries from stores, ranking, refusals, rendering from JSON alone.

Two stores: a fresh digits run (standard and FGSM-AT training, fgsm and pgd at eps 0.1 and 0.2,
per-example worst-case rows) and the committed schema-v2 store (tests/fixtures/store_v2: no
per-example bits; pgd alone at 0.1, fgsm and pgd at 0.2, pgd_l2 at 0.5).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.leaderboard import ENTRY_SCHEMA, SCHEMA_VERSION
from benchbench.leaderboard.runs import LeaderboardError, choose_threat_model
from benchbench.store.results import read_store

FIXTURE = Path(__file__).parent / "fixtures" / "store_v2"
SUITE = """
[suite]
name = "lb"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [16]

[[regime]]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[regime]]
name = "fgsm_at"
eps = 0.1
monitor = false                # its training records (split "fit") without the PGD monitor
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1, 0.2]

[[attacks]]
name = "pgd"
eps = [0.1, 0.2]
steps = 3
"""
ENTRY_FIELDS = {
    "schema", "schema_version", "id", "name", "run", "link", "dataset", "test_split",
    "train_split", "threat_model", "eps", "model", "architecture", "regime", "dtype", "seeds",
    "epochs", "checkpoint", "clean_accuracy", "robust_accuracy", "worst_case", "flags",
    "flag_meanings", "unreliable", "unreliable_because", "catastrophic_overfitting", "stale",
    "wall_time_s", "device", "engine", "suite_hash", "versions", "finished", "notes"}


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory, registry) -> Path:
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    where = tmp_path_factory.mktemp("lb")
    (where / "lb.toml").write_text(SUITE)
    run_suite(load_suite(where / "lb.toml", registry), registry=registry,
              out_dir=where / "lb", device="cpu", command="benchbench run lb.toml")
    return where / "lb"


@pytest.fixture
def runs(fresh_run, tmp_path) -> tuple[Path, Path]:
    """Copies of the fresh run and of the v2 fixture, free to change or delete."""
    fresh, old = tmp_path / "runs" / "lb", tmp_path / "runs" / "store_v2"
    shutil.copytree(fresh_run, fresh)
    shutil.copytree(FIXTURE, old)
    return fresh, old


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["leaderboard", *(str(a) for a in args)])


def entries_of(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((out / "entries").glob("*.json"))}


def test_one_entry_per_run_model_regime_with_the_schema_fields(cli, runs, tmp_path):
    fresh, old = runs
    result = cli(fresh, old, "--eps", "0.1", "--out", tmp_path / "board")
    assert result.exit_code == 0, result.output
    entries = entries_of(tmp_path / "board")
    assert sorted(entries) == ["lb--mlp--fgsm_at", "lb--mlp--standard", "store_v2--mlp--standard"]
    for entry in entries.values():
        assert set(entry) == ENTRY_FIELDS
        assert entry["schema"] == ENTRY_SCHEMA and entry["schema_version"] == SCHEMA_VERSION
        assert (entry["dataset"], entry["threat_model"], entry["eps"]) == ("digits", "linf", 0.1)
        run = Path(entry["run"]["dir"])  # the v2 fixture has no report.md: no link
        assert entry["link"] == (f"../runs/{run.name}/report.md" if run.name == "lb" else None)
        assert entry["checkpoint"]["rule"] == "last" and entry["checkpoint"]["epoch"] == 2
        for key in ("benchbench", "torch", "plugins"):
            assert entry["versions"][key]
        assert entry["flag_meanings"].keys() == set(entry["flags"])
    with read_store(fresh) as store:
        tidy = store.tidy()
    at = tidy[(tidy.epoch == 2) & (tidy.split == "test") & (tidy.eps == 0.1)
              & (tidy.regime == "standard") & (tidy.metric == "accuracy")]
    entry = entries["lb--mlp--standard"]
    assert entry["seeds"] == [0, 1] and entry["epochs"] == 2
    assert entry["robust_accuracy"]["pgd"]["values"] == at[at.attack == "pgd"].value.tolist()
    worst = entry["worst_case"]
    assert worst["kind"] == "per_example" and worst["exact"] and worst["attacks"] == ["fgsm", "pgd"]
    assert worst["values"] == at[at.attack == "worst_linf"].value.tolist()
    assert worst["mean"] <= min(a["mean"] for a in entry["robust_accuracy"].values())
    low, high = worst["ci95"]
    assert low < worst["mean"] < high and worst["n"] == 2
    # the v2 store has pgd alone at 0.1: exact without per-example bits
    single = entries["store_v2--mlp--standard"]["worst_case"]
    assert single["kind"] == "single_attack" and single["exact"] and single["ci95"] is None
    assert single["values"] == entries["store_v2--mlp--standard"]["robust_accuracy"]["pgd"][
        "values"]
    # FGSM-AT records its training (split "fit"): not an attack, not an entry of its own
    assert entries["lb--mlp--fgsm_at"]["robust_accuracy"].keys() == {"fgsm", "pgd"}
    assert isinstance(entries["lb--mlp--fgsm_at"]["catastrophic_overfitting"], dict)


def test_ranked_by_worst_case_with_unreliable_and_upper_bounds_marked(cli, runs, tmp_path):
    fresh, old = runs
    assert cli(fresh, old, "--eps", "0.2", "--out", tmp_path / "b").exit_code == 0
    board = json.loads((tmp_path / "b" / "leaderboard.json").read_text())
    ranked = board["entries"]
    assert [e["rank"] for e in ranked] == [1, 2, 3]
    worst = [e["worst_case"]["mean"] for e in ranked]
    assert worst == sorted(worst, reverse=True)
    assert (board["dataset"], board["threat_model"], board["eps"]) == ("digits", "linf", 0.2)
    # the v2 store has fgsm and pgd at 0.2 and no per-example bits: an upper bound
    old_entry = next(e for e in ranked if e["run"]["name"] == "store_v2")
    bound = old_entry["worst_case"]
    assert bound["kind"] == "upper_bound" and not bound["exact"]
    per_seed = zip(*(a["values"] for a in old_entry["robust_accuracy"].values()), strict=True)
    assert bound["values"] == [min(v) for v in per_seed]
    assert "per-example results not stored" in " ".join(old_entry["notes"])
    md = (tmp_path / "b" / "leaderboard.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith(f"| {old_entry['rank']} |"))
    assert f"≤ {100 * bound['mean']:.2f}" in row and "store\\_v2" in row  # Markdown-escaped
    for e in ranked:
        assert e["unreliable"] == bool(set(e["flags"]) - {"S"})
        line = next(x for x in md.splitlines() if x.startswith(f"| {e['rank']} |"))
        assert ("| yes" in line) == e["unreliable"]


def test_unreliable_entries_are_marked(cli, runs, tmp_path):
    """A store whose checks found zero gradients (flag Z) is marked potentially unreliable."""
    fresh, _ = runs
    with sqlite3.connect(fresh / "results.sqlite") as conn:
        conn.execute("UPDATE results SET value = 0.25 WHERE metric = 'zero_grad_frac' AND "
                     "cell_id IN (SELECT cell_id FROM cells WHERE regime = 'standard')")
    assert cli(fresh, "--eps", "0.1", "--out", tmp_path / "b").exit_code == 0
    entries = entries_of(tmp_path / "b")
    marked = entries["lb--mlp--standard"]
    assert "Z" in marked["flags"] and marked["unreliable"] and "Z" in marked["unreliable_because"]
    assert "zero input gradient" in marked["flag_meanings"]["Z"]
    html = (tmp_path / "b" / "index.html").read_text()
    assert '<tr id="lb--mlp--standard" class="unreliable">' in html
    assert "<dt>Z</dt><dd>some test inputs have an exactly zero input gradient" in html


def test_best_checkpoint_is_the_highest_worst_case_mean(cli, runs, tmp_path):
    fresh, _ = runs
    assert cli(fresh, "--eps", "0.2", "--checkpoint", "best", "--out", tmp_path / "b"
               ).exit_code == 0
    with read_store(fresh) as store:
        tidy = store.tidy()
    for regime, entry in (("standard", entries_of(tmp_path / "b")["lb--mlp--standard"]),
                          ("fgsm_at", entries_of(tmp_path / "b")["lb--mlp--fgsm_at"])):
        rows = tidy[(tidy.regime == regime) & (tidy.attack == "worst_linf") & (tidy.eps == 0.2)]
        means = rows.groupby("epoch").value.mean()
        assert entry["checkpoint"]["epoch"] == int(means.idxmax())
        assert entry["worst_case"]["mean"] == pytest.approx(means.max())
        assert entry["checkpoint"]["rule"] == "best"
        assert "chosen on the test split" in entry["checkpoint"]["how"]


@pytest.mark.parametrize(("args", "message"), [
    ((), "error: the runs share several linf eps (0.1, 0.2); pass --eps: {fresh}: 0.1, 0.2"),
    (("--eps", "0.3"), "error: --eps 0.3: {fresh} has no linf attack at that eps; linf eps "
                       "per run: {fresh}: 0.1, 0.2"),
    (("--norm", "l2"), "error: --norm l2: {fresh} has no l2 attack; norms per run: {fresh}: "
                       "linf"),
    (("--checkpoint", "first"), "error: --checkpoint 'first' is not allowed; use one of "
                                "last, best"),
])
def test_refusals_are_one_line_exit_2_and_write_nothing(cli, runs, tmp_path, args, message):
    fresh, _ = runs
    result = cli(fresh, *args, "--out", tmp_path / "b")
    assert result.exit_code == 2
    assert result.stderr.strip() == message.format(fresh=fresh)
    assert not (tmp_path / "b").exists()


def test_mixing_datasets_or_norms_is_refused_naming_what_differs(cli, runs, tmp_path):
    fresh, old = runs
    result = cli(old, "--out", tmp_path / "b")  # linf and l2 both there
    assert result.exit_code == 2
    assert "the runs evaluate several norms (l2, linf); pass --norm" in result.stderr
    with sqlite3.connect(old / "results.sqlite") as conn:  # the same store, on other data
        conn.execute("UPDATE cells SET dataset = 'mnist', "
                     "spec = replace(spec, '\"name\":\"digits\"', '\"name\":\"mnist\"')")
    result = cli(fresh, old, "--eps", "0.1", "--out", tmp_path / "b")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: runs differ in dataset: {fresh}: digits (test "
                                    f"split 'test'); {old}: mnist (test split 'test')")
    assert not (tmp_path / "b").exists()


def run_stub(name: str, points: set, dataset: str = "digits"):
    return SimpleNamespace(name=name, dataset={"name": dataset, "params": {}, "test": "test"},
                           points=lambda: points)


def test_runs_sharing_no_eps_or_norm_are_refused():
    a = run_stub("runs/a", {("linf", 0.1)})
    b = run_stub("runs/b", {("linf", 0.3)})
    with pytest.raises(LeaderboardError, match=r"^runs differ in linf eps: runs/a: 0\.1; "
                                               r"runs/b: 0\.3; a leaderboard ranks one eps$"):
        choose_threat_model([a, b])
    c = run_stub("runs/c", {("l2", 0.5)})
    with pytest.raises(LeaderboardError, match=r"^runs differ in norm: runs/a: linf; runs/c: "
                                               r"l2; a leaderboard ranks one norm$"):
        choose_threat_model([a, c])
    threat = choose_threat_model([a, run_stub("runs/d", {("linf", 0.1), ("linf", 0.3)})])
    assert (threat.norm, threat.eps) == ("linf", 0.1)  # the only eps they share


def test_rendered_from_the_json_files_alone(cli, runs, tmp_path):
    fresh, old = runs
    out = tmp_path / "b"
    assert cli(fresh, old, "--eps", "0.1", "--out", out).exit_code == 0
    before = {name: (out / name).read_bytes() for name in
              ("leaderboard.md", "leaderboard.json", "index.html")}
    shutil.rmtree(tmp_path / "runs")
    result = cli("--out", out)
    assert result.exit_code == 0, result.output
    assert {name: (out / name).read_bytes() for name in before} == before
    # an edited entry changes the ranking: the outputs come from the files, nothing else (lb's
    # two entries are over fgsm and pgd, group A; store_v2's over pgd alone, group B)
    path = out / "entries" / "lb--mlp--standard.json"
    entry = json.loads(path.read_text())
    for summary in (entry["worst_case"], *entry["robust_accuracy"].values()):  # all robust
        summary.update(mean=1.0, values=[1.0] * summary["n"])
        if summary["n"] > 1:
            summary.update(std=0.0, ci95=[1.0, 1.0])
    entry["name"] = "edited entry"
    path.write_text(json.dumps(entry))
    assert cli("--out", out).exit_code == 0
    board = json.loads((out / "leaderboard.json").read_text())
    assert [(e["group"], e["rank"], e["id"]) for e in board["entries"]] == [
        ("A", 1, "lb--mlp--standard"), ("A", 2, "lb--mlp--fgsm_at"),
        ("B", 1, "store_v2--mlp--standard")]
    assert "| A1 | edited entry |" in (out / "leaderboard.md").read_text()


def test_bad_entry_files_are_refused_naming_the_file(cli, runs, tmp_path):
    fresh, _ = runs
    out = tmp_path / "b"
    assert cli(fresh, "--eps", "0.1", "--out", out).exit_code == 0
    html = (out / "index.html").read_bytes()
    path = out / "entries" / "lb--mlp--standard.json"
    entry = json.loads(path.read_text())
    for text, message in [
            ("{not json", f"error: {path}: not valid JSON (Expecting property name enclosed in "
                          "double quotes at line 1)"),
            (json.dumps({**entry, "schema_version": 99}), f"error: {path}: schema_version 99; "
             f"this benchbench reads up to {SCHEMA_VERSION}"),
            (json.dumps({k: v for k, v in entry.items() if k != "worst_case"}),
             f"error: {path}: /worst_case: missing; allowed: a summary"),
            (json.dumps({**entry, "eps": 0.3}), "error: entries differ in eps: 0.1 "
             "(lb--mlp--fgsm_at.json); 0.3 (lb--mlp--standard.json); a leaderboard ranks one "
             "threat model")]:
        path.write_text(text)
        result = cli("--out", out)
        assert result.exit_code == 2 and result.stderr.startswith(message), result.stderr
        assert (out / "index.html").read_bytes() == html  # nothing rewritten
    shutil.rmtree(out / "entries")
    result = cli("--out", out)
    assert result.exit_code == 2 and "no entry files (*.json)" in result.stderr


def test_page_is_self_contained_with_figure_and_legend(cli, runs, tmp_path):
    fresh, old = runs
    out = tmp_path / "b"
    assert cli(fresh, old, "--eps", "0.2", "--out", out).exit_code == 0
    html = (out / "index.html").read_text()
    assert "http://" not in html and "https://" not in html
    # nothing fetched: no protocol-relative or external source, no stylesheet link, no import
    assert not re.search(r"""(src|href)\s*=\s*["']?//|url\(|@import|<link|<script src""", html)
    assert html.count("<style>") == 1 and html.count("<script>") == 1
    assert '<meta name="viewport"' in html
    # the figure is in the page itself, and still a file beside it for the Markdown
    [uri] = re.findall(r'<img src="([^"]+)"', html)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == (out / "leaderboard.png").read_bytes()
    assert 'src="leaderboard.png"' not in html
    # the attacks column sorts its count as a number
    assert re.search(r'<th class="wide attacks" data-type="num"[^>]*><button type="button">'
                     'Attacks at', html)
    assert 'class="table-wrap"' in html and "overflow-x: auto" in html
    assert html.count("<tr id=") == 3
    md = (out / "leaderboard.md").read_text()
    assert "](leaderboard.png)" in md
    png = (out / "leaderboard.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_stale_entries_warn_and_are_marked(cli, runs, tmp_path):
    fresh, _ = runs
    with sqlite3.connect(fresh / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET benchbench_version = '0.0.1' WHERE regime = 'fgsm_at'")
    result = cli(fresh, "--eps", "0.1", "--out", tmp_path / "b")
    assert result.exit_code == 0
    assert result.stderr.startswith(f"warning: {fresh}: 2 of 4 stored cells were measured with "
                                    "other versions than the installed ones: benchbench 0.0.1")
    entries = entries_of(tmp_path / "b")
    assert entries["lb--mlp--standard"]["stale"] == []
    assert entries["lb--mlp--fgsm_at"]["stale"] == [
        {"name": "benchbench", "stored": "0.0.1", "installed": entries["lb--mlp--standard"][
            "versions"]["benchbench"]}]
    assert "mlp · fgsm\\_at (stale)" in (tmp_path / "b" / "leaderboard.md").read_text()
    assert ">stale</span>" in (tmp_path / "b" / "index.html").read_text()


# issue 11 review -----------------------------------------------------------------------------
AT_LAST = """
[suite]
name = "atlast"
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
eps = [0.2]

[[attacks]]
name = "pgd"
eps = [0.2]
steps = 3
at = "last"
rows = 50
"""


@pytest.fixture(scope="module")
def at_last_run(tmp_path_factory, registry) -> Path:
    """fgsm at every checkpoint, pgd (on the first 50 test inputs) at the last one only."""
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    where = tmp_path_factory.mktemp("atlast")
    (where / "atlast.toml").write_text(AT_LAST)
    run_suite(load_suite(where / "atlast.toml", registry), registry=registry,
              out_dir=where / "atlast", device="cpu")
    return where / "atlast"


@pytest.fixture(scope="module")
def continued_v2(tmp_path_factory, registry) -> Path:
    """The v2 fixture migrated and continued by ``run``: seed 1, measured now, has per-example
    worst rows at eps 0.2 (fgsm and pgd); seed 0, measured before bits, has none there."""
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    where = tmp_path_factory.mktemp("v2")
    (where / "run").mkdir()
    shutil.copy(FIXTURE / "results.sqlite", where / "run" / "results.sqlite")
    shutil.copy(FIXTURE / "store_v2.toml", where / "store_v2.toml")
    run_suite(load_suite(where / "store_v2.toml", registry), registry=registry,
              out_dir=where / "run", device="cpu")
    return where / "run"


def test_worst_rows_of_some_seeds_only_give_an_upper_bound_over_every_seed(cli, continued_v2,
                                                                           tmp_path):
    result = cli(continued_v2, "--norm", "linf", "--eps", "0.2", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    [entry] = entries_of(tmp_path / "b").values()
    attacks = entry["robust_accuracy"]
    assert {a["n"] for a in attacks.values()} == {2}
    worst = entry["worst_case"]
    assert worst["kind"] == "upper_bound" and not worst["exact"] and worst["n"] == 2
    per_seed = zip(*(a["values"] for a in attacks.values()), strict=True)
    assert worst["values"] == [min(v) for v in per_seed]
    assert ("worst case is an upper bound: per-example results stored for seed 1 only, not "
            "for seed 0") in " ".join(entry["notes"])
    # --checkpoint best ranks on the same basis at every checkpoint: the minimum
    result = cli(continued_v2, "--norm", "linf", "--eps", "0.2", "--checkpoint", "best",
                 "--out", tmp_path / "best")
    assert result.exit_code == 0, result.output
    [best] = entries_of(tmp_path / "best").values()
    assert "stored per-example" not in best["checkpoint"]["how"]
    assert best["worst_case"]["kind"] == "upper_bound" and best["worst_case"]["n"] == 2
    # where every seed has its worst rows (eps 0.1, pgd alone) they are used
    assert cli(continued_v2, "--norm", "linf", "--eps", "0.1", "--out", tmp_path / "c"
               ).exit_code == 0
    [single] = entries_of(tmp_path / "c").values()
    assert single["worst_case"]["kind"] == "single_attack" and single["worst_case"]["n"] == 2


def test_best_checkpoint_only_among_those_with_the_last_ones_attacks(cli, at_last, tmp_path):
    # fgsm (alone at epochs 1 and 2) made to look best at epoch 1
    with sqlite3.connect(at_last / "results.sqlite") as conn:  # bits gone, or they'd disagree
        conn.execute("UPDATE results SET value = 0.99 WHERE epoch = 1 AND metric = 'accuracy' "
                     "AND attack IN ('fgsm', 'worst_linf')")
        conn.execute("DELETE FROM examples WHERE epoch = 1")
    result = cli(at_last, "--checkpoint", "best", "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    [entry] = entries_of(tmp_path / "b").values()
    assert entry["checkpoint"]["epoch"] == 3 and entry["checkpoint"]["stored"] == [1, 2, 3]
    worst = entry["worst_case"]
    assert worst["kind"] == "per_example" and worst["attacks"] == ["fgsm", "pgd"]
    how = entry["checkpoint"]["how"]
    assert how.startswith("best: epoch 3, the last checkpoint: no other of [1, 2, 3] has its "
                          "attacks at this eps (fgsm, pgd)"), how
    assert any(n.startswith("best checkpoint chosen among epoch 3 only: epochs 1, 2 lack pgd")
               for n in entry["notes"]), entry["notes"]
    assert not any("one attack" in n for n in entry["notes"])


def test_single_attack_means_one_attack_at_this_checkpoint_and_eps(cli, at_last, tmp_path):
    from benchbench.leaderboard.entries import WORST_KINDS

    assert WORST_KINDS["single_attack"] == ("exact: one {norm} attack was evaluated at this "
                                            "checkpoint and eps")
    with sqlite3.connect(at_last / "results.sqlite") as conn:  # pgd's rows gone, and the
        conn.execute("DELETE FROM results WHERE attack IN ('pgd', 'worst_linf')")  # worst rows
        conn.execute("DELETE FROM examples WHERE attack = 'pgd'")  # derived from its bits
    assert cli(at_last, "--out", tmp_path / "b").exit_code == 0
    [entry] = entries_of(tmp_path / "b").values()
    assert entry["worst_case"]["kind"] == "single_attack"
    assert ("worst case from one attack (fgsm): the only linf attack evaluated at this "
            "checkpoint and eps") in entry["notes"]


@pytest.fixture
def at_last(at_last_run, tmp_path) -> Path:
    shutil.copytree(at_last_run, tmp_path / "runs" / "atlast")
    return tmp_path / "runs" / "atlast"


def test_attacks_on_different_rows_are_noted(cli, at_last, tmp_path):
    assert cli(at_last, "--out", tmp_path / "b").exit_code == 0
    [entry] = entries_of(tmp_path / "b").values()
    assert entry["robust_accuracy"]["pgd"]["rows"] == 50
    assert entry["robust_accuracy"]["fgsm"]["rows"] is None
    assert ("the attacks ran on different test inputs (fgsm: all, pgd: the first 50): the "
            "worst case is over the first 50, where every attack ran") in entry["notes"]


def test_out_that_benchbench_did_not_make_is_refused_untouched(cli, runs, tmp_path):
    fresh, _ = runs
    site = tmp_path / "site"
    (site / "entries").mkdir(parents=True)
    (site / "index.html").write_text("<p>my own page</p>")
    (site / "entries" / "draft.txt").write_text("a draft")
    result = cli(fresh, "--eps", "0.1", "--out", site)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith(f"error: --out {site}: not empty (index.html) and no "
                                    f"{site / '.benchbench-leaderboard'}")
    assert "pass a new or empty directory" in result.stderr
    assert cli("--out", site).exit_code == 2  # re-rendering too
    assert sorted(p.relative_to(site).as_posix() for p in site.rglob("*")) == [
        "entries", "entries/draft.txt", "index.html"]
    assert (site / "index.html").read_text() == "<p>my own page</p>"
    # an empty directory, or one holding only hand-written entries, becomes a board
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(fresh, "--eps", "0.1", "--out", empty).exit_code == 0
    assert (empty / ".benchbench-leaderboard").is_file() and (empty / "index.html").is_file()
    by_hand = tmp_path / "by_hand"
    shutil.copytree(empty / "entries", by_hand / "entries")
    assert cli("--out", by_hand).exit_code == 0
    assert (by_hand / ".benchbench-leaderboard").is_file()


@pytest.mark.parametrize(("name", "text"), [
    ("notes.txt", "my notes"),
    ("other.json", json.dumps({"schema": "something-else"})),
    ("broken.json", "{not json"),
])
def test_entries_folder_with_anything_but_entries_is_refused(cli, runs, tmp_path, name, text):
    fresh, _ = runs
    out = tmp_path / "b"
    assert cli(fresh, "--eps", "0.1", "--out", out).exit_code == 0
    (out / "entries" / name).write_text(text)
    before = sorted(p.name for p in (out / "entries").iterdir())
    result = cli(fresh, "--eps", "0.1", "--out", out)
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith(f"error: {out / 'entries' / name}: not a leaderboard entry "
                                    "(a *.json file with schema 'benchbench-leaderboard-entry')")
    assert sorted(p.name for p in (out / "entries").iterdir()) == before
    assert (out / "entries" / name).read_text() == text


def test_rebuild_archives_entries_it_does_not_reproduce(cli, runs, tmp_path):
    fresh, old = runs
    out = tmp_path / "b"
    assert cli(fresh, old, "--eps", "0.1", "--out", out).exit_code == 0
    assert cli(fresh, old, "--eps", "0.1", "--out", out).exit_code == 0
    assert not (out / "archive").exists()  # the same entries again: nothing to keep
    edited = out / "entries" / "store_v2--mlp--standard.json"
    entry = json.loads(edited.read_text())
    entry["notes"].append("checked by hand")
    edited.write_text(json.dumps(entry))
    result = cli(fresh, "--eps", "0.1", "--out", out)  # the v2 run left out this time
    assert result.exit_code == 0, result.output
    [archived] = (out / "archive").iterdir()
    assert re.fullmatch(r"\d{8}T\d{6}Z", archived.name)
    kept = archived / "entries"
    assert sorted(p.name for p in kept.iterdir()) == [
        "lb--mlp--fgsm_at.json", "lb--mlp--standard.json", "store_v2--mlp--standard.json"]
    assert json.loads((kept / edited.name).read_text())["notes"][-1] == "checked by hand"
    assert sorted(entries_of(out)) == ["lb--mlp--fgsm_at", "lb--mlp--standard"]
    assert f"moved to {kept}" in result.stderr and "store_v2--mlp--standard.json" in result.stderr
    assert cli("--out", out).exit_code == 0  # re-rendering reads entries/ only
    assert len(json.loads((out / "leaderboard.json").read_text())["entries"]) == 2
