"""The markdown report, rendered from the results store alone.

Every piece of text that comes from the store (the suite's name, description and file, labels,
parameters, errors, commands, versions) goes through ``benchbench.report.mdtext``, so it reads
as itself: no HTML, link, image, heading or table cell can come from a suite.
"""

from __future__ import annotations

import json

from benchbench.report.attack_params import params_text, stored_params
from benchbench.report.flags import LEGEND, flags_by_epoch, stored_attack_info
from benchbench.report.mdtext import code, fence, md, paragraphs
from benchbench.report.order import suite_order
from benchbench.report.plots import NORM_LABEL, FigureSpec, plan_figures, slug
from benchbench.report.pretrained import pretrained_lines
from benchbench.report.regime_plots import plan_regime_figures
from benchbench.report.tables import summary_tables
from benchbench.report.training import split_fit, training_section
from benchbench.report.verdicts import heading as verdict_heading
from benchbench.report.verdicts import verifier_info
from benchbench.store.processes import run_is_stale
from benchbench.store.results import ResultsStore
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
        lines.append(f"| {md(r['run_id'])} | {md(r['started'])} | "
                     f"{format_seconds(r['wall_s'])} | {md(status)} | {md(r['device'])} | "
                     f"{code(r['command'], table=True)} |")
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
            out += ([""] if caption else []) + [f"*{md(fig.caption)}*", ""]
            caption = fig.caption
        out.append(f"![{md(fig.alt)}]({where}/{fig.name})")
    out += [""] if figures else []
    out += [f"*{note}*" for note in notes] + ([""] if notes else [])
    return out


def _worst_heading(name: str, info: dict[str, dict]) -> str:
    norm = worst_norm(name)
    members = ", ".join(code(label) for label, a in info.items() if a.get("norm") == norm)
    return (f"Worst case over every {md(NORM_LABEL.get(norm, norm))} attack ({code(name)}: an "
            "input "
            f"counts as robust only if every attack failed on it; attacks: "
            f"{members or 'none declared'}):")


def _unfinished(meta: dict[str, str], cells: list[dict]) -> list[str]:
    """A line naming the suite's cells with no outcome stored (not run yet, or stopped before
    they finished: the next ``benchbench run`` goes on with them); none when every cell has one
    or the store predates the ``suite_cells`` record."""
    if meta.get("archived"):  # an archive's cells are not run again from it
        return []
    planned = json.loads(meta.get("suite_cells") or "[]")
    have = {c["cell_id"] for c in cells}
    missing = [name for cell_id, name in planned if cell_id not in have]
    if not missing:
        return []
    shown = ", ".join(md(name) for name in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return [f"- **not finished: {len(missing)} of the suite's {len(planned)} cells** (not run "
            f"yet, or stopped before they finished; `benchbench run` goes on with them): "
            f"{shown}{more}"]


def render_report(store: ResultsStore, *, stale=()) -> str:
    """The whole report as markdown: tables, figures (linked, see ``render_with_figures``),
    the suite, the command, versions and machine."""
    return render_with_figures(store, stale=stale)[0]


def _stale(stale, total: int) -> list[str]:
    """The header line naming cells other versions measured (``stale_cells``' list)."""
    if not stale:
        return []
    from benchbench.store.versions import describe_stale

    return [f"- **stale: {md(describe_stale(list(stale), total=total))}**; their numbers are "
            "what those versions measured (`benchbench run --force` measures them again)"]


def render_with_figures(store: ResultsStore, *, stale=()) -> tuple[str, list[FigureSpec]]:
    """The report's markdown and the figures it links (under ``figures_dir``), undrawn.
    ``stale``: the stored cells other versions of benchbench, torch or a plugin measured
    (``benchbench.store.versions.stale_cells`` against the installed code), named in the
    header."""
    meta, runs, cells = store.meta(), store.runs(), store.cells()
    ok = [c for c in cells if c["status"] == "ok"]
    failed = [c for c in cells if c["status"] != "ok"]
    wall = sum(r["wall_s"] or 0.0 for r in runs)
    compute = sum(c["wall_s"] or 0.0 for c in ok)
    last = runs[-1] if runs else {}
    out = [f"# benchbench report: {md(meta.get('suite_name', '?'))}", ""]
    if meta.get("suite_description"):
        out += [*paragraphs(meta["suite_description"]), ""]
    out += [
        f"- command: {code(last.get('command', 'n/a'))}",
        f"- wall time: {format_seconds(wall)} over {len(runs)} invocation(s) of `benchbench run`"
        f" (cells' own time {format_seconds(compute)})",
        f"- cells finished: {len(ok)}, failed: {len(failed)}; numbers stored: "
        f"{store.count_results()}", *_unfinished(meta, cells), *_stale(stale, len(ok)),
        f"- machine: {md(last.get('machine', 'n/a'))}; device: {md(last.get('device', 'n/a'))}",
        f"- benchbench {md(last.get('benchbench_version', '?'))}, torch "
        f"{md(last.get('torch_version', '?'))}, Python {md(last.get('python_version', '?'))}, "
        f"commit {md(last.get('commit_sha') or 'n/a')}",
        f"- suite hash: {code(meta.get('suite_hash', '?'))}, results schema v"
        f"{md(meta.get('schema_version', '?'))}", ""]
    (tidy, fit), info, seen = split_fit(store.tidy()), stored_attack_info(meta, ok), set()
    where, figures, bases = figures_dir(meta), [], set()
    classes, bounds = meta.get("num_classes"), json.loads(meta.get("bounds", "null"))
    chance = 1 / int(classes) if classes else None
    span = bounds[1] - bounds[0] if bounds else None
    keys = ["model", "regime", "dataset"]
    groups, fits = (dict(iter(frame.groupby(keys, sort=False))) for frame in (tidy, fit))
    order, effective = suite_order(meta, cells), stored_params(meta)
    verifiers = verifier_info(ok, meta)
    for table in summary_tables(tidy, order):
        dtypes = sorted({c["dtype"] for c in ok if c["model"] == table.model
                         and c["regime"] == table.regime})
        engines = sorted({c["engine"] or "n/a" for c in ok if c["model"] == table.model
                          and c["regime"] == table.regime})  # and why not stacked
        at = (table.model, table.regime, table.dataset)
        group = groups[at]
        flags = flags_by_epoch(group, info, chance=chance, span=span, verifiers=verifiers)
        frame = table.formatted()
        seen.update("".join(flags.values()))
        out += [f"## {md(table.title)}", "",
                f"Mean ± standard deviation over {len(table.seeds)} seed(s) "
                f"{list(table.seeds)}; accuracies and fractions in percent, losses are mean "
                f"cross-entropy; dtype {md(', '.join(map(str, dtypes)))}; engine "
                f"{md('; '.join(engines))}.", ""]
        out += pretrained_lines(ok, group, table.model, table.regime)  # given weights, zoo
        for name, columns in table.groups:
            part = frame[list(columns)]
            if name == "clean":
                part = part.assign(flags=[flags.get(int(e), "") for e in frame.index])
            else:
                part = part.rename(columns={c: c[len(name):].strip() for c in columns})
                said = verdict_heading(name, verifiers)  # a verifier, certified_, exact_
                if said:
                    out += [said, "", _markdown_table(part), ""]
                    continue
                if is_worst(name):
                    out += [_worst_heading(name, info), ""]
                    out += [_markdown_table(part), ""]
                    continue
                attack = info.get(name, {})
                params = md(params_text(attack.get("params", {}), effective.get(name)))
                scope = (f" on the first {attack['rows']:,} rows" if attack.get("rows")
                         else "") + (", at the last checkpoint only"
                                     if attack.get("at") == "last" else "")
                out += [f"Accuracy under {code(name)} ({md(attack.get('name', '?'))}"
                        f"{': ' + params if params else ''}){scope}:", ""]
            out += [_markdown_table(part), ""]
        out += training_section(fits.get(at, fit.iloc[:0]))
        base = slug(f"{table.model}-{table.regime}-{table.dataset}")
        while base in bases:
            base += "_"
        bases.add(base)
        made, notes = plan_figures(group, {**info, **verifiers}, base=base, title=table.title,
                                   chance=chance, order=order)
        figures += made
        out += _figures_section(made, notes, where)
    made, notes = plan_regime_figures(tidy, info, order=order,
                                      used={f.name.removesuffix(".png") for f in figures})
    if made or notes:
        out += ["## Regimes side by side", "", *_figures_section(made, notes, where)]
        figures += made
    if seen:
        out += ["Flags (gradient-masking checks, on the mean over seeds):", ""]
        out += [f"- **{letter}**: {LEGEND[letter]}" for letter in sorted(seen)]
        out.append("")
    if failed:
        out += ["## Failed cells", ""]
        out += [f"- {code(c['cell_id'])} {md(c['model'])} / {md(c['regime'])} / seed "
                f"{md(c['seed'])}: {md(c['error'])}" for c in failed]
        out.append("")
    plugins: dict[str, str] = {}
    for c in ok:
        plugins.update(json.loads(c["plugins"] or "{}"))
    out += ["## Plugins", "", "| kind:name | from |", "|---|---|"]
    out += [f"| {md(k)} | {md(v)} |" for k, v in sorted(plugins.items())]
    out += ["", "## Runs", "", *_runs_section(runs), "",
            f"## Suite ({code(meta.get('suite_path', '?'))})", "",
            *fence(meta.get("suite_toml", "").rstrip(), "toml"), ""]
    return "\n".join(out), figures


def _markdown_table(part) -> str:
    """``part`` as a Markdown table whose column names (attack labels) read as themselves."""
    return part.rename(columns={c: md(c) for c in part.columns}).to_markdown()
