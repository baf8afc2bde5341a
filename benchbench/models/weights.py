"""Weights people already have: reading a safetensors or torch state-dict file into a model.

A ``[model]`` table's ``weights = "path"`` (or a zoo entry, ``benchbench.zoo``) names a file:

* **safetensors** (``safetensors.torch``; what benchbench writes as ``checkpoints/<cell>/
  epoch_NNNN.safetensors``), or
* a **torch** file (``torch.save``), read with ``torch.load(..., weights_only=True)`` only:
  tensors, numbers, strings and plain containers; a file that needs any other Python object
  unpickled is refused, never loaded (arbitrary pickle runs code).

What it holds is a state dict, possibly wrapped as ``{"state_dict": ...}`` or
``{"model_state_dict": ...}`` beside other entries (an epoch, an optimiser), with every key
prefixed by ``module.`` (``DataParallel``) or ``model.`` (a wrapper's attribute): both are
taken off, the way RobustBench's ``load_model`` does. It then loads into the model with every
key matched (``strict``; BatchNorm's ``num_batches_tracked``, which files saved by old torch
lack, is filled in by torch as usual), cast to the model's dtype.

The file's sha256 is part of the cell's identity (``benchbench.suite.cells``): changed
weights make a new cell, never the old numbers. ``describe`` reads it when the suite is loaded
(no torch); ``read_state`` reads it again when the model is built, and refuses a file whose
sha256 is no longer the suite's.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Mapping
from pathlib import Path

from benchbench.errors import BenchbenchError

FORMATS = ("safetensors", "torch")
WRAPPERS = ("state_dict", "model_state_dict")
PREFIXES = ("module.", "model.")
ALLOWED = ("a safetensors file, or a torch.save file of a state dict (read with "
           "weights_only=True; wrappers state_dict/model_state_dict and prefixes module./model. "
           "are taken off)")
SHOWN = 4  # keys named in a mismatch message, per kind
ZIP = b"PK\x03\x04"  # torch.save's format since torch 1.6 (a zip archive)
PICKLE_PROTOCOLS = tuple(bytes([0x80, p]) for p in range(2, 6))  # torch's legacy format


class WeightsError(BenchbenchError):
    """A weights file that cannot be used; ``problem`` says why and what is allowed. The suite
    loader names the suite file and key in front of it."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


def _sniff(head: bytes, size: int) -> str | None:
    """``"safetensors"``, ``"torch"`` or None, from a file's first bytes: safetensors starts
    with the little-endian length of a JSON header that opens with ``{``."""
    if head.startswith(ZIP) or head[:2] in PICKLE_PROTOCOLS:
        return "torch"
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= size - 8 and head[8:9] == b"{":
            return "safetensors"
    return None


def _open(path: Path):
    try:
        info = path.stat()
    except FileNotFoundError:
        raise WeightsError(f"no such file {str(path)!r}; give the path of {ALLOWED} (a relative "
                           "path is read from the suite file's folder)") from None
    except OSError as exc:
        raise WeightsError(f"cannot read {str(path)!r} ({exc.strerror or exc}); give the path of "
                           f"{ALLOWED}") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise WeightsError(f"{str(path)!r} is {what}; give the path of {ALLOWED}")
    try:
        return path.open("rb")
    except OSError as exc:
        raise WeightsError(f"cannot read {str(path)!r} ({exc.strerror or exc}); give the path of "
                           f"{ALLOWED}") from None


def describe(path: str | Path) -> dict:
    """``{"path", "sha256", "format", "bytes"}`` of the weights file at ``path`` (absolute),
    read once to hash it; WeightsError if it is missing, unreadable or neither format."""
    path = Path(path).absolute()
    with _open(path) as f:
        head = f.read(16)
        f.seek(0)
        try:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError as exc:
            raise WeightsError(f"cannot read {str(path)!r} ({exc.strerror or exc}); give the "
                               f"path of {ALLOWED}") from None
        size = os.fstat(f.fileno()).st_size
    fmt = _sniff(head, size)
    if fmt is None:
        raise WeightsError(f"{str(path)!r} is neither a safetensors nor a torch file (it starts "
                           f"with {head[:8]!r}); give {ALLOWED}")
    return {"path": str(path), "sha256": digest, "format": fmt, "bytes": size}


def _parse(data: bytes, fmt: str, path: str):
    if fmt == "safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load

        try:
            return load(data)
        except (SafetensorError, ValueError, RuntimeError) as exc:
            raise WeightsError(f"{path!r} is not a readable safetensors file ({_first(exc)}); "
                               f"give {ALLOWED}") from None
    import pickle

    import torch

    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": refused or read
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise WeightsError(
            f"{path!r} holds pickled Python objects besides tensors, which benchbench never "
            f"unpickles (torch.load with weights_only=True refused: {_first(exc)}); save "
            "model.state_dict() with torch.save, or as safetensors") from None
    except Exception as exc:  # noqa: BLE001 - truncated, not torch: one line, no traceback
        raise WeightsError(f"{path!r} is not a readable torch file ({type(exc).__name__}: "
                           f"{_first(exc)}); give {ALLOWED}") from None


def _first(exc: BaseException, limit: int = 200) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_tensor(value) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def unwrap(obj, path: str) -> tuple[dict, list[str]]:
    """The state dict inside what a file held, and what was taken off (``["state_dict",
    "module."]``): a ``state_dict``/``model_state_dict`` wrapper, then ``module.``/``model.``
    prefixes, each taken off only where every key has it."""
    notes: list[str] = []
    if isinstance(obj, Mapping) and not all(_is_tensor(v) for v in obj.values()):
        inner = [k for k in WRAPPERS if isinstance(obj.get(k), Mapping)]
        if inner:
            obj = obj[inner[0]]
            notes.append(inner[0])
    if not isinstance(obj, Mapping) or not obj:
        what = "an empty mapping" if isinstance(obj, Mapping) else type(obj).__name__
        raise WeightsError(f"{path!r} holds {what}, not a state dict (names to tensors); give "
                           f"{ALLOWED}")
    bad = next(((k, v) for k, v in obj.items() if not isinstance(k, str) or not _is_tensor(v)),
               None)
    if bad is not None:
        raise WeightsError(f"{path!r}: entry {str(bad[0])!r} is {type(bad[1]).__name__}, not a "
                           f"tensor; a state dict maps names to tensors, and the wrappers "
                           f"benchbench reads are {', '.join(WRAPPERS)}")
    state = dict(obj)
    while True:
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in state)), None)
        if prefix is None:
            return state, notes
        state = {k[len(prefix):]: v for k, v in state.items()}
        notes.append(prefix)


def read_state(weights: Mapping) -> tuple[dict, list[str]]:
    """The state dict of the file ``weights`` describes (``describe``'s dict), and what was
    taken off it; WeightsError if its sha256 is no longer ``weights["sha256"]``."""
    path = Path(weights["path"])
    with _open(path) as f:
        try:
            data = f.read()
        except OSError as exc:
            raise WeightsError(f"cannot read {str(path)!r} ({exc.strerror or exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != weights["sha256"]:
        raise WeightsError(f"{str(path)!r} changed since the suite was read (sha256 "
                           f"{weights['sha256'][:12]}... then, {digest[:12]}... now); run again "
                           "to measure the new weights as a new cell")
    fmt = _sniff(data[:16], len(data)) or weights.get("format", "torch")
    return unwrap(_parse(data, fmt, str(path)), str(path))


def _keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else "")


def load_state(model, state: Mapping, *, model_name: str, path: str) -> None:
    """Copy ``state`` into ``model`` (cast to its dtype, on its device), every key matched,
    or WeightsError naming the missing and unexpected keys, or the first shape that differs."""
    own = model.state_dict()
    # in the model's own order (a file's key order is the writer's: safetensors sorts its own)
    shapes = [f"{k} (file {list(state[k].shape)}, model {list(v.shape)})"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    if shapes:
        raise WeightsError(f"{path!r} does not fit model {model_name!r}: shapes differ for "
                           f"{_keys(shapes)}; check the model's keys (depth, width, classes)")
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in own if k in set(result.missing_keys)]  # each in its file's order
    unexpected = [k for k in state if k in set(result.unexpected_keys)]
    if missing or unexpected:
        parts = ([f"missing keys {_keys(missing)}"] if missing else []) + (
            [f"unexpected keys {_keys(unexpected)}"] if unexpected else [])
        raise WeightsError(f"{path!r} does not fit model {model_name!r}: {'; '.join(parts)}; "
                           "is it this architecture, with these keys?")


def load_weights(model, weights: Mapping, *, model_name: str) -> list[str]:
    """Read the file ``weights`` describes into ``model``; what was taken off its keys."""
    state, notes = read_state(weights)
    load_state(model, state, model_name=model_name, path=str(weights["path"]))
    return notes


def summary(weights: Mapping) -> str:
    """One line for reports: the file, its format and the start of its sha256."""
    return (f"{weights['path']} ({weights.get('format', '?')}, sha256 "
            f"{weights['sha256'][:16]})")


def identity(weights: Mapping) -> dict:
    """What of ``weights`` is part of a cell's identity: its contents' sha256 alone (not the
    path: moving the file keeps the cell)."""
    return {"sha256": weights["sha256"]}


__all__ = ["FORMATS", "WeightsError", "describe", "identity", "load_state", "load_weights",
           "read_state", "summary", "unwrap"]
