"""Verdicts per example, and what they give: certified, exact and the soundness check.

Every measurement says, per example, one of three things (``benchbench.verify``): robust
(proved), not robust (a counterexample, checked by a forward pass) or unknown. An attack's
verdicts are its per-example bits (``benchbench.store.examples``): an example it left
misclassified is not robust, any other unknown. A verifier's travel in a ``Record`` of metric
``VERDICTS`` whose value is the text ``"<n>:<base64 robust bits>:<base64 not-robust bits>"``
(``numpy.packbits``, big-endian, like the examples' bits) and are stored in the ``verdicts``
table (schema version 4), one row per cell x checkpoint x split x verifier x eps.

Derived per checkpoint, split, norm and eps, stored as ordinary result rows:

* ``certified_<norm>`` (``accuracy``): the fraction of examples some verifier of that norm
  proved robust there (the best verdict per example), over the first ``min(n)`` examples the
  verifiers saw: a lower bound on robust accuracy; and, where attacks of the norm were
  evaluated there too, ``gap_frac``: over the first examples both saw, the fraction that no
  attack broke and no verifier proved (the worst case minus certified over the same examples:
  how much of robust accuracy neither side pins down);
* ``exact_<norm>`` (where a complete verifier of the norm was evaluated): ``accuracy``, the
  fraction that neither an attack of the norm, nor a counterexample, nor the clean pass
  refuted, and ``unknown``, how many examples were neither proved nor refuted, over the first
  ``min(n)`` examples every verifier and attack of the norm there saw. With no unknowns it is
  the exact robust accuracy; otherwise an upper bound, ``unknown / n`` above the proved
  fraction of those examples.

So, per example and over the same examples, certified <= exact <= worst case over attacks,
and certified <= exact <= clean accuracy (the worst case may exceed the clean accuracy: an
attack's input can be classified correctly where the clean one is not).
An example proved robust at some eps and refuted at that eps or a smaller one of the same
norm (by an attack, by a complete verifier's counterexample, or by the clean pass at eps 0)
is a **soundness bug**: ``contradiction`` names both, the engine fails the cell with it, and
the store refuses to hold it (``SoundnessError``); it never becomes a number.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchbench.errors import BenchbenchError

#: the metric of a record that carries a verifier's verdicts per example, not a number
VERDICTS = "verdicts"
CERTIFIED, EXACT = "certified_", "exact_"
UNKNOWN = "unknown"  # the metric of a count of undecided examples
GAP = "gap_frac"  # certified_<norm>'s: worst case minus certified, over the same examples

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id), epoch INTEGER NOT NULL,
    split TEXT NOT NULL, method TEXT NOT NULL, eps REAL NOT NULL, n INTEGER NOT NULL,
    robust BLOB NOT NULL, not_robust BLOB NOT NULL,
    PRIMARY KEY (cell_id, epoch, split, method, eps));
"""


class SoundnessError(BenchbenchError):
    """An example proved robust and refuted: a verifier (or the check of an attack's
    counterexample) is wrong. Never stored as a number."""

    exit_code = 1


def is_verdict_row(attack: str) -> bool:
    """Whether ``attack`` names a row derived from verdicts (``certified_*``, ``exact_*``)."""
    return str(attack).startswith((CERTIFIED, EXACT))


def derived_norm(attack: str) -> str:
    """``certified_linf`` -> ``linf`` (and ``exact_l2`` -> ``l2``)."""
    for prefix in (CERTIFIED, EXACT):
        if str(attack).startswith(prefix):
            return attack[len(prefix):]
    raise ValueError(f"{attack!r} is not a row derived from verdicts")


# encoding ----------------------------------------------------------------------------------
def _pack(bits) -> bytes:
    import numpy as np

    return np.packbits(np.asarray(bits, dtype=bool)).tobytes()


def encode_codes(codes) -> str:
    """A record's value for int8 verdict codes ``codes`` [n] (1 robust, 0 unknown, -1 not)."""
    import numpy as np

    codes = np.asarray(codes.cpu() if hasattr(codes, "cpu") else codes).astype(np.int64)
    robust, broken = _pack(codes == 1), _pack(codes == -1)
    return (f"{len(codes)}:{base64.b64encode(robust).decode('ascii')}:"
            f"{base64.b64encode(broken).decode('ascii')}")


def decode_codes(value) -> tuple[int, bytes, bytes]:
    """``(n, robust, not_robust)`` packed bits from a record's value; ValueError if malformed
    (wrong lengths, an example both robust and not)."""
    parts = str(value).split(":")
    if len(parts) != 3 or not parts[0].isdigit():
        raise ValueError(f"not packed verdicts: {str(value)[:40]!r}")
    n = int(parts[0])
    robust, broken = (base64.b64decode(p.encode("ascii"), validate=True) for p in parts[1:])
    check_packed(n, robust, broken)
    return n, robust, broken


def check_packed(n: int, robust: bytes, broken: bytes) -> None:
    size = (n + 7) // 8
    if n <= 0 or len(robust) != size or len(broken) != size:
        raise ValueError(f"{n} examples pack into {size} bytes per verdict")
    if (int.from_bytes(robust, "big") & int.from_bytes(broken, "big")) or any(
            int.from_bytes(b, "big") & ((1 << (8 * size - n)) - 1) for b in (robust, broken)):
        raise ValueError("an example is both robust and not robust, or padding bits are set")


def codes_of(n: int, robust: bytes, broken: bytes):
    """The int8 codes as a numpy array (1, 0, -1)."""
    import numpy as np

    from benchbench.store.examples import unpack

    return unpack(n, robust).astype(np.int8) - unpack(n, broken).astype(np.int8)


# bit sets ------------------------------------------------------------------------------------
def _first(packed: bytes, n: int) -> int:
    """The first ``n`` bits of ``packed`` as one integer (bit ``n - 1 - i`` is example ``i``)."""
    return int.from_bytes(packed, "big") >> (8 * len(packed) - n)


def _example(bits: int, n: int) -> int:
    """The index of the first example whose bit is set in ``bits`` (of ``n``)."""
    return n - bits.bit_length()


@dataclass(frozen=True)
class Verdict:
    """One row of the ``verdicts`` table (the cell aside)."""

    epoch: int
    split: str
    method: str
    eps: float
    n: int
    robust: bytes
    not_robust: bytes

    @property
    def codes(self):
        return codes_of(self.n, self.robust, self.not_robust)

    @property
    def certified(self) -> float:
        return int.from_bytes(self.robust, "big").bit_count() / self.n

    @property
    def unknown(self) -> int:
        return self.n - (int.from_bytes(self.robust, "big").bit_count()
                         + int.from_bytes(self.not_robust, "big").bit_count())


def verdicts_of(records: Iterable) -> list[Verdict]:
    """The ``Verdict`` of each ``VERDICTS`` record among ``records``."""
    out = []
    for epoch, split, attack, eps, metric, value in records:
        if metric == VERDICTS:
            n, robust, broken = decode_codes(value)
            out.append(Verdict(int(epoch), split, attack, float(eps), n, robust, broken))
    return out


def bits_of(records: Iterable) -> list[tuple]:
    """``(epoch, split, attack, eps, n, packed)`` of each per-example-bits record."""
    from benchbench.store.examples import CORRECT, decode

    out = []
    for epoch, split, attack, eps, metric, value in records:
        if metric == CORRECT:
            n, packed = decode(value)
            out.append((int(epoch), split, attack, float(eps), n, packed))
    return out


def verifier_norm(caps: dict, label: str):
    entry = caps.get(label)
    return entry.get("norm") if isinstance(entry, dict) else None


def _refutations(epoch, split, norm, eps, bits, verdicts, norms, caps):
    """``(name, eps, n, bits)`` of everything refuting examples at ``eps`` or below in
    ``norm``: attacks (their misclassified examples), complete verifiers (their
    counterexamples) and, last, the clean pass (eps 0)."""
    out, clean = [], []
    for b_epoch, b_split, attack, b_eps, n, packed in bits:
        if b_epoch != epoch or b_split != split or b_eps > eps:
            continue
        if attack == "none" or norms.get(attack) == norm:
            found = clean if attack == "none" else out
            name = "the clean pass" if attack == "none" else f"attack {attack}"
            found.append((name, b_eps, n, ~_first(packed, n) & ((1 << n) - 1)))
    for v in verdicts:
        if (v.epoch == epoch and v.split == split and v.eps <= eps
                and verifier_norm(caps, v.method) == norm):
            out.append((f"verifier {v.method}", v.eps, v.n, _first(v.not_robust, v.n)))
    return out + clean


def contradiction(bits: Sequence[tuple], verdicts: Sequence[Verdict], norms: dict,
                  caps: dict) -> str | None:
    """The first example proved robust and refuted (see the module), said naming both, or
    None. ``bits``: ``(epoch, split, attack, eps, n, packed)`` rows; ``norms``: attack label ->
    norm; ``caps``: verifier label -> ``{"norm", "complete"}``."""
    for v in verdicts:
        proved = _first(v.robust, v.n)
        if not proved:
            continue
        norm = verifier_norm(caps, v.method)
        for name, eps, n, refuted in _refutations(v.epoch, v.split, norm, v.eps, bits,
                                                  verdicts, norms, caps):
            m = min(n, v.n)
            clash = (proved >> (v.n - m)) & (refuted >> (n - m))
            if clash:
                i = _example(clash, m)
                how = ("misclassifies it" if name == "the clean pass"
                       else f"refuted it at eps={eps:g}")
                return (f"soundness bug: verifier {v.method} proved {v.split} example {i} "
                        f"robust at eps={v.eps:g} ({norm}, epoch {v.epoch}), but {name} {how}; "
                        "a proof and a counterexample cannot both hold, so no number is kept")
    return None


def derived_rows(bits: Sequence[tuple], verdicts: Sequence[Verdict], norms: dict,
                 caps: dict) -> list[tuple]:
    """``(epoch, split, attack, eps, metric, value)`` rows ``certified_<norm>`` and
    ``exact_<norm>`` of one cell (see the module)."""
    groups: dict[tuple, list[Verdict]] = {}
    for v in verdicts:
        norm = verifier_norm(caps, v.method)
        if norm:
            groups.setdefault((v.epoch, v.split, norm, v.eps), []).append(v)
    out = []
    for (epoch, split, norm, eps), members in sorted(groups.items()):
        n = min(v.n for v in members)
        proved = 0
        for v in members:
            proved |= _first(v.robust, v.n) >> (v.n - n)
        out.append((epoch, split, f"{CERTIFIED}{norm}", eps, "accuracy", proved.bit_count() / n))
        out += _gap(epoch, split, norm, eps, n, members, bits, norms)
        if not any(bool((caps.get(v.method) or {}).get("complete")) for v in members):
            continue
        attacks = [(n_a, packed) for b_epoch, b_split, a, b_eps, n_a, packed in bits
                   if (b_epoch, b_split) == (epoch, split) and (
                       (a == "none" and b_eps == 0) or (b_eps == eps and norms.get(a) == norm))]
        m = min([n, *(n_a for n_a, _ in attacks)])
        full = (1 << m) - 1
        proved, refuted = 0, 0
        for v in members:
            proved |= _first(v.robust, v.n) >> (v.n - m)
            refuted |= _first(v.not_robust, v.n) >> (v.n - m)
        for n_a, packed in attacks:
            refuted |= ~(_first(packed, n_a) >> (n_a - m)) & full
        out.append((epoch, split, f"{EXACT}{norm}", eps, "accuracy",
                    (m - refuted.bit_count()) / m))
        out.append((epoch, split, f"{EXACT}{norm}", eps, UNKNOWN,
                    float(m - (proved | refuted).bit_count())))
    return out


def _gap(epoch, split, norm, eps, n, members, bits, norms) -> list[tuple]:
    """The ``certified_<norm>`` ``gap_frac`` row: over the first examples both the verifiers
    and the attacks of the norm saw, the fraction no attack broke and no verifier proved."""
    attacks = [(n_a, packed) for b_epoch, b_split, a, b_eps, n_a, packed in bits
               if (b_epoch, b_split, b_eps) == (epoch, split, eps) and a != "none"
               and norms.get(a) == norm]
    if not attacks:
        return []
    m = min([n, *(n_a for n_a, _ in attacks)])
    open_, proved = (1 << m) - 1, 0
    for n_a, packed in attacks:
        open_ &= _first(packed, n_a) >> (n_a - m)
    for v in members:
        proved |= _first(v.robust, v.n) >> (v.n - m)
    return [(epoch, split, f"{CERTIFIED}{norm}", eps, GAP, (open_ & ~proved).bit_count() / m)]


# the store -----------------------------------------------------------------------------------
def has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'verdicts'").fetchone() is not None


def verifier_caps(conn: sqlite3.Connection) -> dict[str, dict]:
    """The store's verifier label -> ``{"name", "norm", "complete", "sound"}``
    (``meta.verifier_capabilities``, written by ``run``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'verifier_capabilities'").fetchone()
    try:
        caps = json.loads(row[0]) if row else {}
    except (TypeError, ValueError):
        return {}
    return caps if isinstance(caps, dict) else {}


def cell_bits(conn: sqlite3.Connection, cell_id: str) -> list[tuple]:
    return [(e, s, a, float(x), n, bytes(p)) for e, s, a, x, n, p in conn.execute(
        "SELECT epoch, split, attack, eps, n, correct FROM examples WHERE cell_id = ?",
        (cell_id,))]


def cell_verdicts(conn: sqlite3.Connection, cell_id: str) -> list[Verdict]:
    return [Verdict(e, s, m, float(x), n, bytes(r), bytes(b)) for e, s, m, x, n, r, b in
            conn.execute("SELECT epoch, split, method, eps, n, robust, not_robust FROM verdicts "
                         "WHERE cell_id = ?", (cell_id,))]


def store_cell(conn: sqlite3.Connection, cell_id: str, records: list, norms: dict,
               caps: dict) -> None:
    """Inside the caller's transaction, after the cell's bits are stored: its verdicts into
    ``verdicts`` and the rows they give into ``results``; ``SoundnessError`` (the caller's
    transaction rolls back) if a proof meets a refutation."""
    conn.execute("DELETE FROM verdicts WHERE cell_id = ?", (cell_id,))
    found = verdicts_of(records)
    if not found:
        return
    conn.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     [(cell_id, v.epoch, v.split, v.method, v.eps, v.n, v.robust, v.not_robust)
                      for v in found])
    bits = cell_bits(conn, cell_id)
    problem = contradiction(bits, found, norms, caps)
    if problem:
        raise SoundnessError(f"cell {cell_id}: {problem}")
    conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(cell_id, *row) for row in derived_rows(bits, found, norms, caps)])


def read_verdicts(store, *, cell_id: str | None = None) -> list[tuple[str, Verdict]]:
    """``(cell_id, Verdict)`` of every finished cell (or of ``cell_id``); none in a store
    written before version 4."""
    if not has_table(store.conn):
        return []
    where, args = "c.status = 'ok'", ()
    if cell_id is not None:
        where, args = where + " AND v.cell_id = ?", (cell_id,)
    cur = store.conn.execute(
        "SELECT v.cell_id, v.epoch, v.split, v.method, v.eps, v.n, v.robust, v.not_robust "
        f"FROM verdicts v JOIN cells c USING (cell_id) WHERE {where} ORDER BY v.rowid", args)
    return [(row[0], Verdict(row[1], row[2], row[3], float(row[4]), row[5], bytes(row[6]),
                             bytes(row[7]))) for row in cur]
