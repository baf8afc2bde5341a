"""Writing a report: its figures, then its markdown, from the results store alone.

``write_report`` is what ``benchbench run`` (at the end of a run) and ``benchbench report`` both
call. The figures are drawn into a temporary folder beside their final one, which then replaces
the old folder in two renames; the markdown is written atomically after them. An error while
drawing leaves the previous report and figures as they were, and no temporary folder.

Neither ``figures/``, ``figures/<suite>/``, anything in them nor a run directory's
``report.md`` may be a symbolic link (refused, never followed); a disk that fills while they are
written raises ``DiskFullError`` and leaves the previous report in place.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from benchbench.engine.files import is_link, link_error, refuse_links, walk_links, write_failed
from benchbench.errors import BenchbenchError
from benchbench.store.results import ResultsStore

MARK = ".benchbench-figures"  # in every figures folder benchbench writes: it may replace it


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder benchbench did not write (or a file in its place), or one
    that is, or holds, a symbolic link."""
    refuse_links(folder, depth=2)  # figures/<suite> and figures/: the tmp folder goes there
    found = walk_links(folder) if folder.is_dir() else None
    if found is not None:
        raise link_error(found)
    if folder.exists() and not folder.is_dir():
        raise BenchbenchError(f"{folder}: not a folder; the report's figures go there, so "
                              "move it aside or write the report elsewhere (--out)")
    if folder.is_dir() and any(folder.iterdir()) and not (folder / MARK).is_file():
        raise BenchbenchError(f"{folder}: a folder benchbench did not write; the report's "
                              "figures go there, so move it aside or write the report "
                              "elsewhere (--out)")


def replace_figures(folder: Path, figures: list, draw) -> None:
    """Draw every figure spec with ``draw(spec, path)`` into a new ``folder``, replacing the
    old one only once all are drawn. No figures: the old folder is removed."""
    folder = Path(folder)
    _check_replaceable(folder)
    for parent in (folder.parent, *folder.parent.parents):
        if parent.exists() and not parent.is_dir():
            raise BenchbenchError(f"{parent}: a file where the report's figures folder "
                                  f"({folder}) must go; move it aside")
    if not figures:
        if folder.is_dir():
            shutil.rmtree(folder)
        return
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(folder.parent, exc) from None
    if is_link(folder.parent):
        raise link_error(folder.parent)
    tmp, old = _sibling(folder, "tmp"), _sibling(folder, "old")
    try:
        tmp.mkdir()
    except OSError as exc:
        raise write_failed(tmp, exc) from None
    moved = False
    try:
        try:
            (tmp / MARK).write_text("figures written by benchbench; replaced with each "
                                    "report\n", encoding="utf-8")
            for spec in figures:
                draw(spec, tmp / spec.name)
        except OSError as exc:  # a full disk, a folder gone
            raise write_failed(folder, exc) from None
        try:
            if folder.exists():
                os.replace(folder, old)
                moved = True
            os.replace(tmp, folder)
        except OSError as exc:  # another process swapped the folder in between
            raise BenchbenchError(f"{folder}: cannot replace the report's figures ({exc}); "
                                  "another report of this run may be being written: try "
                                  "again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not folder.exists():  # put the old figures back
            os.replace(old, folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sibling(folder: Path, what: str) -> Path:
    """A hidden name beside ``folder`` no other process picks."""
    return folder.with_name(f".{folder.name}.{os.getpid()}.{secrets.token_hex(4)}.{what}")


def write_report(store: ResultsStore, run_dir: Path, *, out: Path | None = None,
                 stale=()) -> Path:
    """Write the report of ``store`` to ``out`` (default ``run_dir/report.md``) and its
    figures beside it (``figures/<suite name>/``); returns the report's path. ``stale``: the
    cells other versions measured, named in the report's header."""
    from benchbench.engine.files import write_atomic
    from benchbench.report.markdown import figures_dir, render_with_figures
    from benchbench.report.plots import draw

    target = Path(out) if out is not None else Path(run_dir) / "report.md"
    if out is None:
        refuse_links(target)
    text, figures = render_with_figures(store, stale=stale)
    replace_figures(target.parent / figures_dir(store.meta()), figures, draw)
    write_atomic(target, text)
    return target
