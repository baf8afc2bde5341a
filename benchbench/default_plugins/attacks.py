"""Built-in attacks, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.attacks.fgsm import FGSM


@hookimpl
def register_attacks(register):
    register("fgsm", FGSM)
