"""Training-data augmentation: random crop with zero padding and horizontal flip (the CIFAR
standard, torchvision's ``RandomCrop(size, padding=crop)`` then ``RandomHorizontalFlip()``),
applied by the harness to every training batch, vectorised over the batch.

Suite keys, in ``[dataset]``: ``augment = {crop = 4, flip = true}``. ``crop = p`` pads each
image with ``p`` zero pixels on every side and cuts a window of the original size at an offset
drawn uniformly from ``0..2p`` in each direction; ``flip = true`` mirrors each image left-right
with probability 1/2. Only training batches are augmented (never evaluation, attacks or the
overfitting monitor), before the regime crafts its inputs.

Randomness: member ``i`` of a stack draws its offsets and flips from its own generator, seeded
from ``(seed_i, epoch, batch)`` and ``AUGMENT_SALT`` (apart from the shuffle, initialisation and
crafting streams), on the CPU whatever the device. Nothing needs saving for resume: a resumed
run draws exactly what an uninterrupted run draws, and a member draws the same alone as in a
stack. Crop and flip only move values, so augmented pixels are bit for bit pixels of the batch
(or the padding's zeros).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

AUGMENT_SALT = 0x1B873593
KEYS = ("crop", "flip")


class AugmentKeyError(ValueError):
    """A bad ``dataset.augment``: ``key`` is the sub-key at fault ("" for the table itself)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"augment{'.' + key if key else ''}: {problem}")
        self.key, self.problem = key, problem


def parse_augment(value: Any, input_shape: Sequence[int] | None) -> dict[str, Any] | None:
    """The normalised augmentation of a suite's ``dataset.augment`` (None: none); raises
    ``AugmentKeyError`` naming the sub-key and what is allowed.

    Keys at their default (``crop = 0``, ``flip = false``) are dropped, so writing them out
    makes the same cells as leaving them out."""
    if not isinstance(value, Mapping):
        raise AugmentKeyError("", f"must be a table such as {{crop = 4, flip = true}} (keys: "
                              f"{', '.join(KEYS)}); got {value!r}")
    for key in value:
        if key not in KEYS:
            raise AugmentKeyError(key, f"unknown key; allowed: {', '.join(KEYS)}")
    shape = tuple(input_shape) if input_shape is not None else ()
    if len(shape) != 3:
        raise AugmentKeyError("", "needs images [channels, height, width]; the dataset's "
                              f"inputs have shape {list(shape)}")
    limit = min(shape[1:]) - 1
    crop = value.get("crop", 0)
    if not isinstance(crop, int) or isinstance(crop, bool) or not 0 <= crop <= limit:
        raise AugmentKeyError("crop", "the padding in pixels of the random crop, an integer "
                              f"from 0 (off) to {limit} for {shape[1]}x{shape[2]} images; "
                              f"got {crop!r}")
    flip = value.get("flip", False)
    if not isinstance(flip, bool):
        raise AugmentKeyError("flip", f"true or false (random horizontal flip); got {flip!r}")
    out = {**({"crop": crop} if crop else {}), **({"flip": True} if flip else {})}
    return out or None


def member_seed(seed: int, epoch: int, batch: int) -> int:
    """The 63-bit seed of a member's augmentation draws for one batch."""
    digest = hashlib.blake2b(f"{seed}:{epoch}:{batch}:{AUGMENT_SALT}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def augment_rows(x, spec: Mapping[str, Any] | None, seeds: Sequence[int], *, epoch: int,
                 batch: int):
    """``x`` [members * B, C, H, W] (member-major: member ``i``'s rows are ``[i*B, (i+1)*B)``)
    augmented by ``spec`` (``parse_augment``'s), member ``i`` drawing from ``seeds[i]``;
    ``x`` itself when ``spec`` is None. ``x`` is never modified."""
    if not spec:
        return x
    import torch

    rows = len(x) // len(seeds)
    if rows * len(seeds) != len(x):
        raise ValueError(f"a batch of {len(x)} rows does not split into {len(seeds)} members")
    crop, flip = spec.get("crop", 0), spec.get("flip", False)
    offsets, flips = [], []
    for seed in seeds:
        gen = torch.Generator().manual_seed(member_seed(seed, epoch, batch))
        if crop:
            offsets.append(torch.randint(0, 2 * crop + 1, (rows, 2), generator=gen))
        if flip:
            flips.append(torch.rand(rows, generator=gen) < 0.5)
    if crop:
        x = random_crop(x, torch.cat(offsets).to(x.device, non_blocking=True), crop)
    if flip:
        x = random_flip(x, torch.cat(flips).to(x.device, non_blocking=True))
    return x


def random_crop(x, offsets, pad: int):
    """Each image ``x[n]`` padded with ``pad`` zeros on every side, then its window of the
    original size at ``(offsets[n, 0], offsets[n, 1])`` (top, left; each in ``0..2*pad``): one
    gather over the padded batch."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    arange = {size: torch.arange(size, device=x.device) for size in (n, c, h, w)}
    rows = (offsets[:, 0, None] + arange[h]).view(n, 1, h, 1)
    cols = (offsets[:, 1, None] + arange[w]).view(n, 1, 1, w)
    return padded[arange[n].view(n, 1, 1, 1), arange[c].view(1, c, 1, 1), rows, cols]


def random_flip(x, mask):
    """``x[n]`` mirrored left-right where ``mask[n]``, unchanged elsewhere."""
    import torch

    return torch.where(mask.view(-1, *([1] * (x.dim() - 1))), x.flip(-1), x)
