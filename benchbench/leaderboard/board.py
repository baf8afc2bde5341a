"""The board: which entries are ranked together, by which number, in which order.

Without a protocol, every entry is ranked by its worst case, but only against entries whose worst
case is over the same attacks with the same parameters (``attack_sets.group_entries``): one
group, one ranking, as before; several groups, one ranking each, lettered A, B, ..., and a
warning (``board_warnings``). With a protocol (``protocols.PROTOCOLS``), only the entries
evaluated under it are ranked, all together, by the protocol's number; the rest are listed as
left out, each with why.

Each ranked entry gets ``rank`` (1 = best, within its group), ``group`` (a letter, or null with
one group), ``ranked`` (the summary it is ranked by, with ``by``, ``attacks`` and ``exact``) and
``params_incomplete`` (labels of its attacks whose parameters are not recorded in full).
"""

from __future__ import annotations

from benchbench.leaderboard import BOARD_SCHEMA, BOARD_VERSION
from benchbench.leaderboard.attack_sets import Group, group_entries, params_complete
from benchbench.leaderboard.runs import LeaderboardError

SHARED = ("dataset", "test_split", "threat_model", "eps")
SUMMARY = ("mean", "std", "ci95", "n", "values")


def rank_label(e: dict) -> str:
    """``3``, or ``B3`` (group B's third) when the board has several groups."""
    return f"{e['group'] or ''}{e['rank']}"


def _sort_key(e: dict):
    clean = (e["clean_accuracy"] or {}).get("mean")
    return (-e["ranked"]["mean"], -(clean if clean is not None else -1.0), e["id"])


def _run_name(e: dict) -> str:
    return e["run"].get("name") or e["run"]["dir"]


def _worst_ranked(e: dict) -> dict:
    w = e["worst_case"]
    return {"by": "worst_case", **{k: w[k] for k in SUMMARY}, "attacks": list(w["attacks"]),
            "exact": w["exact"]}


def _protocol_groups(entries: list[dict], protocol) -> tuple[list[Group], list[dict]]:
    from benchbench.leaderboard.protocols import admit, ranked_summary

    admitted, excluded = [], []
    for e in entries:
        labels, why = admit(protocol, e)
        if labels is None:
            excluded.append({"id": e["id"], "name": e["name"], "run": _run_name(e), "why": why})
        else:
            admitted.append({**e, "ranked": {"by": "protocol", **ranked_summary(e, labels)}})
    if not admitted:
        shown = "; ".join(f"{x['id']}: {x['why']}" for x in excluded[:3])
        more = f"; and {len(excluded) - 3} more" if len(excluded) > 3 else ""
        raise LeaderboardError(f"--protocol {protocol.name}: no entry was evaluated under it "
                               f"({protocol.text()}): {shown}{more}; run the protocol's attack "
                               "in the suites, or leave --protocol out")
    return [Group(None, [r.text() for r in protocol.requires], admitted)], excluded


def board_data(entries: list[dict], *, protocol=None) -> dict:
    """What ``leaderboard.json`` holds: the threat model, the protocol (or null), the groups,
    the entries left out, the flag legend and the ranked entries."""
    if protocol is not None:
        groups, excluded = _protocol_groups(entries, protocol)
    else:
        groups = group_entries([{**e, "ranked": _worst_ranked(e)} for e in entries])
        excluded = []
    ranked = []
    for g in groups:
        for i, e in enumerate(sorted(g.entries, key=_sort_key), start=1):
            incomplete = sorted(label for label, a in e["robust_accuracy"].items()
                                if not params_complete(a))
            ranked.append({"rank": i, "group": g.id, **e, "params_incomplete": incomplete})
    legend = {}
    for e in ranked:
        legend.update(e["flag_meanings"])
    first = ranked[0]
    return {
        "schema": BOARD_SCHEMA, "schema_version": BOARD_VERSION,
        **{key: first[key] for key in SHARED},
        "protocol": None if protocol is None else {
            "name": protocol.name, "title": protocol.title, "description": protocol.description,
            "requires": protocol.text(), "reference": protocol.reference},
        "checkpoint_rules": sorted({e["checkpoint"].get("rule", "?") for e in ranked}),
        "ranked_by": (f"the protocol's robust accuracy ({protocol.title}), mean over seeds "
                      "(descending), then clean_accuracy.mean" if protocol is not None else
                      "worst_case.mean (descending), then clean_accuracy.mean, within each group "
                      "of entries evaluated with the same attacks and parameters"),
        "groups": [{"id": g.id, "attacks": g.attacks, "entries": [e["id"] for e in ranked
                                                                 if e["group"] == g.id]}
                   for g in groups],
        "excluded": excluded,
        "flag_legend": dict(sorted(legend.items())), "entries": ranked}


def board_warnings(board: dict) -> list[str]:
    """What stderr should say about ``board``: groups ranked apart, entries left out by the
    protocol, entries that lack their attacks' parameters."""
    out = []
    groups = board["groups"]
    if len(groups) > 1:
        from benchbench.leaderboard.protocols import PROTOCOLS

        shown = "; ".join(f"{g['id']}, {len(g['entries'])} entr"
                          f"{'y' if len(g['entries']) == 1 else 'ies'}: {', '.join(g['attacks'])}"
                          for g in groups)
        out.append(f"warning: the entries' worst cases are over {len(groups)} different sets of "
                   f"attacks (or parameters), so each set is ranked on its own ({shown}); pass "
                   f"--protocol ({', '.join(sorted(PROTOCOLS))}) to rank entries under one "
                   "protocol")
    protocol = board["protocol"]
    for x in board["excluded"]:
        out.append(f"warning: entry {x['id']} ({x['name']}, {x['run']}): not evaluated under "
                   f"protocol {protocol['name']}: {x['why']}; left out")
    old = [e["id"] for e in board["entries"] if e["schema_version"] < 2]
    if old:
        out.append(f"warning: {len(old)} entr{'y is' if len(old) == 1 else 'ies are'} of schema "
                   f"version 1 ({', '.join(old[:3])}{' ...' if len(old) > 3 else ''}), which "
                   "does not record the attacks' parameters in full; marked so on the board "
                   "(rebuild from the runs to record them)")
    return out
