"""Split expressions: ``"train"``, ``"test"``, ``"train[5000:]"``, ``"train[:5000]"``."""

from __future__ import annotations

import re
from typing import NamedTuple

_SPLIT = re.compile(r"^(?P<base>[A-Za-z_][\w-]*)(?:\[(?P<start>-?\d*):(?P<stop>-?\d*)\])?$")


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
