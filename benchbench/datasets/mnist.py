"""MNIST through torchvision's loader, materialised by ``mnist_source`` when missing."""

from __future__ import annotations

from pathlib import Path

from benchbench.datasets.mnist_source import default_data_dir, ensure_mnist


class MNIST:
    """MNIST digits, 60,000 train and 10,000 test 28x28 images, pixels k/255 in [0, 1]."""

    splits = ("train", "test")
    num_classes = 10
    input_shape = (1, 28, 28)
    bounds = (0.0, 1.0)
    split_sizes = {"train": 60000, "test": 10000}  # rows per base split

    def prepare(self, *, data_dir: Path | None = None, log=print) -> str:
        """Make sure the IDX files exist under ``data_dir``; returns the source used."""
        return ensure_mnist(Path(data_dir) if data_dir else default_data_dir(), log=log)

    def load(self, split: str, *, data_dir: Path | None = None):
        """The whole split in memory: float64 pixels k/255 (exact in both float dtypes)."""
        root = Path(data_dir) if data_dir else default_data_dir()
        ensure_mnist(root)
        return torchvision_idx_split("MNIST", root, split)


def torchvision_idx_split(cls_name: str, root: Path, split: str):
    """``(x, y)`` of torchvision's ``cls_name`` (an MNIST-like class reading raw IDX files) from
    ``root``: float64 pixels k/255 of shape [N, 1, 28, 28] and int64 labels."""
    import torch
    import torchvision.datasets

    data = getattr(torchvision.datasets, cls_name)(str(root), train=split == "train",
                                                   download=False)
    x = data.data.to(torch.float64).div_(255.0).unsqueeze(1)
    return x, data.targets.to(torch.int64)
