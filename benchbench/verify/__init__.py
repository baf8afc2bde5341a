"""Verifiers: proofs that no input of an eps-ball changes a classifier's prediction.

``benchbench.verify`` is this package and is callable: ``benchbench.verify(model, x, y, *,
eps, method="crown", bounds=(0, 1))`` is ``benchbench.verify.api.verify``. Written natively in
torch, bounds in float64: ``ibp`` (interval bound propagation), ``crown_ibp`` (intervals for
intermediate layers, CROWN for the margins), ``crown`` (backward linear relaxation) and ``mip``
(exact: a mixed-integer program solved by HiGHS). The plugin classes are in
``benchbench.verify.verifiers``; nothing here imports torch until it is used.
"""

from __future__ import annotations

import importlib
import sys
import types

ROBUST, UNKNOWN, NOT_ROBUST = 1, 0, -1
"""The verdict codes, per example (int8): proved robust, undecided, a checked counterexample."""
DEFAULT_TOL = 1e-5
"""The proof's safety margin, relative to the clean logits' scale (``api.threshold``)."""

_LAZY = {"verify": "api", "verdicts": "api", "margin_bounds": "api", "threshold": "api",
         "METHODS": "api", "Normalize": "normalize",
         "LAYERS": "bounds", "check_layers": "bounds", "build_network": "bounds",
         "mip_verdicts": "mip", "run_verifier": "verifiers", "check_model": "verifiers"}

__all__ = ["DEFAULT_TOL", "NOT_ROBUST", "ROBUST", "UNKNOWN", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """Makes ``benchbench.verify(...)`` the function while ``benchbench.verify`` stays the
    package (importing a submodule binds the package, never a function, to that name)."""

    def __call__(self, model, x, y, *, eps, method="crown", bounds=(0.0, 1.0), **options):
        from benchbench.verify.api import verify

        return verify(model, x, y, eps=eps, method=method, bounds=bounds, **options)


sys.modules[__name__].__class__ = _CallableModule
