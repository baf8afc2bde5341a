"""Resuming a cell (or a stack of cells) from its last checkpoint after an interruption.

At every checkpoint before the regime's final epoch, a unit of cells trained by the harness (a
``Regime``) writes one file, ``checkpoints/resume/<digest of its cell ids>.pt``: the model's
weights (the whole stack), the trainer's state (``Trainer.state``: the optimiser's, the crafting
generators', the early-stop bests), the RNG state training draws from, the epoch, the records
measured so far and the time spent. A later run of the same unit loads it and
trains on from the next epoch, so the results equal those of an uninterrupted run bit for bit
(tested). The runner deletes the file once the unit's results are stored. Files are read with
``weights_only=True``: tensors and plain values only, nothing a file could run.

A file is used only if it is this unit's (``_identity``) and what it says obeys the invariants
of stored numbers (``benchbench.store.invariants``: finite, fractions in [0, 1], accuracies equal
to their per-example bits, ``elapsed_s`` >= 0, epochs up to the one it was saved after). Any
other file is ignored, said on one line, and the unit trains from its first epoch. A resume file
(or a folder on its way) that is a symbolic link is refused, never followed (``SymlinkError``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchbench.engine.evaluate import Record
from benchbench.engine.files import atomic_file, refuse_links
from benchbench.errors import one_line
from benchbench.store.invariants import records_problem, time_problem
from benchbench.suite.cells import CellSpec

DEPTH = 3  # the file, resume/ and checkpoints/: none may be a link


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
    stack of one and the model alone share their cells, not their weights), the device (on
    CUDA the GPU's name and the settings its bits depend on: ``blas.describe``), the versions of
    torch, benchbench and the plugins, and ``made_by`` (the training method): a state from
    another would mix their numbers into one cell, or fail to load."""
    import torch

    from benchbench import __version__
    from benchbench.engine import blas

    layout = {k: [list(v.shape), str(v.dtype)] for k, v in model.state_dict().items()}
    cells = [json.dumps(s.identity(), sort_keys=True, separators=(",", ":")) for s in specs]
    return json.dumps({"cells": cells, "layout": layout,
                       "device": blas.describe(device) if device == "cuda" else device,
                       "torch": torch.__version__,
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

    path = Path(path)
    refuse_links(path, depth=DEPTH)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_links(path, depth=DEPTH)
    state = {"identity": _identity(specs, model, device, made_by), "epoch": epoch,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "trainer": trainer, "rng": rng_state(device),
             "records": json.dumps([[list(r) for r in recs] for recs in records]),
             "elapsed_s": elapsed_s}
    with atomic_file(path) as f:  # a full disk: DiskFullError, and no partial file behind
        torch.save(state, f)


class _Ignored(Exception):
    """Why a resume file is not used (said on one line)."""


def _check(state, specs: list[CellSpec]) -> Resumed:
    """``state`` as a ``Resumed``, or ``_Ignored`` saying which invariant it breaks."""
    epoch, elapsed = state.get("epoch"), state.get("elapsed_s")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise _Ignored(f"epoch {epoch!r} is not a whole number >= 1")
    problem = time_problem("elapsed_s", elapsed)
    if problem or not math.isfinite(float(elapsed)):
        raise _Ignored(problem or f"elapsed_s {elapsed!r}")
    raw = json.loads(state["records"])
    if not isinstance(raw, list) or len(raw) != len(specs) or not all(
            isinstance(recs, list) and all(isinstance(r, list) and len(r) == 6 for r in recs)
            for recs in raw):
        raise _Ignored(f"its records are not {len(specs)} lists of records")
    records = [[Record(*r) for r in recs] for recs in raw]
    for spec, recs in zip(specs, records, strict=True):
        problem = records_problem(recs)
        if problem is None:
            late = next((r.epoch for r in recs if r.epoch > epoch), None)
            if late is not None:
                problem = f"a record of epoch {late}, after the epoch {epoch} it was saved at"
        if problem:
            raise _Ignored(f"cell {spec.cell_id}: {problem}")
    return Resumed(epoch, state["model"], state["trainer"], dict(state["rng"]), records,
                   float(elapsed))


def load_resume(path: Path, specs: list[CellSpec], model, device: str, made_by: dict,
                log: Callable[[str], None] = lambda message: None) -> Resumed | None:
    """The saved state of exactly this unit, or None: no file, another unit's (see
    ``_identity``), unreadable, or breaking an invariant (``_check``); the unit then starts
    over, as without one, and ``log`` gets one line saying why (except for no file). A link
    is refused (``SymlinkError``)."""
    import torch

    path = Path(path)
    refuse_links(path, depth=DEPTH)
    if not path.exists():
        return None
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torn, foreign, or a pickle that runs code
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
            raise _Ignored(f"not a state benchbench can read safely ({type(exc).__name__}"
                           f"{': ' + first[:160] if first else ''})") from None
        if not isinstance(state, dict) or "identity" not in state:
            raise _Ignored("not a resume state benchbench wrote")
        if state["identity"] != _identity(specs, model, device, made_by):
            raise _Ignored("saved for other cells, another model layout or device, or by other "
                           "versions of torch, benchbench or the plugins")
        return _check(state, specs)
    except _Ignored as why:
        log(one_line(f"warning: {path}: resume file ignored ({why}); training "
                     f"{', '.join(s.describe() for s in specs)} from the first epoch"))
    except Exception as exc:  # noqa: BLE001 - from an older benchbench, say: start over
        log(one_line(f"{path}: resume file ignored (unreadable: {type(exc).__name__}: "
                     f"{str(exc)[:160]}); training {', '.join(s.describe() for s in specs)} "
                     "from the first epoch"))
    return None


def discard_resume(path: Path) -> None:
    path.unlink(missing_ok=True)
