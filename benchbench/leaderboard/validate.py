"""Leaderboard entries are untrusted input: each is checked before anything is drawn from it.

An entry file may come from anyone (RobustBench-style hand-written entries, a board someone
shares), so ``load_entry`` reads it as strictly as a JSON reader can, then ``check_entry`` holds
it to the shipped JSON Schema (``entry.schema.json``, Draft 2020-12, validated with the
``jsonschema`` library) and to what a schema cannot say (the strict reader is
``entry_json``; the schema and its one-line messages are ``entry_schema``):

- reading: a regular file (not a link), at most ``MAX_BYTES``, UTF-8; numbers finite (JSON has no
  NaN or Infinity, and a literal beyond float range would become one), integers within 64 bits,
  no key twice in one object (readers disagree on which one counts), nesting at most
  ``MAX_DEPTH`` deep;
- the schema: required keys, types, fractions in [0, 1], bounded strings and arrays, links that
  are relative paths or http(s) URLs, no unknown keys (a misspelt key is an error, not ignored);
  an integer is a JSON integer (``2``, not ``2.0``), and a ``pattern`` must match the whole
  string (ECMA-262's ``$``, which Python's ``re`` reads as "or before a final newline");
- the invariants (``TOLERANCE`` for float rounding): each summary's ``n``, ``mean``, ``std`` and
  ``ci95`` agree with its ``values``; the worst case is over exactly the entry's attacks and, on the
  same seeds and the same test inputs, at most each attack's value (its ``exact`` agreeing with
  its ``kind``); ``unreliable``, ``unreliable_because`` and ``flag_meanings`` agree with ``flags``;
  the checkpoint is one of those stored; an attack's ``params_filled`` are keys of its ``params``.

Both entry versions are read: 2 (each attack's ``norm``, ``params`` in full, ``params_complete``
and ``params_filled`` required) and 1 (parameters as the suite gave them; the board marks such
entries as lacking parameters).

A bad entry is one ``EntryError`` line: the file, the key as a JSON pointer, what is wrong and what
is allowed. Robust accuracy above clean accuracy is *not* refused: the harness counts an
adversarial input as robust when the model classifies it correctly, whether or not it did the
clean one, so an attack can turn a mistake into a hit (FGSM's "label leaking", Kurakin et al.
2017); the definitions do not imply robust <= clean.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchbench.errors import one_line
from benchbench.leaderboard import ENTRY_SCHEMA, SCHEMA_VERSION
from benchbench.leaderboard.entry_json import MAX_DEPTH, HugeInt, parse_entry
from benchbench.leaderboard.entry_schema import (
    EntryError,
    describe,
    pointer,
    schema_error,
    show,
    validator,
)
from benchbench.leaderboard.runs import LeaderboardError

MAX_BYTES = 1_000_000
#: float rounding allowed between a summary's numbers and those its values give: a mean of up to
#: 1,000 fractions is off by at most ~1e-13; hand-written entries may round to 9 decimals
TOLERANCE = 1e-9
INT64 = (-(2 ** 63), 2 ** 63 - 1)


def load_entry(path: Path) -> dict:
    """The entry in ``path``, read and checked (``EntryError`` names what is wrong)."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        raise LeaderboardError(f"{path}: not a regular file (a symbolic link, a folder or a "
                               "device); an entry is a plain *.json file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise LeaderboardError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_BYTES:
        raise LeaderboardError(f"{path}: more than {MAX_BYTES:,} bytes; an entry file is at most "
                               f"{MAX_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LeaderboardError(f"{path}: not UTF-8 (byte {exc.start}); an entry file is UTF-8 "
                               "JSON") from None
    return check_entry(parse_entry(text, path), where=path)


def _position(entry, path) -> tuple[int, ...]:
    """Where ``path`` is in the file: each step's index among its siblings."""
    out, node = [], entry
    for key in path:
        out.append(list(node).index(key) if isinstance(node, dict) else key)
        node = node[key]
    return tuple(out)


# checks ----------------------------------------------------------------------------------------
def _walk(where, entry) -> None:
    """Every number finite and integers within 64 bits, no key twice, at most MAX_DEPTH deep."""
    stack = [(entry, (), 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise EntryError(where, pointer(path), f"nested more than {MAX_DEPTH} deep",
                             f"at most {MAX_DEPTH} levels")
        if isinstance(value, dict):
            if getattr(value, "duplicate", None) is not None:
                raise EntryError(where, pointer((*path, value.duplicate)), "given twice in one "
                                 "object (JSON readers disagree on which one counts)",
                                 "each key once")
            stack += [(v, (*path, k), depth + 1) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            stack += [(v, (*path, i), depth + 1) for i, v in reversed(list(enumerate(value)))]
        elif isinstance(value, HugeInt) or (isinstance(value, int) and not isinstance(value, bool)
                                          and not INT64[0] <= value <= INT64[1]):
            raise EntryError(where, pointer(path), f"{show(value)} is too large for a 64-bit "
                             "integer", describe(path) or "integers within 64 bits")
        elif isinstance(value, float) and not math.isfinite(value):
            raise EntryError(where, pointer(path), f"{show(value)} is not a finite number",
                             describe(path) or "finite numbers only (no NaN or Infinity)")


def _summary(where, path: tuple, s: dict, seeds: int) -> None:
    values, n, mean = s["values"], s["n"], s["mean"]
    if n != len(values):
        raise EntryError(where, pointer((*path, "n")), f"{n} is not the number of values "
                         f"({len(values)})", "len(values)")
    if n > seeds:
        raise EntryError(where, pointer((*path, "n")), f"{n} values for {seeds} seed"
                         f"{'s' if seeds > 1 else ''}", "at most one value per seed")
    want = sum(values) / n
    if abs(mean - want) > TOLERANCE:
        raise EntryError(where, pointer((*path, "mean")), f"{mean!r} is not the mean of values "
                         f"({want!r})", f"the mean of values (within {TOLERANCE:g})")
    std, ci = s["std"], s["ci95"]
    if n == 1:
        for key in ("std", "ci95"):
            if s[key] is not None:
                raise EntryError(where, pointer((*path, key)), f"{show(s[key])} for one value",
                                 "null for one seed")
        return
    for key in ("std", "ci95"):
        if s[key] is None:
            raise EntryError(where, pointer((*path, key)), f"null for {n} values",
                             describe((*path, key)))
    sd = math.sqrt(sum((v - want) ** 2 for v in values) / (n - 1))
    if abs(std - sd) > TOLERANCE:
        raise EntryError(where, pointer((*path, "std")), f"{std!r} is not the sample standard "
                         f"deviation of values ({sd!r})", f"that deviation (within "
                         f"{TOLERANCE:g})")
    low, high = ci
    if low > mean + TOLERANCE or high < mean - TOLERANCE:
        raise EntryError(where, pointer((*path, "ci95")), f"[{low!r}, {high!r}] does not hold "
                         f"the mean {mean!r}", "[low, high] with low <= mean <= high (a "
                         "non-negative half-width)")


def _worst(where, entry: dict) -> None:
    worst, robust = entry["worst_case"], entry["robust_accuracy"]
    kind, attacks = worst["kind"], worst["attacks"]
    if set(attacks) != set(robust):
        raise EntryError(where, "/worst_case/attacks", f"{', '.join(map(show, attacks))} are "
                         f"not the attacks of robust_accuracy ({', '.join(map(show, robust))})",
                         "exactly the labels of robust_accuracy")
    if worst["exact"] != (kind != "upper_bound"):
        raise EntryError(where, "/worst_case/exact", f"{json.dumps(worst['exact'])} for kind "
                         f"{kind!r}", "false for an upper bound, true otherwise")
    if kind == "single_attack" and len(attacks) != 1:
        raise EntryError(where, "/worst_case/kind", f"'single_attack' over {len(attacks)} "
                         "attacks", "single_attack for exactly one attack")
    inf = float("inf")
    fewest = min((inf if robust[a].get("rows") is None else robust[a]["rows"]) for a in attacks)
    for label in attacks:
        a = robust[label]
        rows = inf if a.get("rows") is None else a["rows"]
        if kind == "single_attack" and a["n"] != worst["n"]:
            raise EntryError(where, "/worst_case/n", f"{worst['n']} values, {label!r} has "
                             f"{a['n']}", "single_attack: the one attack's values")
        if a["n"] != worst["n"] or (kind == "per_example" and rows != fewest):
            continue  # other seeds or other test inputs: the definitions imply nothing
        for i, (w, v) in enumerate(zip(worst["values"], a["values"], strict=True)):
            if w > v + TOLERANCE or (kind == "single_attack" and w < v - TOLERANCE):
                relation = "is not" if kind == "single_attack" else "is above"
                raise EntryError(where, f"/worst_case/values/{i}", f"{w!r} {relation} the "
                                 f"value of attack {label!r} on the same seed ({v!r})", (
                                     "single_attack: the one attack's values"
                                     if kind == "single_attack" else
                                     "at most each attack's value on the same seeds and test "
                                     "inputs (the worst case over the attacks)"))


def _flags(where, entry: dict) -> None:
    from benchbench.leaderboard.entries import INFORMATIVE

    flags = entry["flags"]
    if len(set(flags)) != len(flags):
        raise EntryError(where, "/flags", f"{flags!r} repeats a letter", "each letter once")
    because = "".join(sorted(set(flags) - INFORMATIVE))
    if entry["unreliable"] != bool(because):
        raise EntryError(where, "/unreliable", f"{json.dumps(entry['unreliable'])} with flags "
                         f"{flags!r}", "true exactly when flags has a letter other than "
                         f"{', '.join(sorted(INFORMATIVE))}")
    if entry.get("unreliable_because", because) != because:
        raise EntryError(where, "/unreliable_because", f"{entry['unreliable_because']!r} with "
                         f"flags {flags!r}", f"{because!r}: the letters of flags other than "
                         f"{', '.join(sorted(INFORMATIVE))}, sorted")
    if set(entry["flag_meanings"]) != set(flags):
        raise EntryError(where, "/flag_meanings", "keys " + (", ".join(
            sorted(entry["flag_meanings"])) or "none") + f" with flags {flags!r}",
            "one meaning for each letter of flags")


def _params(where, entry: dict) -> None:
    """Each attack's ``params_filled`` names keys of its ``params``."""
    for label, attack in entry["robust_accuracy"].items():
        missing = [k for k in attack.get("params_filled", []) if k not in attack.get("params", {})]
        if missing:
            raise EntryError(where, pointer(("robust_accuracy", label, "params_filled")),
                             f"{show(missing[0])} is not a key of params",
                             "keys of params (those taken from the installed attack's defaults)")


def _checkpoint(where, entry: dict) -> None:
    point = entry["checkpoint"]
    stored = point.get("stored")
    if not stored:
        return
    if point["epoch"] not in stored:
        raise EntryError(where, "/checkpoint/epoch", f"{point['epoch']} is not in "
                         "checkpoint.stored", "one of the stored checkpoints")
    if point["rule"] == "last" and point["epoch"] != max(stored):
        raise EntryError(where, "/checkpoint/epoch", f"{point['epoch']} for rule 'last'",
                         f"the last stored checkpoint, {max(stored)}")


def check_entry(entry, *, where: object) -> dict:
    """``entry`` when it is a valid leaderboard entry; else ``EntryError`` (or, for something
    that is no entry at all, ``LeaderboardError``) naming ``where`` and the key."""
    if not isinstance(entry, dict):
        raise LeaderboardError(f"{where}: not a leaderboard entry (a JSON object is expected)")
    if entry.get("schema") != ENTRY_SCHEMA:
        raise LeaderboardError(one_line(
            f"{where}: schema {show(entry.get('schema'))} is not {ENTRY_SCHEMA!r}; move files "
            "other than entries out of the entries folder"))
    version = entry.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise LeaderboardError(f"{where}: schema_version {show(version)}; this benchbench reads "
                               f"up to {SCHEMA_VERSION} (upgrade benchbench, or rebuild the "
                               "entry)")
    _walk(where, entry)
    errors = list(validator().iter_errors(entry))
    if errors:  # the shallowest first (jsonschema's best_match), then the first in the file
        raise schema_error(where, min(errors, key=lambda e: (
            len(e.absolute_path), _position(entry, e.absolute_path))))
    seeds = len(entry["seeds"])
    if entry["clean_accuracy"] is not None:
        _summary(where, ("clean_accuracy",), entry["clean_accuracy"], seeds)
    for label, summary in entry["robust_accuracy"].items():
        _summary(where, ("robust_accuracy", label), summary, seeds)
    _summary(where, ("worst_case",), entry["worst_case"], seeds)
    certified = entry.get("certified")  # since verifiers ran in suites; optional
    if certified is not None:
        _summary(where, ("certified",), certified, seeds)
        if certified.get("gap") is not None:
            _summary(where, ("certified", "gap"), certified["gap"], seeds)
    _worst(where, entry)
    _flags(where, entry)
    _params(where, entry)
    _checkpoint(where, entry)
    return entry
