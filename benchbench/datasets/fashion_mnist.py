"""Fashion-MNIST through torchvision's loader, materialised by ``fashion_mnist_source``."""

from __future__ import annotations

from pathlib import Path

from benchbench.datasets.fashion_mnist_source import ensure_fashion_mnist
from benchbench.datasets.mnist import torchvision_idx_split
from benchbench.datasets.sources import default_data_dir


class FashionMNIST:
    """Zalando's Fashion-MNIST (Xiao et al. 2017): 60,000 train and 10,000 test 28x28 grayscale
    images of 10 clothing classes (6,000 / 1,000 per class), pixels k/255 in [0, 1]."""

    splits = ("train", "test")
    num_classes = 10
    input_shape = (1, 28, 28)
    bounds = (0.0, 1.0)
    split_sizes = {"train": 60000, "test": 10000}  # rows per base split
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")

    def prepare(self, *, data_dir: Path | None = None, log=print) -> str:
        """Make sure the IDX files exist under ``data_dir``; returns the source used."""
        return ensure_fashion_mnist(Path(data_dir) if data_dir else default_data_dir(), log=log)

    def load(self, split: str, *, data_dir: Path | None = None):
        """The whole split in memory: float64 pixels k/255 (exact in both float dtypes)."""
        root = Path(data_dir) if data_dir else default_data_dir()
        ensure_fashion_mnist(root)
        return torchvision_idx_split("FashionMNIST", root, split)
