"""Loading suite splits into memory once per process, in the dtype and device a cell needs."""

from __future__ import annotations

import json
from pathlib import Path

from benchbench.datasets.splits import parse_split
from benchbench.suite.cells import DatasetRef


def build(registry, kind: str, name: str, params: dict):
    """Instantiate a registered dataset, attack or regime class with suite parameters.

    A regime class that breaks the regime contract (``contract_problem``) is refused with a
    TypeError naming it, so it can never run code other than its own."""
    cls = registry.get(kind, name).obj
    if kind == "regime":
        from benchbench.regimes.base import contract_problem

        problem = contract_problem(cls)
        if problem:
            raise TypeError(f"regime {name!r} ({getattr(cls, '__qualname__', cls)}) {problem}")
    obj = cls(**params)
    crafting = getattr(obj, "crafting_attack", None)  # optional: the attack a regime crafts with
    named = crafting() if kind == "regime" and callable(crafting) else None
    if named is not None:
        try:
            build(registry, "attack", *named)
        except Exception as exc:  # noqa: BLE001 - any plugin error, said with its key
            raise ValueError(f"attack: {named[0]!r}: {type(exc).__name__}: {exc}") from None
    return obj


class DataCache:
    """Whole splits as tensors, loaded once and converted once per (dtype, device)."""

    def __init__(self, registry, data_dir: Path | None) -> None:
        self.registry, self.data_dir = registry, data_dir
        self._base: dict[tuple, tuple] = {}
        self._converted: dict[tuple, tuple] = {}

    def dataset(self, ref: DatasetRef):
        return build(self.registry, "dataset", ref.name, ref.params)

    def get(self, ref: DatasetRef, role: str, *, dtype, device: str):
        """``(x, y)`` of the suite's ``train`` or ``test`` split expression."""
        key = (ref.name, json.dumps(ref.params, sort_keys=True), ref.split(role), str(dtype),
               device)
        if key not in self._converted:
            dataset = self.dataset(ref)
            split = parse_split(ref.split(role), dataset.splits)
            base_key = (*key[:2], split.base)
            if base_key not in self._base:
                self._base[base_key] = dataset.load(split.base, data_dir=self.data_dir)
            x, y = self._base[base_key]
            x, y = x[split.rows].to(dtype=dtype).contiguous(), y[split.rows].contiguous()
            if device != "cpu":  # one pinned, asynchronous copy per split and process
                x, y = (t.pin_memory().to(device, non_blocking=True) for t in (x, y))
            self._converted[key] = (x, y)
        return self._converted[key]
