"""Writing a report: its figures, then its markdown, from the results store alone.

``write_report`` is what ``benchbench run`` (at the end of a run) and ``benchbench report`` both
call. The figures are drawn into a temporary folder beside their final one, which then replaces
the old folder in two renames; the markdown is written atomically after them. An error while
drawing leaves the previous report and figures as they were, and no temporary folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from benchbench.errors import BenchbenchError
from benchbench.store.results import ResultsStore

MARK = ".benchbench-figures"  # in every figures folder benchbench writes: it may replace it


def _check_replaceable(folder: Path) -> None:
    """Refuse to replace a folder benchbench did not write (or a file in its place)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
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
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = _sibling(folder, "tmp"), _sibling(folder, "old")
    tmp.mkdir()
    moved = False
    try:
        (tmp / MARK).write_text("figures written by benchbench; replaced with each report\n",
                                encoding="utf-8")
        for spec in figures:
            draw(spec, tmp / spec.name)
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


def write_report(store: ResultsStore, run_dir: Path, *, out: Path | None = None) -> Path:
    """Write the report of ``store`` to ``out`` (default ``run_dir/report.md``) and its
    figures beside it (``figures/<suite name>/``); returns the report's path."""
    from benchbench.engine.files import write_atomic
    from benchbench.report.markdown import figures_dir, render_with_figures
    from benchbench.report.plots import draw

    target = Path(out) if out is not None else Path(run_dir) / "report.md"
    text, figures = render_with_figures(store)
    replace_figures(target.parent / figures_dir(store.meta()), figures, draw)
    write_atomic(target, text)
    return target
