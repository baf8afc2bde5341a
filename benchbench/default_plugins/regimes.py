"""Built-in training regimes, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.regimes.standard import StandardTraining


@hookimpl
def register_regimes(register):
    register("standard", StandardTraining)
