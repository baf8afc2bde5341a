"""The SQLite results store: one row per cell x checkpoint x split x attack x eps x metric.

A cell's results are written in one transaction when the cell finishes, so a store never holds
half a cell: an interrupted run resumes at the first cell the store does not hold.

Every open checks the file first (``inspect_store``: SQLite header, ``PRAGMA quick_check``, a
``meta`` table with a schema version, every number obeying its invariants:
``benchbench.store.invariants``), so a damaged, edited or foreign file is refused with one line
(``StoreDamagedError``) and never written to. The store, or a file SQLite keeps beside it, as a
symbolic link is refused, never followed (``SymlinkError``); a write that fails for want of
space raises ``DiskFullError``, anything else SQLite cannot write ``RunDirError``.

Schema versions: 1 (the first), 2 (runs carry
``host``, ``pid`` and ``pid_started``, so a run killed with ``kill -9`` can be told from one still
going), 3 (the ``examples`` table: which examples stayed correct, and ``worst_<norm>`` rows derived
from them; ``benchbench.store.examples``), 4 (the ``verdicts`` table: verifiers' verdicts per
example, and the ``certified_<norm>`` and ``exact_<norm>`` rows derived from them;
``benchbench.store.verdicts``). An older store is migrated when ``run`` opens it (version 2 to
3: worst rows only where exact without bits; 3 to 4: the empty ``verdicts`` table); ``report``
and ``export`` read every version, deriving those same rows on the fly from a store they may
not write.
"""

from __future__ import annotations

import functools
import json
import socket
import sqlite3
from pathlib import Path
from urllib.parse import quote

from benchbench.engine.files import disk_full, full_error, refuse_links
from benchbench.errors import RunDirError
from benchbench.store import examples, verdicts
from benchbench.store.invariants import store_problem
from benchbench.store.processes import process_identity, run_is_stale

SCHEMA_VERSION = 4
#: how long a connection waits for another's transaction (a run storing a unit, a report
#: reading its snapshot) before it gives up
BUSY_TIMEOUT_S = 60.0
SQLITE_HEADER = b"SQLite format 3\x00"
#: the files SQLite keeps beside a store: none may be a symbolic link (SQLite would follow it)
SIDE_FILES = ("-journal", "-wal", "-shm")
DAMAGE_FIX = "move it aside, or rerun the suite with --force to archive it and start over"
TIDY_COLUMNS = ("model", "regime", "dataset", "seed", "epoch", "split", "attack", "eps",
                "metric", "value")
PROVENANCE_COLUMNS = ("cell_id", "dtype", "device", "engine", "suite_hash", "benchbench_version",
                      "torch_version", "plugins", "finished")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT,
    wall_s REAL, command TEXT, device TEXT, machine TEXT, benchbench_version TEXT,
    torch_version TEXT, python_version TEXT, commit_sha TEXT, status TEXT NOT NULL,
    host TEXT, pid INTEGER, pid_started TEXT);
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY, run_id INTEGER, status TEXT NOT NULL, spec TEXT NOT NULL,
    model TEXT, regime TEXT, dataset TEXT, seed INTEGER, dtype TEXT, device TEXT,
    started TEXT, finished TEXT, wall_s REAL, engine TEXT, suite_hash TEXT,
    benchbench_version TEXT,
    torch_version TEXT, plugins TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS results (
    cell_id TEXT NOT NULL REFERENCES cells(cell_id), epoch INTEGER NOT NULL,
    split TEXT NOT NULL, attack TEXT NOT NULL, eps REAL NOT NULL, metric TEXT NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (cell_id, epoch, split, attack, eps, metric));
CREATE VIEW IF NOT EXISTS tidy AS
    SELECT c.model, c.regime, c.dataset, c.seed, r.epoch, r.split, r.attack, r.eps, r.metric,
           r.value, c.cell_id, c.dtype, c.device, c.engine, c.suite_hash, c.benchbench_version,
           c.torch_version, c.plugins, c.finished
    FROM results r JOIN cells c USING (cell_id) WHERE c.status = 'ok';
""" + examples.SCHEMA + verdicts.SCHEMA


RUN_PROCESS_COLUMNS = {"host": "TEXT", "pid": "INTEGER", "pid_started": "TEXT"}  # since v2


class StoreDamagedError(RunDirError):
    """A results.sqlite that is not a readable benchbench store (truncated, garbage, empty)."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path, self.problem = Path(path), problem
        super().__init__(f"{path}: damaged results store ({problem}); {DAMAGE_FIX}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "no details"


def refuse_store_links(path: Path) -> None:
    """``SymlinkError`` if the store or a file SQLite keeps beside it is a symbolic link:
    SQLite would read and write through it, outside the run directory."""
    path = Path(path)
    for name in (path.name, *(path.name + side for side in SIDE_FILES)):
        refuse_links(path.with_name(name))


def _ro_uri(path: Path) -> str:
    return f"file:{quote(str(Path(path).absolute()))}?mode=ro"


def _roll_back_interrupted_write(path: Path) -> None:
    """A process killed inside a transaction leaves ``results.sqlite-journal`` (a "hot"
    journal), which a read-only connection cannot replay. Open the file for writing once, as
    any SQLite client does, so SQLite rolls the unfinished transaction back: the store is
    then exactly what was committed. Not damage; nothing committed is lost."""
    journal = path.with_name(path.name + "-journal")
    if not (journal.is_file() and journal.stat().st_size > 0):
        return
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        raise RunDirError(f"{path}: a process killed while writing left {journal.name}, and "
                          f"SQLite cannot roll it back ({_one_line(exc)}); make the directory "
                          "writable and try again") from None
    except sqlite3.DatabaseError as exc:
        raise StoreDamagedError(path, _one_line(exc)) from None


def inspect_store(path: Path) -> dict[str, str]:
    """The ``meta`` of the store at ``path``, read-only, or ``StoreDamagedError`` saying what is
    wrong: not a file, 0 bytes (always damage: benchbench writes its schema on creation), no
    SQLite header, ``PRAGMA quick_check`` failing, or no benchbench ``meta``. Writes nothing,
    except that SQLite rolls back a write a killed process left unfinished."""
    path = Path(path)
    refuse_store_links(path)
    if not path.is_file():
        raise StoreDamagedError(path, "not a regular file")
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if not header:
        raise StoreDamagedError(path, "empty file, 0 bytes")
    if header != SQLITE_HEADER:
        raise StoreDamagedError(path, "no SQLite header: not a database, or its first page "
                                      "is overwritten")
    _roll_back_interrupted_write(path)
    try:
        conn = sqlite3.connect(_ro_uri(path), uri=True, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise StoreDamagedError(path, f"cannot open: {_one_line(exc)}") from None
    try:
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            first = _one_line(problems[0].replace("*** in database main ***", ""))
            raise StoreDamagedError(path, f"integrity check: {first}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if not {"meta", "runs", "cells", "results"} <= tables:
            raise StoreDamagedError(path, "not a benchbench results store: tables missing")
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        broken = store_problem(conn)
        if broken:
            raise StoreDamagedError(path, f"a stored number breaks its invariant: {broken}; "
                                          "edited, or not written by benchbench")
    except sqlite3.DatabaseError as exc:
        raise StoreDamagedError(path, _one_line(exc)) from None
    finally:
        conn.close()
    if not str(meta.get("schema_version", "")).isdigit():
        raise StoreDamagedError(path, "not a benchbench results store: no schema version")
    if int(meta["schema_version"]) > SCHEMA_VERSION:
        raise RunDirError(f"{path}: results schema version {meta['schema_version']}, written by "
                          f"a newer benchbench (this one reads up to {SCHEMA_VERSION}); upgrade "
                          "benchbench or use another --out directory")
    return meta


def _reads(method):
    """A read that meets damage ``inspect_store`` missed says so on one line."""
    @functools.wraps(method)
    def read(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.IntegrityError):
                raise
            raise StoreDamagedError(self.path, _one_line(exc)) from None
    return read


def _writes(method):
    """A write that fails says so on one line: a full disk as ``DiskFullError`` (the run
    stops; nothing is recorded as a cell's failure), anything else SQLite cannot write (a
    read-only file, a lock held too long) as ``RunDirError``."""
    @functools.wraps(method)
    def write(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.OperationalError as exc:
            raise write_error(self.path, exc) from None
    return write


def write_error(path: Path, exc: sqlite3.Error) -> RunDirError:
    if disk_full(exc):
        return full_error(path, exc)
    return RunDirError(f"{path}: cannot write the results store ({_one_line(exc)}); check the "
                       "directory's permissions and free space, and that no other program "
                       "holds the file")


class ResultsStore:
    """A results database file; use ``open_store`` (writing) or ``read_store`` (reading)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path, self.conn = path, conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # meta -------------------------------------------------------------------------------
    @_reads
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    @_writes
    def set_meta(self, **values: str) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                  [(k, str(v)) for k, v in values.items()])

    # runs -------------------------------------------------------------------------------
    @_writes
    def begin_run(self, **info: str) -> int:
        """Record a run as "running", with this process's host, pid and start time."""
        info = {**process_identity(), **info}
        cols = ", ".join(info)
        with self.conn:
            cur = self.conn.execute(
                f"INSERT INTO runs ({cols}, status) VALUES ({', '.join('?' * len(info))}, ?)",
                (*info.values(), "running"))
        return int(cur.lastrowid)

    @_writes
    def finish_run(self, run_id: int, *, finished: str, wall_s: float, status: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished = ?, wall_s = ?, status = ? "
                              "WHERE run_id = ?", (finished, wall_s, status, run_id))

    @_writes
    def mark_interrupted(self) -> list[int]:
        """Mark runs left "running" by a process that is gone as "interrupted"; their ids.

        Rows from a version-1 store (no pid) are marked too: only ``run`` calls this, before
        it records its own run. A run on another host, or still alive here, is left alone."""
        host = socket.gethostname()
        stale = [r["run_id"] for r in self.runs() if r["status"] == "running"
                 and (r.get("pid") is None or run_is_stale(r, host))]
        with self.conn:
            self.conn.executemany("UPDATE runs SET status = 'interrupted' WHERE run_id = ?",
                                  [(run_id,) for run_id in stale])
        return stale

    @_reads
    def runs(self) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY run_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # cells ------------------------------------------------------------------------------
    @_reads
    def done_cells(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def add_cell(self, *, cell_id: str, records, **info) -> None:
        """Store a finished (or failed, with ``error``) cell and its records atomically."""
        self.add_cells([{"cell_id": cell_id, "records": records, **info}])

    @_writes
    def add_cells(self, cells: list[dict]) -> None:
        """Store several cells (``add_cell``'s keywords each) in one transaction: the cells of
        a stack are stored together or not at all. Records carrying per-example correctness
        go to ``examples``, with the worst-case rows they give (``benchbench.store.examples``)."""
        norms = examples.attack_norms(self.conn)
        caps = verdicts.verifier_caps(self.conn)
        with self.conn:
            for cell in cells:
                numbers, bits = examples.split_records(cell["records"])
                found = [r for r in numbers if r.metric == verdicts.VERDICTS]
                numbers = [r for r in numbers if r.metric != verdicts.VERDICTS]
                info = {k: v for k, v in cell.items() if k != "records"}
                if "plugins" in info:
                    info["plugins"] = json.dumps(info["plugins"], sort_keys=True)
                cols = ", ".join(info)
                self.conn.execute("DELETE FROM results WHERE cell_id = ?", (info["cell_id"],))
                self.conn.execute(f"INSERT OR REPLACE INTO cells ({cols}) VALUES "
                                  f"({', '.join('?' * len(info))})", tuple(info.values()))
                self.conn.executemany(
                    "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(info["cell_id"], r.epoch, r.split, r.attack, float(r.eps), r.metric,
                      float(r.value)) for r in numbers])
                examples.store_cell(self.conn, info["cell_id"], bits, norms)
                verdicts.store_cell(self.conn, info["cell_id"], found, norms, caps)

    @_reads
    def cells(self) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM cells ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    @_reads
    def count_results(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    @_reads
    def tidy(self):
        """Every stored number with its cell's provenance, as a pandas DataFrame."""
        import pandas as pd

        order = ["model", "regime", "dataset", "seed", "epoch", "split", "attack", "eps",
                 "metric"]
        try:
            frame = pd.read_sql_query(
                f"SELECT {', '.join(TIDY_COLUMNS + PROVENANCE_COLUMNS)} FROM tidy ORDER BY "
                f"{', '.join(order)}", self.conn)
        except pd.errors.DatabaseError as exc:  # pandas wraps sqlite3's errors in its own
            raise StoreDamagedError(self.path, _one_line(exc.__cause__ or exc)) from None
        if int(self.meta().get("schema_version", SCHEMA_VERSION)) >= 3:
            return frame
        # older than version 3, opened read-only: the worst rows its migration would add
        rows = list(zip(*(frame[k] for k in ("cell_id", "epoch", "split", "attack", "eps",
                                             "metric")), strict=True))
        found = examples.exact_worst(rows, examples.attack_norms(self.conn))
        worst = frame.iloc[[i for i, _ in found]].copy()
        worst["attack"] = [name for _, name in found]
        return pd.concat([frame, worst]).sort_values(order, kind="stable").reset_index(drop=True)


def _migrate(conn: sqlite3.Connection, found: int) -> None:
    """Bring a store of schema ``found`` up to ``SCHEMA_VERSION``, in one transaction."""
    with conn:
        if found < 2:
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            for name, kind in RUN_PROCESS_COLUMNS.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        if found < 3:
            examples.migrate_to_v3(conn)
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
                     (str(SCHEMA_VERSION),))


def open_store(path: Path) -> ResultsStore:
    """Open (creating if needed) the store at ``path`` for writing. An existing file is checked
    first (``inspect_store``) and migrated to ``SCHEMA_VERSION``; a damaged one is refused
    untouched."""
    path = Path(path)
    refuse_store_links(path)
    found = int(inspect_store(path)["schema_version"]) if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_store_links(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    try:
        conn.executescript(_SCHEMA)
        if found is None or found < SCHEMA_VERSION:
            _migrate(conn, found or SCHEMA_VERSION)
    except sqlite3.OperationalError as exc:  # locked, read-only, disk full: not damage
        conn.close()
        raise write_error(path, exc) from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreDamagedError(path, _one_line(exc)) from None
    return ResultsStore(path, conn)


def read_store(run_dir: Path) -> ResultsStore:
    """Open ``run_dir/results.sqlite`` read-only (checked first), or say what is wrong. Every
    read through it sees one snapshot (a read transaction held until ``close``), so ``report``
    and ``export`` on a directory a run is writing see whole units, never half of one."""
    path = Path(run_dir) / "results.sqlite"
    refuse_store_links(path)
    if not path.exists():
        raise RunDirError(f"{run_dir}: no results.sqlite here; pass the directory a "
                          "'benchbench run' wrote (default runs/<suite name>/)")
    inspect_store(path)
    conn = sqlite3.connect(_ro_uri(path), uri=True, timeout=BUSY_TIMEOUT_S)
    try:  # one read transaction for the store's life: a consistent snapshot while a run
        conn.execute("BEGIN")  # writes (its next unit waits for this reader to close)
        conn.execute("SELECT COUNT(*) FROM meta").fetchone()
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreDamagedError(path, _one_line(exc)) from None
    return ResultsStore(path, conn)
