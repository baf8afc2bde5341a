"""Built-in verifiers, registered through the public hook like any plugin."""

from benchbench import hookimpl


@hookimpl
def register_verifiers(register):
    # benchbench.verify.verifiers imports no torch at module level: registering stays cheap
    from benchbench.verify.verifiers import CROWN, CROWNIBP, IBP, MIP

    register("ibp", IBP)
    register("crown_ibp", CROWNIBP)
    register("crown", CROWN)
    register("mip", MIP)
