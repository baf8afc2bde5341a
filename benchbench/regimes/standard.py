"""Standard training: minibatch cross-entropy on clean inputs, reshuffled every epoch, seeded."""

from __future__ import annotations

from benchbench.regimes.base import Regime


class StandardTraining(Regime):
    """Plain training: Adam or SGD on minibatch cross-entropy, reshuffled every epoch.

    Everything is ``Regime``'s: clean inputs (``craft`` returns ``x``) and the cross-entropy
    (``loss``), which lets a stacked model train with its own backward pass.
    """
