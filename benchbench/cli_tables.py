"""Rendering for the CLI: the summary tables a run prints, the plugin list and a kit's checks
(progress is ``cli_progress``)."""

from __future__ import annotations

import io
import json

from rich import box
from rich.console import Console
from rich.table import Table

from benchbench.cli_progress import console


def summary_renderables(tables, *, width: int) -> list[Table]:
    """Rich tables for ``summary_tables``' tables, each at most ``width`` columns wide: short
    two-line headers, fewer decimals, and a wide table split into several (each repeating the
    epoch column) rather than folded."""
    from rich.measure import Measurement

    from benchbench.report.tables import terminal_columns

    probe = Console(width=100_000, file=io.StringIO())  # measures what a table would take

    def build(st, columns, title: str, caption: str | None) -> Table:
        table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, collapse_padding=True,
                      min_width=min(width, len(title) + 4))  # a title on one line
        table.add_column("epoch", justify="right", no_wrap=True)
        for header, _ in columns:
            table.add_column(header, justify="right", no_wrap=True)
        for i, epoch in enumerate(st.mean.index):
            table.add_row(str(epoch), *(cells[i] for _, cells in columns))
        return table

    def fits(table: Table) -> bool:
        return Measurement.get(probe, probe.options, table).maximum <= width

    out = []
    for st in tables:
        columns = terminal_columns(st)
        chunks: list[list] = [[]]
        for column in columns:  # as many columns as fit in each part
            if chunks[-1] and not fits(build(st, [*chunks[-1], column], st.title, None)):
                chunks.append([])
            chunks[-1].append(column)
        # as many parts, evened out (no last part of one column) where they still fit
        size, extra = divmod(len(columns), len(chunks))
        bounds = [i * size + min(i, extra) for i in range(len(chunks) + 1)]
        even = [columns[lo:hi] for lo, hi in zip(bounds, bounds[1:], strict=False)]
        if all(fits(build(st, chunk, st.title, None)) for chunk in even):
            chunks = even
        for i, chunk in enumerate(chunks, 1):
            title = st.title + (f" ({i}/{len(chunks)})" if len(chunks) > 1 else "")
            what = (f"mean±std over seeds {list(st.seeds)}" if len(st.seeds) > 1
                    else f"seed {st.seeds[0]}" if st.seeds else "no seeds")
            caption = f"{what}; accuracies and fractions in %" if i == len(chunks) else None
            out.append(build(st, chunk, title, caption))
    return out


def print_summary(summary, *, tables: bool = True) -> None:
    """The stored numbers as tables (unless not ``tables``: ``run --quiet``), then what ran."""
    from benchbench.report.order import suite_order
    from benchbench.report.tables import summary_tables
    from benchbench.report.training import split_fit
    from benchbench.store.results import read_store

    out = Console()
    if tables:
        with read_store(summary.run_dir) as store:  # as the report: in the suite's order
            order = suite_order(store.meta(), store.cells())
            shown = summary_tables(split_fit(store.tidy())[0], order)  # without training records
        for table in summary_renderables(shown, width=out.width):
            out.print(table)
    out.print(f"ran {len(summary.ran)} cell(s), skipped {len(summary.skipped)} already stored, "
              f"{len(summary.failed)} failed, in {summary.wall_s:.1f}s")
    out.print(f"results: {summary.run_dir / 'results.sqlite'}  report: "
              f"{summary.run_dir / 'report.md'}")
    if getattr(summary, "dropped", None):  # --update: where the old version's cells went
        out.print(f"archived {len(summary.dropped)} cell(s) the suite no longer has: "
                  f"{summary.archive}")
    for cell_id, error in summary.failed.items():
        console.print(f"[red]failed[/red] {cell_id}: {error}")


def print_plugins(registry, *, as_json: bool) -> None:
    rows = [{"kind": e.kind, "name": e.name, "plugin": e.source.plugin,
             "distribution": e.source.distribution, "version": e.source.version,
             "summary": e.summary}
            for kind in registry.entries.values() for e in kind.values()]
    failures = [{"plugin": f.plugin, "distribution": f.distribution, "error": f.error}
                for f in registry.failures]
    if as_json:
        print(json.dumps({"plugins": rows, "failures": failures}, indent=2))
        return
    table = Table(title="benchbench plugins")
    for col in ("kind", "name", "from", "summary"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["kind"], r["name"], f"{r['distribution']} {r['version']}"
                      + ("" if r["distribution"] == "benchbench" else f" ({r['plugin']})"),
                      r["summary"])
    Console().print(table)
    for f in failures:
        console.print(f"[red]plugin {f['plugin']} ({f['distribution']}) failed to load:[/red] "
                      f"{f['error']}")


def print_checks(name: str, checks, *, kind: str = "attack") -> None:
    table = Table(title=f"conformance of {kind} {name!r}")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]", c.detail)
    console = Console()
    console.print(table)
    failed = sum(not c.passed for c in checks)
    console.print(f"{len(checks) - failed} of {len(checks)} checks passed")
