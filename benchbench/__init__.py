"""benchbench: a plugin-based benchmark suite for attacks and training regimes on classifiers.

Importing this package is cheap (no torch): plugins import heavy libraries when a thing is used.
"""

from __future__ import annotations

import pluggy

from benchbench.engine import blas

blas.request()  # MKL's strict reproducible mode, before torch's first product (an env variable)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("benchbench")
"""Marker for plugin hook implementations: decorate ``register_attacks`` etc. with it."""

#: the Python API (benchbench.api; README, "Python API")
_API = ("evaluate", "run", "load", "load_model", "Evaluation")

__all__ = ["__version__", "hookimpl", "verify", *_API]


def __getattr__(name: str):
    """``benchbench.verify`` and the Python API (``benchbench.evaluate``, ``run``, ``load``,
    ``load_model``), imported on first use. ``benchbench.verify`` is the callable package:
    ``benchbench.verify(model, x, y, eps=[...])``."""
    import importlib

    if name == "verify":
        return importlib.import_module("benchbench.verify")
    if name in _API:
        return getattr(importlib.import_module("benchbench.api"), name)
    raise AttributeError(f"module 'benchbench' has no attribute {name!r}")
