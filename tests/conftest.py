"""Shared fixtures: an isolated registry and small digits suites written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchbench.testing import isolated_registry

TINY_SUITE = """
[suite]
name = "tiny"
seeds = {seeds}

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [16]

[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = {epochs}
checkpoints = {checkpoints}
dtype = "{dtype}"

[[attacks]]
name = "fgsm"
eps = [0.05, 0.2]
"""


@pytest.fixture(scope="session")
def registry():
    """Built-ins only: tests do not depend on what else is installed."""
    return isolated_registry()


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a tiny digits suite; keyword arguments fill TINY_SUITE's blanks."""

    def write(name: str = "tiny.toml", *, seeds="[0, 1]", epochs=2, checkpoints="[1, 2]",
              dtype="float32", text: str | None = None) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else TINY_SUITE.format(
            seeds=seeds, epochs=epochs, checkpoints=checkpoints, dtype=dtype))
        return path

    return write
