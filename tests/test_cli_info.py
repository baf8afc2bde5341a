"""What the command line tells people: --version, plugins show, summaries, validate, and
plugins check for every kind with a kit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchbench.cli import app
from benchbench.docstrings import key_doc, summary
from tests.plugins import contract_plugin


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


# --- --version ----------------------------------------------------------------------------
def test_version_names_benchbench_torch_and_python_without_importing_torch():
    from importlib.metadata import version

    code = ("import sys; from typer.testing import CliRunner; from benchbench.cli import app; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output; "
            "print(r.output.splitlines()[0]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    python = ".".join(str(v) for v in sys.version_info[:3])
    assert out[0] == f"benchbench {version('benchbench')} (torch {version('torch')}, Python " \
                     f"{python})"
    assert out[1] == "[]"


# --- summaries ----------------------------------------------------------------------------
def test_summaries_end_at_the_first_sentence_not_at_a_line():
    wrapped = ('FGSM adversarial training with a random start (Wong, Rice and Kolter 2020, '
               '"Fast is better\nthan free", arXiv:2001.03994; locuslab/fast_adversarial).\n\n'
               'More.')
    assert summary(wrapped) == ('FGSM adversarial training with a random start (Wong, Rice '
                                'and Kolter 2020, "Fast is better than free", arXiv:2001.03994;'
                                ' locuslab/fast_adversarial).')
    assert summary("Run each unit as a Ray task (--ray-address); Ray retries a\ntask whose "
                   "worker dies. Then more.") == ("Run each unit as a Ray task (--ray-address);"
                                                  " Ray retries a task whose worker dies.")
    assert summary("PGD training (Madry et al. 2018). Second.") == "PGD training (Madry et " \
                                                                  "al. 2018)."
    assert summary("Use e.g. PGD here. Second.") == "Use e.g. PGD here."
    assert summary("Scores 0.5 of 1.0 at eps 0.3 in the end") == \
        "Scores 0.5 of 1.0 at eps 0.3 in the end"
    long = summary("word " * 60, width=40)
    assert long.endswith("…") and len(long) <= 40 and not long[:-1].endswith(" ")
    assert long[:-1].split() == ["word"] * len(long[:-1].split())  # cut between words


def test_no_registered_summary_is_cut_mid_sentence(cli):
    out = cli("plugins", "--json")
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r["summary"] for r in json.loads(out.stdout)["plugins"]}
    assert '"Fast is better than free"' in rows["fgsm_at"]
    assert rows["ray"].endswith("Ray retries a task whose worker dies.")
    for name, text in rows.items():
        assert text.endswith((".", "…", ")")), (name, text)


# --- plugins show -------------------------------------------------------------------------
def test_show_an_attack_keys_types_defaults_docs_and_capabilities(cli):
    out = cli("plugins", "show", "pgd")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert text.startswith("pgd (attack)\n  from:    benchbench ")
    assert "summary: Projected gradient descent, L-inf or L2, with random starts and " \
           "restarts." in text
    assert "suite keys ([[attacks]]; benchbench reads name, label, eps, split, rows, at):" in text
    for line in ('    norm: str = "linf"', "    steps: int = 40", "    restarts: int = 1",
                 "    random_start: bool = true", "    step_size: float | None = none (unset)"):
        assert line + "\n" in text, line
    assert "With ``restarts`` > 1 each example keeps the first restart that fools" in text
    assert "    iterative: true\n" in text and "    norm: linf\n" in text


def test_show_a_regime_with_its_base_keys_as_json(cli):
    out = cli("plugins", "show", "pgd_at", "--json")
    assert out.exit_code == 0, out.output
    [info] = json.loads(out.stdout)["plugins"]
    assert (info["kind"], info["name"], info["distribution"]) == ("regime", "pgd_at",
                                                                  "benchbench")
    keys = {k["key"]: k for k in info["keys"]}
    assert {"eps", "steps", "lr", "epochs", "checkpoints", "dtype"} <= set(keys)  # base's too
    assert (keys["eps"]["type"], keys["eps"]["default"]) == ("float", "0.1")
    assert keys["eps"]["doc"].startswith("``eps`` (0.1): the L-inf radius")
    assert keys["steps"]["doc"].startswith("``steps`` (10")
    assert keys["dtype"]["doc"] == "``dtype`` (float32, float64)"
    caps = info["capabilities"]
    assert caps["loop"].startswith("harness") and caps["stackable"] is True
    assert caps["member_params"] == ["lr", "momentum", "weight_decay"]


def test_show_a_model_and_an_unknown_name(cli):
    out = cli("plugins", "show", "mlp")
    assert out.exit_code == 0, out.output
    assert "mlp (model)" in out.stdout and "    hidden: Sequence[int] = [200, 300]\n" in \
        out.stdout and "    stack: true\n" in out.stdout
    typo = cli("plugins", "show", "pgdd")
    assert typo.exit_code == 2 and typo.stderr.count("\n") == 1
    assert "unknown attack 'pgdd'; did you mean 'pgd'" in typo.stderr
    bad_kind = cli("plugins", "show", "pgd", "--kind", "attacks")
    assert bad_kind.exit_code == 2 and "--kind 'attacks' is not a plugin kind" in bad_kind.stderr


def test_show_a_third_party_plugin_from_its_distribution(monkeypatch):
    monkeypatch.delenv("BENCHBENCH_DISABLE_PLUGINS", raising=False)
    out = CliRunner().invoke(app, ["plugins", "show", "random_sign"])
    if "unknown" in out.output:  # the example plugin is installed by make's dev target
        pytest.skip("benchbench-example-attack is not installed")
    assert out.exit_code == 0, out.output
    assert "from:    benchbench-example-attack 0.1.0 (entry point example_attack)" in out.stdout
    assert "    seed: int = 0\n" in out.stdout


class Documented:
    """A class documenting its keys three ways.

    Args:
        alpha (float): the first key,
            over two lines.

    ``gamma`` (3): the third key, in the house style; ``delta`` only named.
    """

    def __init__(self, *, alpha: float = 1.0, beta: int = 2, gamma: int = 3,
                 delta: str = "d", quiet: bool = False) -> None:
        """:param beta: the second key, Sphinx style."""


def test_key_documentation_from_docstrings():
    assert key_doc(Documented, "alpha") == "the first key, over two lines."
    assert key_doc(Documented, "beta") == "the second key, Sphinx style."
    assert key_doc(Documented, "gamma") == "``gamma`` (3): the third key, in the house style"
    assert key_doc(Documented, "delta").startswith("``gamma`` (3): the third key")  # named
    assert key_doc(Documented, "quiet") == ""


# --- validate -----------------------------------------------------------------------------
def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*")}


def test_validate_shows_the_plan_and_writes_nothing(cli, write_suite, tmp_path, monkeypatch):
    suite = write_suite(seeds="[0, 1, 2]")
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    out = cli("validate", suite)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == f"{suite}: valid suite 'tiny', 3 cell(s); attacks: fgsm (linf)"
    assert lines[1] == ("run directory runs/tiny: 0 stored, 3 to run in 1 unit(s) (--engine "
                        "auto, --executor inline, device cpu)")
    assert lines[2:] == ["  unit 1: stacked x3, 2 epoch(s), checkpoints 1, 2",
                         "    mlp / standard / seed 0", "    mlp / standard / seed 1",
                         "    mlp / standard / seed 2", "nothing was written"]
    sequential = cli("validate", suite, "--engine", "sequential")
    assert sequential.stdout.count(": sequential (--engine sequential), 2 epoch(s)") == 3
    assert _snapshot(tmp_path) == before  # no run directory, no store, no lock


def test_validate_counts_what_a_run_directory_holds(cli, write_suite, tmp_path):
    suite = write_suite(seeds="[0, 1]", epochs=1, checkpoints="[1]")
    assert cli("run", suite, "--out", tmp_path / "run", "--quiet").exit_code == 0
    before = _snapshot(tmp_path / "run")
    grown = write_suite(seeds="[0, 1, 2]", epochs=1, checkpoints="[1]")  # another version
    out = cli("validate", grown, "--out", tmp_path / "run")
    assert out.exit_code == 0, out.output
    assert "holds another version of suite 'tiny'" in out.stdout
    same = cli("validate", write_suite(seeds="[0, 1]", epochs=1, checkpoints="[1]"), "--out",
               tmp_path / "run")
    assert "0 to run in 0 unit(s)" in same.stdout and ": 2 stored," in same.stdout
    assert _snapshot(tmp_path / "run") == before


def test_validate_refuses_a_bad_suite_with_runs_line_and_exit_2(cli, write_suite, tmp_path):
    suite = write_suite(text=write_suite().read_text().replace("lr = 0.01", "lr = -1"))
    checked = cli("validate", suite, "--out", tmp_path / "v")
    ran = cli("run", suite, "--out", tmp_path / "r")
    assert checked.exit_code == ran.exit_code == 2
    assert checked.stderr == ran.stderr  # the same one line
    assert checked.stderr == f"error: {suite}: regime: lr must be a finite number >= 0; got -1\n"
    assert not (tmp_path / "v").exists()
    bad_engine = cli("validate", write_suite(), "--engine", "stacked")
    assert bad_engine.exit_code == 2 and "--engine 'stacked' is not allowed" in bad_engine.stderr


def test_validate_a_self_driven_regime_from_a_plugin(tmp_path):
    from benchbench.cli_info import render_plan, validate
    from benchbench.plugins import load_registry

    registry = load_registry(load_entry_points=False, extra=(contract_plugin,))
    suite = tmp_path / "s.toml"
    suite.write_text('[suite]\nname = "self"\nseeds = [0, 1]\n[dataset]\nname = "blobs"\n'
                     'train = "train"\ntest = "test"\n[model]\nname = "linear"\n[regime]\n'
                     'name = "full_batch"\nepochs = 2\n[[attacks]]\nname = "fgsm"\neps = [0.5]\n')
    plan = validate(suite, registry=registry, out=tmp_path / "run")
    assert [u["engine"] for u in plan["units"]] == ["self-driven", "self-driven"]
    assert "  unit 2: self-driven, 2 epoch(s), checkpoints 1, 2" in render_plan(plan)
    assert not (tmp_path / "run").exists()


# --- plugins check for every kind with a kit ---------------------------------------------
def test_plugins_check_runs_the_regime_and_the_model_kits(cli):
    regime = cli("plugins", "check", "standard", "--param", "epochs=1")
    assert regime.exit_code == 0, regime.output
    assert "conformance of regime 'standard'" in regime.stdout
    assert "deterministic under a seed" in regime.stdout and "FAIL" not in regime.stdout
    model = cli("plugins", "check", "mlp", "--param", "hidden=[8]")
    assert model.exit_code == 0, model.output
    assert "conformance of model 'mlp'" in model.stdout and "FAIL" not in model.stdout
    dataset = cli("plugins", "check", "digits")
    assert dataset.exit_code == 2
    assert "'digits' is a dataset; plugins check has kits for attack, regime, model" in \
        dataset.stderr
    unknown = cli("plugins", "check", "standard", "--param", "steps=3")
    assert unknown.exit_code == 2
    assert "--param steps: unknown parameter for regime 'standard'" in unknown.stderr


def test_the_help_lists_the_new_commands(cli):
    out = cli("--help")
    assert "validate" in out.stdout and "--version" in out.stdout
    assert "show" in cli("plugins", "--help").stdout
    assert os.environ.get("BENCHBENCH_DISABLE_PLUGINS") == "1"


def test_plugins_show_and_check_know_verifiers(cli):
    import json

    shown = cli("plugins", "show", "mip", "--json")
    assert shown.exit_code == 0, shown.output
    (info,) = json.loads(shown.stdout)["plugins"]
    assert info["kind"] == "verifier" and info["table"] == "[[verifiers]]"
    assert info["capabilities"]["complete"] is True and info["capabilities"]["sound"] is True
    assert "Linear" in info["capabilities"]["layers"]
    assert "time_limit" in {k["key"] for k in info["keys"]}
    checked = cli("plugins", "check", "crown")
    assert checked.exit_code == 0, checked.output
    assert "FAIL" not in checked.stdout and "checks passed" in checked.stdout


def test_validate_lists_the_suites_verifiers(cli, tmp_path):
    suite = tmp_path / "v.toml"
    suite.write_text("""
[suite]
name = "v"

[dataset]
name = "digits"
train = "train[:100]"
test = "test[:50]"

[model]
name = "mlp"
hidden = [8]

[regime]
name = "standard"
epochs = 1

[[verifiers]]
name = "crown"
eps = [0.01, 0.02]
rows = 20

[[verifiers]]
name = "mip"
eps = 0.01
at = "last"
""")
    shown = cli("validate", suite, "--out", tmp_path / "run")
    assert shown.exit_code == 0, shown.output
    assert ("attacks: none; verifiers: crown (crown, eps 0.01, 0.02, 20 rows), mip (mip, eps "
            "0.01, last checkpoint)") in shown.stdout.splitlines()[0]
