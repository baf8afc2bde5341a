"""benchbench compare: B - A with a confidence interval over seeds, paired or Welch."""

from __future__ import annotations

import io
import json
import math
from collections import namedtuple

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.report.compare import CompareError, compare, run_facts
from benchbench.report.compare_render import render
from benchbench.report.seed_stats import seed_difference
from benchbench.store.results import open_store, read_store

Rec = namedtuple("Rec", "epoch split attack eps metric value")
NORMS = {"fgsm": "linf", "pgd": "linf"}


def write_run(path, cells, *, bounds=(0.0, 1.0), classes=10, norms=None, dataset="digits",
              test="test"):
    """A store written through the store API: ``cells`` are dicts with model, regime, seed,
    records and optional model_params/regime_params/attacks."""
    with open_store(path / "results.sqlite") as store:
        store.set_meta(suite_name=path.name, bounds=json.dumps(list(bounds)),
                       num_classes=classes, attack_norms=json.dumps(norms or NORMS))
        for i, cell in enumerate(cells):
            attacks = cell.get("attacks", [{"label": a, "name": a, "eps": [0.1], "split": "test",
                                            "params": {"steps": 10} if a == "pgd" else {}}
                                           for a in (norms or NORMS)])
            spec = {"dataset": {"name": dataset, "params": {}, "test": test, "train": "train"},
                    "model": {"label": cell["model"], "name": "mlp",
                              "params": cell.get("model_params", {"hidden": [16]})},
                    "regime": {"label": cell["regime"], "name": cell["regime"],
                               "params": cell.get("regime_params", {"dtype": "float32"})},
                    "seed": cell["seed"], "attacks": attacks}
            store.add_cell(cell_id=f"{path.name}-{i}", records=cell["records"], status="ok",
                           spec=json.dumps(spec), model=cell["model"], regime=cell["regime"],
                           dataset=dataset, seed=cell["seed"], dtype="float32", run_id=1)
    return path


def records(clean, fgsm, *, epoch=2, loss=0.3):
    return [Rec(epoch, "test", "none", 0.0, "accuracy", clean),
            Rec(epoch, "test", "none", 0.0, "loss", loss),
            Rec(epoch, "test", "fgsm", 0.1, "accuracy", fgsm),
            Rec(epoch, "test", "worst_linf", 0.1, "accuracy", fgsm - 0.01),
            Rec(epoch, "fit", "none", 0.0, "loss", 0.5)]


A_VALUES = {0: (0.90, 0.50), 1: (0.92, 0.55), 2: (0.91, 0.52)}
B_VALUES = {0: (0.93, 0.60), 1: (0.94, 0.62), 2: (0.92, 0.61)}


@pytest.fixture
def two_runs(tmp_path):
    a = write_run(tmp_path / "a", [dict(model="mlp", regime="standard", seed=s,
                                        records=records(*v)) for s, v in A_VALUES.items()])
    b = write_run(tmp_path / "b", [dict(model="mlp", regime="standard", seed=s,
                                        records=records(*v)) for s, v in B_VALUES.items()])
    return a, b


def load(path):
    with read_store(path) as store:
        return store.tidy(), run_facts(meta=store.meta(), cells=store.cells())


def compare_dirs(a, b, **kwargs):
    (ta, fa), (tb, fb) = load(a), load(b)
    return compare(a=ta, b=tb, a_run=str(a), b_run=str(b), a_facts=fa, b_facts=fb, **kwargs)


# the statistics ---------------------------------------------------------------------------
def test_paired_interval_is_the_t_interval_of_the_seed_differences():
    a, b = pd.Series({0: 0.50, 1: 0.55, 2: 0.52}), pd.Series({2: 0.61, 0: 0.60, 1: 0.62})
    d = np.array([0.10, 0.07, 0.09])  # b - a, seed by seed
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    got = seed_difference(a=a, b=b)
    assert got["test"] == "paired" and got["seeds_a"] == got["seeds_b"] == "0,1,2"
    assert got["b_minus_a"] == pytest.approx(d.mean(), abs=1e-12)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half),
                                                            abs=1e-12)
    assert got["p_value"] == pytest.approx(stats.ttest_1samp(d, 0).pvalue, rel=1e-9)
    assert got["significant"] is True and got["ci_low"] > 0
    # at 99.9% the interval is wider and reaches 0
    wide = seed_difference(a=a, b=b, confidence=0.999)
    assert wide["ci_low"] < 0 < wide["ci_high"] and wide["significant"] is False


def test_welch_interval_where_the_seeds_differ():
    a, b = pd.Series({0: 0.50, 1: 0.58, 2: 0.52}), pd.Series({0: 0.60, 1: 0.49, 3: 0.66, 4: 0.57})
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)  # Welch-Satterthwaite
    diff = b.mean() - a.mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    got = seed_difference(a=a, b=b)
    assert got["test"] == "welch" and (got["n_a"], got["n_b"]) == (3, 4)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((diff - half, diff + half),
                                                            abs=1e-12)
    assert got["significant"] is False  # 0.06 apart with this spread: the interval holds 0


def test_unpaired_uses_welch_even_where_the_seeds_match():
    a, b = pd.Series({0: 0.50, 1: 0.55, 2: 0.52}), pd.Series({0: 0.60, 1: 0.62, 2: 0.61})
    got = seed_difference(a=a, b=b, pair=False)
    want = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert got["test"] == "welch"
    assert (got["ci_low"], got["ci_high"]) == pytest.approx(tuple(want), abs=1e-12)


def test_one_seed_gives_a_difference_but_no_interval_and_equal_seeds_a_point():
    one = seed_difference(a=pd.Series({0: 0.5}), b=pd.Series({0: 0.7}))
    assert one["b_minus_a"] == pytest.approx(0.2) and math.isnan(one["ci_low"])
    assert one["significant"] is None
    welch = seed_difference(a=pd.Series({0: 0.5}), b=pd.Series({1: 0.7, 2: 0.6}))
    assert welch["test"] == "welch" and welch["significant"] is None
    same = seed_difference(a=pd.Series({0: 0.5, 1: 0.6}), b=pd.Series({0: 0.5, 1: 0.6}))
    assert (same["ci_low"], same["ci_high"], same["significant"]) == (0.0, 0.0, False)
    shift = seed_difference(a=pd.Series({0: 0.5, 1: 0.6}), b=pd.Series({0: 0.75, 1: 0.85}))
    assert shift["ci_low"] == shift["ci_high"] == pytest.approx(0.25)
    assert shift["significant"] is True


# two runs ---------------------------------------------------------------------------------
def test_two_runs_with_the_same_seeds_are_paired_and_fit_rows_left_out(two_runs):
    result = compare_dirs(*two_runs)
    rows = result.rows
    assert set(rows["test"]) == {"paired"} and "fit" not in set(rows["split"])
    assert list(zip(rows["attack"], rows["metric"], strict=True)) == [
        ("none", "accuracy"), ("none", "loss"), ("fgsm", "accuracy"), ("worst_linf", "accuracy")]
    fgsm = rows[rows.attack == "fgsm"].iloc[0]
    d = np.array([B_VALUES[s][1] - A_VALUES[s][1] for s in (0, 1, 2)])
    expected = stats.ttest_rel([B_VALUES[s][1] for s in (0, 1, 2)],
                               [A_VALUES[s][1] for s in (0, 1, 2)]).confidence_interval(0.95)
    assert fgsm["b_minus_a"] == pytest.approx(d.mean(), abs=1e-12)
    assert (fgsm["ci_low"], fgsm["ci_high"]) == pytest.approx(tuple(expected), abs=1e-12)
    assert bool(fgsm["significant"]) is True
    loss = rows[rows.metric == "loss"].iloc[0]  # every seed 0.3 on both sides
    assert loss["b_minus_a"] == 0 and bool(loss["significant"]) is False
    worst = rows[rows.attack == "worst_linf"].iloc[0]
    assert worst["b_minus_a"] == pytest.approx(fgsm["b_minus_a"], abs=1e-12)
    assert result.notes == ()


def test_two_runs_with_other_seeds_use_welch_and_specs_that_differ_are_noted(tmp_path,
                                                                            two_runs):
    other = write_run(tmp_path / "c", [
        dict(model="mlp", regime="standard", seed=s + 10, records=records(*v),
             regime_params={"dtype": "float64"}) for s, v in B_VALUES.items()])
    result = compare_dirs(two_runs[0], other)
    assert set(result.rows["test"]) == {"welch"}
    assert result.rows["seeds_b"].iloc[0] == "10,11,12"
    fgsm = result.rows[result.rows.attack == "fgsm"].iloc[0]
    want = stats.ttest_ind([v[1] for v in B_VALUES.values()], [v[1] for v in A_VALUES.values()],
                           equal_var=False).confidence_interval(0.95)
    assert (fgsm["ci_low"], fgsm["ci_high"]) == pytest.approx(tuple(want), abs=1e-12)
    assert result.notes == ('regime standard differs: dtype "float32" (A) vs "float64" (B)',)


def test_metric_and_epoch_filters(tmp_path, two_runs):
    result = compare_dirs(*two_runs, metrics=["loss"], epochs=["last"])
    assert list(result.rows["metric"]) == ["loss"] and set(result.rows["epoch"]) == {2}
    with pytest.raises(CompareError, match=r"--metric acc: not stored; use one of accuracy, "):
        compare_dirs(*two_runs, metrics=["acc"])
    with pytest.raises(CompareError, match="--epoch final: give an epoch number or 'last'"):
        compare_dirs(*two_runs, epochs=["final"])


@pytest.mark.parametrize(("change", "message"), [
    (dict(dataset="mnist"), "different data (A: digits; B: mnist)"),
    (dict(test="test[:100]"), 'different data: dataset digits: test "test" (A) vs '
                              '"test[:100]" (B)'),
    (dict(classes=3), "different data: 10 classes (A) vs 3 (B)"),
    (dict(bounds=(-1.0, 1.0)), "different threat model: input bounds [0.0, 1.0] (A) vs "
                               "[-1.0, 1.0] (B)"),
])
def test_runs_on_other_data_or_threat_models_are_refused(tmp_path, two_runs, change, message):
    other = write_run(tmp_path / "c", [dict(model="mlp", regime="standard", seed=0,
                                            records=records(0.9, 0.5))], **change)
    with pytest.raises(CompareError) as info:
        compare_dirs(two_runs[0], other)
    assert str(info.value) == f"{two_runs[0]} and {other} share nothing to compare: {message}"


def test_runs_sharing_no_model_are_refused_naming_both(tmp_path, two_runs):
    other = write_run(tmp_path / "c", [dict(model="cnn", regime="standard", seed=0,
                                            records=records(0.9, 0.5))])
    with pytest.raises(CompareError, match=r"share nothing to compare: no model in both "
                                           r"\(A: mlp; B: cnn\)$"):
        compare_dirs(two_runs[0], other)


def test_an_attack_whose_norm_differs_is_left_out_with_a_note(tmp_path, two_runs):
    other = write_run(tmp_path / "c", [
        dict(model="mlp", regime="standard", seed=s, records=records(*v))
        for s, v in B_VALUES.items()], norms={"fgsm": "l2"})
    result = compare_dirs(two_runs[0], other)
    assert "fgsm" not in set(result.rows["attack"])
    assert "attack fgsm left out: norm linf (A) vs l2 (B)" in result.notes
    assert "worst_linf is over different attacks" not in " ".join(result.notes)
    only_fgsm = compare_dirs(two_runs[0], other, metrics=["accuracy"])
    assert set(only_fgsm.rows["attack"]) == {"none", "worst_linf"}


# cells of one run ---------------------------------------------------------------------------
@pytest.fixture
def regimes_run(tmp_path):
    cells = [dict(model="mlp", regime="standard", seed=s, records=records(*v))
             for s, v in A_VALUES.items()]
    cells += [dict(model="mlp", regime="trades", seed=s, records=records(*v))
              for s, v in B_VALUES.items()]
    return write_run(tmp_path / "regimes", cells)


def test_cells_of_one_run_compare_by_selection(regimes_run, two_runs):
    tidy, _ = load(regimes_run)
    result = compare(a=tidy, b=tidy, a_run="R", a_where={"regime": "standard"},
                     b_where={"regime": "trades"})
    assert "regime" not in result.on and result.a == "R [regime=standard]"
    assert result.b == "R [regime=trades]"
    between_runs = compare_dirs(*two_runs)
    pd.testing.assert_frame_equal(result.rows, between_runs.rows.drop(columns="regime"))


@pytest.mark.parametrize(("a_where", "b_where", "message"), [
    ({}, {}, "comparing cells of one run needs --a and --b"),
    ({"regime": "standard"}, {"model": "mlp"}, "select the same keys on both sides"),
    ({"regime": "standart"}, {"regime": "trades"},
     "--a regime=standart: no such regime in R; it has: standard, trades"),
    ({"epoch": "two"}, {"epoch": "2"}, "--a epoch=two: epoch must be a number"),
])
def test_bad_selections_are_refused(regimes_run, a_where, b_where, message):
    tidy, _ = load(regimes_run)
    with pytest.raises(CompareError, match=message):
        compare(a=tidy, b=tidy, a_run="R", a_where=a_where, b_where=b_where)


# rendering and the command ------------------------------------------------------------------
def test_text_marks_significance_states_the_sign_and_fits_80_columns(two_runs):
    text = render(compare_dirs(*two_runs), fmt="text")
    assert text.startswith(f"B - A, where\n  A = {two_runs[0]}\n  B = {two_runs[1]}\n")
    lines = {line.split()[1] + " " + line.split()[2]: line for line in text.splitlines()
             if line[:2] == " 2"}
    assert lines["fgsm ε=0.1"].endswith("paired *")  # [+4.87, +12.46]
    assert lines["test acc"].endswith("[-0.48, +4.48] 0.074 paired")  # holds 0: no star
    assert lines["test loss"].endswith("paired")  # no difference: no star
    assert "52.33  61.00   +8.67" in lines["fgsm ε=0.1"]  # percent, percentage points
    assert max(len(line) for line in text.splitlines()[3:]) <= 80


def test_csv_json_and_markdown_keep_what_papers_need(two_runs):
    result = compare_dirs(*two_runs)
    frame = pd.read_csv(io.StringIO(render(result, fmt="csv")))
    assert list(frame.columns[:3]) == ["a", "b", "model"] and "b_minus_a" in frame
    assert frame["b_minus_a"].tolist() == result.rows["b_minus_a"].tolist()
    data = json.loads(render(result, fmt="json"))
    assert data["convention"].startswith("b_minus_a") and data["confidence"] == 0.95
    assert [r["ci_low"] for r in data["rows"]] == result.rows["ci_low"].tolist()
    md = render(result, fmt="md")
    assert "| model | regime | dataset | epoch | measure |" in md
    assert "| mlp | standard | digits | 2 | fgsm ε=0.1 | 0,1,2 | 0,1,2 |" in md


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    return lambda *args: CliRunner().invoke(app, ["compare", *map(str, args)])


def test_cli_exit_codes_and_formats(cli, two_runs, regimes_run, tmp_path):
    ok = cli(*two_runs)
    assert ok.exit_code == 0 and "fgsm ε=0.1" in ok.stdout
    one = cli(regimes_run, "--a", "regime=standard", "-b", "regime=trades", "--format", "json")
    assert one.exit_code == 0 and json.loads(one.stdout)["b"].endswith("[regime=trades]")
    welch = cli(*two_runs, "--unpaired", "--format", "csv")
    assert welch.exit_code == 0 and set(pd.read_csv(io.StringIO(welch.stdout))["test"]) == {
        "welch"}
    cli(*two_runs, "--format", "md", "--out", tmp_path / "cmp.md")
    assert (tmp_path / "cmp.md").read_text().startswith(f"B - A, where B = {two_runs[1]} and")
    for args, message in [
        ((two_runs[0],), "comparing cells of one run needs --a and --b"),
        ((*two_runs, regimes_run), "compare takes one or two run directories; got 3"),
        ((*two_runs, "--format", "xlsx"), "use one of text, md, csv, json"),
        ((*two_runs, "--a", "colour=red"), "--a 'colour=red': write key=value with key one of"),
        ((two_runs[0], tmp_path / "nowhere"), "no results.sqlite here"),
    ]:
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert len(result.stderr.splitlines()) == 1 and message in result.stderr


def test_cli_refuses_runs_on_other_data_in_one_line(cli, two_runs, tmp_path):
    other = write_run(tmp_path / "c", [dict(model="mlp", regime="standard", seed=0,
                                            records=records(0.9, 0.5))], dataset="mnist")
    result = cli(two_runs[0], other)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"error: {two_runs[0]} and {other} share nothing to compare: "
                             "different data (A: digits; B: mnist)\n")


def test_epochs_of_a_real_digits_run(cli, write_suite, registry, tmp_path):
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    run_suite(load_suite(write_suite(seeds="[0, 1]"), registry), registry=registry,
              out_dir=tmp_path / "run", device="cpu")
    result = cli(tmp_path / "run", "--a", "epoch=1", "--b", "epoch=2", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert set(frame["test"]) == {"paired"} and "epoch" not in frame
    assert set(frame["attack"]) == {"fgsm", "none", "worst_linf"}
    assert set(frame["eps"]) == {0.0, 0.05, 0.2}
    with read_store(tmp_path / "run") as store:
        tidy = store.tidy()
    acc = tidy[(tidy.split == "test") & (tidy.attack == "none") & (tidy.metric == "accuracy")]
    by_epoch = acc.pivot(index="seed", columns="epoch", values="value")
    row = frame[(frame.split == "test") & (frame.attack == "none")
                & (frame.metric == "accuracy")].iloc[0]
    assert row["b_minus_a"] == pytest.approx((by_epoch[2] - by_epoch[1]).mean(), abs=1e-12)


# worst-case rows over different ensembles ---------------------------------------------------
AT_LAST_ATTACKS = [{"label": "fgsm", "name": "fgsm", "eps": [0.1], "split": "test", "params": {}},
                   {"label": "pgd", "name": "pgd", "eps": [0.1], "split": "test", "at": "last",
                    "params": {"steps": 10}}]


def at_last_records(clean, fgsm, pgd):
    """fgsm at both checkpoints, pgd at the last one (``at = "last"``)."""
    return [Rec(1, "test", "none", 0.0, "accuracy", clean * 0.9),
            Rec(1, "test", "fgsm", 0.1, "accuracy", fgsm * 0.8),
            Rec(1, "test", "worst_linf", 0.1, "accuracy", fgsm * 0.8),
            Rec(2, "test", "none", 0.0, "accuracy", clean),
            Rec(2, "test", "fgsm", 0.1, "accuracy", fgsm),
            Rec(2, "test", "pgd", 0.1, "accuracy", pgd),
            Rec(2, "test", "worst_linf", 0.1, "accuracy", min(fgsm, pgd) - 0.01)]


def test_worst_rows_over_different_attacks_are_noted_between_epochs(cli, tmp_path):
    run = write_run(tmp_path / "r", [dict(model="mlp", regime="standard", seed=s,
                                          records=at_last_records(*v, v[1] - 0.2),
                                          attacks=AT_LAST_ATTACKS)
                                     for s, v in A_VALUES.items()])
    tidy, facts = load(run)
    result = compare(a=tidy, b=tidy, a_run=str(run), a_where={"epoch": "1"},
                     b_where={"epoch": "2"}, a_facts=facts, b_facts=facts)
    assert "worst_linf" in set(result.rows["attack"])
    assert result.notes == ("worst_linf is over different attacks: fgsm (A) vs fgsm, pgd (B) "
                            "(mlp standard ε=0.1)",
                            "measurements in one side only, not compared: 0 in A, 1 in B")
    out = cli(run, "--a", "epoch=1", "--b", "epoch=2", "--format", "md")
    assert out.exit_code == 0, out.output
    assert "Note: worst_linf is over different attacks: fgsm (A) vs fgsm, pgd (B)" in out.stdout
    # the clean rows alone: nothing to note
    clean = compare(a=tidy, b=tidy, a_run=str(run), a_where={"epoch": "1", "attack": "none"},
                    b_where={"epoch": "2", "attack": "none"}, a_facts=facts, b_facts=facts)
    assert clean.notes == ()


def test_worst_rows_over_different_attacks_are_noted_between_runs(tmp_path):
    # both suites name fgsm and pgd, but only B ran pgd at epoch 1
    a = write_run(tmp_path / "x", [dict(model="mlp", regime="standard", seed=s,
                                        records=at_last_records(*v, v[1] - 0.2),
                                        attacks=AT_LAST_ATTACKS)
                                   for s, v in A_VALUES.items()])
    b = write_run(tmp_path / "y", [dict(model="mlp", regime="standard", seed=s,
                                        records=[*at_last_records(*v, v[1] - 0.2),
                                                 # above that epoch's worst (fgsm * 0.8):
                                                 # a worst case is at most every attack
                                                 Rec(1, "test", "pgd", 0.1, "accuracy", 0.5)],
                                        attacks=AT_LAST_ATTACKS)
                                   for s, v in B_VALUES.items()])
    result = compare_dirs(a, b)
    assert result.notes == ("worst_linf is over different attacks: fgsm (A) vs fgsm, pgd (B) "
                            "(mlp standard epoch 1 ε=0.1)",
                            "measurements in one side only, not compared: 0 in A, 1 in B")
    assert compare_dirs(a, a).notes == ()


def test_worst_rows_selected_on_both_sides_are_still_checked(tmp_path):
    run = write_run(tmp_path / "r", [dict(model="mlp", regime="standard", seed=s,
                                          records=at_last_records(*v, v[1] - 0.2),
                                          attacks=AT_LAST_ATTACKS)
                                     for s, v in A_VALUES.items()])
    tidy, facts = load(run)
    result = compare(a=tidy, b=tidy, a_run=str(run), a_where={"epoch": "1", "attack":
                                                             "worst_linf"},
                     b_where={"epoch": "2", "attack": "worst_linf"}, a_facts=facts,
                     b_facts=facts)
    assert len(result.rows) == 1
    assert result.notes == ("worst_linf is over different attacks: fgsm (A) vs fgsm, pgd (B) "
                            "(mlp standard ε=0.1)",)
