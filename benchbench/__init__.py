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

__all__ = ["__version__", "hookimpl", "verify"]


def __getattr__(name: str):
    """``benchbench.verify``, imported on first use (it is the callable package
    ``benchbench.verify``: ``benchbench.verify(model, x, y, eps=[...])``)."""
    if name == "verify":
        import importlib

        return importlib.import_module("benchbench.verify")
    raise AttributeError(f"module 'benchbench' has no attribute {name!r}")
