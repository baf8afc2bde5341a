"""Training regimes: the ``Regime`` base class (the harness owns the loop) and the built-ins.

Importing this package does not import torch (registering plugins must stay cheap);
``TrainContext`` is imported on first use.
"""

from benchbench.regimes.base import Regime

__all__ = ["Regime", "TrainContext"]


def __getattr__(name: str):
    if name == "TrainContext":
        from benchbench.regimes.context import TrainContext

        return TrainContext
    raise AttributeError(name)
