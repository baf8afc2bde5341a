"""The entry format's JSON Schema (shipped as package data) and its problems as one-line
``EntryError`` messages: the file, the key as a JSON pointer, what is wrong and what is allowed
(the schema's own description of the key)."""

from __future__ import annotations

import functools
import json
import re

from benchbench.errors import one_line
from benchbench.leaderboard.entry_json import HugeInt, RawNumber
from benchbench.leaderboard.runs import LeaderboardError

SCHEMA_FILE = "entry.schema.json"


class EntryError(LeaderboardError):
    """An entry that is not a valid leaderboard entry: names the file, the key and what is
    allowed."""

    def __init__(self, where: object, pointer: str, problem: str, allowed: str | None = None):
        self.where, self.pointer, self.problem, self.allowed = str(where), pointer, problem, allowed
        tail = f"; allowed: {allowed}" if allowed else ""
        super().__init__(one_line(f"{where}: {pointer}: {problem}{tail}"))


@functools.cache
def entry_schema() -> dict:
    """The entry format as a JSON Schema (Draft 2020-12), shipped as package data."""
    from importlib.resources import files

    return json.loads(files("benchbench.leaderboard").joinpath(SCHEMA_FILE).read_text("utf-8"))


def _whole_pattern(validator, pattern, instance, schema):
    """``pattern`` with ECMA-262's ``$`` (the end, never before a final newline)."""
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "string"):
        return
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(
        "\\$") else pattern
    if re.search(anchored, instance) is None:
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@functools.cache
def validator():
    from jsonschema import Draft202012Validator, validators

    checker = Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    strict = validators.extend(Draft202012Validator, validators={"pattern": _whole_pattern},
                               type_checker=checker)
    return strict(entry_schema())


def pointer(path) -> str:
    """``path`` (keys and indices) as a JSON pointer (RFC 6901), long keys shortened."""
    parts = []
    for part in path:
        text = str(part).replace("~", "~0").replace("/", "~1")
        parts.append(text if len(text) <= 60 else text[:57] + "...")
    return "/" + "/".join(parts)


def show(value) -> str:
    if isinstance(value, RawNumber | HugeInt):
        text = value.text
        return text if len(text) <= 24 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37]) + "..."
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        text = str(value)
        return text if len(text) <= 24 else f"{text[:12]}...({len(text.lstrip('-'))} digits)"
    if isinstance(value, float):
        return repr(value)
    return json_type(value)


def json_type(value) -> str:
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (float, "a number"),
                       (str, "a string"), (list, "an array"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _chain(node: dict):
    """``node`` and the schemas its ``$ref`` leads to."""
    root, seen = entry_schema(), 0
    while isinstance(node, dict) and seen < 8:
        yield node
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return
        node = root
        for part in ref[2:].split("/"):
            node = node[part]
        seen += 1


def _child(node: dict, key) -> dict | None:
    chain = list(_chain(node))
    for n in chain:
        if isinstance(key, str) and key in n.get("properties", {}):
            return n["properties"][key]
        if isinstance(key, int):
            prefix = n.get("prefixItems", [])
            if key < len(prefix):
                return prefix[key]
            if isinstance(n.get("items"), dict):
                return n["items"]
    for n in chain:
        if isinstance(key, str) and isinstance(n.get("additionalProperties"), dict):
            return n["additionalProperties"]
    return None


def _describe(node: dict | None) -> str | None:
    return next((n["description"] for n in _chain(node) if "description" in n), None) \
        if node else None


def describe(path) -> str | None:
    """What the schema allows at ``path`` (its description), ``None`` where it says nothing."""
    node = entry_schema()
    for key in path:
        node = _child(node, key)
        if node is None:
            return None
    return _describe(node)


def _fields(node: dict) -> list[str]:
    return sorted({k for n in _chain(node) for k in n.get("properties", {})})


def schema_error(where, error) -> EntryError:
    """The first problem ``jsonschema`` found, as one line."""
    kind, value, path = error.validator, error.instance, tuple(error.absolute_path)
    if "propertyNames" in error.schema_path:
        return EntryError(where, pointer(path), f"key {show(value)} is not allowed",
                          _describe(error.schema) or "a shorter key")
    if kind == "required":
        missing = next(k for k in error.validator_value if k not in value)
        return EntryError(where, pointer((*path, missing)), "missing",
                          describe((*path, missing)) or "required")
    if kind in ("additionalProperties", "unevaluatedProperties"):
        known = _fields(error.schema)
        extra = next(k for k in value if k not in known)
        return EntryError(where, pointer((*path, extra)), "not a key of the entry format",
                          "the keys " + ", ".join(known))
    if kind == "type":
        problem = f"{show(value)} is {json_type(value)}"
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        problem = f"{show(value)} is out of range"
    elif kind == "maxLength":
        problem = f"{len(value):,} characters are too many"
    elif kind == "minLength":
        problem = "an empty string"
    elif kind in ("pattern", "enum", "const"):
        problem = f"{show(value)} is not allowed"
    elif kind in ("minItems", "maxItems"):
        problem = f"{len(value):,} items"
    elif kind in ("minProperties", "maxProperties"):
        problem = f"{len(value):,} keys"
    elif kind == "uniqueItems":
        problem = "holds a value twice"
    else:
        problem = f"not allowed ({kind})"
    return EntryError(where, pointer(path), problem,
                      describe(path) or _describe(error.schema) or None)
