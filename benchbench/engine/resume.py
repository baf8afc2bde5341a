"""Resuming a cell (or a stack of cells) from its last checkpoint after an interruption.

At every checkpoint epoch a unit of cells whose regime is ``resumable`` writes one file,
``checkpoints/resume/<digest of its cell ids>.pt``: the model's weights (the whole stack), the
optimiser's state, torch's global RNG state, the epoch, the records measured so far and the
time spent. A later run of the same unit loads it and trains on from the next epoch, so the
results equal those of an uninterrupted run bit for bit (tested). The runner deletes the file
once the unit's results are stored. Files are read with ``weights_only=True``: tensors and
plain values only, nothing a file could run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from benchbench.engine.evaluate import Record
from benchbench.suite.cells import CellSpec


@dataclass
class Resumed:
    """What a unit restarts from: the model and optimiser states, after ``epoch``."""

    epoch: int
    model: dict
    optimizer: dict
    rng: object
    records: list[list[Record]]
    elapsed_s: float


def resume_path(checkpoint_dir: Path, specs: list[CellSpec]) -> Path:
    digest = hashlib.sha256("\n".join(s.cell_id for s in specs).encode()).hexdigest()[:16]
    return Path(checkpoint_dir) / "resume" / f"{digest}.pt"


def _cells(specs: list[CellSpec]) -> str:
    return json.dumps([s.to_json() for s in specs])


def save_resume(path: Path, specs: list[CellSpec], *, epoch: int, model, optimizer, records,
                elapsed_s: float) -> None:
    """Write the unit's state after ``epoch`` (temporary file, then rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"cells": _cells(specs), "epoch": epoch,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
             "records": json.dumps([[list(r) for r in recs] for recs in records]),
             "elapsed_s": elapsed_s}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_resume(path: Path, specs: list[CellSpec]) -> Resumed | None:
    """The saved state of exactly these cells, or None (no file, another unit's, unreadable)."""
    import torch

    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the unit over, as without one
        return None
    if state.get("cells") != _cells(specs):
        return None
    records = [[Record(*r) for r in recs] for recs in json.loads(state["records"])]
    return Resumed(state["epoch"], state["model"], state["optimizer"], state["rng"], records,
                   float(state["elapsed_s"]))


def discard_resume(path: Path) -> None:
    path.unlink(missing_ok=True)
