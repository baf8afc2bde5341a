"""The docs stay true: hooks documented and tested, examples are the shipped code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from benchbench import hookspecs
from benchbench.engine.runner import validate_suite
from benchbench.suite.load import load_suite

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
HOOKS = [name for name in vars(hookspecs) if name.startswith("register_")]


def code_blocks(lang: str, text: str = README) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def section(title: str) -> str | None:
    """The README's text under the heading ``title`` (any level), up to the next heading of the
    same or a higher level, fenced code skipped; None when there is no such heading."""
    lines, level, out, fenced = README.splitlines(keepends=True), None, [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"(#+) (.*?)\s*$", line)
        if level is None:
            if heading and heading[2] == title:
                level = len(heading[1])
            continue
        if heading and len(heading[1]) <= level:
            break
        out.append(line)
    return None if level is None else "".join(out)


def is_subtable(part: dict, whole: dict) -> bool:
    """Every key of ``part`` is in ``whole`` with the same value (tables compared the same way)."""
    return all(k in whole and (is_subtable(v, whole[k]) if isinstance(v, dict)
                               and isinstance(whole[k], dict) else v == whole[k])
               for k, v in part.items())


def test_every_hook_is_documented_in_the_readme_and_has_a_test():
    assert len(HOOKS) == 6
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for hook in HOOKS:
        assert f"`{hook}(register)`" in README, hook
        assert getattr(hookspecs, hook).__doc__, hook
        assert f"def test_{hook}_" in tests, f"no test of its own for {hook}"


def test_walkthrough_code_is_the_example_plugin():
    text = section("Writing an attack plugin")
    assert text is not None, "README.md lost its 'Writing an attack plugin' section"
    plugin = ROOT / "plugins" / "benchbench-example-attack"
    code = (plugin / "benchbench_example_attack" / "__init__.py").read_text()
    assert code in code_blocks("python", text)
    [entry] = code_blocks("toml", text)
    assert entry in (plugin / "pyproject.toml").read_text()


REGIME_SECTION = "Writing a regime plugin"


def test_regime_walkthrough_code_is_the_example_regime_plugin():
    """README "## Writing a regime plugin" shows plugins/benchbench-example-regime as shipped:
    its whole module, its entry point (part of its pyproject.toml), suite keys the class
    accepts, and the kit test from its own tests."""
    text = section(REGIME_SECTION)
    if text is None:
        pytest.skip(f"README.md has no '## {REGIME_SECTION}' section yet (to be added with the "
                    "walk-through of plugins/benchbench-example-regime); once it exists this "
                    "test must pass")
    plugin = ROOT / "plugins" / "benchbench-example-regime"
    code = (plugin / "benchbench_example_regime" / "__init__.py").read_text()
    python = code_blocks("python", text)
    assert code in python, "the section's code block is not the plugin's __init__.py, verbatim"
    tests = "".join(p.read_text() for p in (plugin / "tests").glob("test_*.py"))
    for block in python:
        if block != code:  # any other snippet (the kit test) is the plugin's own test code
            assert block in tests, block

    pyproject = tomllib.loads((plugin / "pyproject.toml").read_text())
    tables = [tomllib.loads(block) for block in code_blocks("toml", text)]
    [entry] = [t for t in tables if "entry-points" in t.get("project", {})]
    assert entry["project"]["entry-points"] == {
        "benchbench": {"example_regime": "benchbench_example_regime"}}
    assert is_subtable(entry, pyproject), "the entry-point snippet differs from pyproject.toml"

    from benchbench_example_regime import NoiseTraining

    for table in tables:  # a suite snippet's [regime] keys build the regime
        regime = table.get("regime")
        if isinstance(regime, dict) and regime.get("name") == "noise_training":
            NoiseTraining(**{k: v for k, v in regime.items() if k != "name"})


MODEL_SECTION = "Writing a model plugin"


def test_model_walkthrough_code_is_the_example_model_plugin():
    """README "### Writing a model plugin" shows plugins/benchbench-example-model as shipped:
    both modules verbatim, its entry point, a [model] table whose keys build the model, and
    the kit test from its own tests."""
    text = section(MODEL_SECTION)
    assert text is not None, f"README.md lost its '{MODEL_SECTION}' section"
    plugin = ROOT / "plugins" / "benchbench-example-model"
    shipped = [(plugin / "benchbench_example_model" / m).read_text()
               for m in ("__init__.py", "lenet.py")]
    python = code_blocks("python", text)
    for code in shipped:
        assert code in python, "a module of the plugin is not in the section, verbatim"
    tests = "".join(p.read_text() for p in (plugin / "tests").glob("test_*.py"))
    for block in python:
        if block not in shipped:  # any other snippet (the kit test) is the plugin's test code
            assert block in tests, block

    pyproject = tomllib.loads((plugin / "pyproject.toml").read_text())
    tables = [tomllib.loads(block) for block in code_blocks("toml", text)]
    [entry] = [t for t in tables if "entry-points" in t.get("project", {})]
    assert entry["project"]["entry-points"] == {
        "benchbench": {"example_model": "benchbench_example_model"}}
    assert is_subtable(entry, pyproject), "the entry-point snippet differs from pyproject.toml"

    from benchbench_example_model import build_lenet5

    models = [t["model"] for t in tables if t.get("model", {}).get("name") == "lenet5"]
    assert models
    for model in models:  # MNIST's shape, as the snippet says
        build_lenet5(input_shape=(1, 28, 28), num_classes=10,
                     **{k: v for k, v in model.items() if k != "name"})


def test_models_table_lists_every_builtin_model_its_keys_and_size(registry):
    """README "## Models": one row per built-in model naming every suite key its factory
    takes, and the parameter count it states (built on the meta device: no weights)."""
    import torch

    from benchbench.signatures import keyword_params

    text = section("Models")
    rows = dict(re.findall(r"^\| `(\w+)` \|(.*)$", text, flags=re.M))
    assert set(rows) == set(registry.entries["model"])
    shapes = {"MNIST": (1, 28, 28), "CIFAR-10": (3, 32, 32), "WRN-28-10": (3, 32, 32)}
    for name, entry in registry.entries["model"].items():
        for key in keyword_params(entry.obj):
            assert f"`{key}`" in rows[name], (name, key)
        count, where = re.search(r"\| ([\d,]+) (?:on|as) ([\w-]+) \|$", rows[name]).groups()
        with torch.device("meta"):
            model = entry.obj(input_shape=shapes[where], num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == int(count.replace(",", "")), name


def test_readme_suite_example_is_a_valid_suite(registry, tmp_path):
    example = next(b for b in code_blocks("toml") if "[suite]" in b)
    path = tmp_path / "example.toml"
    path.write_text(example.replace('description = "..."', 'description = "x"'))
    suite = load_suite(path, registry)
    validate_suite(suite, registry)
    shipped = load_suite(ROOT / "suites" / "overfit_mnist.toml", registry)
    assert [c.cell_id for c in suite.cells()] == [c.cell_id for c in shipped.cells()]


def test_readme_names_exactly_the_two_setup_commands():
    setup = code_blocks("")[0]
    assert [line.split("#")[0].strip() for line in setup.strip().splitlines()] == [
        "make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
