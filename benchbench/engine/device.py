"""Choosing the torch device a run uses."""

from __future__ import annotations

from benchbench.errors import BenchbenchError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when available, else CPU; ``cuda`` without CUDA is an error."""
    import torch

    if device not in DEVICES:
        raise BenchbenchError(f"--device {device!r} is not allowed; "
                              f"use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchbenchError("--device cuda was asked for but torch sees no CUDA device; "
                              "use --device cpu or --device auto")
    return device
