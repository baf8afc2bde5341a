"""Built-in datasets, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.datasets.digits import Digits
from benchbench.datasets.mnist import MNIST


@hookimpl
def register_datasets(register):
    register("mnist", MNIST)
    register("digits", Digits)
