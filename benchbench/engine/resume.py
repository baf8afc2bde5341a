"""Resuming a cell (or a stack of cells) from its last checkpoint after an interruption.

At every checkpoint before the regime's final epoch, a unit of cells trained by the harness (a
``Regime``) writes one file, ``checkpoints/resume/<digest of its cell ids>.pt``: the model's
weights (the whole stack), the trainer's state (``Trainer.state``: the optimiser's, the crafting
generators', the early-stop bests), the RNG state training draws from, the epoch, the records
measured so far and the time spent. A later run of the same unit loads it and
trains on from the next epoch, so the results equal those of an uninterrupted run bit for bit
(tested). The runner deletes the file once the unit's results are stored. Files are read with
``weights_only=True``: tensors and plain values only, nothing a file could run.
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
    trainer: dict  # Trainer.state(): optimiser, crafting generators, divergence, early-stop bests
    rng: dict  # "cpu" and, on CUDA, "cuda": torch's RNG states when training stopped there
    records: list[list[Record]]
    elapsed_s: float


def resume_path(checkpoint_dir: Path, specs: list[CellSpec]) -> Path:
    digest = hashlib.sha256("\n".join(s.cell_id for s in specs).encode()).hexdigest()[:16]
    return Path(checkpoint_dir) / "resume" / f"{digest}.pt"


def _identity(specs: list[CellSpec], model, device: str, made_by: dict) -> str:
    """What must match for a saved state to be this unit's: the cells, the model's layout (a
    stack of one and the model alone share their cells, not their weights), the device, the
    versions of torch, benchbench and the plugins, and ``made_by`` (the training method):
    a state from another would mix their numbers into one cell, or fail to load."""
    import torch

    from benchbench import __version__

    layout = {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()}
    return json.dumps({"cells": [s.to_json() for s in specs], "layout": layout,
                       "device": device, "torch": torch.__version__,
                       "benchbench": __version__, "made_by": made_by}, sort_keys=True)


def rng_state(device: str) -> dict:
    import torch

    state = {"cpu": torch.get_rng_state()}
    if device == "cuda":
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def save_resume(path: Path, specs: list[CellSpec], *, epoch: int, model, trainer: dict,
                records, elapsed_s: float, device: str, made_by: dict) -> None:
    """Write the unit's state after ``epoch`` (temporary file, then rename)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"identity": _identity(specs, model, device, made_by), "epoch": epoch,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "trainer": trainer, "rng": rng_state(device),
             "records": json.dumps([[list(r) for r in recs] for recs in records]),
             "elapsed_s": elapsed_s}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:  # a failed save leaves no partial file behind
        tmp.unlink(missing_ok=True)


def load_resume(path: Path, specs: list[CellSpec], model, device: str,
                made_by: dict) -> Resumed | None:
    """The saved state of exactly this unit, or None: no file, another unit's (see
    ``_identity``), or unreadable; the unit then starts over, as without one."""
    import torch

    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["identity"] != _identity(specs, model, device, made_by):
            return None
        records = [[Record(*r) for r in recs] for recs in json.loads(state["records"])]
        return Resumed(int(state["epoch"]), state["model"], state["trainer"],
                       dict(state["rng"]), records, float(state["elapsed_s"]))
    except Exception:  # torn, foreign or from an older benchbench
        return None


def discard_resume(path: Path) -> None:
    path.unlink(missing_ok=True)
