"""Text in a suite file that reaches terminals, reports and figures: no control characters.

Refused at validation, with one line naming the file and the key (or the line, outside any
string): every C0 and C1 control character (U+0000-U+001F, U+007F-U+009F: ``ESC`` starts the
terminal escapes that clear a screen or hide a link, ``U+009B`` is a one-byte ``CSI``), the
Unicode bidirectional overrides and isolates (U+202A-U+202E, U+2066-U+2069: text that reads
differently from what it is) and the line and paragraph separators (U+2028, U+2029). Only
``suite.description`` may hold tabs and line breaks. What a report shows is escaped as well
(``benchbench.report.mdtext``), for stores written before this check.
"""

from __future__ import annotations

import unicodedata
from typing import Any

BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SEPARATORS = frozenset("\u2028\u2029")
MULTILINE = frozenset("\t\n\r")  # allowed in suite.description (and between lines of the file)
#: short names of the control characters people meet
NAMES = {0x1B: "ESC", 0x9B: "CSI", 0x07: "BEL", 0x08: "BS", 0x00: "NUL", 0x7F: "DEL",
         0x09: "TAB", 0x0A: "LF", 0x0D: "CR", 0x9D: "OSC", 0x90: "DCS"}


def forbidden(ch: str) -> bool:
    """A character no suite text may hold (tab and line breaks aside, see ``MULTILINE``)."""
    return unicodedata.category(ch) == "Cc" or ch in BIDI or ch in SEPARATORS


def describe(ch: str) -> str:
    code = ord(ch)
    name = NAMES.get(code) or unicodedata.name(ch, "")
    return f"U+{code:04X}" + (f" ({name})" if name else "")


def first_forbidden(text: str, allowed: frozenset[str] = frozenset()) -> str | None:
    return next((ch for ch in text if ch not in allowed and forbidden(ch)), None)


def check_text(check, data: dict[str, Any], text: str) -> None:
    """Refuse (``check.fail``: one line naming the key) a control character in any string of
    the parsed suite ``data``, or anywhere in its source ``text`` (a comment)."""
    todo: list[tuple[str, Any]] = [("", data)]
    while todo:
        key, value = todo.pop(0)
        if isinstance(value, dict):
            # (a key is checked against the keys its table allows: one with a control
            # character is refused as unknown, its name escaped in the error)
            todo.extend((f"{key}.{k}" if key else k, v) for k, v in value.items())
        elif isinstance(value, list):
            todo.extend((f"{key}[{i}]", v) for i, v in enumerate(value))
        elif isinstance(value, str):
            allowed = MULTILINE if key == "suite.description" else frozenset()
            bad = first_forbidden(value, allowed)
            if bad is not None:
                extra = ("" if allowed else " (only suite.description may hold tabs and line "
                         "breaks)" if bad in MULTILINE else "")
                raise check.fail(key, f"holds the control character {describe(bad)} at "
                                 f"character {value.index(bad) + 1}; control characters are "
                                 "not allowed in suite names, labels, descriptions or values "
                                 f"(they would reach terminals and reports){extra}: remove it")
    for number, line in enumerate(text.split("\n"), start=1):  # (splitlines eats U+2028)
        bad = first_forbidden(line, frozenset("\t\r"))
        if bad is not None:
            raise check.fail(f"line {number}", f"holds the control character {describe(bad)} "
                             "(in a comment, say); control characters are not allowed in a "
                             "suite file: remove it")
