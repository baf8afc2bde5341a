"""Built-in datasets, registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.datasets.cifar_svhn import CIFAR10, CIFAR100, SVHN
from benchbench.datasets.digits import Digits
from benchbench.datasets.fashion_mnist import FashionMNIST
from benchbench.datasets.mnist import MNIST


@hookimpl
def register_datasets(register):
    register("mnist", MNIST)
    register("digits", Digits)
    register("fashion_mnist", FashionMNIST)
    register("cifar10", CIFAR10)
    register("cifar100", CIFAR100)
    register("svhn", SVHN)
