"""Verifiers in suites (issue 18): ``[[verifiers]]`` run at checkpoints beside the attacks, their
verdicts stored per example, ``certified_<norm>`` and ``exact_<norm>`` derived from them, a
proof that meets a counterexample failing its cell, and old suites and stores unchanged."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.data import DataCache
from benchbench.engine.runner import run_suite, validate_suite
from benchbench.errors import SuiteError
from benchbench.report.markdown import render_report
from benchbench.store.checkpoints import checkpoint_path, load_checkpoint
from benchbench.store.examples import read_examples
from benchbench.store.results import SCHEMA_VERSION, StoreDamagedError, open_store, read_store
from benchbench.store.verdicts import (
    SoundnessError,
    Verdict,
    contradiction,
    derived_rows,
    encode_codes,
    read_verdicts,
)
from benchbench.suite.cells import CellSpec
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.plugins import verifier_plugin

ROWS = 40
HEAD = """
[suite]
name = "{name}"
seeds = {seeds}

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [16]
{model_extra}
[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]
"""
ATTACKS = f"""
[[attacks]]
name = "fgsm"
eps = [0.01, 0.05]
rows = {ROWS}

[[attacks]]
name = "pgd"
eps = [0.01, 0.05]
rows = {ROWS}
steps = 10
"""
VERIFIERS = f"""
[[verifiers]]
name = "crown"
eps = [0.01, 0.05]
rows = {ROWS}

[[verifiers]]
name = "mip"
eps = [0.01, 0.05]
rows = {ROWS}
time_limit = 5
attack_steps = 30
at = "last"
"""


def suite_text(name="verified", seeds="[0, 1]", model_extra="", tail=ATTACKS + VERIFIERS):
    return HEAD.format(name=name, seeds=seeds, model_extra=model_extra) + tail


@pytest.fixture(scope="module")
def registry():
    return isolated_registry(verifier_plugin)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, registry):
    """The suite run as one stack of two seeds, and seed 1 again alone (a stack of one)."""
    root = tmp_path_factory.mktemp("verified")
    out = {}
    for key, seeds in (("stack", "[0, 1]"), ("alone", "[1]")):
        path = root / f"{key}.toml"
        path.write_text(suite_text(seeds=seeds))
        summary = run_suite(load_suite(path, registry), registry=registry, out_dir=root / key)
        assert not summary.failed, summary.failed
        out[key] = root / key
    return out


def _bits(store) -> dict:
    return {(b.cell_id, b.epoch, b.attack, b.eps): b.correct for b in read_examples(store)
            if b.split == "test"}


def _numbers(store) -> dict:
    tidy = store.tidy()
    return {(r.cell_id, r.epoch, r.attack, r.eps, r.metric): r.value
            for r in tidy.itertuples() if r.split == "test"}


def test_certified_exact_and_worst_are_what_the_verdicts_give_per_example(runs):
    """Recomputed here from the stored bits and verdicts with numpy (not the store's code):
    certified <= exact <= worst, per example and as numbers, and each stored row equals its
    count over the same 40 examples exactly (the same integers divided)."""
    with read_store(runs["stack"]) as store:
        bits, numbers = _bits(store), _numbers(store)
        verdicts = {(c, v.epoch, v.method, v.eps): v.codes for c, v in read_verdicts(store)}
        cells = [c["cell_id"] for c in store.cells()]
    assert len(cells) == 2 and len(verdicts) == 2 * (2 * 2 + 2)  # crown twice, mip at the last
    checked = 0
    for cell in cells:
        for epoch in (1, 2):
            clean = bits[(cell, epoch, "none", 0.0)][:ROWS]
            for eps in (0.01, 0.05):
                crown = verdicts[(cell, epoch, "crown", eps)]
                mip = verdicts.get((cell, epoch, "mip", eps))
                assert (epoch == 2) == (mip is not None)  # at = "last"
                unbroken = bits[(cell, epoch, "fgsm", eps)] & bits[(cell, epoch, "pgd", eps)]
                proved = (crown == 1) | (mip == 1 if mip is not None else False)
                assert not (crown == -1).any()  # an incomplete verifier never refutes
                assert not (proved & ~unbroken).any() and not (proved & ~clean).any()
                key = (cell, epoch)
                assert numbers[(*key, "crown", eps, "accuracy")] == (crown == 1).sum() / ROWS
                assert numbers[(*key, "certified_linf", eps, "accuracy")] == proved.sum() / ROWS
                assert numbers[(*key, "worst_linf", eps, "accuracy")] == unbroken.sum() / ROWS
                gap = numbers[(*key, "certified_linf", eps, "gap_frac")]
                assert gap == (unbroken & ~proved).sum() / ROWS
                if mip is None:
                    assert (*key, "exact_linf", eps, "accuracy") not in numbers
                    continue
                refuted = ~unbroken | (mip == -1) | ~clean
                assert not (proved & refuted).any()
                exact = numbers[(*key, "exact_linf", eps, "accuracy")]
                unknown = numbers[(*key, "exact_linf", eps, "unknown")]
                assert exact == (~refuted).sum() / ROWS
                assert unknown == (~proved & ~refuted).sum()
                assert numbers[(*key, "mip", eps, "unknown")] == (mip == 0).sum()
                certified = numbers[(*key, "certified_linf", eps, "accuracy")]
                worst = numbers[(*key, "worst_linf", eps, "accuracy")]
                assert certified <= exact <= worst
                # exact exceeds certified by the unknowns; rounding of two divisions by 40
                assert exact - certified == pytest.approx(unknown / ROWS, abs=1e-15)
                checked += 1
    assert checked == 4


def test_the_stored_verdicts_are_the_api_s_on_the_saved_checkpoint(runs, registry):
    """CROWN's stored codes at the last checkpoint equal ``benchbench.verify.verdicts`` on
    the checkpoint's weights and the test split's first 40 rows (the same float64 bounds)."""
    from benchbench import verify
    from benchbench.engine.cell import build_model

    with read_store(runs["stack"]) as store:
        cell = store.cells()[1]
        stored = {v.eps: v.codes for _, v in read_verdicts(store, cell_id=cell["cell_id"])
                  if v.method == "crown" and v.epoch == 2}
    spec = CellSpec.from_json(cell["spec"])
    data = DataCache(registry, None)
    model = build_model(registry, spec.model, spec.seed, data.dataset(spec.dataset))
    load_checkpoint(checkpoint_path(runs["stack"] / "checkpoints", spec.cell_id, 2), model)
    x, y = data.get(spec.dataset, "test", dtype=torch.float32, device="cpu")
    codes = verify.verdicts(model, x[:ROWS], y[:ROWS], eps=[0.01, 0.05], method="crown")
    assert np.array_equal(codes[0].numpy(), stored[0.01])
    assert np.array_equal(codes[1].numpy(), stored[0.05])


def test_a_stack_verifies_member_by_member_as_each_cell_alone(runs):
    """Seed 1 of the two-seed stack stores the verdicts and numbers of seed 1 alone."""
    with read_store(runs["stack"]) as a, read_store(runs["alone"]) as b:
        (cell,) = [c["cell_id"] for c in b.cells()]
        mine = sorted((v.epoch, v.method, v.eps, v.robust, v.not_robust)
                      for _, v in read_verdicts(a, cell_id=cell))
        alone = sorted((v.epoch, v.method, v.eps, v.robust, v.not_robust)
                       for _, v in read_verdicts(b))
        assert mine == alone and len(mine) == 6
        pick = ("crown", "mip", "certified_linf", "exact_linf")
        assert ({k: v for k, v in _numbers(a).items() if k[0] == cell and k[2] in pick}
                == {k: v for k, v in _numbers(b).items() if k[2] in pick})


def test_the_report_names_what_each_row_proves(runs):
    with read_store(runs["stack"]) as store:
        text = render_report(store)
    assert "Proved robust by `crown` (crown: norm=linf, tol=1e-05) on the test split's first " \
           "40 rows:" in text
    assert "time_limit=5" in text and "at the last checkpoint only" in text
    assert "Certified L∞ robust accuracy (`certified_linf`" in text
    assert "Exact L∞ robust accuracy (`exact_linf`" in text
    # after the attacks and the worst case, in the suite's order
    at = [text.index(s) for s in ("under `fgsm`", "under `pgd`", "(`worst_linf`",
                                  "by `crown`", "by `mip`", "(`certified_linf`", "(`exact_linf`")]
    assert at == sorted(at)


def test_a_proof_of_an_example_an_attack_broke_fails_its_cell_naming_both(tmp_path, registry):
    """The planted contradiction: a verifier that "proves" everything, beside FGSM at an eps
    that breaks examples. Every cell fails, saying which verifier and which attack; none of its
    numbers is stored."""
    path = tmp_path / "liar.toml"
    path.write_text(suite_text(name="liar", tail=f"""
[[attacks]]
name = "fgsm"
eps = [0.1]

[[verifiers]]
name = "proves_everything"
label = "liar"
eps = [0.1]
rows = {ROWS}
"""))
    summary = run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "out")
    assert len(summary.failed) == 2 and not summary.ran
    for error in summary.failed.values():
        assert error.startswith("SoundnessError: soundness bug: verifier liar proved test "
                                "example ")
        assert "robust at eps=0.1 (linf, epoch 1), but attack fgsm refuted it at eps=0.1" in error
    with read_store(tmp_path / "out") as store:
        assert store.count_results() == 0 and read_verdicts(store) == []
        assert {c["status"] for c in store.cells()} == {"failed"}
        assert "soundness bug" in render_report(store)


def _records(proved_first: bool, broken_first: bool):
    from benchbench.engine.evaluate import Record, packed_correct

    codes = torch.tensor([1 if proved_first else 0, 1, 0, 0], dtype=torch.int8)
    correct = torch.tensor([not broken_first, True, True, False])
    clean = torch.tensor([True, True, True, True])
    return [Record(1, "test", "none", 0.0, "accuracy", 1.0),
            Record(1, "test", "none", 0.0, "correct", packed_correct(clean)),
            Record(1, "test", "fgsm", 0.1, "accuracy", float(correct.sum()) / 4),
            Record(1, "test", "fgsm", 0.1, "correct", packed_correct(correct)),
            Record(1, "test", "crown", 0.1, "accuracy", float((codes == 1).sum()) / 4),
            Record(1, "test", "crown", 0.1, "verdicts", encode_codes(codes))]


def test_the_store_refuses_a_proof_that_meets_a_counterexample(tmp_path):
    """If a contradiction reached the store it is refused and nothing of the unit is kept."""
    with open_store(tmp_path / "results.sqlite") as store:
        store.set_meta(attack_norms='{"fgsm": "linf"}',
                       verifier_capabilities='{"crown": {"norm": "linf", "complete": false}}')
        store.add_cell(cell_id="fine", records=_records(True, False), status="ok", spec="{}")
        with pytest.raises(SoundnessError, match="verifier crown proved test example 0 robust "
                           "at eps=0.1 .* but attack fgsm refuted it"):
            store.add_cell(cell_id="bad", records=_records(True, True), status="ok", spec="{}")
        assert store.done_cells() == {"fine"}
        rows = {(a, m): v for a, m, v in store.conn.execute(
            "SELECT attack, metric, value FROM results WHERE cell_id = 'fine'")}
    assert rows[("certified_linf", "accuracy")] == 0.5
    assert rows[("certified_linf", "gap_frac")] == 0.25  # example 2: unbroken, unproved


@pytest.mark.parametrize(("edit", "says"), [
    ("UPDATE results SET value = value + 0.025 WHERE attack = 'certified_linf' AND "
     "metric = 'accuracy'", "certified_linf eps=0.01 accuracy is"),
    ("UPDATE results SET value = value + 1 WHERE attack = 'exact_linf' AND metric = 'unknown'",
     "exact_linf eps=0.01 unknown is"),
    ("DELETE FROM results WHERE attack = 'exact_linf' AND metric = 'accuracy'",
     "but its stored verdicts give"),
    ("UPDATE results SET value = 0 WHERE attack = 'crown'", "crown eps=0.01 accuracy is 0.0"),
    ("UPDATE verdicts SET robust = X'00' WHERE method = 'mip'", "verdicts are malformed"),
])
def test_an_edited_verdict_or_derived_row_is_refused(runs, tmp_path, edit, says):
    shutil.copy(runs["stack"] / "results.sqlite", tmp_path / "results.sqlite")
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    with conn:
        conn.execute(edit)
    conn.close()
    with pytest.raises(StoreDamagedError, match=says):
        read_store(tmp_path)


def test_a_flipped_verdict_that_contradicts_an_attack_is_named(runs, tmp_path):
    """Every example crown leaves unproved at the last checkpoint's eps 0.05 'proved': one of
    them an attack broke, so the store says which."""
    shutil.copy(runs["stack"] / "results.sqlite", tmp_path / "results.sqlite")
    conn = sqlite3.connect(tmp_path / "results.sqlite")
    with conn:
        conn.execute("UPDATE verdicts SET robust = X'FFFFFFFFFF' WHERE method = 'crown'")
    conn.close()
    with pytest.raises(StoreDamagedError, match="soundness bug: verifier crown proved test "
                       "example [0-9]+ robust at eps=0.01 .* but (attack|the clean pass)"):
        read_store(tmp_path)


def _cli():
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_a_model_a_verifier_cannot_bound_is_refused_before_the_run(tmp_path, monkeypatch):
    """An MLP with tanh under CROWN: ``validate`` and ``run`` refuse it in one line naming the
    key and the layer; ``run`` writes nothing."""
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    path = tmp_path / "tanh.toml"
    path.write_text(suite_text(name="tanh", model_extra='activation = "tanh"\n'))
    cli = _cli()
    for args in (("validate", path), ("run", path, "--out", tmp_path / "out")):
        result = cli(*args)
        assert result.exit_code == 2, result.output
        line = result.output.strip()
        assert "\n" not in line
        assert f"{path}: verifiers[0]: crown cannot bound layer 2 (Tanh); supported: Linear," \
               in line and "(in model 'mlp')" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("tail", "key", "says"), [
    ('[[verifiers]]\nname = "crown"\nlabel = "fgsm"\neps = 0.01\n', "verifiers[0].label",
     "'fgsm' is already used by attacks[0]"),
    ('[[verifiers]]\nname = "crown"\nlabel = "certified_x"\neps = 0.01\n',
     "verifiers[0].label", "is reserved"),
    ('[[verifiers]]\nname = "crown"\nlabel = "none"\neps = 0.01\n', "verifiers[0].label",
     "is reserved"),
    ('[[verifiers]]\nname = "crown"\neps = 0.01\nsteps = 3\n', "verifiers[0].steps",
     "unknown parameter for verifier 'crown'; allowed: norm, tol"),
    ('[[verifiers]]\nname = "crown"\neps = 2.0\n', "verifiers[0].eps",
     "eps 2 is larger than any L-inf step"),
    ('[[verifiers]]\nname = "crown"\neps = 0.1\nrows = 0\n', "verifiers[0].rows",
     "an integer from 1 to 10,000,000"),
    ('[[verifiers]]\nname = "crown"\neps = 0.1\nat = "first"\n', "verifiers[0].at",
     "one of all, last"),
    ('[[verifiers]]\nname = "crow"\neps = 0.1\n', "verifiers[0].name",
     "did you mean 'crown'"),
])
def test_bad_verifier_tables_are_refused_naming_the_key(tmp_path, registry, tail, key, says):
    path = tmp_path / "bad.toml"
    path.write_text(suite_text(name="bad", tail='[[attacks]]\nname = "fgsm"\neps = 0.01\n'
                               + tail))
    with pytest.raises(SuiteError) as info:
        load_suite(path, registry)
    assert info.value.key == key and says in info.value.problem


def test_an_attack_may_not_take_a_derived_row_s_name(tmp_path, registry):
    path = tmp_path / "bad.toml"
    path.write_text(suite_text(name="bad", tail='[[attacks]]\nname = "fgsm"\n'
                               'label = "exact_fgsm"\neps = 0.01\n'))
    with pytest.raises(SuiteError, match=r"attacks\[0\]\.label: 'exact_fgsm' starts with a "
                       "prefix reserved"):
        load_suite(path, registry)


@pytest.mark.parametrize(("tail", "says"), [
    ('[[verifiers]]\nname = "unsound"\neps = 0.01\n',
     "verifier 'unsound' does not declare sound = True"),
    ('[[verifiers]]\nname = "mip"\neps = 0.01\nnorm = "l2"\n',
     "norm must be linf (the MILP encodes an L-inf box); got 'l2'"),
])
def test_a_verifier_that_cannot_certify_is_refused_at_validation(tmp_path, registry, tail,
                                                                 says):
    path = tmp_path / "bad.toml"
    path.write_text(suite_text(name="bad", tail=tail))
    with pytest.raises(SuiteError) as info:
        validate_suite(load_suite(path, registry), registry)
    assert info.value.key == "verifiers[0]" and says in info.value.problem


# cell ids of suites without verifiers, computed by commit 0eec546's code (before verifiers)
PINNED = {"suites/quick_digits.toml": ("c703f68c148a48c7",
                                       ["76a30a2c887fa8ab", "9749ad983a79e370"])}
PLAIN = ("03ee2755bc3253e4", ["5426b0601ce8327e", "622e8be8bf1c317f"])


def test_suites_without_verifiers_keep_their_cell_ids(tmp_path, registry):
    root = Path(__file__).parent.parent
    for name, (digest, ids) in PINNED.items():
        suite = load_suite(root / name, registry)
        assert (suite.hash, [c.cell_id for c in suite.cells()]) == (digest, ids)
    text = (Path(__file__).parent / "fixtures" / "store_v3" / "store_v3.toml").read_text()
    path = tmp_path / "plain.toml"
    path.write_text(text.replace('name = "store_v3"', 'name = "plain"'))
    suite = load_suite(path, registry)
    assert (suite.hash, [c.cell_id for c in suite.cells()]) == PLAIN
    assert all("verifiers" not in c.to_dict() for c in suite.cells())
    path.write_text(path.read_text() + '\n[[verifiers]]\nname = "crown"\neps = 0.01\n')
    verified = load_suite(path, registry)
    assert not {c.cell_id for c in verified.cells()} & set(PLAIN[1])  # other cells
    cell = verified.cells()[0]
    assert CellSpec.from_json(cell.to_json()) == cell


def test_a_version_3_store_reads_and_run_migrates_it(tmp_path, registry):
    """The committed store of commit 0eec546 (schema 3, seed 0 only) reads and reports as it
    is; ``run`` migrates it to schema 4 (an empty verdicts table) and measures seed 1."""
    fixture = Path(__file__).parent / "fixtures" / "store_v3"
    (tmp_path / "run").mkdir()
    shutil.copy(fixture / "results.sqlite", tmp_path / "run" / "results.sqlite")
    with read_store(tmp_path / "run") as store:
        assert store.meta()["schema_version"] == "3" and read_verdicts(store) == []
        before = store.tidy()
        assert "worst_linf" in set(before.attack) and "Certified" not in render_report(store)
    suite = load_suite(fixture / "store_v3.toml", registry)
    summary = run_suite(suite, registry=registry, out_dir=tmp_path / "run")
    assert len(summary.ran) == 1 and len(summary.skipped) == 1 and not summary.failed
    with read_store(tmp_path / "run") as store:
        assert store.meta()["schema_version"] == str(SCHEMA_VERSION) == "4"
        assert store.conn.execute("SELECT COUNT(*) FROM verdicts").fetchone() == (0,)
        after = store.tidy()
    kept = after[after.cell_id.isin(set(before.cell_id))].reset_index(drop=True)
    assert kept[["attack", "eps", "metric", "value"]].equals(
        before[["attack", "eps", "metric", "value"]].reset_index(drop=True))


def _verdict(method, eps, robust, broken, n=8, epoch=1):
    def pack(bits):
        return np.packbits(np.array(bits + [0] * (n - len(bits)), dtype=bool)).tobytes()

    return Verdict(epoch, "test", method, eps, n, pack(robust), pack(broken))


def _correct(attack, eps, wrong, n=8):
    bits = np.ones(n, dtype=bool)
    bits[list(wrong)] = False
    return (1, "test", attack, eps, n, np.packbits(bits).tobytes())


CAPS = {"crown": {"norm": "linf", "complete": False}, "mip": {"norm": "linf", "complete": True},
        "crown2": {"norm": "l2", "complete": False}}
NORMS = {"fgsm": "linf", "pgd2": "l2"}


def test_a_proof_at_a_larger_eps_covers_every_smaller_ball():
    """Proved at eps 0.1, broken at 0.05 (a ball inside): a contradiction. An L2 attack against
    an L-inf proof, or a larger eps, is none; a complete verifier's counterexample is one."""
    proof = [_verdict("crown", 0.1, [1, 1], [])]
    assert "attack fgsm refuted it at eps=0.05" in contradiction(
        [_correct("fgsm", 0.05, [1])], proof, NORMS, CAPS)
    assert contradiction([_correct("pgd2", 0.05, [1]), _correct("fgsm", 0.2, [0, 1])],
                         proof, NORMS, CAPS) is None
    assert "verifier mip refuted it" in contradiction(
        [], [*proof, _verdict("mip", 0.1, [], [0, 1])], NORMS, CAPS)
    assert "example 1 robust" in contradiction([(1, "test", "none", 0.0, 8, b"\xbf")], proof,
                                               NORMS, CAPS)  # the clean pass misclassifies 1


def test_derived_rows_over_the_examples_every_side_saw():
    """crown on 8 examples, mip and fgsm on the first 4: certified over the first 4 both
    verifiers saw (crown's proofs of examples 4 and 5 do not count), exact over 4 (examples 1
    and 2 undecided, 3 refuted by fgsm), the gap over 4 (1 and 2)."""
    rows = derived_rows([_correct("fgsm", 0.1, [3], n=4), (1, "test", "none", 0.0, 8, b"\xff")],
                        [_verdict("crown", 0.1, [1, 0, 0, 0, 1, 1], []),
                         _verdict("mip", 0.1, [1, 0, 0, 0], [0, 0, 0, 0], n=4)],
                        NORMS, CAPS)
    got = {(a, m): v for _, _, a, _, m, v in rows}
    assert got == {("certified_linf", "accuracy"): 1 / 4, ("certified_linf", "gap_frac"): 2 / 4,
                   ("exact_linf", "accuracy"): 3 / 4, ("exact_linf", "unknown"): 2.0}


def test_compare_takes_certified_and_its_gap_like_any_row(runs):
    """Two runs' certified, gap and exact rows are compared as numbers; certified rows whose
    runs had other verifiers of the norm are noted."""
    from benchbench.report.compare import compare, run_facts

    sides = []
    for key in ("stack", "alone"):
        with read_store(runs[key]) as store:
            sides.append((store.tidy(), run_facts(meta=store.meta(), cells=store.cells())))
    (a, a_facts), (b, b_facts) = sides
    result = compare(a=a, b=b, a_run="stack", b_run="alone", a_facts=a_facts, b_facts=b_facts)
    rows = result.rows.set_index(["attack", "epoch", "eps", "metric"])
    for key in [("certified_linf", 2, 0.05, "accuracy"), ("certified_linf", 2, 0.05, "gap_frac"),
                ("exact_linf", 2, 0.05, "unknown"), ("crown", 1, 0.01, "accuracy")]:
        row = rows.loc[key]
        assert (row["n_a"], row["n_b"]) == (2, 1) and row["mean_a"] == pytest.approx(
            a[(a.attack == key[0]) & (a.epoch == key[1]) & (a.eps == key[2])
              & (a.metric == key[3])].value.mean(), abs=0)
    assert not any("different verifiers" in n for n in result.notes)
    del b_facts["verifier"]["mip"]
    result = compare(a=a, b=b, a_run="stack", b_run="alone", a_facts=a_facts, b_facts=b_facts)
    assert "certified_linf is over different verifiers: crown, mip (A) vs crown (B)" in \
        result.notes
    order = list(dict.fromkeys(result.rows["attack"]))
    assert order.index("worst_linf") < order.index("certified_linf") < order.index("exact_linf")


def test_a_large_gap_is_flagged(runs):
    """"G" where the worst case is over 10 points above certified (gap_frac, mean over seeds),
    read from the stored rows; the attack flags never read a verifier's rows."""
    import pandas as pd

    from benchbench.report.flags import LEGEND, flags_by_epoch, stored_attack_info
    from benchbench.report.verdicts import GAP_LARGE, verifier_info

    with read_store(runs["stack"]) as store:
        tidy, meta, cells = store.tidy(), store.meta(), store.cells()
    info, verifiers = stored_attack_info(meta, cells), verifier_info(cells, meta)
    assert set(verifiers) == {"crown", "mip"} and verifiers["mip"]["complete"]
    gaps = tidy[tidy.metric == "gap_frac"].groupby(["epoch", "eps"]).value.mean()
    flags = flags_by_epoch(tidy, info, chance=0.1, span=1.0, verifiers=verifiers)
    for epoch in (1, 2):
        assert ("G" in flags[epoch]) == bool((gaps.loc[epoch] > GAP_LARGE).any())
    assert "10 points" in LEGEND["G"]
    # a verifier whose certified accuracy rose with eps is no attack: no "M"
    fake = tidy[tidy.attack == "crown"].copy()
    fake["value"] = fake["eps"] * 10
    edited = pd.concat([tidy[tidy.attack != "crown"], fake])
    flagged = flags_by_epoch(edited, info, chance=0.1, span=1.0, verifiers=verifiers)
    assert all("M" not in f for f in flagged.values())
    assert all("M" in f for f in flags_by_epoch(edited, info, chance=0.1, span=1.0).values())


def test_the_readme_s_verifiers_table_is_a_valid_suite_table(tmp_path, registry):
    """README "Verifiers in suites": its ``[[verifiers]]`` example loads, with the keys it says."""
    from tests.test_docs import code_blocks, section

    text = section("Verifiers in suites")
    assert text is not None, "README.md lost its 'Verifiers in suites' section"
    [block] = code_blocks("toml", text)
    path = tmp_path / "readme.toml"
    path.write_text(suite_text(name="readme", tail=block))
    (ref,) = load_suite(path, registry).verifiers
    assert (ref.name, ref.label, ref.eps, ref.rows, ref.at) == ("crown", "crown", (0.01, 0.02),
                                                                500, "last")
    assert ref.params == {"norm": "linf", "tol": 1e-5}


def test_a_leaderboard_entry_carries_certified_and_its_gap(runs, tmp_path):
    """The entry's ``certified`` is the stored certified_linf rows at its eps and checkpoint,
    per seed, with the gap; the board shows both columns; a run without verifiers has neither
    (no ``certified``, no columns)."""
    import json

    from benchbench.leaderboard.build import build_leaderboard
    from benchbench.leaderboard.validate import check_entry

    build_leaderboard(runs=[runs["stack"]], out=tmp_path / "board", eps=0.05, norm="linf")
    (path,) = (tmp_path / "board" / "entries").glob("*.json")
    entry = check_entry(json.loads(path.read_text()), where=path)
    with read_store(runs["stack"]) as store:
        tidy = store.tidy()
    here = tidy[(tidy.attack == "certified_linf") & (tidy.eps == 0.05) & (tidy.epoch == 2)]
    certified = entry["certified"]
    assert certified["values"] == here[here.metric == "accuracy"].sort_values("seed").value \
        .tolist()
    assert certified["gap"]["values"] == here[here.metric == "gap_frac"].sort_values("seed") \
        .value.tolist()
    assert certified["verifiers"] == ["crown", "mip"]
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| clean | ± | certified | gap |" in board
    assert ">Certified</button>" in (tmp_path / "board" / "index.html").read_text()

    plain = tmp_path / "plain.toml"
    plain.write_text(suite_text(name="plain", seeds="[0]", tail=ATTACKS))
    reg = isolated_registry()
    run_suite(load_suite(plain, reg), registry=reg, out_dir=tmp_path / "plain")
    build_leaderboard(runs=[tmp_path / "plain"], out=tmp_path / "board2", eps=0.05, norm="linf")
    (path,) = (tmp_path / "board2" / "entries").glob("*.json")
    assert "certified" not in json.loads(path.read_text())
    assert "certified" not in (tmp_path / "board2" / "leaderboard.md").read_text()
    assert ">Certified</button>" not in (tmp_path / "board2" / "index.html").read_text()


def test_an_interrupted_run_resumes_with_its_verdicts(runs, tmp_path, registry):
    """Stopped after the first checkpoint, the run resumes from its resume file (whose records
    hold that checkpoint's verdicts, checked like every record) and stores what the
    uninterrupted run stored, bit for bit."""
    from tests.test_resume import Epochs

    path = tmp_path / "verified.toml"
    path.write_text(suite_text())
    suite = load_suite(path, registry)
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, registry=registry, out_dir=tmp_path / "out", events=Epochs(stop=2))
    events = Epochs()
    run_suite(suite, registry=registry, out_dir=tmp_path / "out", events=events)
    assert events.seen == [2]  # resumed after epoch 1, not started over
    with read_store(tmp_path / "out") as a, read_store(runs["stack"]) as b:
        def key(item):
            return (item[0], item[1].epoch, item[1].method, item[1].eps)

        assert sorted(read_verdicts(a), key=key) == sorted(read_verdicts(b), key=key)
        assert _numbers(a) == _numbers(b)
