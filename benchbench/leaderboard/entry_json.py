"""Reading a leaderboard entry as strictly as a JSON reader can: what ``check_entry`` refuses
(NaN and Infinity, literals beyond float range, integers beyond 64 bits, a key given twice) is
kept, not lost, so that the check can name it (``benchbench.leaderboard.validate``)."""

from __future__ import annotations

import json
import math

from benchbench.errors import one_line
from benchbench.leaderboard.runs import LeaderboardError

MAX_DEPTH = 32
_DIGITS = 20  # an integer literal longer than this cannot be within 64 bits (with its sign)


class RawNumber(float):
    """A number JSON gave as NaN, Infinity or a literal beyond float range; keeps its text."""

    text: str

    def __new__(cls, text: str):
        number = super().__new__(cls, float(text))
        number.text = text
        return number


class HugeInt:
    """An integer literal too long to be within 64 bits (never converted)."""

    def __init__(self, text: str) -> None:
        self.text = text


class _Object(dict):
    """A JSON object, with the first key it was given twice (``None``: none was)."""

    duplicate: str | None = None


def _float(text: str) -> float:
    value = float(text)
    return value if math.isfinite(value) else RawNumber(text)


def _int(text: str):
    return int(text) if len(text) <= _DIGITS else HugeInt(text)


def _pairs(pairs: list) -> _Object:
    obj = _Object()
    for key, value in pairs:
        if key in obj and obj.duplicate is None:
            obj.duplicate = key
        obj[key] = value
    return obj


def parse_entry(text: str, where: object):
    """``text`` as JSON, keeping what ``check_entry`` refuses (NaN, huge numbers, repeated keys)
    where it can name them; ``EntryError`` when it is not JSON at all."""
    try:
        return json.loads(text, parse_float=_float, parse_int=_int, parse_constant=RawNumber,
                          object_pairs_hook=_pairs)
    except json.JSONDecodeError as exc:
        raise LeaderboardError(one_line(f"{where}: not valid JSON ({exc.msg} at line "
                                        f"{exc.lineno})")) from None
    except RecursionError:
        raise LeaderboardError(f"{where}: nested too deep to read; an entry is nested at most "
                               f"{MAX_DEPTH} deep") from None
