"""Model checkpoints as safetensors files, written atomically.

A checkpoint lives at ``checkpoints/<cell id>/epoch_NNNN.safetensors``. Neither the file, its
cell's folder nor ``checkpoints/`` may be a symbolic link (refused, never followed), and a disk
that fills while one is written raises ``DiskFullError``: the run stops, the cell is not failed.
"""

from __future__ import annotations

from pathlib import Path

from benchbench.engine.files import refuse_links, write_bytes_atomic

DEPTH = 3  # the file, its cell's (or resume/) folder, and checkpoints/


def checkpoint_path(root: Path, cell_id: str, epoch: int) -> Path:
    return Path(root) / cell_id / f"epoch_{epoch:04d}.safetensors"


def save_checkpoint(path: Path, model, *, metadata: dict[str, str]) -> None:
    """Save ``model``'s state dict to ``path`` (temp file, then rename)."""
    from safetensors.torch import save

    path = Path(path)
    refuse_links(path, depth=DEPTH)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_links(path, depth=DEPTH)  # made (or found) just now: still no link on the way
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes_atomic(path, save(state, metadata={k: str(v) for k, v in metadata.items()}))


def load_checkpoint(path: Path, model) -> dict[str, str]:
    """Load weights from ``path`` into ``model``; returns the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    refuse_links(path, depth=DEPTH)
    model.load_state_dict(load_file(str(path)))
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
