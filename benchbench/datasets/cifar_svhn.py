"""CIFAR-10, CIFAR-100 and SVHN through torchvision's dataset classes.

No package ships these bytes: they come from torchvision's download (``benchbench data fetch
cifar10``) or from files the user already has under ``--data-dir`` / ``$BENCHBENCH_DATA``, laid
out as torchvision lays them out (CIFAR: the unpacked ``cifar-10-batches-py/`` or
``cifar-100-python/`` folder, or the ``.tar.gz`` beside it, which torchvision unpacks offline;
SVHN: ``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``). Every file is checked against
the md5 torchvision pins before torchvision reads it (its CIFAR reader unpickles: only files
with the official checksums are ever unpickled). Images are float32 k/255 in [0, 1], shape
[N, 3, 32, 32]; labels int64 (SVHN's digit 0, stored as 10, is 0 as torchvision maps it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from benchbench.datasets.sources import default_data_dir, ensure_from_sources, torchvision_download
from benchbench.errors import DataError

SOURCES = ("torchvision",)
_DESCRIBE = {"torchvision": "torchvision's download"}


def expected_files(cls_name: str, split: str) -> list[tuple[str, str]]:
    """``(path under the data folder, md5)`` of every file torchvision's ``cls_name`` reads for
    ``split``, from the class's own lists."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    if cls_name == "SVHN":
        _, filename, md5 = cls.split_list[split]
        return [(filename, md5)]
    batches = cls.train_list if split == "train" else cls.test_list
    return [(f"{cls.base_folder}/{name}", md5) for name, md5 in
            [*batches, (cls.meta["filename"], cls.meta["md5"])]]


def _origin(cls_name: str, splits: Sequence[str]) -> str:
    """Where the files come from, for the error message."""
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    if cls_name == "SVHN":
        return " and ".join(cls.split_list[s][0] for s in splits)
    return (f"{cls.url} (put the {cls.filename} there as it is: torchvision unpacks it without "
            "the network)")


def problems(root: Path, cls_name: str, splits: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(missing, corrupt)``: the expected files absent under ``root``, and those present whose
    md5 is not torchvision's."""
    from torchvision.datasets.utils import check_integrity

    missing, corrupt = [], []
    for split in splits:
        for name, md5 in expected_files(cls_name, split):
            path = Path(root) / name
            if not path.is_file():
                missing.append(name)
            elif not check_integrity(str(path), md5):
                corrupt.append(name)
    return missing, corrupt


def ensure_images(
    root: Path,
    cls_name: str,
    title: str,
    splits: Sequence[str],
    *,
    log: Callable[[str], None] = lambda message: None,
    sources: Sequence[str] = SOURCES,
) -> str:
    """Make ``splits`` of torchvision's ``cls_name`` loadable from ``root``; the source used
    (``"cache"`` when its files are there with torchvision's md5s). Raises one ``DataError``
    naming the files expected, where to put them and where they come from."""
    root = Path(root)
    missing, corrupt = problems(root, cls_name, splits)
    calls = ([{"split": s} for s in splits] if cls_name == "SVHN"
             else [{"train": s == "train"} for s in splits])
    found = "; ".join(part for part in (
        f"missing {', '.join(missing)}" if missing else "",
        f"not torchvision's md5: {', '.join(corrupt)} (delete them)" if corrupt else "") if part)
    files = [name for split in splits for name, _ in expected_files(cls_name, split)]
    return ensure_from_sources(
        title, where=root, files=files, ready=lambda: problems(root, cls_name, splits) == ([], []),
        attempts={"torchvision": lambda: torchvision_download(cls_name, root, calls)},
        describe=_DESCRIBE, sources=sources, log=log,
        fix=(f"{title} needs {', '.join(files)} under {root} ({found}); they come from "
             f"{_origin(cls_name, splits)}; put them there, or pass --data-dir / set "
             "BENCHBENCH_DATA to the folder that holds them"))


class _TorchvisionImages:
    """The shared body of the three datasets: ``cls_name`` is torchvision's class."""

    cls_name: str
    title: str
    splits: tuple[str, ...] = ("train", "test")
    prepared: tuple[str, ...] = ("train", "test")  # the splits ``prepare`` makes sure of
    input_shape = (3, 32, 32)
    bounds = (0.0, 1.0)

    def prepare(self, *, data_dir: Path | None = None, log=print) -> str:
        """Make sure the files exist under ``data_dir``; returns the source used."""
        root = Path(data_dir) if data_dir else default_data_dir()
        return ensure_images(root, self.cls_name, self.title, self.prepared, log=log)

    def load(self, split: str, *, data_dir: Path | None = None):
        """The whole split in memory: float32 pixels k/255 [N, 3, 32, 32], int64 labels."""
        import numpy as np
        import torch
        import torchvision.datasets

        root = Path(data_dir) if data_dir else default_data_dir()
        ensure_images(root, self.cls_name, self.title, (split,))
        cls = getattr(torchvision.datasets, self.cls_name)
        try:
            if self.cls_name == "SVHN":
                data = cls(str(root), split=split, download=False)
                k, labels = data.data, data.labels  # [N, 3, 32, 32], 10 already mapped to 0
            else:
                data = cls(str(root), train=split == "train", download=False)
                k, labels = data.data.transpose(0, 3, 1, 2), data.targets  # from [N, 32, 32, 3]
        except (RuntimeError, ValueError, KeyError, OSError) as exc:
            raise DataError(f"{self.title} {split} under {root} could not be read by "
                            f"torchvision.datasets.{self.cls_name}: {exc}") from exc
        x = torch.from_numpy(np.ascontiguousarray(k)).to(torch.float32).div_(255.0)
        return x, torch.as_tensor(np.asarray(labels), dtype=torch.int64)


class CIFAR10(_TorchvisionImages):
    """CIFAR-10 (Krizhevsky 2009): 50,000 train and 10,000 test 32x32 colour images, 10
    classes."""

    cls_name, title = "CIFAR10", "CIFAR-10"
    num_classes = 10
    split_sizes = {"train": 50000, "test": 10000}


class CIFAR100(_TorchvisionImages):
    """CIFAR-100 (Krizhevsky 2009): 50,000 train and 10,000 test 32x32 colour images, 100 fine
    classes (the labels are the fine ones, as torchvision's)."""

    cls_name, title = "CIFAR100", "CIFAR-100"
    num_classes = 100
    split_sizes = {"train": 50000, "test": 10000}


class SVHN(_TorchvisionImages):
    """SVHN cropped digits (Netzer et al. 2011): 73,257 train, 26,032 test and 531,131 extra
    32x32 colour images, 10 classes (digit 0 is label 0)."""

    cls_name, title = "SVHN", "SVHN"
    splits = ("train", "test", "extra")
    num_classes = 10
    split_sizes = {"train": 73257, "test": 26032, "extra": 531131}
