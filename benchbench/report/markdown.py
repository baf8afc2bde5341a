"""The markdown report, rendered from the results store alone."""

from __future__ import annotations

import json

from benchbench.report.flags import LEGEND, attack_info, flags_by_epoch
from benchbench.report.tables import summary_tables
from benchbench.report.training import split_fit, training_section
from benchbench.store.results import ResultsStore, run_is_stale


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _runs_section(runs: list[dict]) -> list[str]:
    """One row per ``benchbench run``. A run still stored as "running" whose process is gone
    from this host (killed with ``kill -9``, say) shows as "interrupted", as the next ``run``
    on the directory will store it."""
    lines = ["| run | started (UTC) | wall time | status | device | command |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        status = "interrupted" if run_is_stale(r) else r["status"]
        lines.append(f"| {r['run_id']} | {r['started']} | {format_seconds(r['wall_s'])} | "
                     f"{status} | {r['device']} | `{r['command']}` |")
    return lines


def render_report(store: ResultsStore) -> str:
    """The whole report as markdown: tables, the suite, the command, versions and machine."""
    meta, runs, cells = store.meta(), store.runs(), store.cells()
    ok = [c for c in cells if c["status"] == "ok"]
    failed = [c for c in cells if c["status"] != "ok"]
    wall = sum(r["wall_s"] or 0.0 for r in runs)
    compute = sum(c["wall_s"] or 0.0 for c in ok)
    last = runs[-1] if runs else {}
    out = [f"# benchbench report: {meta.get('suite_name', '?')}", ""]
    if meta.get("suite_description"):
        out += [meta["suite_description"], ""]
    out += [
        f"- command: `{last.get('command', 'n/a')}`",
        f"- wall time: {format_seconds(wall)} over {len(runs)} invocation(s) of `benchbench run`"
        f" (cells' own time {format_seconds(compute)})",
        f"- cells finished: {len(ok)}, failed: {len(failed)}; numbers stored: "
        f"{store.count_results()}",
        f"- machine: {last.get('machine', 'n/a')}; device: {last.get('device', 'n/a')}",
        f"- benchbench {last.get('benchbench_version', '?')}, torch "
        f"{last.get('torch_version', '?')}, Python {last.get('python_version', '?')}, "
        f"commit {last.get('commit_sha') or 'n/a'}",
        f"- suite hash: `{meta.get('suite_hash', '?')}`, results schema v"
        f"{meta.get('schema_version', '?')}", ""]
    norms = json.loads(meta["attack_norms"]) if "attack_norms" in meta else None
    (tidy, fit), info, seen = split_fit(store.tidy()), attack_info(ok, norms), set()
    classes, bounds = meta.get("num_classes"), json.loads(meta.get("bounds", "null"))
    chance = 1 / int(classes) if classes else None
    span = bounds[1] - bounds[0] if bounds else None
    for table in summary_tables(tidy):
        dtypes = sorted({c["dtype"] for c in ok if c["model"] == table.model
                         and c["regime"] == table.regime})
        group = tidy[(tidy.model == table.model) & (tidy.regime == table.regime)
                     & (tidy.dataset == table.dataset)]
        flags = flags_by_epoch(group, info, chance=chance, span=span)
        frame = table.formatted()
        seen.update("".join(flags.values()))
        out += [f"## {table.title}", "",
                f"Mean ± standard deviation over {len(table.seeds)} seed(s) "
                f"{list(table.seeds)}; accuracies and fractions in percent, losses are mean "
                f"cross-entropy; dtype {', '.join(dtypes)}.", ""]
        for name, columns in table.groups:
            part = frame[list(columns)]
            if name == "clean":
                part = part.assign(flags=[flags.get(int(e), "") for e in frame.index])
            else:
                part = part.rename(columns={c: c[len(name):].strip() for c in columns})
                attack = info.get(name, {})
                params = ", ".join(f"{k}={v}" for k, v in attack.get("params", {}).items())
                scope = (f" on the first {attack['rows']:,} rows" if attack.get("rows")
                         else "") + (", at the last checkpoint only"
                                     if attack.get("at") == "last" else "")
                out += [f"Accuracy under `{name}` ({attack.get('name', '?')}"
                        f"{': ' + params if params else ''}){scope}:", ""]
            out += [part.to_markdown(), ""]
        out += training_section(fit[(fit.model == table.model) & (fit.regime == table.regime)
                                    & (fit.dataset == table.dataset)])
    if seen:
        out += ["Flags (gradient-masking checks, on the mean over seeds):", ""]
        out += [f"- **{letter}**: {LEGEND[letter]}" for letter in sorted(seen)]
        out.append("")
    if failed:
        out += ["## Failed cells", ""]
        out += [f"- `{c['cell_id']}` {c['model']} / {c['regime']} / seed {c['seed']}: "
                f"{c['error']}" for c in failed]
        out.append("")
    plugins: dict[str, str] = {}
    for c in ok:
        plugins.update(json.loads(c["plugins"] or "{}"))
    out += ["## Plugins", "", "| kind:name | from |", "|---|---|"]
    out += [f"| {k} | {v} |" for k, v in sorted(plugins.items())]
    out += ["", "## Runs", "", *_runs_section(runs), "",
            f"## Suite (`{meta.get('suite_path', '?')}`)", "", "```toml",
            meta.get("suite_toml", "").rstrip(), "```", ""]
    return "\n".join(out)
