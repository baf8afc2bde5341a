"""Text from a store, made safe to put into Markdown: it can only ever read as itself.

Suite names, labels, descriptions, parameters, errors, commands and plugin versions all come
from files someone else may have written. Before any of it reaches ``report.md``:

- ``md`` (running text and table cells): ``&``, ``<`` and ``>`` become HTML entities (no tag,
  no comment, no autolink); Markdown's punctuation that could start a link, an image, emphasis,
  code, math (GitHub's ``$``) or a table cell (``\\ ` * _ [ ] | ~ $``) gets a backslash
  (CommonMark: an escaped punctuation character is literal); an underscore inside a word is
  left alone (it never makes emphasis); line breaks become spaces; a leading ``#``, ``>``,
  ``-``, ``+``, ``=`` or ``1.`` is escaped so the text cannot start a heading, quote or list.
- ``code`` (inline code): fenced with more backticks than it holds, so it cannot close early;
  inside a table ``|`` is escaped (GitHub splits cells before it reads code).
- ``fence`` (a code block): a fence longer than any run of backticks in the text.

All three first show control characters (a store written before suites refused them) as
visible escapes (``\\x1b``), like ``benchbench.errors.one_line``.
"""

from __future__ import annotations

import re

from benchbench.suite.text import forbidden

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_PUNCT = re.compile(r"[\\`*\[\]|~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LEADING = re.compile(r"^([#>+=-]|\d+(?=[.)]))")
_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029]")


def visible(text: object) -> str:
    """``text`` with control characters (and bidi overrides) written as escapes."""
    text = str(text)
    return "".join(repr(ch)[1:-1] if forbidden(ch) and ch not in "\n\r\t"
                   else ch for ch in text)


def md(text: object, *, breaks: str = " ") -> str:
    """``text`` as literal Markdown (see the module's docstring); line breaks become
    ``breaks``."""
    text = visible(text).replace("\t", " ")
    lines = _BREAKS.split(text)
    out = []
    for line in lines:
        line = "".join(_ENTITIES.get(ch, ch) for ch in line)
        line = _PUNCT.sub(lambda m: "\\" + m.group(0), line)
        line = line.strip()
        lead = _LEADING.match(line)
        if lead:  # "# x", "- x", "1. x": a heading or a list only at the start of a line
            at = lead.end() if lead.group(1).isdigit() else 0
            line = line[:at] + "\\" + line[at:]
        out.append(line)
    return breaks.join(out)


def paragraphs(text: object) -> list[str]:
    """Multi-line text (a suite's description) as Markdown lines: each line literal, blank
    lines kept, so paragraphs stay paragraphs and nothing else is made."""
    return [md(line) for line in _BREAKS.split(visible(text))]


def code(text: object, *, table: bool = False) -> str:
    """``text`` as inline code that cannot end early (or, in a ``table``, split the cell)."""
    text = " ".join(_BREAKS.split(visible(text)))
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    body = text.replace("|", "\\|") if table else text
    return f"{ticks}{pad}{body}{pad}{ticks}"


def fence(text: object, info: str = "") -> list[str]:
    """``text`` as a fenced code block: the lines, between fences it cannot close."""
    text = visible(text)
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return [ticks + info, *text.split("\n"), ticks]
