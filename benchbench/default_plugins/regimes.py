"""Built-in training regimes, registered through the public hook like any plugin."""

from benchbench import hookimpl


@hookimpl
def register_regimes(register):
    # classes imported when registering: the regime modules import torch only inside methods
    # where they can, but adversarial.py needs it at import, so it is imported lazily below
    from benchbench.regimes.pretrained import Pretrained
    from benchbench.regimes.standard import StandardTraining

    register("standard", StandardTraining)
    register("pretrained", Pretrained)  # evaluates [model] weights, trains nothing
    for name, cls in _adversarial().items():
        register(name, cls)
    from benchbench.regimes.certified import CROWNIBPTraining, IBPTraining

    register("ibp", IBPTraining)
    register("crown_ibp", CROWNIBPTraining)


def _adversarial():
    from benchbench.regimes.adversarial import FGSMAT, MART, PGDAT, TRADES

    return {"fgsm_at": FGSMAT, "pgd_at": PGDAT, "trades": TRADES, "mart": MART}
