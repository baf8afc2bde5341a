"""One leaderboard entry per (model, regime) of a run: plain data, written as one JSON file.

Every number is a fraction in [0, 1] with its per-seed values, mean, sample standard deviation
and 95% t-interval over seeds (``summary``). The worst case over attacks at the threat model's
eps and checkpoint is: the one attack's accuracy when only one was evaluated there (exact), the
stored per-example ensemble (``worst_<norm>`` rows: an input counts as robust only if every
attack of that norm failed on it) when those rows cover every seed the attacks cover, otherwise
the per-seed minimum over the attacks' accuracies, an upper bound (per-example results not stored
for every seed). Each attack carries its parameters in full: those the run stored plus the
installed attack's defaults for keys it did not (``full_params``). The README documents every
field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable

from benchbench.leaderboard import ENTRY_SCHEMA, SCHEMA_VERSION
from benchbench.leaderboard.runs import RunData, ThreatModel, eps_key
from benchbench.store.worst import is_worst, worst_name

CHECKPOINTS = ("last", "best")
#: flags that describe the model rather than a symptom of a misled attack: shown, but alone they
#: do not mark an evaluation unreliable ("S": p_y rounds to 1.0, so plain cross-entropy loses
#: its gradient; the symptoms it causes are the other letters, "L" above all)
INFORMATIVE = frozenset("S")
WORST_KINDS = {
    "per_example": "exact: per example, an input counts only if every {norm} attack of the "
                   "run failed on it (AutoAttack's rule)",
    "single_attack": "exact: one {norm} attack was evaluated at this checkpoint and eps",
    "upper_bound": "upper bound: per-example results not stored for every seed, so the minimum "
                   "over the attacks' accuracies (per seed, then the mean); the ensemble can "
                   "only be lower",
}


def summary(values: list[float]) -> dict:
    """Mean, sample std and 95% t-interval over seeds of ``values`` (in seed order)."""
    n = len(values)
    mean = sum(values) / n
    out = {"mean": mean, "std": None, "ci95": None, "n": n, "values": list(values)}
    if n >= 2:
        from scipy import stats

        std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
        half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        out.update(std=std, ci95=[mean - half, mean + half])
    return out


def slug(text: str) -> str:
    """``text`` as an id: A-Z a-z 0-9 _ . - only, at most 180 characters (room for the ``-2``
    a clash appends, within the schema's 200 and a file name's 255 bytes)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:180].strip("._") or "entry"


def _per_seed(rows) -> dict[int, float]:
    return {int(s): float(v) for s, v in rows[["seed", "value"]].itertuples(index=False)}


def _at_eps(group, threat: ThreatModel, info: dict):
    """Test accuracy rows of ``threat``'s norm and eps: ({label: rows}, worst rows)."""
    test = group[(group["split"] == "test") & (group["metric"] == "accuracy")
                 & (group["attack"] != "none")]
    test = test[[eps_key(e) == threat.eps for e in test["eps"]]]
    attacks = {label: rows for label, rows in test.groupby("attack")
               if not is_worst(label) and info.get(label, {}).get("norm") == threat.norm}
    return attacks, test[test["attack"] == worst_name(threat.norm)]


def _seeds(rows) -> set[int]:
    return {int(s) for s in rows["seed"]}


def _fmt_seeds(seeds) -> str:
    seeds = sorted(seeds)
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _at_epoch(attacks: dict, worst, epoch: int) -> tuple[dict, object, set[int]]:
    """At ``epoch``: the attacks' rows (attacks with none left out), the stored worst rows, and
    every seed any attack has there."""
    here = {label: rows[rows["epoch"] == epoch] for label, rows in attacks.items()}
    here = {label: rows for label, rows in here.items() if not rows.empty}
    need = set().union(*(_seeds(rows) for rows in here.values()))
    return here, worst[worst["epoch"] == epoch], need


def _worst_per_seed(attacks: dict, worst, epoch: int, *,
                    use_stored: bool = True) -> tuple[dict, str, list, str | None]:
    """Seed -> worst-case accuracy at ``epoch``, its kind, the attacks it covers and why stored
    worst rows were not used (``None``: they were, or there are none).

    The stored per-example rows are used only where they cover every seed that any attack has
    at ``epoch`` (a v2 store continued by ``run`` has them for the newly measured seeds only);
    otherwise every seed gets the minimum over the attacks, an upper bound."""
    here, stored, need = _at_epoch(attacks, worst, epoch)
    why = None
    if use_stored and len(here) != 1 and not stored.empty:
        if need <= _seeds(stored):
            return ({s: v for s, v in _per_seed(stored).items() if s in need}, "per_example",
                    sorted(here), None)
        why = (f"per-example results stored for {_fmt_seeds(_seeds(stored) & need)} only, not "
               f"for {_fmt_seeds(need - _seeds(stored))}")
    per = {label: _per_seed(rows) for label, rows in here.items()}
    seeds = set.intersection(*(set(p) for p in per.values())) if per else set()
    values = {s: min(p[s] for p in per.values()) for s in sorted(seeds)}
    return values, ("single_attack" if len(per) == 1 else "upper_bound"), sorted(per), why


def _stored_covers(attacks: dict, worst, epoch: int) -> bool:
    """Whether the stored worst rows at ``epoch`` cover every seed any attack has there."""
    _, stored, need = _at_epoch(attacks, worst, epoch)
    return not stored.empty and need <= _seeds(stored)


def choose_epoch(attacks: dict, worst, epochs: list[int],
                 rule: str) -> tuple[int, str, str | None]:
    """The checkpoint for ``rule``, a sentence saying how it was chosen, and a note for the
    entry when ``best`` could not consider every checkpoint (``None`` otherwise).

    ``best`` considers only the checkpoints with the same attacks at this eps as the last one
    (an ``at = "last"`` attack must not leave the earlier ones a weaker worst case to win on);
    when no other has them, it is the last."""
    last = max(epochs)
    if rule == "last" or len(epochs) == 1:
        return last, f"last: the final checkpoint, epoch {last}", None
    per_epoch = {e: sorted(label for label, rows in attacks.items() if (rows["epoch"] == e).any())
                 for e in epochs}
    final = per_epoch[last]
    same = [e for e in epochs if per_epoch[e] == final]
    others = [e for e in epochs if e not in same]
    names = ", ".join(final) or "none"
    note = None
    if others:
        lacking = sorted(set().union(*(set(final) - set(per_epoch[e]) for e in others)))
        extra = sorted(set().union(*(set(per_epoch[e]) - set(final) for e in others)))
        what = " and ".join(
            ([f"lack{'s' if len(others) == 1 else ''} {', '.join(lacking)}"] if lacking else [])
            + ([f"ha{'s' if len(others) == 1 else 've'} {', '.join(extra)}"] if extra else []))
        note = (f"best checkpoint chosen among epoch{'s' if len(same) > 1 else ''} "
                f"{', '.join(map(str, same))} only: epoch{'s' if len(others) > 1 else ''} "
                f"{', '.join(map(str, others))} {what} at this eps, so their worst case is not "
                "over the last checkpoint's attacks")
    if same == [last]:
        return last, (f"best: epoch {last}, the last checkpoint: no other of {epochs} has its "
                      f"attacks at this eps ({names})"), note
    stored = all(_stored_covers(attacks, worst, e) for e in same)
    scores = {}
    for e in same:
        values = (_per_seed(worst[worst["epoch"] == e]) if stored
                  else _worst_per_seed(attacks, worst, e, use_stored=False)[0])
        if values:
            scores[e] = sum(values.values()) / len(values)
    if not scores:
        return last, f"last: the final checkpoint, epoch {last} (no checkpoint to compare)", note
    best = max(sorted(scores), key=lambda e: scores[e])  # ties: the earliest epoch
    basis = ("the stored per-example worst case" if stored else
             f"the per-seed minimum over {names}")
    among = (f"among epochs {same}, those with the last checkpoint's attacks at this eps "
             f"({names})" if others else f"among {epochs}")
    return best, (f"best: epoch {best}, the highest worst-case robust accuracy (mean over "
                  f"seeds, {basis}) {among}; chosen on the test split itself, so "
                  "optimistic"), note


def _rows_note(robust: dict, kind: str) -> str | None:
    """A note when the entry's attacks ran on different test inputs (``rows``)."""
    rows = {label: a.get("rows") for label, a in robust.items()}
    if len(set(rows.values())) < 2:
        return None
    shown = ", ".join(f"{label}: {'all' if n is None else f'the first {n}'}"
                      for label, n in sorted(rows.items()))
    fewest = min(n for n in rows.values() if n is not None)
    if kind == "per_example":
        tail = f"the worst case is over the first {fewest}, where every attack ran"
    else:
        tail = "the minimum compares accuracies over different inputs"
    return f"the attacks ran on different test inputs ({shown}): {tail}"


def _versions(cells: list[dict]) -> dict:
    plugins: dict[str, set] = {}
    for c in cells:
        for k, v in json.loads(c["plugins"] or "{}").items():
            plugins.setdefault(k, set()).add(v)
    join = lambda values: ", ".join(sorted(str(v) for v in values if v)) or None  # noqa: E731
    return {"benchbench": join({c["benchbench_version"] for c in cells}),
            "torch": join({c["torch_version"] for c in cells}),
            "plugins": {k: join(v) for k, v in sorted(plugins.items())}}


def full_params(name: str | None, params: dict,
                defaults: Callable[[str], tuple[dict, list] | None]) -> tuple[dict, list, bool]:
    """An attack's parameters in full: ``params`` as the run stored them plus, for keys it did not
    store (a key added to the attack after the suite ran, left out at its default), the
    installed attack's defaults; (those parameters, the keys filled in, whether every key the
    attack accepts is now there). ``defaults(name)`` is the installed attack's (defaults,
    accepted keys), ``None`` when it is not installed: then nothing is filled in and the
    parameters are not known to be complete."""
    known = defaults(name) if name else None
    if known is None:
        return dict(sorted(params.items())), [], False
    values, accepted = known
    filled = sorted(k for k in values if k not in params)
    full = dict(sorted({**{k: values[k] for k in filled}, **params}.items()))
    return full, filled, set(accepted) <= set(full)


def _architecture(model: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(model.get("params", {}).items()))
    return f"{model['name']}({params})"


def run_entries(run: RunData, *, threat: ThreatModel, checkpoint: str, link: str | None,
                defaults: Callable[[str], tuple[dict, list] | None] = lambda name: None,
                ) -> list[dict]:
    """The entries of ``run`` at ``threat``: one per (model, regime) with attacks at its eps;
    each attack's parameters in full (``full_params`` with ``defaults``)."""
    from benchbench.leaderboard.certified import certified_entry
    from benchbench.report.flags import LEGEND, flags_by_epoch
    from benchbench.report.training import collapses
    from benchbench.report.verdicts import verifier_info

    classes, bounds = run.meta.get("num_classes"), json.loads(run.meta.get("bounds", "null"))
    chance = 1 / int(classes) if classes else None
    span = bounds[1] - bounds[0] if bounds else None
    stale = {s.cell_id: s for s in run.stale}
    verifiers = verifier_info(run.cells, run.meta)  # not attacks: no attack flag reads them
    out = []
    for (model, regime), group in run.tidy.groupby(["model", "regime"], sort=False):
        attacks, worst = _at_eps(group, threat, run.info)
        if not attacks and worst.empty:
            continue
        epochs = sorted({int(e) for rows in attacks.values() for e in rows["epoch"]}
                        | {int(e) for e in worst["epoch"]})
        epoch, how, chosen = choose_epoch(attacks, worst, epochs, checkpoint)
        values, kind, covered, partial = _worst_per_seed(attacks, worst, epoch)
        if not values:  # no seed has every attack at this checkpoint
            continue
        clean = group[(group["split"] == "test") & (group["attack"] == "none")
                      & (group["metric"] == "accuracy") & (group["epoch"] == epoch)]
        flags = flags_by_epoch(group[[not is_worst(a) for a in group["attack"]]], run.info,
                               chance=chance, span=span, verifiers=verifiers).get(epoch, "")
        flags = flags.replace("G", "")  # the gap is the entry's certified.gap, not a symptom
        cells = [c for c in run.cells if c["model"] == model and c["regime"] == regime]
        spec = json.loads(cells[0]["spec"])
        fit = run.fit[(run.fit["model"] == model) & (run.fit["regime"] == regime)]
        robust = {}
        for label, rows in sorted(attacks.items()):
            rows = rows[rows["epoch"] == epoch]
            if rows.empty:
                continue
            meta = run.info.get(label, {})
            params, filled, complete = full_params(meta.get("name"), meta.get("params", {}),
                                                   defaults)
            robust[label] = {"attack": meta.get("name"), "norm": meta.get("norm"),
                             "params": params, "params_complete": complete,
                             "params_filled": filled, "rows": meta.get("rows"),
                             **summary(list(_per_seed(rows).values()))}
        differences = sorted({(d.name, d.stored, d.installed) for c in cells
                              if c["cell_id"] in stale for d in stale[c["cell_id"]].differences})
        notes = []
        if kind == "upper_bound":
            notes.append("worst case is an upper bound: " + (
                f"{partial} (a store continued from before per-example results), so the "
                "minimum over the attacks for every seed" if partial else
                "per-example results not stored"))
        elif kind == "single_attack":
            notes.append(f"worst case from one attack ({covered[0]}): the only "
                         f"{threat.norm} attack evaluated at this checkpoint and eps")
        if chosen:
            notes.append(chosen)
        different_rows = _rows_note(robust, kind)  # robust holds exactly the covered attacks
        if different_rows:
            notes.append(different_rows)
        overfit = collapses(fit)
        if overfit:
            notes.append(f"catastrophic overfitting: the PGD monitor collapsed in {len(overfit)} "
                         f"of {len(cells)} seeds while training")
        unknown = sorted(label for label, a in robust.items() if not a["params_complete"])
        if unknown:
            notes.append(f"parameters not known in full for {', '.join(unknown)}: the attack is "
                         "not installed here (or wraps a library that keeps its own defaults), "
                         "so only the parameters the run stored are recorded")
        if differences:
            notes.append("stale: measured with other versions than the installed ones (" +
                         ", ".join(f"{n} {s} (installed: {i})" for n, s, i in differences) + ")")
        certified = certified_entry(group, norm=threat.norm, eps=threat.eps, epoch=epoch,
                                    verifiers=verifiers, summary=summary)
        out.append({
            "schema": ENTRY_SCHEMA, "schema_version": SCHEMA_VERSION,
            "id": slug(f"{run.path.name}--{model}--{regime}"),
            "name": f"{model} · {regime}",
            "run": {"name": run.meta.get("suite_name"), "dir": str(run.path),
                    "description": run.meta.get("suite_description"),
                    "suite_path": run.meta.get("suite_path")},
            "link": link,
            "dataset": threat.dataset, "test_split": threat.test,
            "train_split": run.dataset.get("train"),
            "threat_model": threat.norm, "eps": threat.eps,
            "model": spec["model"], "architecture": _architecture(spec["model"]),
            "regime": spec["regime"], "dtype": cells[0]["dtype"],
            "seeds": sorted({int(c["seed"]) for c in cells}),
            "epochs": spec["regime"]["params"].get("epochs"),
            "checkpoint": {"rule": checkpoint, "epoch": epoch, "stored": epochs, "how": how},
            "clean_accuracy": summary(list(_per_seed(clean).values())) if not clean.empty
            else None,
            "robust_accuracy": robust,
            **({} if certified is None else {"certified": certified}),  # verifiers ran
            "worst_case": {"kind": kind, "exact": kind != "upper_bound",
                           "meaning": WORST_KINDS[kind].format(norm=threat.norm),
                           "attacks": covered, **summary(list(values.values()))},
            "flags": flags, "flag_meanings": {f: LEGEND.get(f, "") for f in flags},
            "unreliable": bool(set(flags) - INFORMATIVE),
            "unreliable_because": "".join(sorted(set(flags) - INFORMATIVE)),
            "catastrophic_overfitting": {str(s): e for s, e in overfit.items()},
            "stale": [{"name": n, "stored": s, "installed": i} for n, s, i in differences],
            "wall_time_s": sum(c["wall_s"] or 0.0 for c in cells),
            "device": ", ".join(sorted({c["device"] for c in cells if c["device"]})),
            "engine": ", ".join(sorted({c["engine"] for c in cells if c["engine"]})),
            "suite_hash": run.meta.get("suite_hash"),
            "versions": _versions(cells),
            "finished": max((c["finished"] or "" for c in cells), default="") or None,
            "notes": notes,
        })
    return out
