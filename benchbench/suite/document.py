"""A suite file as a checked document: its bytes (a regular file, at most ``MAX_SUITE_BYTES``),
UTF-8 and TOML, and nothing anywhere that no key accepts (nesting, non-finite numbers, integers
beyond 64 bits, dates); ``Checker`` raises each problem as one ``SuiteError`` line naming the
file and the key (``benchbench.suite.load`` validates the keys themselves)."""

from __future__ import annotations

import codecs
import datetime
import math
import stat
import tomllib
from pathlib import Path
from typing import Any

from benchbench.errors import SuiteError

MAX_SUITE_BYTES = 1_000_000  # a suite file is a few hundred bytes; 1 MB is far beyond any grid
MAX_NESTING = 16  # tables and arrays inside each other (the deepest real suite needs 5)
INT_LIMIT = 2**63  # TOML integers are 64-bit


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> SuiteError:
        return SuiteError(self.path, key, problem)

    def table(self, data: Any, key: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(key, f"must be a table ([{key}]); got {type(data).__name__} "
                            f"{short(data)}")
        return data

    def tables(self, data: Any, key: str) -> list[dict[str, Any]]:
        """A table or an array of tables, as a list."""
        items = [data] if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise self.fail(key, f"must be a table [{key}] or an array of tables [[{key}]]")
        return [self.table(item, f"{key}[{i}]") for i, item in enumerate(items)]

    def string(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}.{key}", f"required, a non-empty string; got "
                            f"{short(value)}")
        return value


def read_suite(check: Checker, path: Path) -> bytes:
    """The file's bytes, refusing what is not a regular file or is over MAX_SUITE_BYTES."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a directory, or a FIFO that would block a read
            what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise check.fail("", f"cannot read the suite file ({what}); pass the path of a "
                             ".toml suite, e.g. suites/quick_digits.toml")
        with path.open("rb") as f:
            raw = f.read(MAX_SUITE_BYTES + 1)
    except OSError as exc:
        raise check.fail("", f"cannot read the suite file ({exc.strerror or exc}); pass the path "
                         "of a .toml suite, e.g. suites/quick_digits.toml") from None
    if len(raw) > MAX_SUITE_BYTES:
        raise check.fail("", f"larger than the limit of {MAX_SUITE_BYTES:,} bytes for a suite "
                         "file; a grid needs a few tables, not a long list")
    return raw


def parse_suite(check: Checker, raw: bytes) -> tuple[dict[str, Any], str]:
    """``(document, text)``: UTF-8 (a leading byte-order mark is dropped), then TOML."""
    raw = raw.removeprefix(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise check.fail("", f"not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} cannot "
                         "be decoded; save the file as UTF-8") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        raise check.fail("", f"not valid TOML: {exc}") from None
    except (RecursionError, MemoryError):
        raise check.fail("", f"nested too deeply to read; at most {MAX_NESTING} levels of "
                         "tables and arrays are allowed") from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4,300 digits)
        raise check.fail("", f"not valid TOML: {exc}") from None


def check_values(check: Checker, data: dict[str, Any]) -> None:
    """Refuse, anywhere in the document, what no key accepts: nesting deeper than MAX_NESTING,
    non-finite numbers, integers beyond 64 bits, dates and times (no key takes one)."""
    todo: list[tuple[str, Any, int]] = [(key, value, 1) for key, value in data.items()]
    while todo:
        key, value, depth = todo.pop()
        if depth > MAX_NESTING:
            raise check.fail(key, f"nested too deeply; at most {MAX_NESTING} levels of tables "
                             "and arrays are allowed")
        if isinstance(value, dict):
            todo.extend((f"{key}.{k}", v, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((f"{key}[{i}]", v, depth + 1) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise check.fail(key, f"{value} is not allowed; every number must be finite")
        elif isinstance(value, int) and not -INT_LIMIT <= value < INT_LIMIT:
            raise check.fail(key, "integer out of range; TOML integers are 64-bit "
                             f"(-2**63 to 2**63 - 1); got one of {len(str(abs(value)))} digits")
        elif isinstance(value, datetime.date | datetime.time):
            raise check.fail(key, f"a date or time ({value.isoformat()}) is not allowed here; "
                             "no suite key takes one")
