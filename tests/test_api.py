"""The Python API (issue 17): ``benchbench.evaluate`` equals a suite's numbers exactly, its
table and per-example verdicts agree, verifiers add certified rows, bad input is one line;
``benchbench.run``/``load``/``load_model``; the README's "Python API" example runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import benchbench
from benchbench.datasets.digits import Digits
from benchbench.errors import (
    ArgumentError,
    BenchbenchError,
    RunDirError,
    SuiteError,
    VerifierError,
)
from benchbench.testing import isolated_registry, tiny_model
from benchbench.verify import ROBUST, UNKNOWN
from benchbench.verify.verifiers import Verdicts

ROOT = Path(__file__).parents[1]

SUITE = """
[suite]
name = "api"
seeds = [3]

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
epochs = 2
checkpoints = [1, 2]
dtype = "float32"

[[attacks]]
name = "fgsm"
eps = [0.05, 0.2]

[[attacks]]
name = "pgd"
eps = [0.1, 0.2]
steps = 3

[[attacks]]
name = "pgd"
label = "pgd_l2"
norm = "l2"
eps = [0.5]
steps = 2
rows = 100
"""


@pytest.fixture(scope="module")
def registry():
    return isolated_registry()


@pytest.fixture(scope="module")
def test_split():
    """The digits test split as a suite's cell holds it (float64 from the dataset, float32
    by ``evaluate``: the dtype of the model)."""
    return Digits().load("test")


@pytest.fixture(scope="module")
def suite_run(tmp_path_factory, registry):
    """One seed (3), two checkpoints, three attacks (PGD's random start draws from torch's
    RNG, so the seeding is tested), run through ``benchbench.run`` alone (``--engine
    sequential``: the model's own module, the path ``evaluate`` takes)."""
    root = tmp_path_factory.mktemp("api")
    (root / "api.toml").write_text(SUITE)
    summary = benchbench.run(root / "api.toml", out=root / "run", engine="sequential",
                             registry=registry)
    return summary


def numbers(frame) -> dict:
    return {(a, float(e), m): v for a, e, m, v in
            frame[["attack", "eps", "metric", "value"]].itertuples(index=False)}


def test_evaluate_equals_the_suite_run_exactly(suite_run, registry, test_split):
    from benchbench.store.examples import read_examples
    from benchbench.store.results import read_store

    assert suite_run.run_dir.name == "run" and len(suite_run.ran) == 1 and not suite_run.failed
    stored = benchbench.load(suite_run.run_dir)
    with read_store(suite_run.run_dir) as store:
        bits = read_examples(store)
    attacks = tomllib.loads(SUITE)["attacks"]  # the suite's own tables, as they are
    x, y = test_split
    for epoch in (1, 2):
        model = benchbench.load_model(suite_run.run_dir, epoch=epoch, registry=registry)
        assert {p.dtype for p in model.parameters()} == {torch.float32} and not model.training
        got = benchbench.evaluate(model, x, y, attacks=attacks, seed=3, epoch=epoch,
                                  registry=registry)
        rows = stored[(stored.split == "test") & (stored.epoch == epoch)
                      & stored.metric.isin(["accuracy", "loss"])]
        want = numbers(rows)
        assert {k[0] for k in want} == {"none", "fgsm", "pgd", "pgd_l2", "worst_linf",
                                        "worst_l2"}
        assert numbers(got.table) == want  # every number, bit for bit (accuracies and loss)
        for b in bits:  # and every example's bit, clean and under each attack
            if b.split == "test" and b.epoch == epoch:
                codes = got.examples[(b.attack, b.eps)].to_numpy()[:b.n]
                assert ((codes >= 0) == b.correct).all(), (b.attack, b.eps)
    other = benchbench.evaluate(model, x, y, attacks=attacks, seed=3, epoch=1,
                                registry=registry)  # epoch 2's model, epoch 1's seeding
    assert numbers(other.table)[("fgsm", 0.05, "accuracy")] == numbers(got.table)[
        ("fgsm", 0.05, "accuracy")]  # FGSM draws nothing


def test_load_is_the_csv_export(suite_run):
    from benchbench.report.export import export_results
    from benchbench.store.results import read_store

    frame = benchbench.load(suite_run.run_dir)
    with read_store(suite_run.run_dir) as store:
        text = export_results(store, fmt="csv")
    assert frame.to_csv(index=False) == text
    assert list(frame.columns) == text.splitlines()[0].split(",")


def test_run_again_does_nothing_and_bad_suites_fail_in_one_line(suite_run, registry,
                                                                 tmp_path):
    again = benchbench.run(suite_run.run_dir.parent / "api.toml", out=suite_run.run_dir,
                           engine="sequential", registry=registry)
    assert again.ran == [] and again.skipped == suite_run.ran
    bad = tmp_path / "bad.toml"
    bad.write_text(SUITE.replace('name = "fgsm"', 'name = "fgsn"'))
    with pytest.raises(SuiteError, match=r"attacks\[0\]\.name: unknown attack 'fgsn'; did you "
                       "mean 'fgsm'") as info:
        benchbench.run(bad, out=tmp_path / "never", registry=registry)
    assert "\n" not in str(info.value) and not (tmp_path / "never").exists()
    with pytest.raises(RunDirError, match="no results.sqlite here"):
        benchbench.load(tmp_path)
    with pytest.raises(ArgumentError, match=r"epoch 7: cell .* has checkpoints at epochs 1, 2"):
        benchbench.load_model(suite_run.run_dir, epoch=7, registry=registry)
    with pytest.raises(ArgumentError, match="no stored cell matches .*seed=3"):
        benchbench.load_model(suite_run.run_dir, seed=0, registry=registry)


def test_run_update_keeps_the_cells_both_versions_have(suite_run, registry, tmp_path):
    """``benchbench.run(..., update=True)`` is ``run --update``: a suite that gained a seed
    keeps the stored cell (skipped, its numbers unchanged) and runs only the new one; without
    ``update`` the changed suite is refused."""
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(suite_run.run_dir, out)
    grown = tmp_path / "api.toml"
    grown.write_text(SUITE.replace("seeds = [3]", "seeds = [3, 4]"))
    with pytest.raises(BenchbenchError, match="--update"):
        benchbench.run(grown, out=out, engine="sequential", registry=registry)
    before = benchbench.load(out)
    summary = benchbench.run(grown, out=out, engine="sequential", update=True,
                             registry=registry)
    assert summary.skipped == suite_run.ran and len(summary.ran) == 1
    after = benchbench.load(out)
    assert sorted(after.seed.unique()) == [3, 4]
    kept = after[after.seed == 3].reset_index(drop=True)
    assert kept.value.equals(before.value.reset_index(drop=True))
    with pytest.raises(ArgumentError, match="update must be True or False"):
        benchbench.run(grown, out=out, update="yes", registry=registry)


@pytest.fixture(scope="module")
def small():
    x, y = Digits().load("test")
    return tiny_model(), x[:120].float(), y[:120]


def test_table_examples_and_verifiers_agree(small, registry):
    model, x, y = small
    got = benchbench.evaluate(
        model, x, y, eps=[0.02, 0.05], registry=registry, verifiers=["crown", {"name": "ibp"}],
        attacks=["fgsm", ("pgd", {"steps": 5}),
                 {"name": "pgd", "label": "pgd_l2", "norm": "l2", "eps": 0.5, "rows": 50}])
    table, ex = got.table, got.examples
    assert list(table.columns) == ["attack", "norm", "eps", "metric", "value", "n"]
    assert repr(got) == repr(table) and "<table" in got._repr_html_()
    assert ex.index.name == "example" and len(ex) == len(x)
    assert ex.columns.names == ["attack", "eps"] and all(d == "Int8" for d in ex.dtypes)
    for a, _, e, metric, value, n in table.itertuples(index=False):
        if metric != "accuracy":
            continue
        codes = ex[(a, e)]
        assert codes.notna().sum() == n and codes[n:].isna().all()
        hit = (codes[:n] == ROBUST) if a.startswith("certified_") else (codes[:n] >= 0)
        assert value == int(hit.sum()) / n, (a, e)  # the table is the verdicts' count
    for e in (0.02, 0.05):
        broken = (ex[("fgsm", e)] < 0) | (ex[("pgd", e)] < 0)
        assert ((ex[("worst_linf", e)] < 0) == broken).all()
        crown = benchbench.verify(model, x, y, eps=[e], method="crown")[0].numpy()
        assert (ex[("certified_crown", e)].to_numpy() == np.where(crown, ROBUST, UNKNOWN)).all()
        assert not (crown & broken.to_numpy()).any()  # proved examples are never broken
    assert table.set_index(["attack", "eps"]).loc[("worst_l2", 0.5), "n"] == 50
    assert set(ex[("none", 0.0)]) <= {-1, 1}  # clean: correct is proved at eps 0


def test_a_proof_an_attack_contradicts_is_an_error(small):
    class Liar:
        """Proves everything (and says it is sound)."""

        sound, complete, norm = True, False, "linf"
        layers = ("Linear", "ReLU", "Flatten")

        def verify(self, model, x, y, *, eps, bounds):
            return Verdicts(torch.ones(len(x), dtype=torch.int8))

    plugin = types.ModuleType("liar_plugin")
    plugin.register_verifiers = benchbench.hookimpl(lambda register: register("liar", Liar))
    model, x, y = small
    with pytest.raises(VerifierError, match=r"verifier 'liar' proved \d+ example\(s\) robust at "
                       "eps 0.05 that the clean model misclassified"):
        benchbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.05], verifiers=["liar"],
                            registry=isolated_registry(plugin))


def test_the_model_rng_and_inputs_are_left_as_they_were(small, registry):
    model, x, y = small
    model.train()
    before, x0 = torch.get_rng_state(), x.clone()
    runs = [benchbench.evaluate(model, x, y, attacks=[("pgd", {"steps": 5})], eps=[0.1], seed=5,
                                registry=registry) for _ in range(2)]
    assert model.training and torch.equal(torch.get_rng_state(), before) and torch.equal(x, x0)
    assert runs[0].table.equals(runs[1].table) and runs[0].examples.equals(runs[1].examples)
    model.eval()


def eleven(y):
    return torch.where(torch.arange(len(y)) == 0, 0, 11)


BAD = [  # (the change to a good call's arguments, the one-line message it must give)
    (dict(attacks=["fgsn"]), r"attacks\[0\]\.name: unknown attack 'fgsn'; did you mean 'fgsm'"),
    (dict(eps=[1.5]), r"eps \(for attacks\[0\], attack 'fgsm'\): eps 1.5 is larger than any "
     r"L-inf step inside the bounds \[0, 1\]; use eps <= 1"),
    (dict(attacks=[{"name": "pgd", "norm": "l2", "eps": 9}]), r"attacks\[0\]\.eps: eps 9 is "
     r"larger than any L2 step inside the bounds \[0, 1\]; use eps <= 8"),
    (dict(eps=[-0.1]), r"eps .*: a finite number >= 0"),
    (dict(attacks=[{"name": "pgd", "eps": [0.1, 0.1]}]), r"attacks\[0\]\.eps: eps 0.1 is listed "
     "twice"),
    (dict(eps=None), r"attacks\[0\]\.eps: attack 'fgsm' has no eps: pass eps=\[...\]"),
    (dict(y=lambda y: y[:9]), r"x, y: 10 inputs but 9 labels"),
    (dict(bounds=(1, 0)), r"bounds: the data range \(lo, hi\)"),
    (dict(bounds=(0, float("nan"))), r"bounds: the data range"),
    (dict(bounds=(0.0, 0.5)), r"x: lies outside the bounds \[0, 0.5\]"),
    (dict(attacks=[("pgd", {"stpes": 3})]), r"attacks\[0\]\.stpes: unknown parameter for attack "
     "'pgd'; allowed: norm, steps"),
    (dict(attacks=[("pgd", {"steps": 0})]), r"attacks\[0\]: attack 'pgd': steps must be a "
     "positive integer"),
    (dict(attacks=("pgd", {"steps": 3})), r"attacks\[1\]\.name: required, .* a \(name, params\) "
     "pair goes inside the list"),
    (dict(attacks=["fgsm", "fgsm"]), r"attacks\[1\]\.label: 'fgsm' is already used"),
    (dict(attacks=[{"name": "fgsm", "label": "worst_linf"}]), r"'worst_linf' is reserved"),
    (dict(attacks=[{"name": "fgsm", "split": "val"}]), r"attacks\[0\]\.split: one of train, test"),
    (dict(attacks=[{"name": "fgsm", "rows": 0}]), r"attacks\[0\]\.rows: the number of first rows"),
    (dict(attacks=[42]), r"attacks\[0\]: must be a registered name"),
    (dict(attacks=[]), r"attacks: nothing to measure"),
    (dict(verifiers=["crwn"]), r"verifiers\[0\]\.name: unknown verifier 'crwn'; did you mean "
     "'crown'"),
    (dict(verifiers=[{"name": "crown", "label": "fgsm"}]), r"verifiers\[0\]\.label: 'fgsm' is "
     "already used"),
    (dict(seed=-1), r"seed: an integer 0 <= seed < 2,147,483,648; got -1"),
    (dict(epoch=1.5), r"epoch: an integer"),
    (dict(device="gpu"), r"device: one of auto, cpu, cuda \(or None: where the model is\)"),
    (dict(x=lambda x: (x * 255).to(torch.uint8)), r"x: a floating tensor \[N, ...\] .* got "
     "torch.uint8"),
    (dict(y=lambda y: y.float()), r"y: an integer tensor \[N\] of class indices; got "
     "torch.float32"),
    (dict(y=eleven), r"y: labels must be class indices 0 to 9 \(the model has 10 outputs\); "
     "got 0 to 11"),
    (dict(model=lambda m: "not a model"), r"model: a torch.nn.Module"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_input_is_one_line(small, registry, change, message):
    model, x, y = small
    args = dict(model=model, x=x[:10], y=y[:10], attacks=["fgsm"], eps=[0.1])
    args.update({k: v(args[k]) if callable(v) else v for k, v in change.items()})
    with pytest.raises(ArgumentError, match=message) as info:
        benchbench.evaluate(args.pop("model"), args.pop("x"), args.pop("y"), registry=registry,
                            **args)
    text = str(info.value)
    assert text.startswith("benchbench.evaluate: ") and "\n" not in text
    assert isinstance(info.value, ValueError)  # ArgumentError is a ValueError for notebooks


def test_a_layer_no_verifier_bounds_is_refused_naming_it(registry):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10), torch.nn.Softplus())
    x, y = Digits().load("test")
    with pytest.raises(VerifierError, match="Softplus"):
        benchbench.evaluate(model, x[:8], y[:8], attacks=["fgsm"], eps=0.1, verifiers=["crown"],
                            registry=registry)


def test_import_benchbench_stays_cheap():
    code = ("import sys, benchbench; benchbench.evaluate; benchbench.load; benchbench.run; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    """README "## Python API": its code blocks run as they are (on digits), in a fresh
    directory holding the repository's suites/."""
    from tests.test_docs import code_blocks, section

    text = section("Python API")
    assert text is not None, "README.md lost its 'Python API' section"
    blocks = code_blocks("python", text)
    assert blocks and any("benchbench.evaluate(" in b for b in blocks)
    shutil.copytree(ROOT / "suites", tmp_path / "suites")
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the docs' own code
    result = scope["result"]
    fenced = re.findall(r"^```(\w*)\n(.*?)^```$", text, flags=re.S | re.M)
    [shown] = [body for lang, body in fenced if not lang and "attack  norm" in body]
    lines = [line.split() for line in shown.splitlines()[1:] if len(line.split()) == 7]
    robust, broken, unknown = (int(n) for n in shown.splitlines()[-1].split())
    assert robust + broken + unknown == 297  # shown: robust, not robust, unknown per example
    assert int(scope["proved"].sum()) + int(scope["broken"].sum()) <= 297
    # the rows shown are the rows made (the values are this machine's: float32 training)
    assert [(a, n, float(e), m, int(k)) for _, a, n, e, m, _, k in lines] == [
        (a, "NaN" if n is None or n != n else n, e, m, k)
        for a, n, e, m, _, k in result.table.itertuples(index=False)]
    assert (tmp_path / "runs" / "quick_digits" / "results.sqlite").exists()
    assert scope["fgsm"]["value"].between(0, 1).all() and len(scope["fgsm"]) == 6
