"""What a plugin's docstrings say: its one-sentence summary and the documentation of each key.

``summary(doc)`` is the first sentence of the first paragraph (a sentence ends at ``.``, ``!``
or ``?`` followed by a space and a capital, a quote or the end, outside brackets and quotes,
never after an abbreviation such as ``et al.`` or ``e.g.``); a sentence longer than ``width``
is cut at a word boundary with an ellipsis.

``key_doc(obj, key)`` finds what the docstrings of a registered class or factory (its own, its
``__init__``'s, its bases' for keys they take, its module's) say about a suite key: a
``:param key:`` line (Sphinx, as ART's classes write them), a ``key: text`` or ``key (type):
text`` line in an ``Args``/``Parameters``/``Suite keys`` section, else the first sentence that
names the key in double backticks (````steps````).
"""

from __future__ import annotations

import inspect
import re
import sys

WIDTH = 160  # a summary longer than this is cut at a word, with an ellipsis
ABBREVIATIONS = ("al", "e.g", "i.e", "etc", "vs", "cf", "fig", "eq", "no", "approx", "resp")
_OPEN, _CLOSE = "([{", ")]}"


def paragraphs(doc: str) -> list[str]:
    """Paragraphs (and each bullet of a list) with whitespace collapsed."""
    text = re.sub(r"\n(\s*[*-] )", r"\n\n\1", inspect.cleandoc(doc or ""))
    return [" ".join(p.split()).removeprefix("* ").removeprefix("- ")
            for p in re.split(r"\n\s*\n", text) if p.strip()]


def sentences(text: str) -> list[str]:
    """``text`` (one paragraph, whitespace collapsed) cut into sentences."""
    out, depth, quote, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch == '"':
            quote = not quote
        elif ch in ".!?" and depth == 0 and not quote:
            rest = text[i + 1:]
            if rest and not re.match(r"\s+[A-Z\"'`(\[*]", rest):
                continue
            word = re.search(r"([\w.]+)$", text[start:i])
            if ch == "." and word and word.group(1).lower().rstrip(".") in ABBREVIATIONS:
                continue
            out.append(text[start:i + 1].strip())
            start = i + 1
    if text[start:].strip():
        out.append(text[start:].strip())
    return out


def shorten(text: str, width: int = WIDTH) -> str:
    """``text``, or its words up to ``width`` characters and an ellipsis."""
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def summary(doc: str | None, width: int = WIDTH) -> str:
    """The first sentence of ``doc``'s first paragraph, at most ``width`` characters."""
    found = paragraphs(doc or "")
    if not found:
        return ""
    first = sentences(found[0])
    return shorten(first[0] if first else found[0], width)


def _docs(obj) -> list[str]:
    """The docstrings that may document ``obj``'s keys, nearest first."""
    out = []
    owners = [k for k in obj.__mro__ if k is not object] if isinstance(obj, type) else [obj]
    for owner in owners:
        out.append(inspect.getdoc(owner) if owner is obj else owner.__doc__)
        init = vars(owner).get("__init__") if isinstance(owner, type) else None
        if init is not None:
            out.append(init.__doc__)
    for owner in owners:
        module = sys.modules.get(getattr(owner, "__module__", ""), None)
        if module is not None:
            out.append(module.__doc__)
    return [d for d in out if d]


SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Keyword Arguments|Suite keys)\s*:?\s*$",
                     re.IGNORECASE)


def _listed(doc: str, key: str) -> str | None:
    """``key``'s entry in a ``:param key:`` line or an Args-style section of ``doc``."""
    lines = inspect.cleandoc(doc).splitlines()
    pattern = re.compile(rf"^\s*:param\s+(?:[\w\[\], .|]+\s+)?{re.escape(key)}\s*:\s*(.*)$")
    entry = re.compile(rf"^\s*(?:``)?{re.escape(key)}(?:``)?\s*(?:\([^)]*\))?\s*:\s*(.*)$")
    in_section, header = False, 0
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if SECTION.match(line):
            in_section, header = True, indent
            continue
        if in_section and line.strip() and indent <= header:  # the section has ended
            in_section = False
        found = pattern.match(line) or (in_section and entry.match(line))
        if found:
            text = [found.group(1).strip()]
            for more in lines[i + 1:]:  # continuation lines, indented deeper
                if not more.strip() or len(more) - len(more.lstrip()) <= indent \
                        or more.lstrip().startswith(":"):
                    break
                text.append(more.strip())
            return " ".join(t for t in text if t)
    return None


def _top_level(text: str, sep: str) -> list[str]:
    """``text`` split at ``sep`` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
    return [*parts, text[start:]]


def _around(sentence: str, key: str, width: int) -> str:
    """A long ``sentence`` from the clause that names ``key`` (after an ellipsis)."""
    at = sentence.find(f"``{key}")
    if len(sentence) <= width or at < width // 2:
        return shorten(sentence, width)
    start = max(sentence.rfind(sep, 0, at) for sep in ("; ", ": ", ", ", "("))
    start = start + 1 if start >= 0 else at
    return "…" + shorten(sentence[start:].lstrip(" ,;:("), width - 1)


def _segment(sentence: str, key: str) -> str | None:
    """What ``sentence`` says of ``key`` where it defines it: ````key```` at its start (up to a
    ``;``), or ````key```` followed by a parenthesis (``steps`` (10; ...)) and what a colon
    after it adds (up to a ``;`` or the next ````key````)."""
    mark = f"``{key}``"
    at = sentence.find(mark + " (")
    if at < 0:
        return _top_level(sentence, "; ")[0] if sentence.startswith(mark) else None
    depth, end = 0, None
    for i in range(at + len(mark) + 1, len(sentence)):
        if sentence[i] == "(":
            depth += 1
        elif sentence[i] == ")":
            depth -= 1
            if depth == 0:
                end = i + 1
                break
    if end is None:
        return None
    rest = sentence[end:]
    if rest.startswith(":"):
        rest = re.split(r";|, ``|\. ", rest)[0]
        return (sentence[at:end] + rest).rstrip(".")
    return sentence[at:end]


def key_doc(obj, key: str, *, width: int = 160) -> str:
    """What ``obj``'s docstrings say about the suite key ``key`` ("" if nothing)."""
    docs = _docs(obj)
    for doc in docs:
        listed = _listed(doc, key)
        if listed:
            return shorten(listed, width)
    named = re.compile(rf"``{re.escape(key)}(?:``|\s*[=(<>])")
    mentions = [sentence for doc in docs for paragraph in paragraphs(doc)
                for sentence in sentences(paragraph) if named.search(sentence)]
    mark = f"``{key}``"
    for sentence in sorted(mentions, key=lambda m: not m.startswith(mark)):  # stable
        segment = _segment(sentence, key)  # where the key is defined, before mentions
        if segment:
            return shorten(segment, width)
    return _around(mentions[0], key, width) if mentions else ""
