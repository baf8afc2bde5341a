"""The plugin system (benchbench.plugins): built-ins, duplicates, broken and blocked plugins.

Offline and fast: entry points are faked by monkeypatching ``benchbench.plugins.entry_points``,
so nothing here depends on what else is installed in the environment.
"""

from __future__ import annotations

import inspect
import json
import types
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

import benchbench
from benchbench import hookspecs, plugins
from benchbench.cli import app
from benchbench.errors import PluginError
from benchbench.plugins import DISABLE_ENV, KINDS, build_plugin_manager, load_registry

BUILT_INS = {"model": {"mlp", "small_cnn", "madry_cnn", "wong_cnn", "preact_resnet18",
                       "wide_resnet"},
             "dataset": {"mnist", "digits", "fashion_mnist", "cifar10", "cifar100", "svhn"},
             "attack": {"fgsm", "pgd", "bim"},
             "regime": {"standard", "fgsm_at", "pgd_at", "trades", "mart", "pretrained", "ibp",
                        "crown_ibp"},
             "executor": {"inline", "local", "ray"},
             "verifier": {"ibp", "crown_ibp", "crown", "mip"}}


def make_plugin(name: str, **hooks) -> types.ModuleType:
    """A module-like plugin object named ``name`` whose hooks are the given functions."""
    module = types.ModuleType(name)
    for hook, function in hooks.items():
        setattr(module, hook, benchbench.hookimpl(function))
    return module


class Noise:
    """Adds nothing: a stand-in attack for registration tests."""

    norm = "linf"


def register_noise(register) -> None:
    register("noise", Noise)


@dataclass(frozen=True)
class FakeDist:
    name: str
    version: str


class FakeEntryPoint:
    """What ``importlib.metadata.entry_points`` yields: a name, a distribution and ``load()``."""

    def __init__(self, name: str, plugin: object = None, error: Exception | None = None,
                 dist: FakeDist | None = None) -> None:
        self.name, self.plugin, self.error = name, plugin, error
        self.dist = dist or FakeDist(f"{name}-dist", "9.9")
        self.loaded = False

    def load(self) -> object:
        self.loaded = True
        if self.error is not None:
            raise self.error
        return self.plugin


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch):
    """Replace the installed entry points with the given fakes; returns the setter."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)

    def install(*eps: FakeEntryPoint) -> list[FakeEntryPoint]:
        def entry_points(*, group: str) -> list[FakeEntryPoint]:
            assert group == "benchbench"
            return list(eps)

        monkeypatch.setattr(plugins, "entry_points", entry_points)
        return list(eps)

    return install


def broken_and_working() -> tuple[FakeEntryPoint, FakeEntryPoint]:
    broken = FakeEntryPoint("broken", error=ImportError("No module named 'missing_dependency'"))
    working = FakeEntryPoint("working", make_plugin("working_mod", register_attacks=register_noise),
                             dist=FakeDist("benchbench-working", "1.2.3"))
    return broken, working


# --- built-ins -------------------------------------------------------------------------------


def test_built_ins_register_every_kind_from_benchbench() -> None:
    registry = load_registry(load_entry_points=False)
    assert registry.failures == []
    assert {kind: set(entries) for kind, entries in registry.entries.items()} == BUILT_INS
    for kind, names in BUILT_INS.items():
        for name in names:
            entry = registry.get(kind, name)
            assert (entry.kind, entry.name) == (kind, name)
            assert entry.source.distribution == "benchbench"
            assert entry.source.version == benchbench.__version__
            assert entry.source.plugin in plugins.DEFAULT_PLUGINS
            assert entry.summary, f"{kind} {name!r} has no summary (first docstring line)"


def test_built_ins_implement_only_declared_hooks() -> None:
    pm, _, failures = build_plugin_manager(load_entry_points=False)
    assert failures == []
    pm.check_pending()  # raises if a built-in implements a hook that hookspecs does not declare


def test_each_call_builds_a_fresh_registry() -> None:
    extra = make_plugin("extra_once", register_attacks=register_noise)
    assert "noise" in load_registry(load_entry_points=False, extra=(extra,)).entries["attack"]
    assert "noise" not in load_registry(load_entry_points=False).entries["attack"]


# --- duplicates and unknown names -----------------------------------------------------------


def test_duplicate_name_is_an_error_naming_both_sources() -> None:
    def register_fgsm_again(register) -> None:
        register("fgsm", Noise)

    dup = make_plugin("dup_fgsm", register_attacks=register_fgsm_again)
    with pytest.raises(PluginError) as info:
        load_registry(load_entry_points=False, extra=(dup,))
    message = str(info.value)
    assert "'fgsm' is registered twice" in message
    assert "benchbench.default_plugins.attacks (benchbench " in message
    assert "dup_fgsm" in message
    assert DISABLE_ENV in message  # the fix is in the message
    # the built-in is named first
    assert message.index("benchbench.default_plugins.attacks") < message.index("dup_fgsm")


def test_same_name_in_different_kinds_is_fine() -> None:
    def register_model(register) -> None:
        register("fgsm", lambda *, input_shape, num_classes: None)

    extra = make_plugin("model_named_fgsm", register_models=register_model)
    registry = load_registry(load_entry_points=False, extra=(extra,))
    assert registry.get("model", "fgsm").source.plugin == "model_named_fgsm"
    assert registry.get("attack", "fgsm").source.distribution == "benchbench"


def test_unknown_name_suggests_the_close_one() -> None:
    registry = load_registry(load_entry_points=False)
    with pytest.raises(PluginError, match="did you mean 'fgsm'") as info:
        registry.get("attack", "fgsn")
    assert "unknown attack 'fgsn'" in str(info.value)
    assert "known attacks: bim, fgsm, pgd" in str(info.value)


def test_unknown_name_mentions_plugins_that_failed(fake_entry_points) -> None:
    fake_entry_points(*broken_and_working())
    with pytest.raises(PluginError, match="plugins that failed to load: broken"):
        load_registry().get("attack", "cw")


# --- broken plugins -------------------------------------------------------------------------


def test_plugin_that_fails_to_import_is_recorded_and_others_work(fake_entry_points) -> None:
    broken, working = fake_entry_points(*broken_and_working())
    registry = load_registry()
    assert broken.loaded and working.loaded
    [failure] = registry.failures
    assert (failure.plugin, failure.distribution) == ("broken", "broken-dist")
    assert failure.error == "ImportError: No module named 'missing_dependency'"
    noise = registry.get("attack", "noise")
    assert noise.obj is Noise
    assert noise.summary == "Adds nothing: a stand-in attack for registration tests."
    assert (noise.source.plugin, noise.source.distribution, noise.source.version) == (
        "working", "benchbench-working", "1.2.3")
    assert set(registry.entries["attack"]) == {"fgsm", "pgd", "bim", "noise"}  # built-ins stay


def test_cli_plugins_json_lists_the_failure_and_exits_0(fake_entry_points) -> None:
    fake_entry_points(*broken_and_working())
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["failures"] == [{"plugin": "broken", "distribution": "broken-dist",
                                 "error": "ImportError: No module named 'missing_dependency'"}]
    rows = {(row["kind"], row["name"]): row for row in data["plugins"]}
    assert rows["attack", "noise"]["distribution"] == "benchbench-working"
    assert rows["attack", "noise"]["version"] == "1.2.3"
    assert rows["attack", "fgsm"]["distribution"] == "benchbench"


def test_cli_plugins_table_prints_the_failure_to_stderr(fake_entry_points) -> None:
    fake_entry_points(*broken_and_working())
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    assert "noise" in result.stdout
    assert "broken" in result.stderr and "missing_dependency" in result.stderr


def test_plugin_whose_register_hook_raises_is_recorded_and_others_work() -> None:
    def register_badly(register) -> None:
        raise RuntimeError("cannot find my weights")

    bad = make_plugin("bad_plugin", register_attacks=register_badly)
    good = make_plugin("good_plugin", register_attacks=register_noise)
    registry = load_registry(load_entry_points=False, extra=(bad, good))
    [failure] = registry.failures
    assert failure.plugin == "bad_plugin"
    assert failure.error == "register_attacks raised RuntimeError: cannot find my weights"
    assert registry.get("attack", "noise").source.plugin == "good_plugin"
    assert set(registry.entries["attack"]) == {"fgsm", "pgd", "bim", "noise"}
    assert set(registry.entries["model"]) == BUILT_INS["model"]


# --- blocking plugins with BENCHBENCH_DISABLE_PLUGINS ---------------------------------------


def test_disable_1_loads_no_entry_points(fake_entry_points, monkeypatch) -> None:
    eps = fake_entry_points(*broken_and_working())
    monkeypatch.setenv(DISABLE_ENV, "1")
    registry = load_registry()
    assert not any(ep.loaded for ep in eps)
    assert registry.failures == []
    assert {kind: set(entries) for kind, entries in registry.entries.items()} == BUILT_INS


def test_disable_a_name_blocks_just_that_entry_point(fake_entry_points, monkeypatch) -> None:
    example = FakeEntryPoint("example_attack", make_plugin(
        "example_mod", register_attacks=lambda register: register("random_sign", Noise)))
    other = FakeEntryPoint("other", make_plugin("other_mod", register_attacks=register_noise))
    fake_entry_points(example, other)
    monkeypatch.setenv(DISABLE_ENV, "example_attack")
    registry = load_registry()
    assert not example.loaded and other.loaded
    assert set(registry.entries["attack"]) == {"fgsm", "pgd", "bim", "noise"}


@pytest.mark.parametrize(("value", "loaded"), [
    ("", {"a", "b"}), ("0", {"a", "b"}), ("b", {"a"}), (" a , b ", set()), ("a,c", {"b"}),
])
def test_disable_values(fake_entry_points, monkeypatch, value: str, loaded: set[str]) -> None:
    eps = fake_entry_points(FakeEntryPoint("a", make_plugin("mod_a")),
                            FakeEntryPoint("b", make_plugin("mod_b")))
    monkeypatch.setenv(DISABLE_ENV, value)
    load_registry()
    assert {ep.name for ep in eps if ep.loaded} == loaded


def test_load_entry_points_false_ignores_installed_plugins(fake_entry_points) -> None:
    eps = fake_entry_points(*broken_and_working())
    load_registry(load_entry_points=False)
    assert not any(ep.loaded for ep in eps)


# --- the hookspecs contract -----------------------------------------------------------------


def hook_names() -> list[str]:
    """Every hook that benchbench.hookspecs declares, found through pluggy's public API."""
    pm, _, _ = build_plugin_manager(load_entry_points=False)
    return [name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
            if pm.parse_hookspec_opts(hookspecs, name) is not None]


def test_hooks_are_one_register_hook_per_kind() -> None:
    assert sorted(hook_names()) == sorted(f"register_{kind}s" for kind in KINDS)


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented_and_typed(hook: str) -> None:
    function = getattr(hookspecs, hook)
    doc = inspect.getdoc(function) or ""
    assert len(doc.split()) >= 10, f"{hook} needs a docstring saying what to register"
    assert 'register("' in doc, f"{hook}'s docstring should show a register(...) call"
    assert list(inspect.signature(function).parameters) == ["register"]
    assert inspect.get_annotations(function, eval_str=True)["register"] is hookspecs.Register


@pytest.mark.parametrize("kind", KINDS)
def test_every_hook_is_called_during_collect(kind: str) -> None:
    calls: list[str] = []

    def probe(hook: str):
        def impl(register) -> None:
            calls.append(hook)
            register(f"probe_{hook}", Noise, summary=f"probe for {hook}")

        return impl

    extra = make_plugin("probe", **{hook: probe(hook) for hook in hook_names()})
    registry = load_registry(load_entry_points=False, extra=(extra,))
    hook = f"register_{kind}s"
    assert calls.count(hook) == 1
    entry = registry.get(kind, f"probe_{hook}")  # the callback files it under this kind only
    assert (entry.kind, entry.source.plugin, entry.summary) == (kind, "probe", f"probe for {hook}")
    assert all(f"probe_{hook}" not in registry.entries[k] for k in KINDS if k != kind)


# --- ordering and all-or-nothing registration -----------------------------------------------


def test_misspelled_hook_is_reported_as_a_failure(fake_entry_points) -> None:
    typo = FakeEntryPoint("typo", make_plugin("typo_mod", register_attack=register_noise))
    fake_entry_points(typo)
    registry = load_registry()
    [failure] = registry.failures
    assert failure.plugin == "typo" and "register_attack" in failure.error
    assert "noise" not in registry.entries["attack"]


def test_hook_that_registers_then_raises_leaves_nothing_behind() -> None:
    def register_then_fail(register) -> None:
        register("half", Noise)
        raise RuntimeError("second half broke")

    registry = load_registry(load_entry_points=False,
                             extra=(make_plugin("half_mod", register_attacks=register_then_fail),))
    assert "half" not in registry.entries["attack"]
    assert [f.plugin for f in registry.failures] == ["half_mod"]
