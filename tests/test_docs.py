"""The docs stay true: hooks documented and tested, examples are the shipped code."""

from __future__ import annotations

import re
from pathlib import Path

from benchbench import hookspecs
from benchbench.engine.runner import validate_suite
from benchbench.suite.load import load_suite

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
HOOKS = [name for name in vars(hookspecs) if name.startswith("register_")]


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_every_hook_is_documented_in_the_readme_and_has_a_test():
    assert len(HOOKS) == 4
    tests = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    for hook in HOOKS:
        assert f"`{hook}(register)`" in README, hook
        assert getattr(hookspecs, hook).__doc__, hook
        assert f"def test_{hook}_" in tests, f"no test of its own for {hook}"


def test_walkthrough_code_is_the_example_plugin():
    plugin = ROOT / "plugins" / "benchbench-example-attack"
    code = (plugin / "benchbench_example_attack" / "__init__.py").read_text()
    assert code in code_blocks("python")
    entry = code_blocks("toml")[-1]
    assert entry in (plugin / "pyproject.toml").read_text()


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
