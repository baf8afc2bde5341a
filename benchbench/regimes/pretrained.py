"""The ``pretrained`` regime: evaluate weights someone already has, train nothing.

Every ``[model]`` of a suite with this regime gives its weights (``weights = "path"``, or a zoo
entry: ``zoo = "Name"``; ``benchbench.models.weights``, ``benchbench.zoo``); the harness builds
the architecture, loads the file into it (cast to ``dtype``) and measures it once, as epoch 0:
clean metrics, the gradient-masking checks and every attack, exactly as it measures a trained
checkpoint. Reports say "pretrained, not trained here". No checkpoint copy is written: the file,
identified by its sha256 in the cell's spec, is the checkpoint.

It declares ``evaluate_only``: the suite loader requires given weights with it (and refuses
them with a regime that trains), and the unit plan shows its units as "evaluate only".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from benchbench.regimes.base import DTYPES


class Pretrained:
    """Evaluate given weights (``[model] weights`` or ``zoo``) as epoch 0, without training.

    Suite keys:
        dtype: float32 or float64: the weights are cast to it, and every measurement runs in it
            (float32; a benchbench checkpoint of a float64 regime needs float64 to keep its
            bits).
    """

    # capabilities, declared: nothing is trained, the model's weights come from a file
    evaluate_only: ClassVar[bool] = True
    stackable: ClassVar[bool] = False
    epochs: ClassVar[int] = 0
    checkpoint_epochs: ClassVar[tuple[int, ...]] = (0,)

    def __init__(self, *, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        self.dtype = dtype

    def train(self, *, model, x, y, seed: int) -> Iterator[int]:
        """Train nothing: the model, with its weights loaded, is epoch 0."""
        yield 0


def evaluate_only(regime_cls) -> bool:
    """Whether ``regime_cls`` evaluates given weights instead of training (declared, never
    guessed: ``evaluate_only = True``)."""
    return getattr(regime_cls, "evaluate_only", False) is True
