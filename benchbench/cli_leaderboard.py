"""The ``benchbench leaderboard`` command (its own module; registered by ``benchbench.cli``)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` to ``app``."""
