"""Offline tests for fashion_mnist, cifar10, cifar100 and svhn: small files the tests write in
the real on-disk formats (Debian's gzip'd IDX files, torchvision's CIFAR pickles and SVHN .mat
files); no test touches the network."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from benchbench.datasets import cifar_svhn as cs
from benchbench.datasets import fashion_mnist_source as fs
from benchbench.datasets.cifar_svhn import CIFAR10, CIFAR100, SVHN
from benchbench.datasets.fashion_mnist import FashionMNIST
from benchbench.errors import DataError

# --- fashion_mnist from a fake Debian layout ----------------------------------------------

TRAIN_N, TEST_N = 30, 20  # 3 / 2 per class


def _idx(array: np.ndarray) -> bytes:
    magic = 0x803 if array.ndim == 3 else 0x801
    return struct.pack(f">{1 + array.ndim}I", magic, *array.shape) + array.tobytes()


def _fashion_files(seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": _idx(rng.integers(0, 256, (TRAIN_N, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte": _idx(rng.permutation(np.repeat(np.arange(10), 3))
                                        .astype(np.uint8)),
        "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (TEST_N, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": _idx(rng.permutation(np.repeat(np.arange(10), 2))
                                       .astype(np.uint8)),
    }


def _facts(files: dict[str, bytes]) -> dict[str, fs.IdxFacts]:
    """The small copy's own facts, built as OFFICIAL is (dims, sha256, counts)."""
    dims = {"train-images-idx3-ubyte": (TRAIN_N, 28, 28), "train-labels-idx1-ubyte": (TRAIN_N,),
            "t10k-images-idx3-ubyte": (TEST_N, 28, 28), "t10k-labels-idx1-ubyte": (TEST_N,)}
    counts = {"train-labels-idx1-ubyte": (3,) * 10, "t10k-labels-idx1-ubyte": (2,) * 10}
    return {name: fs.IdxFacts(dims[name], hashlib.sha256(data).hexdigest(), counts.get(name))
            for name, data in files.items()}


def _debian_dir(tmp: Path, files: dict[str, bytes]) -> Path:
    """The package's layout: <prefix>/usr/share/datasets/fashion-mnist/<name>.gz."""
    pkg = tmp / "pkg" / fs.DEBIAN_DIR.relative_to("/")
    pkg.mkdir(parents=True)
    for name, data in files.items():
        (pkg / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
    return pkg


def test_pinned_facts_are_fashion_mnists() -> None:
    sizes = {name: facts.size for name, facts in fs.OFFICIAL.items()}
    # the uncompressed sizes of the package's files (gzip -l on the .deb's contents)
    assert sizes == {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
                     "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}
    assert fs.OFFICIAL["train-labels-idx1-ubyte"].counts == (6000,) * 10
    assert fs.OFFICIAL["t10k-labels-idx1-ubyte"].counts == (1000,) * 10


def test_fashion_from_debian_layout_loads_exactly(tmp_path: Path, monkeypatch) -> None:
    files = _fashion_files()
    pkg, root, logs = _debian_dir(tmp_path, files), tmp_path / "data", []
    source = fs.ensure_fashion_mnist(root, log=logs.append, sources=("debian",), debian_dir=pkg,
                                     expected=_facts(files))
    assert source == "debian"
    assert logs == ["trying the Debian package dataset-fashion-mnist...",
                    f"Fashion-MNIST ready under {fs.raw_dir(root)} (source: debian)"]
    assert sorted(p.name for p in fs.raw_dir(root).iterdir()) == sorted(fs.IDX_FILES)
    monkeypatch.setattr(fs, "OFFICIAL", _facts(files))  # what FashionMNIST.load checks against
    x, y = FashionMNIST().load("test", data_dir=root)
    k = np.frombuffer(files["t10k-images-idx3-ubyte"], np.uint8, offset=16).reshape(-1, 1, 28, 28)
    assert x.dtype == torch.float64 and x.shape == (TEST_N, 1, 28, 28)
    assert torch.equal(x, torch.from_numpy(k.astype(np.float64)) / 255.0)  # same ops: exact
    assert y.tolist() == list(files["t10k-labels-idx1-ubyte"][8:])
    assert fs.ensure_fashion_mnist(root, expected=_facts(files)) == "cache"


def _corrupt(case: str) -> tuple[dict[str, bytes], str]:
    files = _fashion_files()
    labels = bytearray(files["t10k-labels-idx1-ubyte"])
    if case == "header":
        files["t10k-images-idx3-ubyte"] = struct.pack(">I", 0x0801) + \
            files["t10k-images-idx3-ubyte"][4:]
        return files, r"t10k-images-idx3-ubyte .*expected magic 0x00000803.*got magic 0x00000801"
    if case == "size":
        files["train-images-idx3-ubyte"] = files["train-images-idx3-ubyte"][:-7]
        return files, r"train-images-idx3-ubyte .* is 23,529 bytes; .* is 23,536"
    if case == "counts":
        labels[8:10] = bytes([0, 0])  # two labels changed: counts differ from 2 per class
        files["t10k-labels-idx1-ubyte"] = bytes(labels)
        return files, r"Fashion-MNIST test per-class label counts .* expected \(2, 2"
    labels[-1], labels[-2] = labels[-2], labels[-1]  # same counts, another order: checksum
    files["t10k-labels-idx1-ubyte"] = bytes(labels)
    return files, r"t10k-labels-idx1-ubyte .*has sha256 .*not Fashion-MNIST's"


@pytest.mark.parametrize("case", ["header", "size", "counts", "checksum"])
def test_fashion_refuses_a_wrong_copy_in_one_line(tmp_path: Path, case: str) -> None:
    expected = _facts(_fashion_files())  # the genuine small copy's facts
    files, pattern = _corrupt(case)
    if case == "checksum" and files["t10k-labels-idx1-ubyte"] == _fashion_files()[
            "t10k-labels-idx1-ubyte"]:
        pytest.fail("the swap must change the file")
    root = tmp_path / "data"
    with pytest.raises(DataError, match=pattern) as err:
        fs.convert_debian_dir(_debian_dir(tmp_path, files), root, expected=expected)
    assert "\n" not in str(err.value)
    assert not fs.raw_dir(root).exists() or not any(fs.raw_dir(root).iterdir())  # nothing written


def test_fashion_pinned_defaults_refuse_a_small_copy(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dimensions \[60000, 28, 28\]"):
        fs.convert_debian_dir(_debian_dir(tmp_path, _fashion_files()), tmp_path / "data")


def test_fashion_cache_is_checked_by_size(tmp_path: Path) -> None:
    files = _fashion_files()
    root = tmp_path / "data"
    fs.convert_debian_dir(_debian_dir(tmp_path, files), root, expected=_facts(files))
    path = fs.raw_dir(root) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match=r"is 100 bytes.*Delete it"):
        fs.ensure_fashion_mnist(root, expected=_facts(files))


def test_fashion_fetches_the_package_with_apt_when_missing(tmp_path: Path, monkeypatch) -> None:
    """Not installed: ``apt-get download`` then ``dpkg-deb -x`` (faked here: they write the
    package's layout), each with the user's configuration and no host named."""
    files, seen = _fashion_files(), []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        if cmd[:2] == ["apt-get", "download"]:
            (Path(kwargs["cwd"]) / "dataset-fashion-mnist_0.0-1_all.deb").write_bytes(b"deb")
        elif cmd[:2] == ["dpkg-deb", "-x"]:
            pkg = Path(cmd[3]) / fs.DEBIAN_DIR.relative_to("/")
            pkg.mkdir(parents=True)
            for name, data in files.items():
                (pkg / f"{name}.gz").write_bytes(gzip.compress(data))
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(fs.subprocess, "run", fake_run)
    root = tmp_path / "data"
    assert fs.ensure_fashion_mnist(root, sources=("debian",), debian_dir=tmp_path / "absent",
                                   expected=_facts(files)) == "debian"
    assert [cmd[:2] for cmd in seen] == [["apt-get", "download"], ["dpkg-deb", "-x"]]
    assert seen[0] == ["apt-get", "download", "dataset-fashion-mnist"]
    assert fs.is_materialised(root)


def test_fashion_names_every_failed_source(tmp_path: Path, monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    def apt_fails(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package")

    monkeypatch.setattr(fs, "torchvision_download", offline)
    monkeypatch.setattr(fs.subprocess, "run", apt_fails)
    logs: list[str] = []
    with pytest.raises(DataError) as err:
        fs.ensure_fashion_mnist(tmp_path, log=logs.append, debian_dir=tmp_path / "absent")
    message = str(err.value)
    assert "\n" not in message
    assert "torchvision: OSError: network is unreachable" in message
    assert "debian: `apt-get download dataset-fashion-mnist` exited 100" in message
    assert "apt-get install dataset-fashion-mnist" in message and "BENCHBENCH_DATA" in message
    assert logs[1] == ("torchvision download failed: OSError: network is unreachable; "
                       "falling back to the Debian package dataset-fashion-mnist")


# --- cifar10, cifar100, svhn from torchvision's on-disk formats ---------------------------


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _write_pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _cifar(root: Path, monkeypatch, cls_name: str, sizes: dict[str, int], classes: int):
    """torchvision's CIFAR layout with ``sizes`` rows per file; torchvision's md5 lists are
    pointed at these files (the real check, on synthetic bytes)."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    rng = np.random.default_rng(1)
    folder = root / cls.base_folder
    label_key = "labels" if cls_name == "CIFAR10" else "fine_labels"
    truth, lists = {}, {"train_list": [], "test_list": []}
    for name, n in sizes.items():
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, n).tolist()
        _write_pickle(folder / name, {"batch_label": name, "data": data, label_key: labels})
        split = "test_list" if name.startswith("test") else "train_list"
        lists[split].append([name, _md5(folder / name)])
        truth.setdefault(split, []).append((data, labels))
    meta = cls.meta["filename"]
    _write_pickle(folder / meta, {cls.meta["key"]: [f"c{i}" for i in range(classes)]})
    monkeypatch.setattr(cls, "train_list", lists["train_list"])
    monkeypatch.setattr(cls, "test_list", lists["test_list"])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": _md5(folder / meta)})
    return {split: (np.concatenate([d for d, _ in parts]), sum((lab for _, lab in parts), []))
            for split, parts in truth.items()}


CIFAR10_FILES = {**{f"data_batch_{i}": 3 for i in range(1, 6)}, "test_batch": 4}


@pytest.mark.parametrize("dataset, cls_name, sizes, classes", [
    (CIFAR10(), "CIFAR10", CIFAR10_FILES, 10),
    (CIFAR100(), "CIFAR100", {"train": 6, "test": 5}, 100),
])
def test_cifar_loads_torchvision_pickles(tmp_path: Path, monkeypatch, dataset, cls_name, sizes,
                                         classes) -> None:
    truth = _cifar(tmp_path, monkeypatch, cls_name, sizes, classes)
    assert dataset.prepare(data_dir=tmp_path, log=lambda m: None) == "cache"
    for split, key in (("train", "train_list"), ("test", "test_list")):
        x, y = dataset.load(split, data_dir=tmp_path)
        data, labels = truth[key]
        assert x.dtype == torch.float32 and x.shape == (len(data), 3, 32, 32)
        assert y.dtype == torch.int64 and y.tolist() == labels
        # one division of an exact integer in float32, the same ops: exact
        expected = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.float32)) / 255.0
        assert torch.equal(x, expected)
        assert x.min() >= 0.0 and x.max() <= 1.0


def test_cifar_refuses_a_file_with_another_md5(tmp_path: Path, monkeypatch) -> None:
    _cifar(tmp_path, monkeypatch, "CIFAR10", CIFAR10_FILES, 10)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:-1] + b"\x00")
    monkeypatch.setattr(cs, "torchvision_download", _offline)
    with pytest.raises(DataError, match=r"not torchvision's md5: cifar-10-batches-py/data_batch_3"
                                        r" \(delete them\)") as err:
        CIFAR10().load("train", data_dir=tmp_path)
    assert "\n" not in str(err.value)


def _offline(*args, **kwargs) -> None:
    raise OSError("network is unreachable")


@pytest.mark.parametrize("dataset, files, origin", [
    (CIFAR10(), "cifar-10-batches-py/data_batch_1, cifar-10-batches-py/data_batch_2",
     "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    (CIFAR100(), "cifar-100-python/train, cifar-100-python/meta, cifar-100-python/test",
     "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
    (SVHN(), "train_32x32.mat, test_32x32.mat",
     "http://ufldl.stanford.edu/housenumbers/train_32x32.mat"),
])
def test_missing_files_error_is_one_line(tmp_path: Path, monkeypatch, dataset, files,
                                         origin) -> None:
    monkeypatch.setattr(cs, "torchvision_download", _offline)
    with pytest.raises(DataError) as err:
        dataset.prepare(data_dir=tmp_path, log=lambda m: None)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"could not obtain {dataset.title} (torchvision: OSError: network "
                              "is unreachable). Fix: ")
    assert files in message and origin in message
    assert f"under {tmp_path}" in message and "--data-dir" in message


def _svhn(root: Path, monkeypatch, sizes: dict[str, int]):
    import scipy.io
    import torchvision.datasets

    rng = np.random.default_rng(2)
    split_list, truth = dict(torchvision.datasets.SVHN.split_list), {}
    for split, n in sizes.items():
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # SVHN's labels: 1..10, 10 is digit 0
        y[0, 0] = 10
        path = root / f"{split}_32x32.mat"
        scipy.io.savemat(path, {"X": x, "y": y})
        split_list[split] = [split_list[split][0], path.name, _md5(path)]
        truth[split] = (x, y[:, 0])
    monkeypatch.setattr(torchvision.datasets.SVHN, "split_list", split_list)
    return truth


def test_svhn_loads_mat_files_and_maps_label_10_to_0(tmp_path: Path, monkeypatch) -> None:
    truth = _svhn(tmp_path, monkeypatch, {"train": 5, "test": 3, "extra": 2})
    dataset = SVHN()
    assert dataset.prepare(data_dir=tmp_path, log=lambda m: None) == "cache"
    for split in ("train", "test", "extra"):
        x, y = dataset.load(split, data_dir=tmp_path)
        images, labels = truth[split]
        assert x.dtype == torch.float32 and x.shape == (len(labels), 3, 32, 32)
        expected = torch.from_numpy(images.transpose(3, 2, 0, 1).astype(np.float32)) / 255.0
        assert torch.equal(x, expected)  # same ops: exact
        assert y.dtype == torch.int64 and y[0] == 0
        assert y.tolist() == [0 if v == 10 else int(v) for v in labels]


def test_new_datasets_are_registered_with_their_shapes() -> None:
    from benchbench.plugins import load_registry

    registry = load_registry(load_entry_points=False)
    shapes = {name: (registry.get("dataset", name).obj.input_shape,
                     registry.get("dataset", name).obj.num_classes)
              for name in ("fashion_mnist", "cifar10", "cifar100", "svhn")}
    assert shapes == {"fashion_mnist": ((1, 28, 28), 10), "cifar10": ((3, 32, 32), 10),
                      "cifar100": ((3, 32, 32), 100), "svhn": ((3, 32, 32), 10)}


def test_cifar_tarball_in_the_data_folder_is_unpacked_offline(tmp_path: Path,
                                                               monkeypatch) -> None:
    """The README's promise: put cifar-10-python.tar.gz under the data folder and ``prepare``
    unpacks it through torchvision without the network (its md5 pointed at this tarball)."""
    import shutil
    import socket
    import tarfile

    import torchvision.datasets

    truth = _cifar(tmp_path, monkeypatch, "CIFAR10", CIFAR10_FILES, 10)
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    shutil.rmtree(tmp_path / "cifar-10-batches-py")
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", _md5(tarball))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used")

    monkeypatch.setattr(socket, "create_connection", no_network)
    assert CIFAR10().prepare(data_dir=tmp_path, log=lambda m: None) == "torchvision"
    x, y = CIFAR10().load("test", data_dir=tmp_path)
    assert y.tolist() == truth["test_list"][1]


def test_data_fetch_command_prepares_and_refuses_in_one_line(tmp_path: Path,
                                                              monkeypatch) -> None:
    from typer.testing import CliRunner

    from benchbench.cli import app

    _svhn(tmp_path, monkeypatch, {"train": 2, "test": 2})
    runner = CliRunner()
    done = runner.invoke(app, ["data", "fetch", "svhn", "--data-dir", str(tmp_path)])
    assert done.exit_code == 0 and done.stdout.strip() == "svhn: ready (cache)"
    monkeypatch.setattr(cs, "torchvision_download", _offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    failed = runner.invoke(app, ["data", "fetch", "cifar100", "--data-dir", str(empty)])
    assert failed.exit_code == 2
    *progress, error = failed.stderr.splitlines()  # the progress log, then one error line
    assert progress == ["trying torchvision's download...",
                        "torchvision download failed: OSError: network is unreachable"]
    assert error.startswith("error: could not obtain CIFAR-100") and "cifar-100-python/train" \
        in error and "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz" in error
