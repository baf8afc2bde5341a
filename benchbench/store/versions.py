"""Cells measured by other code than the installed one: stored versions against installed ones.

Every stored cell keeps the versions that measured it: ``benchbench_version``, ``torch_version``
and ``plugins`` (``{"kind:name": "<distribution> <version>"}`` for its dataset, model, regime and
attacks). A number is only as current as that code: ``stale_cells`` lists the cells whose stored
versions differ from the installed ones, each with what differs, so ``run``, ``report`` and
``leaderboard`` can say so (``describe_stale``) and ``run --remeasure-stale`` can measure them
again. Names compared: ``benchbench``, ``torch`` and each ``kind:name`` of the cell's plugins.

Reading what is installed imports no torch (its ``version.py`` is read as text) and builds the
default plugin registry only when no ``installed`` mapping is passed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: the installed version of something a stored cell names that is not installed any more
NOT_INSTALLED = "not installed"


@dataclass(frozen=True)
class Difference:
    """One name whose stored version is not the installed one."""

    name: str  # "benchbench", "torch", or a plugin's "kind:name"
    stored: str
    installed: str


@dataclass(frozen=True)
class StaleCell:
    """A stored cell measured by code other than the installed code."""

    cell_id: str
    model: str
    regime: str
    seed: int | None
    differences: tuple[Difference, ...]

    def describe(self) -> str:
        return f"{self.model} / {self.regime} / seed {self.seed}"


def torch_version() -> str:
    """The installed torch's ``torch.__version__`` (local label included, e.g. ``+cu130``),
    without importing torch when it is not imported yet; ``NOT_INSTALLED`` without torch."""
    if "torch" in sys.modules:
        return str(sys.modules["torch"].__version__)
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return NOT_INSTALLED
    for folder in spec.submodule_search_locations:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return NOT_INSTALLED


def plugin_version(entry) -> str:
    """How a cell stores the version of a registered plugin: ``"<distribution> <version>"``,
    and ``" revision <n>"`` after it where the plugin's class declares a ``revision`` above 1
    (raised when its numbers change for the same keys: ``benchbench.regimes.base.Regime``)."""
    revision = getattr(entry.obj, "revision", 1)
    suffix = f" revision {revision}" if isinstance(revision, int) and revision > 1 else ""
    return f"{entry.source.distribution} {entry.source.version}{suffix}"


def installed_versions(registry=None) -> dict[str, str]:
    """What is installed, in the names a cell stores: ``benchbench``, ``torch`` and every
    registered plugin as ``kind:name`` -> ``"<distribution> <version>"``. ``registry``
    defaults to the one ``benchbench`` commands load (entry points included)."""
    from benchbench import __version__

    if registry is None:
        from benchbench.plugins import load_registry

        registry = load_registry()
    out = {"benchbench": __version__, "torch": torch_version()}
    for kind, entries in registry.entries.items():
        for name, entry in entries.items():
            out[f"{kind}:{name}"] = plugin_version(entry)
    return out


def stored_versions(cell: Mapping) -> dict[str, str]:
    """The versions a stored cell (a row of ``ResultsStore.cells``) was measured with."""
    out = {}
    if cell.get("benchbench_version"):
        out["benchbench"] = str(cell["benchbench_version"])
    if cell.get("torch_version"):
        out["torch"] = str(cell["torch_version"])
    try:
        plugins = json.loads(cell.get("plugins") or "{}")
    except (TypeError, ValueError):
        plugins = {}
    if isinstance(plugins, dict):
        out.update({str(k): str(v) for k, v in plugins.items()})
    return out


def differences(stored: Mapping[str, str], installed: Mapping[str, str]) -> tuple[Difference, ...]:
    """Each name in ``stored`` whose installed version differs (or is not installed)."""
    return tuple(Difference(name, version, installed.get(name, NOT_INSTALLED))
                 for name, version in sorted(stored.items())
                 if installed.get(name, NOT_INSTALLED) != version)


def stale_cells(store, *, installed: Mapping[str, str] | None = None) -> list[StaleCell]:
    """The stored cells (status ``ok``, in store order) whose versions differ from
    ``installed`` (default: ``installed_versions()``), each with what differs."""
    installed = installed_versions() if installed is None else installed
    out = []
    for cell in store.cells():
        if cell.get("status") != "ok":
            continue
        diff = differences(stored_versions(cell), installed)
        if diff:
            out.append(StaleCell(cell["cell_id"], cell.get("model") or "?",
                                 cell.get("regime") or "?", cell.get("seed"), diff))
    return out


def summarise(stale: list[StaleCell]) -> list[Difference]:
    """Every distinct difference among ``stale``, once each, in name order."""
    return sorted({d for cell in stale for d in cell.differences},
                  key=lambda d: (d.name, d.stored, d.installed))


def describe_stale(stale: list[StaleCell], *, total: int | None = None) -> str:
    """One line for a warning: how many cells are stale and what differs; "" when none.
    Plugins whose stored and installed versions are the same pair are said together."""
    if not stale:
        return ""
    parts, plugins = [], {}
    for d in summarise(stale):
        if ":" in d.name:
            plugins.setdefault((d.stored, d.installed), []).append(d.name)
        else:
            parts.append(f"{d.name} {d.stored} (installed: {d.installed})")
    for (stored, installed), names in plugins.items():
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        parts.append(f"{shown} from {stored} (installed: {installed})")
    of = f" of {total}" if total is not None else ""
    cells = "cell was" if len(stale) == 1 else "cells were"
    return (f"{len(stale)}{of} stored {cells} measured with other versions than the installed "
            f"ones: {'; '.join(parts)}")
