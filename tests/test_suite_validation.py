"""Suite files: every error names the file, the key and what is allowed."""

from __future__ import annotations

import pytest

from benchbench.engine.runner import validate_suite
from benchbench.errors import SuiteError
from benchbench.suite.load import load_suite
from tests.conftest import TINY_SUITE

BASE = TINY_SUITE.format(seeds="[0, 1]", epochs=2, checkpoints="[1, 2]", dtype="float32")


def error_for(write_suite, registry, text: str) -> str:
    path = write_suite(text=text)
    with pytest.raises(SuiteError) as info:
        validate_suite(load_suite(path, registry), registry)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("old", "new", "expected"), [
    ('name = "mlp"', 'name = "mpl"', "model.name: unknown model 'mpl'; did you mean 'mlp'"),
    ('hidden = [16]', 'hiden = [16]', "model.hiden: unknown parameter for model 'mlp'; "
                                      "allowed: hidden, activation, init"),
    ('hidden = [16]', 'hidden = [16]\nactivation = "swish"',
     "model: activation must be one of relu, tanh, sigmoid, gelu; got 'swish'"),
    ('lr = 0.01', 'lr = 0.01\noptimizer = "adamw"',
     "regime: optimizer must be one of adam, sgd; got 'adamw'"),
    ('dtype = "float32"', 'dtype = "float16"', "regime: dtype must be one of float32, float64"),
    ('checkpoints = [1, 2]', 'checkpoints = [1, 5]',
     "regime: checkpoints must be epochs between 1 and epochs=2"),
    ('checkpoints = [1, 2]', 'checkpoints = { start = 1 }',
     "checkpoints must be a list of epochs or {start, step[, stop]}"),
    ('train = "train"', 'train = "train[a:]"', "dataset.train: 'train[a:]' is not a split"),
    ('test = "test"', 'test = "valid"',
     "dataset.test: unknown split 'valid'; allowed: train, test"),
    ('seeds = [0, 1]', 'seeds = [0, 0]', "suite.seeds: must be a positive count"),
    ('seeds = [0, 1]', 'seeds = 0', "suite.seeds: must be a positive count"),
    ('eps = [0.05, 0.2]', 'eps = [-0.1]', "attacks[0].eps: required, a non-negative number"),
    ('eps = [0.05, 0.2]', 'eps = [0.1]\nsplit = "valid"', "attacks[0].split: must be one of"),
    ('eps = [0.05, 0.2]', 'eps = [0.1]\nloss = "hinge"', "attacks[0]: loss must be one of ce"),
    ('name = "fgsm"', 'name = "fgsn"', "attacks[0].name: unknown attack 'fgsn'; did you mean"),
    ('[suite]', '[suite]\ncolour = "red"', "suite.colour: unknown key; allowed: name, seeds"),
    ('[suite]', '[extras]\n[suite]', "extras: unknown section; allowed: suite, dataset"),
])
def test_bad_value_names_file_key_and_allowed(write_suite, registry, old, new, expected):
    assert old in BASE
    assert expected in error_for(write_suite, registry, BASE.replace(old, new, 1))


def test_missing_section(write_suite, registry):
    text = BASE.replace('[regime]', '[regimes]')
    assert "regimes: unknown section" in error_for(write_suite, registry, text)
    text = BASE[:BASE.index("[regime]")]
    assert "regime: missing; a suite needs [regime]" in error_for(write_suite, registry, text)


def test_invalid_toml_and_missing_file(write_suite, registry, tmp_path):
    assert "not valid TOML" in error_for(write_suite, registry, "[suite\nname=")
    with pytest.raises(SuiteError, match="cannot read the suite file"):
        load_suite(tmp_path / "nope.toml", registry)


def test_duplicate_labels_in_a_grid(write_suite, registry):
    text = BASE.replace("[model]", "[[model]]").replace(
        "hidden = [16]", 'hidden = [16]\n\n[[model]]\nname = "mlp"\nhidden = [8]')
    assert "model[1].label: 'mlp' is already used by model[0]" in error_for(
        write_suite, registry, text)


def test_grid_expands_to_model_x_regime_x_seed_cells(write_suite, registry):
    text = BASE.replace("[model]", "[[model]]").replace(
        "hidden = [16]", 'hidden = [16]\n\n[[model]]\nname = "mlp"\nlabel = "small"\n'
                         'hidden = [8]')
    suite = load_suite(write_suite(text=text), registry)
    cells = suite.cells()
    assert [(c.model.label, c.seed) for c in cells] == [
        ("mlp", 0), ("mlp", 1), ("small", 0), ("small", 1)]
    assert len({c.cell_id for c in cells}) == 4


def test_checkpoint_table_form_and_defaults(write_suite, registry):
    suite = load_suite(write_suite(seeds=5, epochs=181, checkpoints="{ start = 1, step = 20 }"),
                       registry)
    from benchbench.regimes.standard import StandardTraining

    regime = StandardTraining(**suite.regimes[0].params)
    assert regime.checkpoint_epochs == (1, 21, 41, 61, 81, 101, 121, 141, 161, 181)
    assert suite.seeds == (0, 1, 2, 3, 4)


def test_shipped_suites_are_valid():
    """Every shipped suite validates with the built-ins and benchbench's own ART plugin (the
    regimes study uses ART's AutoAttack; `make test` installs benchbench[art])."""
    import tomllib
    from pathlib import Path

    import benchbench.art_attacks
    import benchbench.autoattack_attack
    from benchbench.testing import isolated_registry

    pytest.importorskip("art", reason="suites/regimes_mnist.toml needs benchbench[art]")
    pytest.importorskip("pyautoattack", reason="the CNN suites need benchbench[autoattack]")
    registry = isolated_registry(benchbench.art_attacks, benchbench.autoattack_attack)
    for path in sorted(Path(__file__).parents[1].joinpath("suites").glob("*.toml")):
        models = tomllib.loads(path.read_text()).get("model", [])
        given = [m["weights"] for m in (models if isinstance(models, list) else [models])
                 if "weights" in m and not (path.parent / m["weights"]).exists()]
        if given:  # files people fetch themselves (suites/weights/, never committed)
            with pytest.raises(SuiteError, match=r"model\[0\]\.weights") as err:
                load_suite(path, registry)
            assert "\n" not in str(err.value) and given[0] in str(err.value)
            continue
        suite = load_suite(path, registry)
        validate_suite(suite, registry)
        assert suite.cells()


def test_founding_suite_is_the_seed_study(registry):
    from pathlib import Path

    suite = load_suite(Path(__file__).parents[1] / "suites" / "overfit_mnist.toml", registry)
    assert suite.name == "overfit_mnist"
    assert suite.seeds == (0, 1, 2, 3, 4)
    assert (suite.dataset.name, suite.dataset.train, suite.dataset.test) == (
        "mnist", "train[5000:]", "test")
    assert suite.models[0].params == {"hidden": [200, 300], "activation": "relu",
                                      "init": "xavier_uniform"}
    assert suite.regimes[0].params["epochs"] == 181
    assert [(a.name, a.eps) for a in suite.attacks] == [("fgsm", (0.05,))]
