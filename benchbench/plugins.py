"""Building the plugin manager and collecting what plugins register.

The manager is built inside a function (never at import time): built-ins from
``DEFAULT_PLUGINS`` first, then every ``benchbench`` entry point. A plugin that fails to import
or to register is recorded in ``Registry.failures`` and the others keep working. Whatever a
plugin prints while it is imported or registers goes to stderr, never stdout, so it cannot
corrupt machine-readable output (``benchbench plugins --json``, ``export`` to stdout).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points

import pluggy

from benchbench import __version__, hookspecs
from benchbench.errors import PluginError

ENTRY_POINT_GROUP = "benchbench"
DISABLE_ENV = "BENCHBENCH_DISABLE_PLUGINS"
"""``1``, ``true``, ``yes`` or ``on`` (any case) loads no entry-point plugins; ``0``, ``false``,
``no``, ``off`` or empty loads them all; anything else is a comma list of entry-point names to
skip (a name that no installed entry point has is ignored, so one setting serves machines with
different plugins installed)."""
DISABLE_ALL = frozenset({"1", "true", "yes", "on"})
DISABLE_NONE = frozenset({"", "0", "false", "no", "off"})

DEFAULT_PLUGINS = (
    "benchbench.default_plugins.models",
    "benchbench.default_plugins.datasets",
    "benchbench.default_plugins.attacks",
    "benchbench.default_plugins.regimes",
    "benchbench.default_plugins.executors",
    "benchbench.default_plugins.verifiers",
)
KINDS = ("model", "dataset", "attack", "regime", "executor", "verifier")


@dataclass(frozen=True)
class Source:
    """Where a registered thing comes from: the plugin and its distribution."""

    plugin: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.plugin} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    obj: object
    source: Source
    summary: str


@dataclass(frozen=True)
class Failure:
    plugin: str
    distribution: str
    error: str


@dataclass
class Registry:
    """Everything the plugins registered, by kind and name."""

    entries: dict[str, dict[str, Entry]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    failures: list[Failure] = field(default_factory=list)
    #: how to build this registry again in another process (``registry_from_recipe``)
    recipe: dict = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        known = self.entries[entry.kind]
        if entry.name in known:
            raise PluginError(
                f"{entry.kind} {entry.name!r} is registered twice: by {known[entry.name].source} "
                f"and by {entry.source}; uninstall one or set {DISABLE_ENV}=<entry point name>"
            )
        known[entry.name] = entry

    def get(self, kind: str, name: str) -> Entry:
        """The entry for ``name``, or a PluginError that suggests close names."""
        known = self.entries[kind]
        if name in known:
            return known[name]
        close = difflib.get_close_matches(name, list(known), n=3)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        broken = [f.plugin for f in self.failures]
        also = f" (plugins that failed to load: {', '.join(broken)})" if broken else ""
        raise PluginError(
            f"unknown {kind} {name!r}; {hint}known {kind}s: {', '.join(sorted(known)) or 'none'}"
            + also
        )

    def defaults_of(self, kind: str, name: str) -> dict[str, object]:
        """Default values of the keyword parameters (as JSON would round-trip them)."""
        obj = self.get(kind, name).obj
        if hasattr(obj, "suite_params"):
            return {}  # an adapter: the wrapped library owns its defaults
        from benchbench.signatures import keyword_params

        allowed = set(self.params_of(kind, name))
        out = {}
        for p in keyword_params(obj).values():
            if p.name in allowed and p.default is not p.empty:
                try:
                    out[p.name] = json.loads(json.dumps(p.default))
                except (TypeError, ValueError):
                    continue  # not plain data: left out of the cell spec
        return out

    def params_of(self, kind: str, name: str) -> list[str]:
        """The keyword parameters the registered object accepts: its ``suite_params()`` when it
        has one (adapters of other libraries), else its keyword-only parameters."""
        obj = self.get(kind, name).obj
        if hasattr(obj, "suite_params"):
            return list(obj.suite_params())
        from benchbench.signatures import keyword_params

        return list(keyword_params(obj))  # a subclass forwarding **kwargs: its base's keys too


def _disabled() -> set[str] | bool:
    value = os.environ.get(DISABLE_ENV, "").strip()
    if value.lower() in DISABLE_NONE:
        return set()
    if value.lower() in DISABLE_ALL:
        return True
    return {part.strip() for part in value.split(",")} - {""}


def build_plugin_manager(*, load_entry_points: bool = True, extra: tuple[object, ...] = ()):
    """A fresh manager with the built-ins, ``extra`` plugin objects and the entry points.

    Returns ``(manager, sources, failures)``; ``sources`` maps plugin names to ``Source``.
    """
    pm = pluggy.PluginManager("benchbench")
    pm.add_hookspecs(hookspecs)
    sources: dict[str, Source] = {}
    failures: list[Failure] = []
    for modname in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(modname), name=modname)
        sources[modname] = Source(modname, "benchbench", __version__)
    for obj in extra:
        name = pm.register(obj)
        sources[name] = Source(name, getattr(obj, "__name__", name), "local")
    disabled = _disabled() if load_entry_points else True
    if disabled is not True:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in disabled:
                continue
            dist = ep.dist.name if ep.dist else "?"
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the others down
                failures.append(Failure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            try:
                pm.check_pending()  # a misspelled hook (register_attack) must not pass silently
            except pluggy.PluginValidationError as exc:
                pm.unregister(name=ep.name)
                failures.append(Failure(ep.name, dist, f"{type(exc).__name__}: {exc}"))
                continue
            sources[ep.name] = Source(ep.name, dist, ep.dist.version if ep.dist else "?")
    return pm, sources, failures


def collect(pm: pluggy.PluginManager, sources: dict[str, Source],
            failures: list[Failure] | None = None) -> Registry:
    """Call every register hook of every plugin and gather the entries."""
    from benchbench.docstrings import shorten
    from benchbench.docstrings import summary as first_sentence

    registry = Registry(failures=list(failures or ()))
    for kind in KINDS:
        caller = getattr(pm.hook, f"register_{kind}s")
        for impl in caller.get_hookimpls():  # registration order (hook calls would be LIFO)
            source = sources.get(impl.plugin_name, Source(impl.plugin_name, "?", "?"))
            pending: list[Entry] = []

            def register(name: str, obj: object, *, summary: str | None = None,
                         _kind: str = kind, _source: Source = source,
                         _pending: list[Entry] = pending) -> None:
                # a summary the plugin gives is its own words (shortened only); a docstring
                # gives its first sentence
                doc = shorten(summary) if summary else first_sentence(inspect.getdoc(obj) or "")
                _pending.append(Entry(_kind, name, obj, _source, doc))

            try:
                impl.function(register=register)
            except Exception as exc:  # all or nothing: a hook that raises registers nothing
                registry.failures.append(Failure(
                    impl.plugin_name, source.distribution,
                    f"register_{kind}s raised {type(exc).__name__}: {exc}"))
                continue
            for entry in pending:
                registry.add(entry)
    return registry


def load_registry(*, load_entry_points: bool = True, extra: tuple[object, ...] = ()) -> Registry:
    """The registry of built-ins plus installed plugins: what the CLI and the runner use.
    Plugins' prints while they load and register go to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        pm, sources, failures = build_plugin_manager(load_entry_points=load_entry_points,
                                                     extra=extra)
        registry = collect(pm, sources, failures)
    registry.recipe = {
        "entry_points": load_entry_points, "disable": os.environ.get(DISABLE_ENV, ""),
        "modules": [obj.__name__ for obj in extra if inspect.ismodule(obj)],
        "in_memory": [getattr(obj, "__name__", type(obj).__name__) for obj in extra
                      if not inspect.ismodule(obj)]}
    return registry


def registry_from_recipe(recipe: dict) -> Registry:
    """The registry ``load_registry`` built where ``recipe`` was taken (``Registry.recipe``): the
    same entry points (with the same ``BENCHBENCH_DISABLE_PLUGINS`` setting) and extra plugin
    modules, imported by name. Plugins that were passed as objects cannot be rebuilt."""
    saved = os.environ.get(DISABLE_ENV)
    os.environ[DISABLE_ENV] = recipe.get("disable", "")
    try:
        extra = tuple(importlib.import_module(name) for name in recipe.get("modules", ()))
        registry = load_registry(load_entry_points=recipe.get("entry_points", True), extra=extra)
    finally:
        if saved is None:
            os.environ.pop(DISABLE_ENV, None)
        else:
            os.environ[DISABLE_ENV] = saved
    return registry
