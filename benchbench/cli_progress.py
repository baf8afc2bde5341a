"""Rich rendering for the CLI: progress bars, the summary table and the plugin list."""

from __future__ import annotations

import io
import json

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from benchbench.engine.cell import Events

console = Console(stderr=True)


class RichEvents(Events):
    """Progress bars: the run's cells, and the epochs of each unit training now (several at
    once with a parallel executor: each unit's bar is keyed by its first cell)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console)
        self.cells = None
        self.epochs: dict[str, int] = {}  # first cell id -> its bar
        self.finished: set[str] = set()
        self.started = False

    def __enter__(self) -> RichEvents:
        return self  # the bars start with the first event: an error before any prints alone

    def __exit__(self, *exc) -> None:
        if self.started:
            self.progress.stop()

    @property
    def bars(self) -> Progress:
        if not self.started:
            self.progress.start()
            self.started = True
        return self.progress

    def log(self, message: str) -> None:  # literal (a path's [x] is no markup), one line
        self.bars.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def cell_started(self, spec, epochs, index, total) -> None:
        if self.cells is None:
            self.cells = self.bars.add_task("cells", total=total)
        for key in [k for k in self.epochs if k in self.finished]:  # done: make room
            self.bars.remove_task(self.epochs.pop(key))
        if spec.cell_id in self.epochs:  # started again (a retried unit)
            self.bars.remove_task(self.epochs.pop(spec.cell_id))
        self.finished.discard(spec.cell_id)
        self.epochs[spec.cell_id] = self.bars.add_task(f"  {spec.describe()}: epochs",
                                                       total=epochs)

    def epoch_done(self, spec, epoch) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], completed=epoch)

    def evaluating(self, spec, epoch, what) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], description=(
                f"  {spec.describe()}: epoch {epoch}, evaluating {what}"))

    def cell_finished(self, spec, outcome) -> None:
        if spec.cell_id in self.epochs:
            self.bars.update(self.epochs[spec.cell_id], description=(
                f"  {spec.describe()}: done in {outcome.wall_s:.1f}s"))
            self.finished.add(spec.cell_id)
        if self.cells is not None:
            self.bars.advance(self.cells)


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


def print_summary(summary) -> None:
    from benchbench.report.tables import summary_tables
    from benchbench.report.training import split_fit
    from benchbench.store.results import read_store

    out = Console()
    with read_store(summary.run_dir) as store:
        tables = summary_tables(split_fit(store.tidy())[0])  # the report shows training records
    for table in summary_renderables(tables, width=out.width):
        out.print(table)
    out.print(f"ran {len(summary.ran)} cell(s), skipped {len(summary.skipped)} already stored, "
              f"{len(summary.failed)} failed, in {summary.wall_s:.1f}s")
    out.print(f"results: {summary.run_dir / 'results.sqlite'}  report: "
              f"{summary.run_dir / 'report.md'}")
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


def print_checks(name: str, checks) -> None:
    table = Table(title=f"conformance of attack {name!r}")
    for col in ("check", "result", "detail"):
        table.add_column(col)
    for c in checks:
        table.add_row(c.name, "[green]pass[/green]" if c.passed else "[red]FAIL[/red]", c.detail)
    console = Console()
    console.print(table)
    failed = sum(not c.passed for c in checks)
    console.print(f"{len(checks) - failed} of {len(checks)} checks passed")
