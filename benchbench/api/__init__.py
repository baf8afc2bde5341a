"""The Python API, for notebooks and scripts: what ``benchbench run`` does, on objects.

* ``benchbench.evaluate(model, x, y, *, attacks, eps, ...)``: a model in memory measured as a
  suite measures a checkpoint (``benchbench.api.measure``), returning an ``Evaluation``
  (``.table``, ``.examples``);
* ``benchbench.run(suite, *, out, ...)``: a suite file run as the command runs it;
* ``benchbench.load(run_dir)``: its stored numbers, the export's rows, as a DataFrame;
* ``benchbench.load_model(run_dir, ...)``: one of its checkpoints as a model
  (``benchbench.api.runs``).

Nothing here imports torch until it is used.
"""

from __future__ import annotations

from benchbench.api.measure import Evaluation, evaluate
from benchbench.api.runs import load, load_model, run

__all__ = ["Evaluation", "evaluate", "load", "load_model", "run"]
