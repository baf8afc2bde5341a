"""The quick_digits reference run: its stored rows, and the CPU kind they were measured on.

``python -m tests.reference_run`` (from the repository root) runs ``suites/quick_digits.toml``
and rewrites ``tests/fixtures/quick_digits_reference.json``; ``test_regimes`` compares a fresh
run with it. Bits are only comparable on the CPU kind, thread count and torch that made them
(``cpu_kind``); elsewhere counts compare exactly and losses within a rounding tolerance.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "quick_digits_reference.json"
SUITE = Path(__file__).parents[1] / "suites" / "quick_digits.toml"
QUERY = ("SELECT cell_id, epoch, split, attack, eps, metric, value FROM results "
         "WHERE attack NOT LIKE 'worst\\_%' ESCAPE '\\' ORDER BY 1, 2, 3, 4, 5, 6")


def cpu_kind() -> dict:
    """What a float's last bits depend on here: the CPU model, the kernels torch chose for it,
    the thread count, torch's version and MKL's reproducibility mode."""
    import torch

    from benchbench.engine import blas
    from benchbench.engine.runner import machine_description

    return {"machine": machine_description(), "capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "blas": blas.mode_label()}


def stored_rows(run_dir: Path) -> list[list]:
    """Every stored number but the worst-case rows, its value as ``float.hex``."""
    from benchbench.store.results import read_store

    with read_store(run_dir) as store:
        rows = store.conn.execute(QUERY).fetchall()
    return [[*r[:6], float(r[6]).hex()] for r in rows]


def run_quick_digits(registry, out: Path) -> list[list]:
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite

    run_suite(load_suite(SUITE, registry), registry=registry, out_dir=out, device="cpu")
    return stored_rows(out)


def main() -> None:
    import subprocess

    from benchbench.plugins import load_registry

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_quick_digits(load_registry(), Path(tmp) / "run")
    FIXTURE.write_text(json.dumps({
        "made_by": f"benchbench at {commit}, suites/quick_digits.toml, --engine auto "
                   "(python -m tests.reference_run)",
        "cpu_kind": cpu_kind(), "rows": rows}, indent=0) + "\n")
    print(f"wrote {FIXTURE} ({len(rows)} rows)", file=sys.stderr)


if __name__ == "__main__":
    main()
