"""scikit-learn's bundled 8x8 handwritten digits: real data, no download, for quick suites."""

from __future__ import annotations

from pathlib import Path


class Digits:
    """scikit-learn's 1,797 8x8 digits in [0, 1]: train = first 1,500, test = last 297."""

    splits = ("train", "test")
    num_classes = 10
    input_shape = (1, 8, 8)
    bounds = (0.0, 1.0)
    split_sizes = {"train": 1500, "test": 297}  # rows per base split
    n_train = split_sizes["train"]

    def prepare(self, *, data_dir: Path | None = None, log=print) -> str:
        return "bundled with scikit-learn"

    def load(self, split: str, *, data_dir: Path | None = None):
        import torch
        from sklearn.datasets import load_digits

        data = load_digits()
        x = torch.from_numpy(data.data).to(torch.float64).div_(16.0).reshape(-1, *self.input_shape)
        y = torch.from_numpy(data.target).to(torch.int64)
        part = slice(None, self.n_train) if split == "train" else slice(self.n_train, None)
        return x[part].contiguous(), y[part].contiguous()
