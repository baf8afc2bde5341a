"""Built-in models, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.models.mlp import build_mlp


@hookimpl
def register_models(register):
    register("mlp", build_mlp)
