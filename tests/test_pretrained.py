"""Models people already have (issue 17): ``[model] weights`` with ``[regime] name =
"pretrained"``, on checkpoints made here (by benchbench, by plain torch, wrapped and prefixed)."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.engine.cell import build_model
from benchbench.engine.runner import run_suite, validate_suite
from benchbench.errors import ArgumentError, RunDirError, SuiteError
from benchbench.models.weights import WeightsError, describe, load_weights, read_state
from benchbench.plugins import DISABLE_ENV
from benchbench.store.results import read_store
from benchbench.suite.cells import ComponentRef
from benchbench.suite.load import load_suite

HEAD = """
[suite]
name = "{name}"
seeds = {seeds}

[dataset]
name = "digits"
train = "train"
test = "test"
"""
FGSM = """
[[attacks]]
name = "fgsm"
eps = [0.1]
"""
PRETRAINED = """
[regime]
name = "pretrained"
dtype = "{dtype}"
"""


def write(tmp_path: Path, name: str, models: str, regime: str, *, seeds: str = "[0]") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(HEAD.format(name=name, seeds=seeds) + models + regime + FGSM)
    return path


def model_table(name: str, weights: Path | str | None = None, **keys) -> str:
    lines = ["[[model]]", f'name = "{name}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    if weights is not None:
        lines.append(f'weights = "{weights}"')
    return "\n".join(lines) + "\n"


def numbers(run_dir: Path) -> dict:
    """(model label, seed) -> {(epoch, split, attack, eps, metric): value} of the stored cells,
    per-example bits included (metric ``correct``), and each cell's id and engine."""
    out: dict = {}
    with read_store(run_dir) as store:
        ids = {c["cell_id"]: (c["model"], c["seed"], c["engine"]) for c in store.cells()
               if c["status"] == "ok"}
        rows = store.conn.execute("SELECT cell_id, epoch, split, attack, eps, metric, value "
                                  "FROM results").fetchall()
        bits = store.conn.execute("SELECT cell_id, epoch, split, attack, eps, correct "
                                  "FROM examples").fetchall()
    for cell, *key, value in rows:
        out.setdefault(ids[cell][:2], {"id": cell, "engine": ids[cell][2]})[tuple(key)] = value
    for cell, *key, packed in bits:
        out[ids[cell][:2]][(*key, "bits")] = bytes(packed)
    return out


def at_epoch(cell: dict, epoch: int) -> dict:
    return {k[1:]: v for k, v in cell.items() if isinstance(k, tuple) and k[0] == epoch}


# --- benchbench's own checkpoints ------------------------------------------------------------


@pytest.mark.parametrize(("model", "keys", "dtype", "seeds"), [
    ("mlp", {"hidden": [16]}, "float32", "[0, 1]"),
    ("mlp", {"hidden": [16]}, "float64", "[0, 1]"),
    ("wong_cnn", {}, "float32", "[1]"),
])
def test_a_checkpoint_evaluated_pretrained_measures_what_its_cell_stored(
        registry, tmp_path, model, keys, dtype, seeds):
    """Train a tiny cell (the MLP's two seeds train stacked), then evaluate seed 1's epoch-1
    checkpoint with ``pretrained``: its clean accuracy on both splits and which examples were
    correct are the trained cell's, bit for bit (counts: order-independent). The losses are
    compared within float rounding: the stack's products may round otherwise than the
    module's own (here they came out bit-identical too)."""
    trained = write(tmp_path, "train", model_table(model, **keys),
                    f'[regime]\nname = "standard"\nlr = 0.01\nepochs = 1\n'
                    f'dtype = "{dtype}"\n', seeds=seeds)
    run_suite(load_suite(trained, registry), registry=registry, out_dir=tmp_path / "train",
              device="cpu")
    before = numbers(tmp_path / "train")[(model, 1)]
    checkpoint = tmp_path / "train" / "checkpoints" / before["id"] / "epoch_0001.safetensors"
    evaluated = write(tmp_path, "eval", model_table(model, checkpoint, **keys),
                      PRETRAINED.format(dtype=dtype), seeds="[1]")
    run_suite(load_suite(evaluated, registry), registry=registry, out_dir=tmp_path / "eval",
              device="cpu")
    after = numbers(tmp_path / "eval")[(model, 1)]
    assert after["engine"] == "evaluate only"
    then, now = at_epoch(before, 1), at_epoch(after, 0)
    assert set(now) == set(then)
    for split in ("train", "test"):
        assert now[(split, "none", 0.0, "accuracy")] == then[(split, "none", 0.0, "accuracy")]
        assert now[(split, "none", 0.0, "bits")] == then[(split, "none", 0.0, "bits")]
        # float rounding of a mean over a few hundred rows, summed in another order
        tol = 1e-5 if dtype == "float32" else 1e-12
        assert now[(split, "none", 0.0, "loss")] == pytest.approx(
            then[(split, "none", 0.0, "loss")], rel=tol)
    # the given file is its own checkpoint: no copy of it is written
    assert not (tmp_path / "eval" / "checkpoints" / after["id"]).exists()


# --- files made with plain torch -------------------------------------------------------------


@pytest.fixture
def mlp_state(registry):
    from benchbench.datasets.digits import Digits

    net = build_model(registry, ComponentRef("mlp", "mlp", {"hidden": [16]}), 7, Digits())
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_plain_torch_and_safetensors_files_of_the_same_weights_measure_the_same(
        registry, tmp_path, mlp_state):
    """``torch.save(model.state_dict())`` and a safetensors file of the same tensors: two cells
    (their files' sha256 differ) with the same numbers, bit for bit (the same model computes)."""
    torch.save(mlp_state, tmp_path / "plain.pt")
    save_file(mlp_state, tmp_path / "plain.safetensors")
    models = (model_table("mlp", "plain.pt", hidden=[16], label="pt")
              + model_table("mlp", "plain.safetensors", hidden=[16], label="st"))
    suite = load_suite(write(tmp_path, "both", models, PRETRAINED.format(dtype="float32")),
                       registry)
    formats = [m.weights["format"] for m in suite.models]
    assert formats == ["torch", "safetensors"]
    for m, name in zip(suite.models, ("plain.pt", "plain.safetensors"), strict=True):
        assert m.weights["sha256"] == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
    run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    got = numbers(tmp_path / "run")
    pt, st = got[("pt", 0)], got[("st", 0)]
    assert pt["id"] != st["id"]
    assert at_epoch(pt, 0) == at_epoch(st, 0)


@pytest.mark.parametrize("wrap", [
    lambda s: {"state_dict": s, "epoch": 30, "best_acc": 0.5},
    lambda s: {"model_state_dict": {f"module.{k}": v for k, v in s.items()}, "epoch": 3},
    lambda s: {f"model.{k}": v for k, v in s.items()},
    lambda s: {f"module.model.{k}": v for k, v in s.items()},
], ids=["state_dict", "model_state_dict+module.", "model.", "module.model."])
def test_wrappers_and_prefixes_are_taken_off(registry, tmp_path, mlp_state, wrap):
    from benchbench.datasets.digits import Digits

    torch.save(wrap(mlp_state), tmp_path / "w.pt")
    state, _ = read_state(describe(tmp_path / "w.pt"))
    assert state.keys() == mlp_state.keys()
    assert all(torch.equal(state[k], v) for k, v in mlp_state.items())
    net = build_model(registry, ComponentRef("mlp", "mlp", {"hidden": [16]}), 0, Digits())
    load_weights(net, describe(tmp_path / "w.pt"), model_name="mlp")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in mlp_state.items())


class _Payload:
    """Unpickling this would open (create) ``marker``: what arbitrary pickle can do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_payload_is_refused_with_one_line_and_never_run(registry, tmp_path, mlp_state):
    marker = tmp_path / "ran"
    torch.save({"state_dict": mlp_state, "extra": _Payload(marker)}, tmp_path / "evil.pt")
    (tmp_path / "raw.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    for name in ("evil.pt", "raw.pkl"):
        with pytest.raises(WeightsError) as err:
            read_state(describe(tmp_path / name))
        assert "\n" not in err.value.problem
        assert "never unpickles" in err.value.problem or "not a readable torch" in \
            err.value.problem, err.value.problem
    assert "pickled Python objects" in _problem(read_state, describe(tmp_path / "evil.pt"))
    assert not marker.exists()


def _problem(function, *args) -> str:
    with pytest.raises(WeightsError) as err:
        function(*args)
    return err.value.problem


def test_a_wrong_architecture_is_refused_naming_missing_and_unexpected_keys(
        registry, tmp_path, mlp_state):
    from benchbench.datasets.digits import Digits

    save_file(mlp_state, tmp_path / "mlp.safetensors")
    weights = describe(tmp_path / "mlp.safetensors")
    cnn = build_model(registry, ComponentRef("wong_cnn", "wong_cnn", {}), 0, Digits())
    with pytest.raises(WeightsError) as err:
        load_weights(cnn, weights, model_name="wong_cnn")
    line = err.value.problem
    assert "does not fit model 'wong_cnn'" in line
    assert "missing keys 0.weight, 0.bias, 2.weight, 2.bias (+4 more)" in line, line
    unexpected = line.split("unexpected keys ")[1].split(";")[0]
    assert sorted(unexpected.split(", ")) == ["1.bias", "1.weight", "3.bias", "3.weight"], line
    wider = build_model(registry, ComponentRef("mlp", "mlp", {"hidden": [32]}), 0, Digits())
    with pytest.raises(WeightsError) as err:
        load_weights(wider, weights, model_name="mlp")
    assert "shapes differ for 1.weight (file [16, 64], model [32, 64])" in err.value.problem


def run_given(registry, tmp_path: Path, state: dict, name: str, dtype: str):
    """Save ``state`` as ``w.safetensors``, evaluate it with ``pretrained`` into ``run/``:
    (the weights file, the suite file)."""
    weights = tmp_path / "w.safetensors"
    save_file(state, weights)
    path = write(tmp_path, name, model_table("mlp", weights.name, hidden=[16]),
                 PRETRAINED.format(dtype=dtype))
    run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
              device="cpu")
    return weights, path


def test_overwritten_weights_make_a_new_cell_and_are_measured_again(
        registry, tmp_path, mlp_state):
    """The file's sha256 is the cell's identity: overwriting it changes the suite's hash, so
    the old run directory is refused (not 'skipped 1 already stored'); --force archives the old
    numbers and measures the new weights as a new cell."""
    weights, path = run_given(registry, tmp_path, mlp_state, "over", "float32")
    first = numbers(tmp_path / "run")[("mlp", 0)]
    save_file({k: v * 0.5 for k, v in mlp_state.items()}, weights)
    changed = load_suite(path, registry)
    assert changed.cells()[0].cell_id != first["id"]
    with pytest.raises(RunDirError, match="different version of suite 'over'"):
        run_suite(changed, registry=registry, out_dir=tmp_path / "run", device="cpu")
    summary = run_suite(changed, registry=registry, out_dir=tmp_path / "run", device="cpu",
                        force=True)
    assert summary.ran == [changed.cells()[0].cell_id] and summary.skipped == []
    second = numbers(tmp_path / "run")
    assert list(second) == [("mlp", 0)] and second[("mlp", 0)]["id"] != first["id"]
    assert at_epoch(second[("mlp", 0)], 0)[("test", "none", 0.0, "loss")] != \
        at_epoch(first, 0)[("test", "none", 0.0, "loss")]


def test_weights_changed_after_the_suite_was_read_are_refused(registry, tmp_path, mlp_state):
    weights = tmp_path / "w.safetensors"
    save_file(mlp_state, weights)
    suite = load_suite(write(tmp_path, "race", model_table("mlp", weights, hidden=[16]),
                             PRETRAINED.format(dtype="float32")), registry)
    save_file({k: v + 1 for k, v in mlp_state.items()}, weights)
    with pytest.raises(SuiteError, match="model.weights: .* changed since the suite was read"):
        validate_suite(suite, registry)


def test_load_model_of_a_pretrained_cell_is_its_given_weights(registry, tmp_path, mlp_state):
    """``benchbench.load_model`` on a pretrained cell: the weights file it evaluated (epoch 0;
    bit for bit: a copy), in the regime's dtype; another epoch is refused naming epoch 0, and
    a file overwritten since is refused (its sha256 is no longer the cell's)."""
    import benchbench

    weights, _ = run_given(registry, tmp_path, mlp_state, "given", "float64")
    for epoch in ("last", 0):
        net = benchbench.load_model(tmp_path / "run", epoch=epoch, registry=registry)
        assert not net.training
        state = net.state_dict()
        assert list(state) == list(mlp_state)
        assert all(state[k].dtype == torch.float64 and torch.equal(state[k],
                   mlp_state[k].double()) for k in mlp_state)
    with pytest.raises(ArgumentError, match="epoch 1: .* evaluated given weights, its epoch 0"):
        benchbench.load_model(tmp_path / "run", epoch=1, registry=registry)
    save_file({k: v + 1 for k, v in mlp_state.items()}, weights)
    with pytest.raises(WeightsError, match="changed since the suite was read"):
        benchbench.load_model(tmp_path / "run", registry=registry)


def test_moving_the_file_keeps_the_cell(registry, tmp_path, mlp_state):
    """Identity is the contents: the same bytes elsewhere are the same cell (and suite)."""
    save_file(mlp_state, tmp_path / "a.safetensors")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.safetensors").write_bytes((tmp_path / "a.safetensors").read_bytes())
    a = load_suite(write(tmp_path, "m", model_table("mlp", "a.safetensors", hidden=[16]),
                         PRETRAINED.format(dtype="float32")), registry)
    b = load_suite(write(tmp_path, "m", model_table("mlp", "sub/b.safetensors", hidden=[16]),
                         PRETRAINED.format(dtype="float32")), registry)
    assert a.models[0].weights["path"] != b.models[0].weights["path"]
    assert a.hash == b.hash and a.cells()[0].cell_id == b.cells()[0].cell_id


def test_suites_without_weights_keep_their_cell_ids(registry, write_suite):
    """No weights: the spec has no ``weights`` key and the id is the hash of the spec's JSON,
    as before given weights existed."""
    for cell in load_suite(write_suite(), registry).cells():
        assert "weights" not in cell.to_json()
        assert cell.cell_id == hashlib.sha256(cell.to_json().encode()).hexdigest()[:16]


# --- bad input: one line naming the file and key, exit 2 ---------------------------------------


@pytest.fixture
def refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(DISABLE_ENV, "1")

    def invoke(*args) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 2, (result.exit_code, result.output)
        assert "Traceback" not in result.output
        assert result.stderr.count("\n") == 1, result.stderr
        assert not (tmp_path / "out").exists()
        return result.stderr.strip()

    return invoke


def _file(tmp_path: Path, kind: str, state) -> str:
    if kind == "missing":
        return "nowhere.pt"
    if kind == "directory":
        (tmp_path / "adir").mkdir()
        return "adir"
    if kind == "text":
        (tmp_path / "notes.pt").write_text("not weights\n")
        return "notes.pt"
    if kind == "truncated":
        save_file(state, tmp_path / "cut.safetensors")
        data = (tmp_path / "cut.safetensors").read_bytes()
        (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
        return "cut.safetensors"
    if kind == "pickle":
        torch.save({"state_dict": state, "x": _Payload(tmp_path / "ran")}, tmp_path / "p.pt")
        return "p.pt"
    if kind == "wrong keys":
        save_file({"fc.weight": torch.zeros(10, 16)}, tmp_path / "other.safetensors")
        return "other.safetensors"
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "fragment"), [
    ("missing", "no such file"),
    ("directory", "is a directory"),
    ("text", "neither a safetensors nor a torch file"),
    ("truncated", "not a readable safetensors file"),
    ("pickle", "pickled Python objects besides tensors"),
    ("wrong keys", "missing keys 1.weight, 1.bias, 3.weight, 3.bias; unexpected keys fc.weight"),
])
def test_a_bad_weights_file_is_one_line_naming_the_suite_and_key(
        refused, tmp_path, mlp_state, kind, fragment):
    path = write(tmp_path, "bad", model_table("mlp", _file(tmp_path, kind, mlp_state),
                                              hidden=[16]), PRETRAINED.format(dtype="float32"))
    for command in ("validate", "run"):
        line = refused(command, path, "--out", "out", "--device", "cpu")
        assert line.startswith(f"error: {path}: model.weights: "), line
        assert fragment in line, line
        assert "safetensors" in line, line  # what is allowed
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(("models", "regime", "key", "fragment"), [
    (model_table("mlp", "w.safetensors", hidden=[16]),
     '[regime]\nname = "standard"\nepochs = 1\n', "model.weights",
     'evaluated by regime "pretrained" only'),
    (model_table("mlp", hidden=[16]), PRETRAINED.format(dtype="float32"), "regime.name",
     "has none: give it weights"),
    (model_table("mlp", "w.safetensors", hidden=[16], threat_model="Linf"),
     PRETRAINED.format(dtype="float32"), "model.threat_model", 'only with zoo = "Name"'),
    (model_table("mlp", hidden=[16], model_dir="models"), PRETRAINED.format(dtype="float32"),
     "model.model_dir", 'only with zoo = "Name"'),
    (model_table("mlp", "w.safetensors", hidden=[16]), PRETRAINED.format(dtype="float16"),
     "regime", "dtype must be one of float32, float64"),
    (model_table("mlp", "w.safetensors", hidden=[16]) + 'epochs = 3\n',
     PRETRAINED.format(dtype="float32"), "model.epochs", "unknown parameter"),
], ids=["weights-with-training", "pretrained-without-weights", "threat_model-without-zoo",
        "model_dir-without-zoo", "bad-dtype", "unknown-key"])
def test_weights_and_regimes_that_do_not_go_together_are_refused(
        refused, tmp_path, mlp_state, models, regime, key, fragment):
    save_file(mlp_state, tmp_path / "w.safetensors")
    path = write(tmp_path, "pair", models, regime)
    line = refused("validate", path)
    assert line.startswith(f"error: {path}: {key}: "), line
    assert fragment in line, line


# --- the plan and the report -----------------------------------------------------------------


def test_validate_and_the_report_show_pretrained_as_such(registry, tmp_path, mlp_state,
                                                         monkeypatch):
    save_file(mlp_state, tmp_path / "w.safetensors")
    path = write(tmp_path, "shown", model_table("mlp", "w.safetensors", hidden=[16]),
                 PRETRAINED.format(dtype="float32"), seeds="[0, 1]")
    monkeypatch.setenv(DISABLE_ENV, "1")
    result = CliRunner().invoke(app, ["validate", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "unit 1: evaluate only (given weights, not trained here), 0 epoch(s), checkpoints 0" \
        in result.output
    assert "unit 2: evaluate only" in result.output  # seeds never stack: one unit each
    run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
              device="cpu")
    report = (tmp_path / "run" / "report.md").read_text()
    sha = hashlib.sha256((tmp_path / "w.safetensors").read_bytes()).hexdigest()
    assert (f"Pretrained, not trained here: epoch 0 is the given weights, "
            f"`{tmp_path / 'w.safetensors'}` (safetensors, sha256 `{sha[:16]}`).") in report
    with read_store(tmp_path / "run") as store:
        specs = [json.loads(c["spec"]) for c in store.cells()]
    assert [s["model"]["weights"]["sha256"] for s in specs] == [sha, sha]


def test_the_readme_example_is_a_valid_suite(registry, tmp_path):
    """README "Models people already have": its first TOML block, under a digits [suite], with
    a wong_cnn file where it says, loads and validates (the file fits the model)."""
    import re

    from benchbench.datasets.digits import Digits

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    text = readme.split("### Models people already have", 1)[1].split("\n### ", 1)[0]
    block = re.findall(r"```toml\n(.*?)```", text, flags=re.S)[0]
    net = build_model(registry, ComponentRef("wong_cnn", "wong_cnn", {}), 0, Digits())
    (tmp_path / "weights").mkdir()
    save_file(net.state_dict(), tmp_path / "weights" / "wong_fgsm.safetensors")
    path = tmp_path / "readme.toml"
    path.write_text(HEAD.format(name="readme", seeds="[0]") + block + FGSM)
    suite = load_suite(path, registry)
    validate_suite(suite, registry)
    assert suite.models[0].weights["path"] == str(tmp_path / "weights" / "wong_fgsm.safetensors")


def test_the_regime_kit_checks_what_evaluate_only_claims():
    """``pretrained`` passes the regime kit; a regime that declares ``evaluate_only`` but moves
    the weights fails it on that check."""
    from benchbench.regimes.pretrained import Pretrained
    from benchbench.testing import regime_conformance

    assert all(c.passed for c in regime_conformance(Pretrained))

    class Liar(Pretrained):
        def train(self, *, model, x, y, seed):
            with torch.no_grad():
                next(model.parameters()).add_(1.0)
            yield 0

    failed = {c.name for c in regime_conformance(Liar) if not c.passed}
    assert failed == {"evaluate_only: weights unchanged"}
