"""Built-in models, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.models.factories import (
    build_madry_cnn,
    build_preact_resnet18,
    build_small_cnn,
    build_wide_resnet,
    build_wong_cnn,
)
from benchbench.models.mlp import build_mlp


@hookimpl
def register_models(register):
    register("mlp", build_mlp)
    register("small_cnn", build_small_cnn)
    register("madry_cnn", build_madry_cnn)
    register("wong_cnn", build_wong_cnn)
    register("preact_resnet18", build_preact_resnet18)
    register("wide_resnet", build_wide_resnet)
