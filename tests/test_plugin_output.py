"""A plugin that prints while it is imported or registers never corrupts machine output.

``benchbench plugins --json`` must stay valid JSON on stdout: what plugins print while the
registry is built goes to stderr.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from benchbench import plugins
from benchbench.cli import app
from benchbench.plugins import DISABLE_ENV

CHATTY = '''
print("chatty plugin: hello from import")

from benchbench import hookimpl
from benchbench.attacks.fgsm import FGSM


@hookimpl
def register_attacks(register):
    print("chatty plugin: registering")
    register("chatty_fgsm", FGSM)
'''


@dataclass(frozen=True)
class Dist:
    name: str = "chatty-dist"
    version: str = "1.0"


class EntryPoint:
    """An installed entry point: ``load`` imports the module."""

    name, dist = "chatty", Dist()

    def __init__(self, module: str) -> None:
        self.module = module

    def load(self):
        return importlib.import_module(self.module)


@pytest.fixture
def chatty(tmp_path, monkeypatch):
    (tmp_path / "chatty_plugin_mod.py").write_text(CHATTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    monkeypatch.setattr(plugins, "entry_points",
                        lambda *, group: [EntryPoint("chatty_plugin_mod")])
    yield
    import sys

    sys.modules.pop("chatty_plugin_mod", None)


def test_plugins_json_stays_json_when_a_plugin_prints(chatty):
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    listed = json.loads(result.stdout)  # nothing but the JSON on stdout
    assert "chatty_fgsm" in {p["name"] for p in listed["plugins"]}
    assert "hello from import" in result.stderr and "registering" in result.stderr
