"""The mnist dataset plugin reads what mnist_source materialises, through torchvision."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import torch

from benchbench.datasets.mnist import MNIST
from benchbench.datasets.mnist_source import convert_pickle
from benchbench.engine.data import DataCache
from benchbench.suite.cells import DatasetRef


def fake_mnist(root, n_train=40, n_valid=20, n_test=30):
    rng = np.random.default_rng(0)

    def part(n):
        k = rng.integers(0, 256, size=(n, 784))
        return (k / 256).astype(np.float32), (np.arange(n) % 10).astype(np.int64)

    train, valid, test = part(n_train), part(n_valid), part(n_test)
    blob = gzip.compress(pickle.dumps((train, valid, test)))
    counts = lambda y: tuple(np.bincount(y, minlength=10))  # noqa: E731
    convert_pickle(blob, root, expected_train_counts=counts(np.concatenate([train[1], valid[1]])),
                   expected_test_counts=counts(test[1]))
    return train, valid, test


def test_load_gives_k_over_255_in_torchvision_layout(tmp_path):
    train, valid, test = fake_mnist(tmp_path)
    x, y = MNIST().load("train", data_dir=tmp_path)
    k = np.concatenate([train[0], valid[0]]) * 256
    assert x.shape == (60, 1, 28, 28) and x.dtype == torch.float64
    assert torch.equal(x.flatten(1) * 255, torch.from_numpy(k).double())
    assert torch.equal(y, torch.from_numpy(np.concatenate([train[1], valid[1]])))
    xt, _ = MNIST().load("test", data_dir=tmp_path)
    assert len(xt) == 30


def test_tf_style_split_holds_out_the_first_images(tmp_path, registry):
    fake_mnist(tmp_path)
    cache = DataCache(registry, tmp_path)
    ref = DatasetRef("mnist", "train[5:]", "test")
    x, y = cache.get(ref, "train", dtype=torch.float32, device="cpu")
    full, _ = MNIST().load("train", data_dir=tmp_path)
    assert len(x) == 55 and torch.equal(x, full[5:].float())
    assert MNIST().prepare(data_dir=tmp_path) == "cache"
