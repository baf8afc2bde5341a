"""The RobustBench zoo (issue 17): the shipped entries, ``benchbench zoo list``, ``[model] zoo``
resolving network, file and reported numbers, and "reported vs measured here" in the report.

RobustBench's real checkpoints are 100-1000 MB and need a network: the end-to-end run uses a
tiny WideResNet entry of the same kind (patched into the table) on the digits."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from benchbench import zoo, zoo_entries
from benchbench.cli import app
from benchbench.engine.cell import build_model
from benchbench.engine.runner import run_suite, validate_suite
from benchbench.errors import SuiteError
from benchbench.plugins import DISABLE_ENV
from benchbench.report.mdtext import md
from benchbench.store.results import read_store
from benchbench.suite.cells import ComponentRef
from benchbench.suite.load import load_suite

CIFAR = """
[suite]
name = "zoo"

[dataset]
name = "{dataset}"
train = "train[:10]"
test = "test[:10]"

[model]
{model}

[regime]
name = "pretrained"
"""


def cifar_suite(tmp_path: Path, model: str, dataset: str = "cifar10") -> Path:
    path = tmp_path / "zoo.toml"
    path.write_text(CIFAR.format(dataset=dataset, model=model))
    return path


def place(model_dir: Path, dataset: str, threat_model: str, name: str, obj) -> Path:
    path = model_dir / dataset / threat_model / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


# --- the shipped table -----------------------------------------------------------------------


def test_every_entry_builds_as_benchbench_network_and_its_numbers_are_sane(registry):
    """Each entry's keys build its model (on the meta device: no weights), with the parameter
    count its RobustBench architecture name implies (WRN-d-k), and its reported numbers are
    percentages with AutoAttack at most clean."""
    rows = zoo.entries()
    assert len(rows) == len(zoo_entries.ENTRIES) >= 50
    assert len({(e.dataset, e.threat_model, e.name) for e in rows}) == len(rows)
    classes, built = {"cifar10": 10, "cifar100": 100}, set()
    for e in rows:
        assert e.dataset in zoo.DATASETS and e.threat_model in zoo.THREAT_MODELS
        assert e.model == "wide_resnet"
        assert e.architecture == f"WideResNet-{e.params['depth']}-{e.params['widen_factor']}"
        assert 0 <= e.autoattack_acc <= e.clean_acc <= 100, e.name
        assert zoo.eps_value(e.eps) in ({"Linf": (8 / 255, 0.031), "L2": (0.5,)}
                                        [e.threat_model]), (e.name, e.eps)
        shape = (e.dataset, json.dumps(e.params, sort_keys=True))
        if shape in built:  # the same network as an entry before
            continue
        built.add(shape)
        with torch.device("meta"):
            net = registry.get("model", e.model).obj(input_shape=(3, 32, 32),
                                                     num_classes=classes[e.dataset], **e.params)
        keys = net.state_dict()
        assert ("sub_block1.layer.0.conv1.weight" in keys) == e.params["sub_block1"]
        assert keys["fc.weight"].shape == (classes[e.dataset], 64 * e.params["widen_factor"])
    carmon = zoo.find("Carmon2019Unlabeled", dataset="cifar10")
    assert (carmon.clean_acc, carmon.autoattack_acc, carmon.eps) == (89.69, 59.53, "8/255")
    assert carmon.params == {"depth": 28, "widen_factor": 10, "sub_block1": True}


def test_eps_as_robustbench_writes_it():
    assert zoo.eps_value("8/255") == 8 / 255 and zoo.eps_value("0.5") == 0.5
    assert zoo.eps_value("eight") is None and zoo.eps_value("1/0") is None


@pytest.mark.parametrize(("name", "kw", "fragment"), [
    ("Carmon2019Unlabelled", {"dataset": "cifar10"}, "did you mean 'Carmon2019Unlabeled'?"),
    ("Carmon2019Unlabeled", {"dataset": "cifar100"}, "is a RobustBench cifar10/Linf entry"),
    ("Sehwag2021Proxy", {"dataset": "cifar10", "threat_model": "Linf"}, None),
    ("Rony2019Decoupling", {"dataset": "cifar10"}, "cifar10/L2 entry, not cifar10/Linf"),
    ("Standard", {"dataset": "cifar10", "threat_model": "linf"}, "must be one of Linf, L2"),
])
def test_find_says_what_is_there(name, kw, fragment):
    if fragment is None:
        assert zoo.find(name, **kw).name == name
        return
    with pytest.raises(zoo.ZooError, match=None) as err:
        zoo.find(name, **kw)
    assert fragment in err.value.problem, err.value.problem


# --- benchbench zoo list ---------------------------------------------------------------------


def test_zoo_list_shows_entries_numbers_and_which_files_are_present(tmp_path, monkeypatch):
    monkeypatch.setenv(DISABLE_ENV, "1")
    place(tmp_path, "cifar10", "Linf", "Carmon2019Unlabeled", {})
    runner = CliRunner()
    out = runner.invoke(app, ["zoo", "list", "--model-dir", str(tmp_path), "--dataset",
                              "cifar10", "--threat-model", "Linf"])
    assert out.exit_code == 0, out.output
    carmon = next(line for line in out.output.splitlines() if line.startswith("Carmon2019"))
    assert carmon.split() == ["Carmon2019Unlabeled", "cifar10", "Linf", "WideResNet-28-10",
                              "8/255", "89.69", "59.53", "present"]
    assert "Sehwag2020Hydra" in out.output and "L2" not in out.output.split("\n\n")[0]
    assert "1 of 29 file(s) present" in out.output and zoo_entries.SOURCE in out.output
    data = json.loads(runner.invoke(app, ["zoo", "list", "--model-dir", str(tmp_path),
                                          "--json"]).output)
    assert data["source"] == zoo_entries.SOURCE and len(data["entries"]) == len(zoo.entries())
    present = [r["name"] for r in data["entries"] if r["present"]]
    assert present == ["Carmon2019Unlabeled"]
    bad = runner.invoke(app, ["zoo", "list", "--dataset", "mnist"])
    assert bad.exit_code == 2 and "--dataset must be one of cifar10, cifar100" in bad.stderr


# --- [model] zoo = "Name" ------------------------------------------------------------------------


def test_a_zoo_entry_resolves_network_file_and_reported_numbers(registry, tmp_path):
    path = place(tmp_path / "models", "cifar10", "Linf", "Carmon2019Unlabeled",
                 {"x": torch.zeros(1)})
    suite = load_suite(cifar_suite(tmp_path, 'zoo = "Carmon2019Unlabeled"'), registry)
    (model,) = suite.models
    assert (model.name, model.label) == ("wide_resnet", "Carmon2019Unlabeled")
    assert {k: model.params[k] for k in ("depth", "widen_factor", "sub_block1")} == \
        {"depth": 28, "widen_factor": 10, "sub_block1": True}
    assert model.weights["path"] == str(path) and model.weights["format"] == "torch"
    reported = model.weights["zoo"]
    assert (reported["clean_acc"], reported["autoattack_acc"], reported["eps"]) == \
        (89.69, 59.53, "8/255")
    assert reported["eps_value"] == 8 / 255 and reported["source"] == zoo_entries.SOURCE
    # the reported numbers are provenance, not identity: the cell is the file's sha256
    identity = suite.cells()[0].identity()["model"]["weights"]
    assert identity == {"sha256": model.weights["sha256"]}
    # a file of other keys is refused where the suite names the entry, with the keys
    with pytest.raises(SuiteError) as err:
        validate_suite(suite, registry)
    assert str(err.value).startswith(f"{tmp_path / 'zoo.toml'}: model.zoo: ")
    assert "missing keys conv1.weight" in str(err.value)
    assert "unexpected keys x;" in str(err.value)


def test_model_info_json_gives_the_reported_numbers(registry, tmp_path):
    place(tmp_path / "models", "cifar10", "L2", "Standard", {})
    info = tmp_path / "model_info" / "cifar10" / "L2" / "Standard.json"
    info.parent.mkdir(parents=True)
    info.write_text(json.dumps({"clean_acc": "94.00", "autoattack_acc": "0.00", "eps": "0.5"}))
    suite = load_suite(cifar_suite(tmp_path, 'zoo = "Standard"\nthreat_model = "L2"\n'
                                             'model_info = "model_info"\nlabel = "std"'),
                       registry)
    reported = suite.models[0].weights["zoo"]
    assert suite.models[0].label == "std"
    assert (reported["clean_acc"], reported["autoattack_acc"], reported["norm"]) == \
        (94.0, 0.0, "l2")
    assert str(info) in reported["source"]


@pytest.mark.parametrize(("model", "key", "fragment"), [
    ('zoo = "Sehwag2020Hydra"', "model.zoo", "no file"),
    ('zoo = "Carmon2019Unlabelled"', "model.zoo", "did you mean 'Carmon2019Unlabeled'?"),
    ('zoo = "Carmon2019Unlabeled"\nname = "wide_resnet"', "model.name", "not with zoo"),
    ('zoo = "Carmon2019Unlabeled"\ndepth = 34', "model.depth", "not with zoo"),
    ('zoo = "Carmon2019Unlabeled"\nweights = "x.pt"', "model.weights", "weights or zoo"),
    ('zoo = "Carmon2019Unlabeled"\nthreat_model = "Linfinity"', "model.threat_model",
     "must be one of Linf, L2"),
    ('zoo = "Carmon2019Unlabeled"\nmodel_info = "nowhere"', "model.model_info", "no "),
    ('zoo = 3', "model.zoo", "must be a non-empty string"),
])
def test_bad_zoo_keys_are_one_line_naming_the_key(registry, tmp_path, model, key, fragment):
    place(tmp_path / "models", "cifar10", "Linf", "Carmon2019Unlabeled", {})
    with pytest.raises(SuiteError) as err:
        load_suite(cifar_suite(tmp_path, model), registry)
    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{tmp_path / 'zoo.toml'}: {key}: "), line
    assert fragment in line, line


def test_missing_zoo_file_says_where_it_comes_from(registry, tmp_path):
    with pytest.raises(SuiteError) as err:
        load_suite(cifar_suite(tmp_path, 'zoo = "Wu2020Adversarial"\nmodel_dir = "rb"'),
                   registry)
    line = str(err.value)
    assert repr(str(tmp_path / "rb" / "cifar10" / "Linf" / "Wu2020Adversarial.pt")) in line
    assert "load_model('Wu2020Adversarial', model_dir='MODEL_DIR', dataset='cifar10', " \
           "threat_model='Linf')" in line


# --- end to end: reported vs measured here -------------------------------------------------------


TINY = {"name": "Tiny2024Digits", "dataset": "digits", "threat_model": "Linf",
        "model": "wide_resnet", "params": {"depth": 10, "widen_factor": 1, "sub_block1": True,
                                           "mean": [0.5], "std": [0.25]},
        "eps": "8/255", "clean_acc": 90.0, "autoattack_acc": 40.5,
        "architecture": "WideResNet-10-1", "paper": "A tiny test entry", "link": None}


def test_a_zoo_cell_reports_reported_vs_measured_here(registry, tmp_path, monkeypatch):
    """A RobustBench-style checkpoint ({"state_dict": ...} with DataParallel's ``module.``
    prefix, as Carmon2019Unlabeled's) of a tiny WideResNet entry: the suite evaluates it, and
    the report puts the entry's reported numbers beside the ones measured here, which are the
    store's."""
    from benchbench.datasets.digits import Digits

    monkeypatch.setattr(zoo_entries, "ENTRIES", (*zoo_entries.ENTRIES, TINY))
    net = build_model(registry, ComponentRef("wide_resnet", "w", TINY["params"]), 3, Digits())
    place(tmp_path / "models", "digits", "Linf", TINY["name"],
          {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 9})
    path = tmp_path / "tiny.toml"
    path.write_text('[suite]\nname = "tinyzoo"\n[dataset]\nname = "digits"\n'
                    'train = "train[:50]"\ntest = "test[:60]"\n[model]\nzoo = "Tiny2024Digits"\n'
                    '[regime]\nname = "pretrained"\n[[attacks]]\nname = "fgsm"\n'
                    'eps = [0.0313725490196078, 0.1]\n')
    run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
              device="cpu")
    with read_store(tmp_path / "run") as store:
        tidy = store.tidy()
        specs = [json.loads(c["spec"]) for c in store.cells()]
    assert all(s["model"]["weights"]["zoo"]["clean_acc"] == 90.0 for s in specs)
    test = tidy[(tidy.split == "test") & (tidy.metric == "accuracy") & (tidy.epoch == 0)]
    clean = 100 * test[test.attack == "none"].value.mean()
    worst = test[(test.attack == "worst_linf")]
    worst = 100 * worst[[math.isclose(e, 8 / 255) for e in worst.eps]].value.mean()
    report = (tmp_path / "run" / "report.md").read_text()
    line = next(x for x in report.splitlines() if x.startswith("Reported (RobustBench"))
    assert line == (
        "Reported (RobustBench, `Tiny2024Digits`, digits Linf eps 8/255): clean 90.00%, "
        f"AutoAttack 40.50%. Measured here (mean over seeds, test split `test[:60]`): clean "
        f"{clean:.2f}%, worst case over the suite's L-inf attacks at eps 0.03137: {worst:.2f}%. "
        f"Reported numbers: {md(zoo_entries.SOURCE)}.")
    assert "## Tiny2024Digits · pretrained · digits" in report
    assert "Pretrained, not trained here" in report


def test_the_readme_zoo_example_is_a_valid_suite(registry, tmp_path):
    import re

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    text = readme.split("### Models people already have", 1)[1].split("\n### ", 1)[0]
    block = re.findall(r"```toml\n(.*?)```", text, flags=re.S)[1]
    place(tmp_path / "models", "cifar10", "Linf", "Carmon2019Unlabeled", {})
    path = tmp_path / "readme.toml"
    path.write_text('[suite]\nname = "readme"\n' + block)
    suite = load_suite(path, registry)
    assert suite.models[0].label == "Carmon2019Unlabeled"
    assert suite.models[0].weights["zoo"]["autoattack_acc"] == 59.53
