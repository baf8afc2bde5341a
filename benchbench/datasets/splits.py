"""Split expressions: ``"train"``, ``"test"``, ``"train[5000:]"``, ``"train[:5000]"``.

A dataset class may declare ``split_sizes = {"train": 60000, "test": 10000}`` (rows per base
split); then an expression that selects no rows or reaches beyond them is refused up front.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

_SPLIT = re.compile(
    r"^(?P<base>[A-Za-z_][\w-]*)(?:\[(?P<start>-?\d{0,18}):(?P<stop>-?\d{0,18})\])?$")


class Split(NamedTuple):
    base: str
    start: int | None
    stop: int | None

    @property
    def rows(self) -> slice:
        """The rows of the base split this expression selects."""
        return slice(self.start, self.stop)

    def __str__(self) -> str:
        if self.start is None and self.stop is None:
            return self.base
        return f"{self.base}[{'' if self.start is None else self.start}:" \
               f"{'' if self.stop is None else self.stop}]"


def parse_split(text: str, allowed: tuple[str, ...]) -> Split:
    """Parse a split expression, raising ValueError that says what is allowed."""
    match = _SPLIT.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a split; write NAME or NAME[start:stop], e.g. "
                         f"'train[5000:]', with NAME one of {', '.join(allowed)}")
    if match["base"] not in allowed:
        raise ValueError(f"unknown split {match['base']!r}; allowed: {', '.join(allowed)}")
    start = int(match["start"]) if match["start"] else None
    stop = int(match["stop"]) if match["stop"] else None
    return Split(match["base"], start, stop)


def check_rows(split: Split, sizes: Mapping[str, int] | None) -> None:
    """Refuse a split that selects no rows, or (when the dataset declares ``split_sizes``) one
    whose start or stop lies beyond the rows of its base split. Raises ValueError."""
    n = sizes.get(split.base) if isinstance(sizes, Mapping) else None
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        start, stop = split.start, split.stop
        if start is not None and stop is not None and (start < 0) == (stop < 0) and start >= stop:
            raise ValueError(f"{str(split)!r} selects no rows; write NAME[start:stop] with "
                             "start < stop")
        return
    for what, index in (("start", split.start), ("stop", split.stop)):
        if index is not None and not -n <= index <= n:
            raise ValueError(f"{str(split)!r}: {what} {index} is beyond the {n:,} rows of "
                             f"{split.base!r}; use indices from {-n} to {n}")
    if not range(n)[split.rows]:
        raise ValueError(f"{str(split)!r} selects no rows of the {n:,} in {split.base!r}; write "
                         "NAME[start:stop] with start before stop")
