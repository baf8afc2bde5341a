"""Choosing the torch device a run uses."""

from __future__ import annotations

import contextlib

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


def reproducible_cuda() -> None:
    """Float32 on CUDA is float32, and the same work on the same GPU gives the same bits (what
    bit-exact resume needs there): TF32 off for convolutions (cuDNN's default is on: a 10-bit
    mantissa, about 1e-3 relative, which would make a float32 run's numbers another dtype's)
    and for products (torch's default), cuDNN's deterministic algorithms, no autotuning (its
    choice may change between runs), and cuBLAS's fixed workspace
    (``benchbench.engine.blas.request``). A regime's ``autocast = "bfloat16"`` is the fast,
    lower-precision path, said in its cell id. A cell's provenance records the settings
    (``blas.describe``). Idempotent; every process that runs a unit calls it (``benchbench run``
    keeps them for its process); the Python API sets them for its call only
    (``cuda_settings``)."""
    for name, value in REPRODUCIBLE.items():
        _set(name, value)


REPRODUCIBLE = {"cudnn.allow_tf32": False, "matmul.allow_tf32": False,
                "cudnn.deterministic": True, "cudnn.benchmark": False}


def _flag(name: str):
    import torch

    where, attr = name.split(".")
    return (torch.backends.cudnn if where == "cudnn" else torch.backends.cuda.matmul), attr


def _set(name: str, value: bool) -> None:
    obj, attr = _flag(name)
    setattr(obj, attr, value)


@contextlib.contextmanager
def cuda_settings(device: str = "cuda"):
    """``reproducible_cuda``'s settings for the block, torch's as they were after it: what the
    Python API measures under, leaving a notebook's own training as the user set it. Nothing
    for a device other than CUDA."""
    if not str(device).startswith("cuda"):
        yield
        return
    before = {name: getattr(*_flag(name)) for name in REPRODUCIBLE}
    reproducible_cuda()
    try:
        yield
    finally:
        for name, value in before.items():
            _set(name, value)


def rng_devices(device: str) -> list[int]:
    """The CUDA devices whose generators a seeded measurement on ``device`` forks: every
    visible one for a CUDA device (``torch.manual_seed`` reseeds them all, so each is restored
    afterwards), none on the CPU."""
    import torch

    if torch.device(device).type != "cuda":
        return []
    return list(range(torch.cuda.device_count()))
