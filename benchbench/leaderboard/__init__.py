"""The leaderboard: one JSON entry per (run, model, regime), rendered from those files alone.

``build.build_leaderboard`` reads run directories (``runs.load_run``), fixes one threat model
shared by all of them (``runs.choose_threat_model``: one dataset, one norm, one eps, or a one-line
refusal naming what differs), writes one entry per (model, regime) of each run
(``entries.run_entries``) to ``OUT/entries/<id>.json``, then renders ``leaderboard.md``,
``leaderboard.json``, ``index.html`` and ``leaderboard.png`` from those files alone
(``render.render_files``). The entry format is ``ENTRY_SCHEMA`` version ``SCHEMA_VERSION``,
documented field by field in the README ("The entry format") and shipped as a JSON Schema
(``entry.schema.json``); ``validate`` holds every entry, built or hand-written, to it and to the
invariants a schema cannot say before anything is rendered from it; version-1 entries (before
each attack's parameters were recorded in full) are still read, and marked as such.

Entries whose worst case is over different attacks (or the same attacks with other parameters)
are not ranked against each other: ``attack_sets`` groups them, each group ranked on its own,
with a warning. ``--protocol NAME`` (``protocols.PROTOCOLS``) instead admits only entries
evaluated under that protocol and ranks them by its number.
"""

from __future__ import annotations

ENTRY_SCHEMA = "benchbench-leaderboard-entry"
BOARD_SCHEMA = "benchbench-leaderboard"
SCHEMA_VERSION = 2  # 2: each attack's norm and parameters in full
BOARD_VERSION = 2  # 2: groups, the protocol, each entry's ranked number
