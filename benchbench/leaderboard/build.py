"""``benchbench leaderboard``: entries from run directories, then the files rendered from them.

Nothing is half-written: the entries go to a fresh folder beside ``OUT/entries``, everything is
rendered from that folder before anything in ``OUT`` changes, then the folder takes the place of
``OUT/entries`` and each output file is replaced atomically. A failure (a refused mix of runs, a
bad entry, an unwritable place) leaves ``OUT`` as it was.

Nothing a user wrote is lost: ``OUT`` must be new, empty, hold only ``entries/``, or carry the
mark file ``MARK`` that a build leaves (``check_out``); a build from runs refuses an ``entries/``
holding anything but entry files (``check_entries``), and moves the previous ``entries/`` to
``OUT/archive/<UTC time>/entries/`` when it holds a file the new build does not reproduce byte
for byte (an entry edited or added by hand, a run left out).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from benchbench.engine.files import OutputError
from benchbench.errors import BenchbenchError
from benchbench.leaderboard import ENTRY_SCHEMA
from benchbench.leaderboard.entries import CHECKPOINTS, run_entries
from benchbench.leaderboard.runs import LeaderboardError, choose_threat_model, load_run
from benchbench.leaderboard.validate import check_entry

ENTRIES = "entries"
ARCHIVE = "archive"
MARK = ".benchbench-leaderboard"
MARK_TEXT = ("A leaderboard written by `benchbench leaderboard`. A build from runs replaces\n"
             "entries/ (moving entries it does not reproduce to archive/<UTC time>/entries/) and\n"
             "rewrites index.html, leaderboard.md, leaderboard.json and leaderboard.png.\n")


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


def _report(run_dir: Path, suite_name: str | None, *, report_dir: Path | None) -> Path:
    """Where the run's report is: ``REPORT_DIR/<suite name>.md`` with ``--report-dir``, else
    ``RUN/report.md``."""
    return (Path(report_dir) / f"{suite_name}.md" if report_dir is not None and suite_name
            else Path(run_dir) / "report.md")


def check_out(out: Path) -> None:
    """Refuse an existing ``out`` that a build did not make: one without ``MARK`` that holds
    anything but an ``entries/`` folder (whose files a re-render reads)."""
    if not out.is_dir() or (out / MARK).is_file():
        return
    try:
        other = sorted(p.name for p in out.iterdir() if p.name != ENTRIES or not p.is_dir())
    except OSError as exc:
        raise OutputError(f"--out {out}: cannot read it ({exc.strerror or exc}); pass a "
                          "directory you can read and write") from None
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise OutputError(f"--out {out}: not empty ({shown}) and no {out / MARK}, so not a "
                          "leaderboard benchbench made; pass a new or empty directory (or, "
                          f"for a board an older benchbench made, create {MARK} in it)")


def _is_entry(path: Path) -> bool:
    if path.suffix != ".json" or path.is_symlink() or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == ENTRY_SCHEMA


def check_entries(folder: Path) -> None:
    """Refuse to replace an ``entries/`` folder holding anything but entry files."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise OutputError(f"{folder}: not a folder, where the leaderboard's entries go; move it "
                          "away")
    for path in sorted(folder.iterdir()):
        if not _is_entry(path):
            raise OutputError(f"{path}: not a leaderboard entry (a *.json file with schema "
                              f"{ENTRY_SCHEMA!r}); a build from runs replaces {folder} as a "
                              "whole, so move it out first")


def _archive(old: Path, fresh: Path, out: Path) -> tuple[Path, list[str]] | None:
    """Move ``old`` (the previous ``entries/``) to ``out/archive/<UTC time>/entries`` when it
    holds a file ``fresh`` does not reproduce byte for byte: (where it went, those files)."""
    lost = [p.name for p in sorted(old.iterdir())
            if not (fresh / p.name).is_file() or (fresh / p.name).read_bytes() != p.read_bytes()]
    if not lost:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / ARCHIVE).mkdir(exist_ok=True)
    n = 1
    while True:
        target = out / ARCHIVE / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            target.mkdir()
            break
        except FileExistsError:
            n += 1
    os.replace(old, target / ENTRIES)
    return target / ENTRIES, lost


def write_outputs(*, out: Path, files: dict[str, bytes]) -> list[Path]:
    """Write rendered ``files`` (``render.render_files``) into ``out``; the paths written."""
    written = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            _write_bytes(out / name, data)
            written.append(out / name)
        if not (out / MARK).is_file():
            _write_bytes(out / MARK, MARK_TEXT.encode())
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the leaderboard there ({exc.strerror or exc}); "
                          "pass --out a directory you can write") from None
    return written


def _attack_defaults(registry) -> Callable[[str], tuple[dict, list] | None]:
    """name -> (the installed attack's defaults, the keys it accepts), ``None`` when it is not
    installed or cannot say (``entries.full_params``)."""
    def defaults(name: str) -> tuple[dict, list] | None:
        if registry is None or name not in registry.entries["attack"]:
            return None
        try:
            return registry.defaults_of("attack", name), registry.params_of("attack", name)
        except Exception:  # noqa: BLE001 - a broken plugin: its parameters stay as stored
            return None
    return defaults


def build_leaderboard(*, runs: list[Path], out: Path, eps: float | None = None,
                      norm: str | None = None, checkpoint: str = "last",
                      report_dir: Path | None = None, protocol: str | None = None,
                      warn: Callable[[str], None] = lambda message: None) -> list[Path]:
    """One entry per (model, regime) of every run in ``runs`` at their shared threat model,
    written to ``out/entries/``, then rendered from those files; the files written. With no
    ``runs``, re-render ``out`` from the entries already there. ``protocol`` (a name of
    ``protocols.PROTOCOLS``) ranks only the entries evaluated under it; every entry is still
    written."""
    from benchbench.leaderboard.board import board_data
    from benchbench.leaderboard.protocols import get_protocol
    from benchbench.leaderboard.render import render_files
    from benchbench.plugins import load_registry
    from benchbench.store.versions import describe_stale, installed_versions

    out = Path(out)
    if checkpoint not in CHECKPOINTS:
        raise LeaderboardError(f"--checkpoint {checkpoint!r} is not allowed; use one of "
                               f"{', '.join(CHECKPOINTS)}")
    chosen = get_protocol(protocol) if protocol is not None else None
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: is a file; pass a directory (it is created when "
                          "missing)")
    check_out(out)
    if not runs:
        given = [flag for flag, set_ in (("--eps", eps is not None), ("--norm", norm is not None),
                                         ("--checkpoint", checkpoint != "last"),
                                         ("--report-dir", report_dir is not None)) if set_]
        if given:  # they choose what entries are built from runs: here they would do nothing
            raise LeaderboardError(f"{', '.join(given)} choose(s) how entries are built from "
                                   "runs; with no RUN the board is rendered from "
                                   f"{out / ENTRIES} as it is: pass the runs, or drop "
                                   f"{', '.join(given)}")
        return write_outputs(out=out, files=render_files(out / ENTRIES, protocol=chosen,
                                                         warn=warn))
    check_entries(out / ENTRIES)
    seen = set()
    for run in runs:
        key = Path(run).resolve()
        if key in seen:
            raise LeaderboardError(f"{run}: given twice; pass each run directory once")
        seen.add(key)
    try:
        registry = load_registry()
        installed = installed_versions(registry)
    except BenchbenchError as exc:  # a broken plugin elsewhere: rank anyway, say what is unknown
        registry = installed = None
        warn(f"warning: cannot tell stale entries or attacks' default parameters, the installed "
             f"plugins do not load: {exc}")
    defaults = _attack_defaults(registry)
    loaded = [load_run(Path(run), installed=installed) for run in runs]
    threat = choose_threat_model(loaded, norm=norm, eps=eps)
    entries = []
    for run in loaded:
        if run.stale:
            warn(f"warning: {run.path}: {describe_stale(run.stale, total=len(run.cells))}; "
                 "its entries are marked stale (rerun with benchbench run --force)")
        report = _report(run.path, run.meta.get("suite_name"), report_dir=report_dir)
        link = (quote(Path(os.path.relpath(report.resolve(), out.resolve())).as_posix())
                if report.is_file() else None)  # percent-encoded: a URL path, as the schema says
        if link is None:
            warn(f"warning: {run.path}: no report at {report}; its entries link none")
        found = run_entries(run, threat=threat, checkpoint=checkpoint, link=link,
                            defaults=defaults)
        if not found:
            warn(f"warning: {run.path}: no (model, regime) has a {threat.norm} attack at eps "
                 f"{threat.eps:g}; left out")
        entries += found
    ids: dict[str, int] = {}
    for entry in entries:  # two run directories with the same name: keep ids unique
        n = ids[entry["id"]] = ids.get(entry["id"], 0) + 1
        if n > 1:
            entry["id"] = f"{entry['id']}-{n}"
    for entry in entries:  # numbers from a store are held to the entry format too
        check_entry(entry, where=f"{entry['run']['dir']}: entry {entry['id']}")
    if chosen is not None and entries:  # a protocol nothing meets: refused before any write
        board_data(entries, protocol=chosen)
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
        # from the entry files alone, before anything is replaced
        files = render_files(fresh, protocol=chosen, warn=warn)
        old = out / ENTRIES
        if old.exists():
            archived = _archive(old, fresh, out)
            if archived:
                where, lost = archived
                warn(f"warning: {old} held entries this build does not reproduce ("
                     f"{', '.join(lost[:3])}{f' and {len(lost) - 3} more' if len(lost) > 3 else ''}"
                     f"); moved to {where}")
            else:
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
