"""Comparing stored results: B minus A for every measurement both sides hold, with a CI.

A side is a tidy frame (``ResultsStore.tidy``) of one run, optionally narrowed to some of its
cells (``--a regime=standard``). Rows are matched on every key of ``KEYS`` that the selections do
not name; for each match, the values over seeds give the mean difference B - A and its
confidence interval: a paired t interval where both sides have the same seeds (each seed's
difference), Welch's t interval otherwise (``scipy.stats``). A difference is *significant* when
its interval excludes 0 (no correction for multiple comparisons). Training records (split
``fit``) are not results and are left out; worst-case rows compare like any attack.

Two runs are compared only where they measure the same thing: the same data (dataset, test split
and parameters, classes) and threat model (input bounds); an attack label whose norm differs is
left out, with a note. Labels whose stored specs differ (a model's width, a regime's dtype, an
attack's steps) are compared but noted, so the table never hides what changed; so are worst-case
rows whose sides are taken over different attacks (``ensemble_notes``: the attacks of that norm
stored at the same cell, epoch, split and eps on each side, e.g. an ``at = "last"`` attack that
joins at the last checkpoint).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from benchbench.errors import BenchbenchError
from benchbench.report.seed_stats import degenerate_interval, seed_difference
from benchbench.report.tables import column_order
from benchbench.report.training import split_fit
from benchbench.report.verdicts import certified_notes
from benchbench.store.verdicts import is_verdict_row
from benchbench.store.worst import is_worst

KEYS = ("model", "regime", "dataset", "epoch", "split", "attack", "eps", "metric")
SELECT_KEYS = ("model", "regime", "epoch", "split", "attack", "eps")
ROW_COLUMNS = ("n_a", "n_b", "seeds_a", "seeds_b", "test", "mean_a", "mean_b", "b_minus_a",
               "ci_low", "ci_high", "p_value", "significant")


class CompareError(BenchbenchError):
    """Two sides that cannot be compared, or a selection that selects nothing."""


@dataclass(frozen=True)
class Comparison:
    """The matched rows (``on`` keys + ``ROW_COLUMNS``) and what the sides were."""

    a: str
    b: str
    on: tuple[str, ...]
    rows: pd.DataFrame
    confidence: float
    notes: tuple[str, ...] = field(default=())
    paired: bool = True  # False: Welch's interval everywhere (``pair=False``)


# selections ------------------------------------------------------------------------------
def parse_selection(items: Sequence[str], *, flag: str) -> dict[str, str]:
    """``["regime=standard", "epoch=10"]`` -> ``{"regime": "standard", "epoch": "10"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value or key not in SELECT_KEYS:
            raise CompareError(f"{flag} {item!r}: write key=value with key one of "
                               f"{', '.join(SELECT_KEYS)}, e.g. {flag} regime=standard")
        if key in out:
            raise CompareError(f"{flag} {item!r}: {key} is already selected ({key}={out[key]})")
        out[key] = value
    return out


def _matches(column: pd.Series, value: str, *, flag: str, key: str) -> pd.Series:
    if key in ("epoch", "eps"):
        try:
            number = float(value)
        except ValueError:
            raise CompareError(f"{flag} {key}={value}: {key} must be a number") from None
        return (column.astype(float) - number).abs() <= 1e-9 * max(1.0, abs(number))
    return column.astype(str) == value


def select(tidy: pd.DataFrame, *, where: dict[str, str], flag: str, run: str) -> pd.DataFrame:
    """The rows of ``tidy`` whose keys have the selected values, or an error naming what the
    run has."""
    keep = pd.Series(True, index=tidy.index)
    for key, value in where.items():
        hit = _matches(tidy[key], value, flag=flag, key=key)
        if not hit.any():
            have = ", ".join(_fmt_key(v) for v in sorted(tidy[key].unique().tolist()))
            raise CompareError(f"{flag} {key}={value}: no such {key} in {run}; it has: {have}")
        keep &= hit
    if not keep.any():
        raise CompareError(f"{flag} {_describe(where)}: no cell of {run} has all of these")
    return tidy[keep]


def _fmt_key(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _describe(where: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in where.items())


def compare_frames(*, a: pd.DataFrame, b: pd.DataFrame, on: Sequence[str],
                   confidence: float = 0.95, pair: bool = True) -> pd.DataFrame:
    """One row per ``on`` key both tidy frames hold: the keys and ``ROW_COLUMNS``."""
    on = list(on)
    for name, frame in (("A", a), ("B", b)):
        if frame.duplicated([*on, "seed"]).any():
            raise CompareError(f"side {name} holds several values per seed for one measurement; "
                               f"select fewer cells (--a/--b) so {', '.join(on)} tell them apart")
    groups_b = {k: g for k, g in b.groupby(on, sort=False)}
    rows = []
    for key, group_a in a.groupby(on, sort=False):
        if key not in groups_b:
            continue
        group_b = groups_b[key]
        stats = seed_difference(a=group_a.set_index("seed")["value"],
                                b=group_b.set_index("seed")["value"], confidence=confidence,
                                pair=pair)
        rows.append({**dict(zip(on, key, strict=True)), **stats})
    frame = pd.DataFrame(rows, columns=[*on, *ROW_COLUMNS])
    if frame.empty:
        return frame
    order = [_order(*(row.get(k, d) for k, d in MEASURE_DEFAULTS.items()))
             for row in frame[[k for k in MEASURE_DEFAULTS if k in on]].to_dict("records")]
    rank = {o: i for i, o in enumerate(sorted(set(order)))}
    frame["_order"] = [rank[o] for o in order]
    cells = [k for k in ("model", "regime", "dataset", "epoch") if k in on]
    return (frame.sort_values([*cells, "_order"], kind="stable").drop(columns="_order")
            .reset_index(drop=True))


MEASURE_DEFAULTS = {"split": "test", "attack": "", "eps": 0.0, "metric": "accuracy"}


def _order(split: str, attack: str, eps: float, metric: str) -> tuple:
    """The report's column order (``tables.column_order``), worst case after the attacks."""
    key = column_order(split, attack, eps, metric)
    if is_verdict_row(attack):  # certified_, exact_: after the worst cases
        return (3, *key[1:])
    return (2, *key[1:]) if is_worst(attack) else key


# what two runs are ------------------------------------------------------------------------
def run_facts(*, meta: dict, cells: list[dict]) -> dict:
    """What a run measured, from its ``meta`` and ``cells``: datasets (name -> test split and
    parameters), input bounds, classes, attack norms and the specs behind each label."""
    norms = json.loads(meta["attack_norms"]) if meta.get("attack_norms") else {}
    facts: dict = {"data": {}, "bounds": json.loads(meta.get("bounds") or "null"),
                   "classes": meta.get("num_classes"), "norms": dict(norms),
                   "model": {}, "regime": {}, "attack": {}, "verifier": {}}
    for cell in cells:
        if cell.get("status") != "ok":
            continue
        spec = json.loads(cell["spec"])
        data = spec.get("dataset", {})
        facts["data"].setdefault(data.get("name"), {"test": data.get("test"),
                                                    **data.get("params", {})})
        for kind in ("model", "regime"):
            part = spec.get(kind, {})
            facts[kind].setdefault(part.get("label"), {"name": part.get("name"),
                                                       **part.get("params", {})})
        for attack in spec.get("attacks", []):
            facts["attack"].setdefault(attack["label"], {
                "name": attack.get("name"), "rows": attack.get("rows"),
                "split": attack.get("split"), **attack.get("params", {})})
            facts["norms"].setdefault(attack["label"], attack.get("params", {}).get("norm"))
        for ref in spec.get("verifiers", []):  # not in "norms": no worst case is over them
            facts["verifier"].setdefault(ref["label"], {
                "name": ref.get("name"), "rows": ref.get("rows"), **ref.get("params", {})})
    return facts


def _spec_difference(a: dict, b: dict) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    shown = "; ".join(f"{k} {json.dumps(a.get(k))} (A) vs {json.dumps(b.get(k))} (B)"
                      for k in keys[:4])
    return shown + (f"; and {len(keys) - 4} more" if len(keys) > 4 else "")


def check_runs(*, a: dict, b: dict, a_name: str, b_name: str) -> tuple[set[str], list[str]]:
    """Refuse runs on different data or threat models (naming what differs); else the attack
    labels to leave out (norm differs) and notes on labels whose specs differ."""
    head = f"{a_name} and {b_name} share nothing to compare"
    for name, facts in ((a_name, a), (b_name, b)):
        if not facts["data"]:
            raise CompareError(f"{name}: no finished cell stored yet; nothing to compare")
    shared = set(a["data"]) & set(b["data"])
    if not shared:
        raise CompareError(f"{head}: different data (A: {', '.join(map(str, a['data']))}; "
                           f"B: {', '.join(map(str, b['data']))})")
    for name in sorted(shared):
        if a["data"][name] != b["data"][name]:
            raise CompareError(f"{head}: different data: dataset {name}: "
                               f"{_spec_difference(a['data'][name], b['data'][name])}")
    if a["classes"] != b["classes"]:
        raise CompareError(f"{head}: different data: {a['classes']} classes (A) vs "
                           f"{b['classes']} (B)")
    if a["bounds"] != b["bounds"]:
        raise CompareError(f"{head}: different threat model: input bounds {a['bounds']} (A) "
                           f"vs {b['bounds']} (B)")
    left_out, notes = set(), []
    for label in sorted(set(a["norms"]) & set(b["norms"])):
        if a["norms"][label] != b["norms"][label]:
            left_out.add(label)
            notes.append(f"attack {label} left out: norm {a['norms'][label]} (A) vs "
                         f"{b['norms'][label]} (B)")
    for kind in ("model", "regime", "attack", "verifier"):
        for label in sorted(set(a.get(kind, {})) & set(b.get(kind, {})) - left_out):
            if a[kind][label] != b[kind][label]:
                notes.append(f"{kind} {label} differs: "
                             f"{_spec_difference(a[kind][label], b[kind][label])}")
    return left_out, notes


def _ensembles(frame: pd.DataFrame, *, norms: dict, keys: list[str]) -> dict:
    """(``keys`` values, norm) -> the attack labels of that norm stored there: the attacks a
    worst-case row at those keys is taken over."""
    rows = frame[[a != "none" and not is_worst(a) and bool(norms.get(a))
                  for a in frame["attack"]]]
    out: dict = {}
    for values, attack in zip(rows[keys].itertuples(index=False, name=None), rows["attack"],
                              strict=True):
        out.setdefault((values, norms[attack]), set()).add(attack)
    return out


def _where(row: dict, keys: list[str]) -> str:
    bits = [str(row[k]) for k in ("model", "regime") if k in keys]
    bits += [f"epoch {row['epoch']}"] if "epoch" in keys else []
    bits += [f"ε={row['eps']:g}"] if "eps" in keys else []
    bits += [f"{row['split']} split"] if "split" in keys and row["split"] != "test" else []
    return " ".join(bits) or "every row"


def ensemble_notes(*, a: pd.DataFrame, b: pd.DataFrame, rows: pd.DataFrame, on: Sequence[str],
                   a_norms: dict, b_norms: dict, attack: str | None = None) -> list[str]:
    """A note for the compared worst-case rows whose sides are taken over different attacks
    (an ``at = "last"`` attack, one left out of a run, other attacks at that eps), one per
    pair of ensembles, naming the rows. ``a``/``b``: each side's rows, every attack included;
    ``attack``: the one both sides selected, when ``attack`` is not in ``on``."""
    if "attack" not in on and attack is None:
        return []
    keys = [k for k in on if k not in ("attack", "metric", "dataset")]
    sides = (_ensembles(a, norms=a_norms, keys=keys), _ensembles(b, norms=b_norms, keys=keys))
    found: dict[tuple, list[str]] = {}
    for row in rows.to_dict("records"):
        row.setdefault("attack", attack)
        if not is_worst(row["attack"]):
            continue
        norm = row["attack"][len("worst_"):]
        at = (tuple(row[k] for k in keys), norm)
        members = [tuple(sorted(side.get(at, ()))) for side in sides]
        if all(members) and members[0] != members[1]:
            where = found.setdefault((row["attack"], *members), [])
            if _where(row, keys) not in where:
                where.append(_where(row, keys))
    return [f"{name} is over different attacks: {', '.join(ma)} (A) vs {', '.join(mb)} (B) "
            f"({'; '.join(where[:4])}{f'; and {len(where) - 4} more' if len(where) > 4 else ''})"
            for (name, ma, mb), where in found.items()]


def _nothing_shared(a: pd.DataFrame, b: pd.DataFrame, on: Sequence[str], head: str) -> str:
    for key in on:
        have_a, have_b = set(a[key].unique().tolist()), set(b[key].unique().tolist())
        if not have_a & have_b:
            listed = [", ".join(_fmt_key(v) for v in sorted(s)) for s in (have_a, have_b)]
            return f"{head}: no {key} in both (A: {listed[0]}; B: {listed[1]})"
    return f"{head}: no measurement is in both ({', '.join(on)} never all match)"


# the comparison ---------------------------------------------------------------------------
def compare(*, a: pd.DataFrame, b: pd.DataFrame, a_run: str, b_run: str | None = None,
            a_where: dict[str, str] | None = None, b_where: dict[str, str] | None = None,
            a_facts: dict | None = None, b_facts: dict | None = None,
            metrics: Sequence[str] = (), epochs: Sequence[str] = (),
            confidence: float = 0.95, pair: bool = True) -> Comparison:
    """B - A over the tidy frames ``a`` and ``b`` (the same frame for one run, with
    ``a_where``/``b_where`` selecting its cells); ``a_facts``/``b_facts`` (``run_facts``)
    for two runs. ``metrics`` and ``epochs`` (numbers or ``last``: the last both hold) narrow
    the rows; ``pair=False`` uses Welch's interval even where the seeds match."""
    a_where, b_where = dict(a_where or {}), dict(b_where or {})
    if not 0 < confidence < 1:
        raise CompareError(f"--confidence {confidence}: give a level between 0 and 1, e.g. 0.95")
    if b_run is None and not (a_where and b_where):
        raise CompareError("comparing cells of one run needs --a and --b, e.g. --a "
                           "regime=standard --b regime=trades")
    if set(a_where) != set(b_where):
        raise CompareError(f"--a {_describe(a_where) or '(none)'} and --b "
                           f"{_describe(b_where) or '(none)'}: select the same keys on both "
                           "sides")
    if epochs and "epoch" in a_where:
        raise CompareError("--epoch and --a/--b epoch=...: give one or the other")
    a_name = a_run + (f" [{_describe(a_where)}]" if a_where else "")
    b_name = (b_run or a_run) + (f" [{_describe(b_where)}]" if b_where else "")
    left_out, notes = set(), []
    if b_run is not None and a_facts is not None and b_facts is not None:
        left_out, notes = check_runs(a=a_facts, b=b_facts, a_name=a_run, b_name=b_run)
    a, b = split_fit(a)[0], split_fit(b)[0]
    for frame, run in ((a, a_run), (b, b_run or a_run)):
        if frame.empty:
            raise CompareError(f"{run}: no finished cell stored yet; nothing to compare")
    if metrics:
        have = sorted(set(a["metric"]) | set(b["metric"]))
        for metric in metrics:
            if metric not in have:
                raise CompareError(f"--metric {metric}: not stored; use one of {', '.join(have)}")
        a, b = a[a["metric"].isin(metrics)], b[b["metric"].isin(metrics)]
    a_all, b_all = a, b
    a = select(a, where=a_where, flag="--a", run=a_run)
    b = select(b, where=b_where, flag="--b", run=b_run or a_run)
    # every attack a worst-case row is over (left-out ones and unselected attacks included)
    members = tuple(select(frame, where={k: v for k, v in where.items() if k != "attack"},
                           flag=flag, run=run) if "attack" in where else picked
                    for frame, where, flag, run, picked in (
                        (a_all, a_where, "--a", a_run, a),
                        (b_all, b_where, "--b", b_run or a_run, b)))
    a, b = a[~a["attack"].isin(left_out)], b[~b["attack"].isin(left_out)]
    if epochs:
        a, b = _epochs(a, b, epochs)
    on = tuple(k for k in KEYS if k not in a_where)
    rows = compare_frames(a=a, b=b, on=on, confidence=confidence, pair=pair)
    if rows.empty:
        head = (f"{a_run} and {b_run} share nothing to compare" if b_run is not None
                else f"{a_name} and {b_name} share nothing to compare")
        raise CompareError(_nothing_shared(a, b, on, head)
                           + "".join(f"; {n}" for n in notes if "left out" in n))
    notes += ensemble_notes(a=members[0], b=members[1], rows=rows, on=on,
                            attack=a_where.get("attack") if a_where.get("attack") == b_where.get(
                                "attack") else None,
                            a_norms=(a_facts or {}).get("norms", {}),
                            b_norms=(b_facts or a_facts or {}).get("norms", {}))
    notes += certified_notes(rows, a_facts, b_facts)  # certified rows over other verifiers
    points = int((degenerate_interval(rows) & (rows["b_minus_a"] != 0)).sum())
    if points:  # (a tie at 0, B equal to A on every seed, needs no note)
        notes.append(f"{points} of {len(rows)} row(s) differ by the same amount on every seed "
                     "(seeds that tie, up to float rounding): their interval is degenerate, "
                     "the difference itself, with no spread over seeds to measure")
    only = (len(a.drop_duplicates(list(on))) - len(rows), len(b.drop_duplicates(list(on)))
            - len(rows))
    if any(only):
        notes.append(f"measurements in one side only, not compared: {only[0]} in A, "
                     f"{only[1]} in B")
    return Comparison(a_name, b_name, on, rows, confidence, tuple(notes), pair)


def _epochs(a: pd.DataFrame, b: pd.DataFrame, epochs: Sequence[str]):
    wanted = set()
    for epoch in epochs:
        if epoch == "last":
            both = set(a["epoch"]) & set(b["epoch"])
            if not both:
                raise CompareError("--epoch last: the sides share no epoch")
            wanted.add(max(both))
        elif str(epoch).isdigit():
            wanted.add(int(epoch))
        else:
            raise CompareError(f"--epoch {epoch}: give an epoch number or 'last'")
    return a[a["epoch"].isin(wanted)], b[b["epoch"].isin(wanted)]

