"""The suite keys a registered class or factory accepts, read from its signature.

A subclass that forwards ``**kwargs`` to its base (``def __init__(self, *, eps=0.1, **kwargs)``)
accepts its base's keys too: they are collected along the class's method resolution order for as
long as each ``__init__`` forwards ``**kwargs``.
"""

from __future__ import annotations

import inspect

SKIP = ("input_shape", "num_classes", "self")


def keyword_params(obj) -> dict[str, inspect.Parameter]:
    """Name -> parameter of every keyword-only parameter ``obj(...)`` accepts (the first
    definition of a name wins: a subclass's default overrides its base's)."""
    out: dict[str, inspect.Parameter] = {}
    targets = [init for k in obj.__mro__ if k is not object
               for init in [vars(k).get("__init__")] if init is not None] \
        if isinstance(obj, type) else [obj]
    for target in targets or [obj]:
        params = inspect.signature(target).parameters.values()
        for p in params:
            if p.kind is p.KEYWORD_ONLY and p.name not in SKIP:
                out.setdefault(p.name, p)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return out
