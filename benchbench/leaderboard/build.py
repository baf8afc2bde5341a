"""``benchbench leaderboard``: entries from run directories, then the files rendered from them.

Nothing is half-written: the entries go to a fresh folder beside ``OUT/entries``, everything is
rendered from that folder before anything in ``OUT`` changes, then the folder takes the place of
``OUT/entries`` and each output file is replaced atomically. A failure (a refused mix of runs, a
bad entry, an unwritable place) leaves ``OUT`` as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchbench.engine.files import OutputError
from benchbench.errors import BenchbenchError
from benchbench.leaderboard.entries import CHECKPOINTS, run_entries
from benchbench.leaderboard.runs import LeaderboardError, choose_threat_model, load_run

ENTRIES = "entries"


def _write_bytes(path: Path, data: bytes) -> None:
    """``data`` to ``path`` through a temporary file renamed over it."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _link(run_dir: Path, suite_name: str | None, *, out: Path,
          report_dir: Path | None) -> str | None:
    """The run's report, relative to ``out``: ``REPORT_DIR/<suite name>.md`` with
    ``--report-dir``, else ``RUN/report.md``; ``None`` when that file does not exist."""
    target = (Path(report_dir) / f"{suite_name}.md" if report_dir is not None and suite_name
              else Path(run_dir) / "report.md")
    if not target.is_file():
        return None
    return Path(os.path.relpath(target.resolve(), out.resolve())).as_posix()


def write_outputs(*, out: Path, files: dict[str, bytes]) -> list[Path]:
    """Write rendered ``files`` (``render.render_files``) into ``out``; the paths written."""
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            _write_bytes(out / name, data)
            written.append(out / name)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the leaderboard there ({exc.strerror or exc}); "
                          "pass --out a directory you can write") from None
    return written


def build_leaderboard(*, runs: list[Path], out: Path, eps: float | None = None,
                      norm: str | None = None, checkpoint: str = "last",
                      report_dir: Path | None = None,
                      warn: Callable[[str], None] = lambda message: None) -> list[Path]:
    """One entry per (model, regime) of every run in ``runs`` at their shared threat model,
    written to ``out/entries/``, then rendered from those files; the files written. With no
    ``runs``, re-render ``out`` from the entries already there."""
    from benchbench.leaderboard.render import render_files
    from benchbench.store.versions import describe_stale, installed_versions

    out = Path(out)
    if checkpoint not in CHECKPOINTS:
        raise LeaderboardError(f"--checkpoint {checkpoint!r} is not allowed; use one of "
                               f"{', '.join(CHECKPOINTS)}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file; pass a directory (it is created when "
                          "missing)")
    if not runs:
        return write_outputs(out=out, files=render_files(out / ENTRIES))
    seen = {}
    for run in runs:
        key = Path(run).resolve()
        if key in seen:
            raise LeaderboardError(f"{run}: given twice; pass each run directory once")
        seen[key] = run
    try:
        installed = installed_versions()
    except BenchbenchError as exc:  # a broken plugin elsewhere: rank anyway, say what is unknown
        installed = None
        warn(f"warning: cannot tell stale entries, the installed plugins do not load: {exc}")
    loaded = [load_run(Path(run), installed=installed) for run in runs]
    threat = choose_threat_model(loaded, norm=norm, eps=eps)
    entries = []
    for run in loaded:
        if run.stale:
            warn(f"warning: {run.path}: {describe_stale(run.stale, total=len(run.cells))}; "
                 "its entries are marked stale (rerun with benchbench run --force)")
        link = _link(run.path, run.meta.get("suite_name"), out=out, report_dir=report_dir)
        if link is None:
            where = (Path(report_dir) / f"{run.meta.get('suite_name')}.md" if report_dir
                     else run.path / "report.md")
            warn(f"warning: {run.path}: no report at {where}; its entries link none")
        found = run_entries(run, threat=threat, checkpoint=checkpoint, link=link)
        if not found:
            warn(f"warning: {run.path}: no (model, regime) has a {threat.norm} attack at eps "
                 f"{threat.eps:g}; left out")
        entries += found
    ids: dict[str, int] = {}
    for entry in entries:  # two run directories with the same name: keep ids unique
        n = ids[entry["id"]] = ids.get(entry["id"], 0) + 1
        if n > 1:
            entry["id"] = f"{entry['id']}-{n}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fresh = Path(tempfile.mkdtemp(prefix=f".{ENTRIES}.", dir=out))
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a "
                          "directory you can write") from None
    try:
        for entry in entries:
            (fresh / f"{entry['id']}.json").write_text(
                json.dumps(entry, indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                encoding="utf-8")
        files = render_files(fresh)  # from the entry files alone, before anything is replaced
        old = out / ENTRIES
        if old.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{ENTRIES}.old.", dir=out))
            os.replace(old, trash / ENTRIES)
            shutil.rmtree(trash, ignore_errors=True)
        os.chmod(fresh, 0o755)
        os.replace(fresh, old)
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot write the entries there "
                          f"({exc.strerror or exc}); pass a directory you can write") from None
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return [*(old / f"{e['id']}.json" for e in entries), *write_outputs(out=out, files=files)]
