"""Measuring again the cells that other code measured (``benchbench run --force``).

A stale cell (``benchbench.store.versions``) is archived, then removed from the live store, so the
run measures it again like a cell it never had. The archive keeps every number:
``archive/<timestamp>/results.sqlite`` is a copy of the whole store as it was (SQLite's backup of
a consistent snapshot, still a run directory's store: ``benchbench report archive/<timestamp>``
and ``export`` read it), with ``meta.archived`` saying why; ``report.md`` and its ``figures/`` are
copied beside it and the stale cells' checkpoints are moved there (the new measurement writes
its own under the same names). The live store loses the stale cells in one transaction, after
the copy is complete: an interruption in between leaves them in place, one after it leaves them
to be measured by the next ``run``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from benchbench.engine.files import disk_full, full_error
from benchbench.errors import RunDirError
from benchbench.store.results import write_error
from benchbench.store.rundir import STORE, new_archive
from benchbench.store.versions import StaleCell, describe_stale

TABLES = ("verdicts", "examples", "results", "cells")  # the rows a cell owns, children first


def archive_stale(store, run_dir: Path, stale: list[StaleCell]) -> Path:
    """Archive the store and ``stale``'s checkpoints in ``run_dir/archive/<timestamp>/``, then
    remove ``stale`` from ``store``; the archive's path. Raises ``RunDirError`` when the
    archive cannot be written (nothing is removed then)."""
    return archive_cells(store, run_dir, [cell.cell_id for cell in stale],
                         why="run --force measured again: " + describe_stale(stale),
                         doing="measuring them again", instead="run without --force")


def archive_cells(store, run_dir: Path, cell_ids: list[str], *, why: str, doing: str,
                  instead: str) -> Path:
    """``archive_stale`` for any cells: the whole store copied with ``meta.archived = why``,
    the report and figures copied, the cells' checkpoints moved, then the cells removed from
    ``store`` in one transaction. ``doing`` and ``instead`` word the error."""
    run_dir = Path(run_dir)
    try:
        archive = new_archive(run_dir)
        copy = sqlite3.connect(archive / STORE)
        try:
            store.conn.backup(copy)
            with copy:
                copy.execute("INSERT OR REPLACE INTO meta VALUES ('archived', ?)", (why,))
        finally:
            copy.close()
        if (run_dir / "report.md").is_file():
            shutil.copy2(run_dir / "report.md", archive / "report.md")
        if (run_dir / "figures").is_dir():  # the report's figures, where its links point
            shutil.copytree(run_dir / "figures", archive / "figures", symlinks=True)
        for cell_id in cell_ids:
            checkpoints = run_dir / "checkpoints" / cell_id
            if checkpoints.exists():
                (archive / "checkpoints").mkdir(exist_ok=True)
                shutil.move(str(checkpoints), str(archive / "checkpoints" / cell_id))
    except (OSError, sqlite3.Error) as exc:
        if disk_full(exc):
            raise full_error(run_dir / "archive", exc) from None
        raise RunDirError(f"{run_dir}: cannot archive the {len(cell_ids)} cell(s) before "
                          f"{doing} ({getattr(exc, 'strerror', None) or exc}); free space or "
                          f"fix permissions, or {instead}") from None
    ids = [(cell_id,) for cell_id in cell_ids]
    try:
        with store.conn:
            for table in TABLES:
                store.conn.executemany(f"DELETE FROM {table} WHERE cell_id = ?", ids)
    except sqlite3.OperationalError as exc:
        raise write_error(store.path, exc) from None
    return archive
