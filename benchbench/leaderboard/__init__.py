"""The leaderboard: one JSON entry per (run, model, regime), rendered from those files alone.

``build.build_leaderboard`` reads run directories (``runs.load_run``), fixes one threat model
shared by all of them (``runs.choose_threat_model``: one dataset, one norm, one eps, or a one-line
refusal naming what differs), writes one entry per (model, regime) of each run
(``entries.run_entries``) to ``OUT/entries/<id>.json``, then renders ``leaderboard.md``,
``leaderboard.json``, ``index.html`` and ``leaderboard.png`` from those files alone
(``render.render_files``). The entry format is ``ENTRY_SCHEMA`` version ``SCHEMA_VERSION``,
documented field by field in the README ("The entry format") and shipped as a JSON Schema
(``entry.schema.json``); ``validate`` holds every entry, built or hand-written, to it and to the
invariants a schema cannot say before anything is rendered from it.
"""

from __future__ import annotations

ENTRY_SCHEMA = "benchbench-leaderboard-entry"
BOARD_SCHEMA = "benchbench-leaderboard"
SCHEMA_VERSION = 1
