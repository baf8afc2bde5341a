"""The SQLite results store: one row per cell x checkpoint x split x attack x eps x metric.

A cell's results are written in one transaction when the cell finishes, so a store never holds
half a cell: an interrupted run resumes at the first cell the store does not hold.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from benchbench.errors import RunDirError

SCHEMA_VERSION = 1
TIDY_COLUMNS = ("model", "regime", "dataset", "seed", "epoch", "split", "attack", "eps",
                "metric", "value")
PROVENANCE_COLUMNS = ("cell_id", "dtype", "device", "engine", "suite_hash", "benchbench_version",
                      "torch_version", "plugins", "finished")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, finished TEXT,
    wall_s REAL, command TEXT, device TEXT, machine TEXT, benchbench_version TEXT,
    torch_version TEXT, python_version TEXT, commit_sha TEXT, status TEXT NOT NULL);
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
"""


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
    def meta(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT key, value FROM meta"))

    def set_meta(self, **values: str) -> None:
        with self.conn:
            self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                  [(k, str(v)) for k, v in values.items()])

    # runs -------------------------------------------------------------------------------
    def begin_run(self, **info: str) -> int:
        cols = ", ".join(info)
        with self.conn:
            cur = self.conn.execute(
                f"INSERT INTO runs ({cols}, status) VALUES ({', '.join('?' * len(info))}, ?)",
                (*info.values(), "running"))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, *, finished: str, wall_s: float, status: str) -> None:
        with self.conn:
            self.conn.execute("UPDATE runs SET finished = ?, wall_s = ?, status = ? "
                              "WHERE run_id = ?", (finished, wall_s, status, run_id))

    def runs(self) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY run_id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    # cells ------------------------------------------------------------------------------
    def done_cells(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def add_cell(self, *, cell_id: str, records, **info) -> None:
        """Store a finished (or failed, with ``error``) cell and its records atomically."""
        self.add_cells([{"cell_id": cell_id, "records": records, **info}])

    def add_cells(self, cells: list[dict]) -> None:
        """Store several cells (``add_cell``'s keywords each) in one transaction: the cells of
        a stack are stored together or not at all."""
        with self.conn:
            for cell in cells:
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
                      float(r.value)) for r in cell["records"]])

    def cells(self) -> list[dict]:
        cur = self.conn.execute("SELECT * FROM cells ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def count_results(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def tidy(self):
        """Every stored number with its cell's provenance, as a pandas DataFrame."""
        import pandas as pd

        return pd.read_sql_query(
            f"SELECT {', '.join(TIDY_COLUMNS + PROVENANCE_COLUMNS)} FROM tidy "
            "ORDER BY model, regime, dataset, seed, epoch, split, attack, eps, metric", self.conn)


def open_store(path: Path) -> ResultsStore:
    """Open (creating if needed) the store at ``path`` for writing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    store = ResultsStore(path, conn)
    found = store.meta().get("schema_version")
    if found is None:
        store.set_meta(schema_version=str(SCHEMA_VERSION))
    elif int(found) != SCHEMA_VERSION:
        raise RunDirError(f"{path}: results schema version {found}, this benchbench reads "
                          f"{SCHEMA_VERSION}; use another --out directory")
    return store


def read_store(run_dir: Path) -> ResultsStore:
    """Open ``run_dir/results.sqlite`` read-only, or say what is missing."""
    path = Path(run_dir) / "results.sqlite"
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no results.sqlite here; pass the directory a "
                          "'benchbench run' wrote (default runs/<suite name>/)")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return ResultsStore(path, conn)
