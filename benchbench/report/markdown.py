"""The markdown report, rendered from the results store alone."""

from __future__ import annotations

import json

from benchbench.report.flags import LEGEND, flags_by_epoch, stored_attack_info
from benchbench.report.plots import NORM_LABEL, FigureSpec, plan_figures, slug
from benchbench.report.tables import summary_tables
from benchbench.report.training import split_fit, training_section
from benchbench.store.results import ResultsStore, run_is_stale
from benchbench.store.worst import is_worst, worst_norm


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


FIGURES = "figures"  # beside the report: figures/<suite name>/*.png


def figures_dir(meta: dict[str, str]) -> str:
    """Where a report's figures go, relative to the report: one folder per suite, so the
    reports of several runs can share a folder (``reports/``) without sharing figures."""
    return f"{FIGURES}/{slug(meta.get('suite_name', 'suite'))}"


def _figures_section(figures: list[FigureSpec], notes: list[str], where: str) -> list[str]:
    if not figures and not notes:
        return []
    out, caption = ["Figures (the tables' numbers):", ""], None
    for fig in figures:
        if fig.caption != caption:
            out += ([""] if caption else []) + [f"*{fig.caption}*", ""]
            caption = fig.caption
        out.append(f"![{fig.alt}]({where}/{fig.name})")
    out += [""] if figures else []
    out += [f"*{note}*" for note in notes] + ([""] if notes else [])
    return out


def _worst_heading(name: str, info: dict[str, dict]) -> str:
    norm = worst_norm(name)
    members = ", ".join(f"`{label}`" for label, a in info.items() if a.get("norm") == norm)
    return (f"Worst case over every {NORM_LABEL.get(norm, norm)} attack (`{name}`: an input "
            f"counts as robust only if every attack failed on it; attacks: "
            f"{members or 'none declared'}):")


def render_report(store: ResultsStore) -> str:
    """The whole report as markdown: tables, figures (linked, see ``render_with_figures``),
    the suite, the command, versions and machine."""
    return render_with_figures(store)[0]


def render_with_figures(store: ResultsStore) -> tuple[str, list[FigureSpec]]:
    """The report's markdown and the figures it links (under ``figures_dir``), undrawn."""
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
    (tidy, fit), info, seen = split_fit(store.tidy()), stored_attack_info(meta, ok), set()
    where, figures, bases = figures_dir(meta), [], set()
    classes, bounds = meta.get("num_classes"), json.loads(meta.get("bounds", "null"))
    chance = 1 / int(classes) if classes else None
    span = bounds[1] - bounds[0] if bounds else None
    keys = ["model", "regime", "dataset"]
    groups, fits = (dict(iter(frame.groupby(keys, sort=False))) for frame in (tidy, fit))
    for table in summary_tables(tidy):
        dtypes = sorted({c["dtype"] for c in ok if c["model"] == table.model
                         and c["regime"] == table.regime})
        at = (table.model, table.regime, table.dataset)
        group = groups[at]
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
                if is_worst(name):
                    out += [_worst_heading(name, info), ""]
                    out += [part.to_markdown(), ""]
                    continue
                attack = info.get(name, {})
                params = ", ".join(f"{k}={v}" for k, v in attack.get("params", {}).items())
                scope = (f" on the first {attack['rows']:,} rows" if attack.get("rows")
                         else "") + (", at the last checkpoint only"
                                     if attack.get("at") == "last" else "")
                out += [f"Accuracy under `{name}` ({attack.get('name', '?')}"
                        f"{': ' + params if params else ''}){scope}:", ""]
            out += [part.to_markdown(), ""]
        out += training_section(fits.get(at, fit.iloc[:0]))
        base = slug(f"{table.model}-{table.regime}-{table.dataset}")
        while base in bases:
            base += "_"
        bases.add(base)
        made, notes = plan_figures(group, info, base=base, title=table.title, chance=chance)
        figures += made
        out += _figures_section(made, notes, where)
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
    return "\n".join(out), figures
