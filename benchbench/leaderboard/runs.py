"""Reading run directories for a leaderboard, and the one threat model they must share.

A leaderboard ranks numbers that mean the same thing: one dataset (name, parameters and test
split), one norm and one eps. ``choose_threat_model`` takes ``--norm`` / ``--eps`` when given,
otherwise the only value every run shares, and refuses (``LeaderboardError``, one line naming the
runs and what differs) when there is none or more than one to choose from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from benchbench.errors import BenchbenchError
from benchbench.store.worst import is_worst


class LeaderboardError(BenchbenchError):
    """Runs or entries that cannot be ranked together, or a leaderboard option not allowed."""


def eps_key(eps: float) -> float:
    """Eps as stored (a REAL) compared with eps as typed: equal up to rounding noise."""
    return round(float(eps), 10)


@dataclass
class RunData:
    """What a leaderboard needs from one run directory, read once."""

    path: Path
    meta: dict
    cells: list[dict]  # status "ok" only
    tidy: object  # pandas DataFrame: checkpoint rows (split "fit" removed)
    fit: object  # pandas DataFrame: split "fit" rows
    info: dict  # attack label -> {name, params, norm, rows, at} (report.flags.attack_info)
    dataset: dict  # {name, params, test, train} from the cells' specs
    stale: list = field(default_factory=list)  # store.versions.StaleCell

    @property
    def name(self) -> str:
        return str(self.path)

    def points(self) -> set[tuple[str, float]]:
        """(norm, eps) of every stored test accuracy of an attack with a known norm."""
        rows = self.tidy[(self.tidy["split"] == "test") & (self.tidy["attack"] != "none")
                         & (self.tidy["metric"] == "accuracy")]
        out = set()
        for attack, eps in rows[["attack", "eps"]].drop_duplicates().itertuples(index=False):
            norm = (attack[len("worst_"):] if is_worst(attack)
                    else self.info.get(attack, {}).get("norm"))
            if norm:
                out.add((norm, eps_key(eps)))
        return out


def load_run(run_dir: Path, *, installed: dict | None = None) -> RunData:
    """Read ``run_dir``'s store (read-only); ``installed`` versions find its stale cells."""
    from benchbench.report.flags import stored_attack_info
    from benchbench.report.training import split_fit
    from benchbench.store.results import read_store
    from benchbench.store.versions import stale_cells

    with read_store(Path(run_dir)) as store:
        meta, cells = store.meta(), store.cells()
        tidy, fit = split_fit(store.tidy())
        stale = stale_cells(store, installed=installed) if installed is not None else []
    ok = [c for c in cells if c["status"] == "ok"]
    if not ok:
        raise LeaderboardError(f"{run_dir}: no finished cells in its store; run the suite "
                               "first (or leave this run out)")
    info = stored_attack_info(meta, ok)
    spec = json.loads(ok[0]["spec"])["dataset"]
    dataset = {k: spec.get(k) for k in ("name", "params", "test", "train")}
    return RunData(Path(run_dir), meta, ok, tidy, fit, info, dataset, stale)


@dataclass(frozen=True)
class ThreatModel:
    dataset: str
    test: str
    norm: str
    eps: float


def _dataset_id(run: RunData) -> str:
    params = run.dataset.get("params") or {}
    extra = f" {json.dumps(params, sort_keys=True)}" if params else ""
    return f"{run.dataset['name']}{extra} (test split {run.dataset.get('test')!r})"


def _fmt(values) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in sorted(values))


def _names(runs: list[RunData]) -> str:
    """``a has`` / ``a, b have``."""
    return ", ".join(r.name for r in runs) + (" has" if len(runs) == 1 else " have")


def _by_run(runs: list[RunData], values: dict[str, set]) -> str:
    return "; ".join(f"{run.name}: {_fmt(values[run.name]) or 'none'}" for run in runs)


def choose_threat_model(runs: list[RunData], *, norm: str | None = None,
                        eps: float | None = None) -> ThreatModel:
    """The dataset, norm and eps every run shares, or ``LeaderboardError`` naming what differs."""
    datasets = {run.name: _dataset_id(run) for run in runs}
    if len(set(datasets.values())) > 1:
        raise LeaderboardError("runs differ in dataset: " + "; ".join(
            f"{k}: {v}" for k, v in datasets.items()) + "; a leaderboard ranks one dataset, "
            "so build one per dataset")
    points = {run.name: run.points() for run in runs}
    norms = {name: {n for n, _ in p} for name, p in points.items()}
    if norm is not None:
        missing = [run for run in runs if norm not in norms[run.name]]
        if missing:
            raise LeaderboardError(f"--norm {norm}: {_names(missing)} no "
                                   f"{norm} attack; norms per run: {_by_run(runs, norms)}")
    else:
        shared = set.intersection(*norms.values())
        if len(shared) != 1:
            what = ("runs differ in norm" if not shared else
                    f"the runs evaluate several norms ({_fmt(shared)}); pass --norm")
            raise LeaderboardError(f"{what}: {_by_run(runs, norms)}" +
                                   ("; a leaderboard ranks one norm" if not shared else ""))
        norm = shared.pop()
    epses = {name: {e for n, e in p if n == norm} for name, p in points.items()}
    if eps is not None:
        missing = [run for run in runs if eps_key(eps) not in epses[run.name]]
        if missing:
            raise LeaderboardError(f"--eps {eps:g}: {_names(missing)} no "
                                   f"{norm} attack at that eps; {norm} eps per run: "
                                   f"{_by_run(runs, epses)}")
        eps = eps_key(eps)
    else:
        shared = set.intersection(*epses.values())
        if len(shared) != 1:
            what = (f"runs differ in {norm} eps" if not shared else
                    f"the runs share several {norm} eps ({_fmt(shared)}); pass --eps")
            raise LeaderboardError(f"{what}: {_by_run(runs, epses)}" +
                                   ("; a leaderboard ranks one eps" if not shared else ""))
        eps = shared.pop()
    return ThreatModel(runs[0].dataset["name"], str(runs[0].dataset.get("test")), norm, eps)
