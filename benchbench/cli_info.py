"""What the command line tells people: ``--version``, ``plugins show``, ``plugins check`` for every
kind with a kit, and ``validate`` (what ``run`` checks and plans, nothing written).

Keyword-only functions returning plain data, and renderers of it; ``benchbench.cli`` parses and
delegates. Nothing here imports torch at module level (``--version`` imports none of it).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

from benchbench.errors import BenchbenchError

# the suite table each kind's keys go in, and the keys benchbench itself reads there
TABLES = {"model": ("[model]", ("name", "label")),
          "dataset": ("[dataset]", ("name", "train", "test")),
          "attack": ("[[attacks]]", ("name", "label", "eps", "split", "rows", "at")),
          "regime": ("[regime]", ("name", "label")),
          "verifier": ("[[verifiers]]", ("name", "label", "eps", "rows", "at")),
          "executor": ("benchbench run flags", ())}
#: the kits that check a kind: ``plugins check`` dispatches on the entry's kind
KITS = {"attack": ("benchbench.testing", "conformance"),
        "regime": ("benchbench.testing_regimes", "regime_conformance"),
        "model": ("benchbench.testing_models", "model_conformance"),
        "verifier": ("benchbench.testing_verifiers", "verifier_conformance")}


# --- --version --------------------------------------------------------------------------
def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_text() -> str:
    """``benchbench 0.1.0 (torch 2.14.1, Python 3.11.9)`` and the installed plugin
    distributions, read from package metadata (nothing is imported)."""
    from benchbench import __version__

    torch = _installed("torch")
    python = ".".join(str(v) for v in sys.version_info[:3])
    lines = [f"benchbench {__version__} (torch {torch or 'not installed'}, Python {python})"]
    dists = sorted({(ep.dist.name, ep.dist.version) for ep in metadata.entry_points(
        group="benchbench") if ep.dist is not None and ep.dist.name != "benchbench"})
    if dists:
        lines.append("plugins: " + ", ".join(f"{name} {version}" for name, version in dists))
    return "\n".join(lines)


# --- plugins show -----------------------------------------------------------------------
def find(registry, name: str, kind: str | None = None) -> list:
    """The entries registered as ``name`` (of ``kind``), or a PluginError with close names."""
    from benchbench.plugins import KINDS

    if kind is not None:
        if kind not in KINDS:
            raise BenchbenchError(f"--kind {kind!r} is not a plugin kind; use one of "
                                  f"{', '.join(KINDS)}")
        return [registry.get(kind, name)]
    found = [registry.entries[k][name] for k in KINDS if name in registry.entries[k]]
    if found:
        return found
    import difflib

    from benchbench.errors import PluginError

    every = {n: k for k in reversed(KINDS) for n in registry.entries[k]}
    close = difflib.get_close_matches(name, list(every), n=1)
    if close:  # the closest name's kind says it: "unknown attack 'fgsn'; did you mean 'fgsm'?"
        registry.get(every[close[0]], name)
    raise PluginError(f"unknown plugin {name!r}: no {', '.join(KINDS)} is registered under "
                      "that name (benchbench plugins lists them all)")


def _value(value) -> str:
    """A default as a suite writes it (TOML-like): ``"adam"``, ``true``, ``[200, 300]``."""
    if value is None:
        return "none (unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    try:
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    except (TypeError, ValueError):
        return repr(value)


def _type(param) -> str:
    import inspect

    if param is None or param.annotation is inspect.Parameter.empty:
        return ""
    ann = param.annotation
    return ann if isinstance(ann, str) else inspect.formatannotation(ann)


def keys_of(registry, entry) -> list[dict]:
    """Every suite key of ``entry``: name, type, default and documentation, from its signature
    and docstrings (``benchbench.docstrings.key_doc``); an adapter of another library says
    where that library documents them with ``key_source()`` (a callable, or a list searched in
    order) and may hold its own ``defaults``."""
    import inspect

    from benchbench.docstrings import key_doc
    from benchbench.signatures import keyword_params

    names = registry.params_of(entry.kind, entry.name)
    obj = entry.obj
    sources = obj.key_source() if callable(getattr(obj, "key_source", None)) else []
    sources = list(sources) if isinstance(sources, list | tuple) else [sources]
    params = {}
    for source in sources:  # the library's own parameters, positional-or-keyword too
        for n, p in inspect.signature(source).parameters.items():
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                params.setdefault(n, p)
    params = {**params, **keyword_params(obj)}
    own = getattr(obj, "defaults", None)  # an adapter's own defaults, over the library's
    out = []
    for name in names:
        param = params.get(name)
        mine = getattr(obj, name, None) if sources else None  # an adapter's class attribute
        if isinstance(own, dict) and name in own:
            default = _value(own[name])
        elif isinstance(mine, str | int | float | bool):  # e.g. ART attacks' norm = "linf"
            default, param = _value(mine), None
        elif param is None:
            default = "(the library's)" if hasattr(obj, "suite_params") else ""
        else:
            default = "required" if param.default is param.empty else _value(param.default)
        doc = key_doc(obj, name) if mine is not None else next(
            (d for d in (key_doc(s, name) for s in sources) if d), "") or key_doc(obj, name)
        out.append({"key": name, "type": _type(param), "default": default, "doc": doc})
    return out


def _declared(obj, names) -> dict:
    return {n: getattr(obj, n) for n in names if getattr(obj, n, None) is not None}


def capabilities(entry) -> dict:
    """What ``entry`` declares that the harness reads, by kind (the built object's where it
    builds with its defaults, else its class's)."""
    obj, kind = entry.obj, entry.kind
    try:
        built = obj() if kind in ("attack", "regime", "dataset", "verifier") else None
    except Exception:  # noqa: BLE001 - needs keys, or an extra: the class's declarations
        built = None
    target = built if built is not None else obj
    if kind == "attack":
        from benchbench.attacks import attack_capabilities

        caps = _declared(target, ("norm", "needs_gradients", "per_example", "bounded"))
        try:
            caps["iterative"] = attack_capabilities(target)["iterative"]
        except ValueError as exc:
            caps["iterative"] = f"invalid: {exc}"
        return caps
    if kind == "regime":
        from benchbench.regimes.base import harness_driven

        caps = {"loop": "harness (Regime subclass: resumes bit for bit)" if harness_driven(obj)
                else "none: evaluates the [model]'s given weights as epoch 0, trains nothing"
                if getattr(obj, "evaluate_only", False) is True
                else "self-driven (its own train(): trains alone, starts over on resume)"}
        if harness_driven(obj):
            caps.update(stackable=obj.stackable, member_params=list(obj.member_params))
        if built is not None:
            caps.update(_declared(built, ("dtype", "epochs", "monitor_eps", "early_stop")))
            crafting = getattr(built, "crafting_attack", None)
            if callable(crafting) and crafting() is not None:
                caps["crafting_attack"] = crafting()[0]
        return caps
    if kind == "model":
        return {"stack": callable(getattr(obj, "stack", None)),
                **_declared(obj, ("mode_dependent",))}
    if kind == "dataset":
        caps = _declared(target, ("splits", "num_classes", "input_shape", "bounds",
                                  "split_sizes"))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in caps.items()}
    if kind == "executor":
        return {"in_process": bool(getattr(obj, "in_process", False))}
    if kind == "verifier":
        caps = _declared(target, ("norm", "norms", "sound", "complete", "layers"))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in caps.items()}
    return {}


def plugin_info(registry, entry) -> dict:
    """Everything ``plugins show`` says about ``entry``, as plain data."""
    import inspect

    from benchbench.docstrings import paragraphs

    info = {"kind": entry.kind, "name": entry.name, "plugin": entry.source.plugin,
            "distribution": entry.source.distribution, "version": entry.source.version,
            "summary": entry.summary, "table": TABLES[entry.kind][0],
            "reserved": list(TABLES[entry.kind][1]),
            "description": [p for p in paragraphs(inspect.getdoc(entry.obj) or "")
                            if p != entry.summary]}
    try:
        info["keys"], info["keys_error"] = keys_of(registry, entry), None
    except Exception as exc:  # noqa: BLE001 - a missing extra: say so, show the rest
        info["keys"], info["keys_error"] = [], f"{type(exc).__name__}: {exc}" if not isinstance(
            exc, ValueError) else str(exc)
    info["capabilities"] = capabilities(entry)
    return info


def render_info(info: dict) -> str:
    import textwrap

    def wrap(text: str, indent: str) -> list[str]:
        return textwrap.wrap(text, 96, initial_indent=indent,
                             subsequent_indent=" " * len(indent)) or [""]

    source = f"{info['distribution']} {info['version']}" + (
        "" if info["distribution"] == "benchbench" else f" (entry point {info['plugin']})")
    lines = [f"{info['name']} ({info['kind']})", f"  from:    {source}",
             *wrap(info["summary"], "  summary: ")]
    for paragraph in info["description"]:
        lines += ["", *wrap(paragraph, "  ")]
    also = f"; benchbench reads {', '.join(info['reserved'])}" if info["reserved"] else ""
    lines += ["", f"  suite keys ({info['table']}{also}):"]
    if info["keys_error"]:
        lines.append(f"    unavailable: {info['keys_error']}")
    elif not info["keys"]:
        lines.append("    none")
    for key in info["keys"]:
        head = f"    {key['key']}" + (f": {key['type']}" if key["type"] else "") + (
            f" = {key['default']}" if key["default"] else "")
        lines.append(head)
        if key["doc"]:
            lines += wrap(key["doc"], "        ")
    lines += ["", "  capabilities:"]
    lines += [f"    {k}: {_value(v) if not isinstance(v, str) else v}"
              for k, v in info["capabilities"].items()] or ["    none declared"]
    return "\n".join(lines)


# --- plugins check ----------------------------------------------------------------------
def check_params(registry, entry, params: dict) -> None:
    """Refuse ``--param`` keys ``entry`` does not take (exit 2). A value its constructor
    refuses is reported by the kit as a failed "builds" check (exit 1)."""
    try:
        allowed = registry.params_of(entry.kind, entry.name)
    except Exception as exc:  # noqa: BLE001 - a missing extra or a broken plugin: one line
        raise BenchbenchError(f"{entry.kind} {entry.name!r} from {entry.source}: {exc}") from None
    for key in params:
        if key not in allowed:
            raise BenchbenchError(f"--param {key}: unknown parameter for {entry.kind} "
                                  f"{entry.name!r}; allowed: {', '.join(allowed) or 'none'}")


def run_checks(registry, name: str, *, kind: str | None = None, params: dict) -> tuple:
    """``(entry, checks)``: the kit of the entry's kind run on it (``KITS``)."""
    import importlib

    found = [e for e in find(registry, name, kind) if e.kind in KITS]
    if not found:
        kinds = ", ".join(sorted({e.kind for e in find(registry, name, kind)}))
        raise BenchbenchError(f"{name!r} is a {kinds}; plugins check has kits for "
                              f"{', '.join(KITS)}")
    if len(found) > 1:
        raise BenchbenchError(f"{name!r} is registered as {' and '.join(e.kind for e in found)}; "
                              "pass --kind to say which to check")
    entry = found[0]
    check_params(registry, entry, params)
    module, function = KITS[entry.kind]
    try:
        kit = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError):
        raise BenchbenchError(f"no {entry.kind} kit in this benchbench ({module}.{function} "
                              "is missing)") from None
    return entry, kit(entry.obj, **params)


# --- validate ---------------------------------------------------------------------------
def unit_engine(cells, registry, *, stack: bool, device: str = "cpu") -> str:
    """How the runner trains this unit (``engine.stacked.run_unit``'s choice)."""
    from benchbench.engine.stacked import can_stack
    from benchbench.regimes.base import harness_driven

    if stack and can_stack(registry, cells[0]):
        return f"stacked x{len(cells)}"
    regime = registry.get("regime", cells[0].regime.name).obj
    if getattr(regime, "evaluate_only", False) is True:  # e.g. pretrained: given weights
        return "evaluate only (given weights, not trained here)"
    from benchbench.engine.cell import memory_format
    from benchbench.engine.stacked import alone_because

    why = alone_because(registry, cells[0], stack=stack)
    if memory_format(registry, cells[0].model, device) == "channels_last":
        why += "; channels_last"
    return f"sequential ({why})" if harness_driven(regime) else "self-driven"


def validate(path: Path, *, registry, out: Path | None = None, engine: str = "auto",
             device: str = "auto", executor: str = "inline",
             executor_options: dict | None = None) -> dict:
    """What ``run`` checks before it starts (the suite, every plugin built once, the options,
    the executor), and its plan: the units of cells it would run, each with its engine, and
    the cells already stored in the run directory. Nothing is written."""
    from benchbench.engine.data import build
    from benchbench.engine.device import resolve_device
    from benchbench.engine.executors import make_executor
    from benchbench.engine.runner import check_run_options, validate_suite
    from benchbench.engine.stacked import plan_units
    from benchbench.engine.units import portable
    from benchbench.suite.load import load_suite

    check_run_options(engine=engine, retries=2)
    suite = load_suite(path, registry)
    device = resolve_device(device)
    caps = validate_suite(suite, registry)
    runner = make_executor(registry, executor, executor_options or {})
    problem = None if getattr(runner, "in_process", False) else portable(registry.recipe)
    if problem:
        raise BenchbenchError(f"--executor {executor}: {problem}")
    run_dir = Path(out) if out is not None else Path("runs") / suite.name
    stored: set[str] = set()
    other = None  # the suite name a directory holding another version of the suite gives
    if (run_dir / "results.sqlite").exists():
        from benchbench.store.results import read_store

        with read_store(run_dir) as store:
            meta = store.meta()
            stored = store.done_cells()  # of this version: the cells --update would keep
            if meta.get("suite_hash") != suite.hash:
                other = meta.get("suite_name", "?")
    cells = suite.cells()
    todo = [c for c in cells if c.cell_id not in stored]
    units = []
    for group in plan_units(todo, registry, stack=engine == "auto"):
        regime = build(registry, "regime", group[0].regime.name, group[0].regime.params)
        units.append({"engine": unit_engine(group, registry, stack=engine == "auto",
                                            device=device),
                      "cells": [c.describe() for c in group],
                      "cell_ids": [c.cell_id for c in group], "epochs": regime.epochs,
                      "checkpoints": list(regime.checkpoint_epochs)})
    return {"suite": suite.name, "path": str(path), "hash": suite.hash, "cells": len(cells),
            "stored": len(cells) - len(todo), "run_dir": str(run_dir), "other_suite": other,
            "device": device,
            "executor": executor, "engine": engine, "attacks": caps,
            "verifiers": {v.label: {"name": v.name, "eps": list(v.eps), "rows": v.rows,
                                    "at": v.at} for v in cells[0].verifiers} if cells else {},
            "units": units}


def render_plan(plan: dict) -> str:
    lines = [f"{plan['path']}: valid suite {plan['suite']!r}, {plan['cells']} cell(s); "
             f"attacks: " + (", ".join(f"{label} ({c['norm'] or 'no norm'})"
                                       for label, c in plan["attacks"].items()) or "none")
             + ("; verifiers: " + ", ".join(
                 f"{label} ({v['name']}, eps {', '.join(f'{e:g}' for e in v['eps'])}"
                 + (f", {v['rows']} rows" if v["rows"] else "")
                 + (", last checkpoint" if v["at"] == "last" else "") + ")"
                 for label, v in plan["verifiers"].items()) if plan.get("verifiers") else "")]
    todo = plan["cells"] - plan["stored"]
    if plan["other_suite"] is not None:
        lines.append(f"note: {plan['run_dir']} holds another version of suite "
                     f"{plan['other_suite']!r}: run stops there unless --update keeps the "
                     "stored cells this version has (counted below) or --force archives it "
                     "all (or pass another --out)")
    lines.append(f"run directory {plan['run_dir']}: {plan['stored']} stored, {todo} to run "
                 f"in {len(plan['units'])} unit(s) (--engine {plan['engine']}, --executor "
                 f"{plan['executor']}, device {plan['device']})")
    for i, unit in enumerate(plan["units"], 1):
        checkpoints = ", ".join(str(e) for e in unit["checkpoints"])
        lines.append(f"  unit {i}: {unit['engine']}, {unit['epochs']} epoch(s), checkpoints "
                     f"{checkpoints}")
        lines += [f"    {cell}" for cell in unit["cells"]]
    lines.append("nothing was written")
    return "\n".join(lines)
