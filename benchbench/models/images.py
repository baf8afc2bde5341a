"""What the image models share: checking their keys against the dataset, and normalisation.

Normalisation lives inside the model, applied first: ``(x - mean) / std`` per channel with
``mean`` and ``std`` the model's suite keys, so attacks and the harness's projection work in
pixel space (RobustBench's convention; Rice et al.'s ``normalize(X) = (X - mu) / std``). The
two constants are buffers registered with ``persistent=False``: they follow
``model.to(device, dtype)`` like the weights (created in torch's default dtype, float32, as the
weights are) but stay out of the state dict, so a reference repository's checkpoint loads with
``strict=True`` unchanged, and a checkpoint of ours holds only what the reference's holds.

The checks here are plain Python: they run before torch allocates anything, and a bad value
raises ``ValueError`` with one line naming the model and the key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_WIDTH = 4096  # channels (or units) a width key may ask for


def image_shape(model: str, input_shape: Sequence[int], *, min_size: int = 1,
                why: str = "") -> tuple[int, int, int]:
    """``input_shape`` as ``(channels, height, width)``, or ValueError naming ``model``: it
    must be three positive sizes, each side at least ``min_size`` (``why`` says why)."""
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"{model} needs images shaped [channels, height, width]; the dataset's "
                         f"input_shape is {shape}")
    if min(shape[1:]) < min_size:
        raise ValueError(f"{model} needs images of at least {min_size}x{min_size} pixels"
                         f"{f' ({why})' if why else ''}; the dataset's input_shape is "
                         f"{'x'.join(map(str, shape))}")
    return shape  # type: ignore[return-value]


def whole(model: str, key: str, value, *, low: int = 1, high: int = MAX_WIDTH) -> int:
    """``value`` if it is a whole number in [low, high], else ValueError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{model}: {key} must be a whole number from {low} to {high:,}; "
                         f"got {value!r}")
    return value


def probability(model: str, key: str, value) -> float:
    """``value`` if it is a number in [0, 1), else ValueError naming the key."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and 0 <= value < 1):
        raise ValueError(f"{model}: {key} must be a number from 0 up to (not including) 1; "
                         f"got {value!r}")
    return float(value)


def flag(model: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{model}: {key} must be true or false; got {value!r}")
    return value


def per_channel(model: str, key: str, value, channels: int, *,
                positive: bool = False) -> list[float] | None:
    """``mean`` or ``std`` as one float per channel (a number or a list of 1 or ``channels``
    numbers; None stays None), else ValueError naming the key."""
    if value is None:
        return None
    values = list(value) if isinstance(value, list | tuple) else [value]
    ok = len(values) in (1, channels) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
        and (v > 0 or not positive) for v in values)
    if not ok:
        what = "finite numbers > 0" if positive else "finite numbers"
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        lists = "1" if channels == 1 else f"1 or {channels} (one per channel)"
        raise ValueError(f"{model}: {key} must be a number or a list of {lists} {what} "
                         f"(the dataset's images have {channels} channel(s)); got {shown}")
    return [float(v) for v in values] * (channels if len(values) == 1 else 1)


def add_normalization(module, model: str, *, mean, std, channels: int) -> None:
    """Register ``input_mean`` and ``input_std`` on ``module`` as non-persistent buffers shaped
    ``[channels, 1, 1]`` (None, and no normalisation, when neither key is given; a missing one
    is 0 or 1)."""
    import torch

    mean = per_channel(model, "mean", mean, channels)
    std = per_channel(model, "std", std, channels, positive=True)
    if mean is None and std is None:
        module.register_buffer("input_mean", None, persistent=False)
        module.register_buffer("input_std", None, persistent=False)
        return
    mean, std = mean or [0.0] * channels, std or [1.0] * channels
    module.register_buffer("input_mean", torch.tensor(mean).view(channels, 1, 1),
                           persistent=False)
    module.register_buffer("input_std", torch.tensor(std).view(channels, 1, 1),
                           persistent=False)


def normalize(module, x):
    """``(x - mean) / std`` with ``module``'s constants; ``x`` itself when it has none."""
    if module.input_mean is None:
        return x
    return (x - module.input_mean) / module.input_std


def global_pool(out):
    """The average over each feature map: ``F.avg_pool2d`` with the map's own size as kernel.
    On the reference's inputs (CIFAR's 32x32) it is the reference's ``avg_pool2d(out, 4)``
    or ``(out, 8)``, the same op; on other image sizes it is still global average pooling."""
    import torch.nn.functional as F

    return F.avg_pool2d(out, tuple(out.shape[-2:]))
