"""Built-in attacks, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.pgd import BIM, PGD


@hookimpl
def register_attacks(register):
    register("fgsm", FGSM)
    register("pgd", PGD)
    register("bim", BIM)
