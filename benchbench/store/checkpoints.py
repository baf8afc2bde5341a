"""Model checkpoints as safetensors files, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def checkpoint_path(root: Path, cell_id: str, epoch: int) -> Path:
    return Path(root) / cell_id / f"epoch_{epoch:04d}.safetensors"


def save_checkpoint(path: Path, model, *, metadata: dict[str, str]) -> None:
    """Save ``model``'s state dict to ``path`` (temp file, then rename)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)  # a name of its own: two processes saving one checkpoint never share it
    tmp = Path(tmp)
    try:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
        os.replace(tmp, path)
    finally:  # a failed save leaves no partial file behind
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: Path, model) -> dict[str, str]:
    """Load weights from ``path`` into ``model``; returns the file's metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})
