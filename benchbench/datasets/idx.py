"""The IDX format of MNIST-like datasets (LeCun's: a big-endian magic ``0x0000080D`` with ``D``
dimensions, then each dimension as a big-endian uint32, then uint8 values) and the checks every
such dataset needs: header, size, label range and per-class counts. numpy loads lazily.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchbench.errors import DataError

IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # uint8 images [N, H, W] / uint8 labels [N]


def torchvision_raw_dir(root: Path, cls_name: str) -> Path:
    """The folder torchvision's MNIST-like ``cls_name`` reads its IDX files from."""
    return Path(root) / cls_name / "raw"


def all_present(folder: Path, names: Sequence[str]) -> bool:
    """True when every one of ``names`` is a file in ``folder``."""
    return all((Path(folder) / name).is_file() for name in names)


def idx_size(dims: Sequence[int]) -> int:
    """Bytes of an uint8 IDX file with these dimensions: header and values."""
    return 4 * (1 + len(dims)) + math.prod(dims)


def check_header(data: bytes, dims: Sequence[int], what: str) -> None:
    """Refuse (one line naming ``what``) bytes that do not start with the IDX header of uint8
    values with exactly ``dims``."""
    ndim = len(dims)
    head = 4 * (1 + ndim)
    magic, *got = struct.unpack(f">{1 + ndim}I", data[:head]) if len(data) >= head else (None,)
    if magic != IDX_MAGIC[ndim] or tuple(got) != tuple(dims):
        shown = "too short for a header" if magic is None else \
            f"magic 0x{magic:08x}, dimensions {list(got)}"
        raise DataError(f"{what} is not the expected IDX file: expected magic "
                        f"0x{IDX_MAGIC[ndim]:08x} with dimensions {list(dims)}, got {shown}. "
                        "Delete it and fetch it again")


def check_size(size: int, dims: Sequence[int], what: str) -> None:
    """Refuse an IDX file of ``size`` bytes when ``dims`` say it has another size."""
    if size != idx_size(dims):
        raise DataError(f"{what} is {size:,} bytes; an IDX file of dimensions {list(dims)} "
                        f"is {idx_size(dims):,}. Delete it and fetch it again")


def parse_idx(data: bytes, dims: Sequence[int], what: str) -> Any:
    """The uint8 array of an IDX file's bytes, after ``check_header`` and ``check_size``."""
    import numpy as np

    check_header(data, dims, what)
    check_size(len(data), dims, what)
    return np.frombuffer(data, np.uint8, offset=4 * (1 + len(dims))).reshape(dims)


def check_labels(y: Any, n: int, expected: Sequence[int], split: str, name: str) -> Any:
    """``y`` as uint8 after checking it has ``n`` integer labels in ``0..len(expected)-1`` with
    exactly the ``expected`` count per class (the official copy's)."""
    import numpy as np

    classes = len(expected)
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != n:
        raise DataError(f"{name} {split} labels must be [{n}] to match the images, "
                        f"got {list(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0
                                                              or y.max() > classes - 1)):
        raise DataError(f"{name} {split} labels must be integers in 0..{classes - 1} "
                        f"(dtype {y.dtype})")
    got = tuple(int(c) for c in np.bincount(y, minlength=classes))
    if got != tuple(expected):
        raise DataError(f"{name} {split} per-class label counts differ from the expected counts: "
                        f"expected {tuple(expected)}, got {got}. The copy is not the official "
                        f"{name}; delete it and fetch it again")
    return y.astype(np.uint8)


def write_idx(path: Path, array: Any) -> None:
    """Write a uint8 array as an IDX file (big-endian magic, dims), atomically."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in IDX_MAGIC:
        raise DataError(f"write_idx needs a uint8 array with 1 or 3 dims, got {array.dtype} "
                        f"with shape {list(array.shape)}")
    header = struct.pack(f">{1 + array.ndim}I", IDX_MAGIC[array.ndim], *array.shape)
    write_atomic(Path(path), header + np.ascontiguousarray(array).tobytes())


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in its folder, readable by all."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; this is a shared, read-only data cache
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
