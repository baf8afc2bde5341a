"""Which examples stayed correct, and the worst case over attacks derived from them.

For every cell x checkpoint x split x attack x eps it evaluates (clean too: attack ``none``,
eps 0), the engine keeps one bit per example of the split, in the split's order: set when the
model still classified that example correctly. Bits travel inside an ordinary ``Record`` (metric
``CORRECT``, value the text ``"<n>:<base64 of the packed bits>"``: plain data that pickles and
round-trips through JSON like every record, so executors and resume carry them unchanged) and
are stored in the ``examples`` table (schema version 3): ``n`` examples (the split's first ``n``:
an attack with ``rows`` sees only those), ``correct`` = ``numpy.packbits`` of them (big-endian
bit order, zero-padded to whole bytes; 10,000 examples take 1,250 bytes).

The worst case (AutoAttack's ensemble rule): at a checkpoint, split and eps, an example counts as
robust only if *every* attack of one norm evaluated there left it correct. Its accuracy is stored
as an ordinary result row: attack ``worst_<norm>`` (``benchbench.store.worst``), metric
``accuracy``. Which attacks take part: those of the norm evaluated at that checkpoint, split and
eps, so an eps only some attacks use, or a checkpoint where an ``at = "last"`` attack did not
run, takes the ensemble of the attacks that were there. Over the examples they all saw: the
first ``min(n)`` of the split. A store written before version 3 holds no bits: there a worst row
is derived only where it is exact, where a single attack of that norm was evaluated (its own
accuracy); elsewhere there is none.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from benchbench.store.worst import is_worst, worst_name

#: the metric of a record that carries per-example correctness, not a number
CORRECT = "correct"

SCHEMA = """
CREATE TABLE IF NOT EXISTS examples (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id), epoch INTEGER NOT NULL,
    split TEXT NOT NULL, attack TEXT NOT NULL, eps REAL NOT NULL, n INTEGER NOT NULL,
    correct BLOB NOT NULL, PRIMARY KEY (cell_id, epoch, split, attack, eps));
"""


def encode(n: int, packed: bytes) -> str:
    """A record's value for ``n`` examples whose packed bits are ``packed``."""
    if len(packed) != (n + 7) // 8:
        raise ValueError(f"{n} examples pack into {(n + 7) // 8} bytes, not {len(packed)}")
    return f"{n}:{base64.b64encode(packed).decode('ascii')}"


def decode(value: str) -> tuple[int, bytes]:
    """``(n, packed)`` from a record's value (``encode``'s text)."""
    n, _, text = str(value).partition(":")
    packed = base64.b64decode(text.encode("ascii"), validate=True)
    if not n.isdigit() or len(packed) != (int(n) + 7) // 8:
        raise ValueError(f"not packed correctness: {str(value)[:40]!r}")
    return int(n), packed


def unpack(n: int, packed: bytes):
    """The ``n`` bits as a numpy bool array."""
    import numpy as np

    return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=n).astype(bool)


def count(packed: bytes) -> int:
    """How many bits are set (padding bits are never set)."""
    return int.from_bytes(packed, "big").bit_count()


@dataclass(frozen=True)
class Examples:
    """One stored row of the ``examples`` table."""

    cell_id: str
    epoch: int
    split: str
    attack: str
    eps: float
    n: int
    packed: bytes

    @property
    def correct(self):
        """Per example of the split's first ``n``: still classified correctly (numpy bools)."""
        return unpack(self.n, self.packed)

    @property
    def accuracy(self) -> float:
        return count(self.packed) / self.n


def is_bits(record) -> bool:
    return record.metric == CORRECT


def split_records(records: Iterable) -> tuple[list, list]:
    """``(numbers, bits)``: ordinary records, and those carrying correctness."""
    numbers, bits = [], []
    for r in records:
        (bits if is_bits(r) else numbers).append(r)
    return numbers, bits


def worst_rows(rows: Sequence[tuple], norms: dict[str, str | None]) -> list[tuple]:
    """The worst-case rows ``(epoch, split, worst_<norm>, eps, "accuracy", value)`` of one
    cell, from its bits ``rows`` of ``(epoch, split, attack, eps, n, packed)``; ``norms`` maps
    attack labels to their norms (attacks without one, and clean rows, take no part)."""
    groups: dict[tuple, list[tuple[int, bytes]]] = {}
    for epoch, split, attack, eps, n, packed in rows:
        norm = norms.get(attack)
        if attack == "none" or not norm or is_worst(attack):
            continue
        groups.setdefault((epoch, split, norm, float(eps)), []).append((int(n), packed))
    out = []
    for (epoch, split, norm, eps), members in sorted(groups.items()):
        n = min(m for m, _ in members)
        robust = (1 << n) - 1  # the first n bits of each, as one big-endian integer
        for _, packed in members:
            robust &= int.from_bytes(packed, "big") >> (8 * len(packed) - n)
        out.append((epoch, split, worst_name(norm), eps, "accuracy",
                    robust.bit_count() / n if n else 0.0))
    return out


def exact_worst(rows: Sequence[tuple], norms: dict[str, str | None]) -> list[tuple[int, str]]:
    """Without bits: which of ``rows`` (``(cell_id, epoch, split, attack, eps, metric)``, any
    extra fields ignored) is the only attack of its norm at its cell, checkpoint, split and eps,
    as ``(index in rows, worst_<norm>)``: there the worst case is that attack's accuracy."""
    groups: dict[tuple, list[int]] = {}
    for i, (cell_id, epoch, split, attack, eps, metric, *_) in enumerate(rows):
        norm = norms.get(attack)
        if metric != "accuracy" or attack == "none" or not norm or is_worst(attack):
            continue
        groups.setdefault((cell_id, epoch, split, norm, float(eps)), []).append(i)
    return [(found[0], worst_name(key[3])) for key, found in groups.items() if len(found) == 1]


def attack_norms(conn: sqlite3.Connection) -> dict[str, str | None]:
    """The store's attack label -> norm (``meta.attack_norms``, written by ``run``)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'attack_norms'").fetchone()
    try:
        norms = json.loads(row[0]) if row else {}
    except (TypeError, ValueError):
        return {}
    return norms if isinstance(norms, dict) else {}


def store_cell(conn: sqlite3.Connection, cell_id: str, bits: list,
               norms: dict[str, str | None]) -> None:
    """Inside the caller's transaction: a cell's bits into ``examples``, and the worst-case
    rows they give into ``results`` (after the cell's own rows are in)."""
    conn.execute("DELETE FROM examples WHERE cell_id = ?", (cell_id,))
    rows = []
    for r in bits:
        n, packed = decode(r.value)
        rows.append((int(r.epoch), r.split, r.attack, float(r.eps), n, packed))
    conn.executemany("INSERT INTO examples VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(cell_id, *row) for row in rows])
    conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(cell_id, *row) for row in worst_rows(rows, norms)])


def has_table(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                        "name = 'examples'").fetchone() is not None


def migrate_to_v3(conn: sqlite3.Connection) -> None:
    """Inside the caller's transaction: a store written before version 3 gets the worst rows
    that are exact without bits (``exact_worst``) for its finished cells."""
    rows = conn.execute(
        "SELECT r.cell_id, r.epoch, r.split, r.attack, r.eps, r.metric, r.value FROM results r "
        "JOIN cells c USING (cell_id) WHERE c.status = 'ok' ORDER BY r.rowid").fetchall()
    found = exact_worst(rows, attack_norms(conn))
    conn.executemany("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                     [(rows[i][0], rows[i][1], rows[i][2], name, rows[i][4], "accuracy",
                       rows[i][6]) for i, name in found])


def read_examples(store, *, cell_id: str | None = None) -> list[Examples]:
    """The stored bits of every finished cell (or of ``cell_id``); none in a store written
    before version 3."""
    if not has_table(store.conn):
        return []
    where, args = "c.status = 'ok'", ()
    if cell_id is not None:
        where, args = where + " AND e.cell_id = ?", (cell_id,)
    cur = store.conn.execute(
        "SELECT e.cell_id, e.epoch, e.split, e.attack, e.eps, e.n, e.correct FROM examples e "
        f"JOIN cells c USING (cell_id) WHERE {where} ORDER BY e.rowid", args)
    return [Examples(*row[:6], bytes(row[6])) for row in cur]
