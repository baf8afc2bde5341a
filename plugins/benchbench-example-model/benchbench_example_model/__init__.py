"""LeNet-5: a model plugin, and the template for a benchbench model plugin.

LeCun et al., "Gradient-based learning applied to document recognition" (Proc. IEEE 1998), in
its common modern form (ReLU, max-pooling): a 5x5 convolution to 6 channels (padding 2, so
MNIST's 28x28 keeps the paper's 32x32 geometry), a 5x5 convolution to 16, each followed by a
2x2 max-pool, then dense layers of 120 and 84 units and the logits. Keys: ``batchnorm`` (a
BatchNorm after each convolution), ``mean`` and ``std`` (normalisation inside the model, so
attacks stay in pixel space). This module stays free of torch: ``benchbench plugins`` and
suite checks load it cheaply, and the network (``lenet.py``) is imported when a model is built.
"""

from __future__ import annotations

import benchbench


def build_lenet5(*, input_shape, num_classes, batchnorm: bool = False, mean=None, std=None):
    """LeNet-5 (LeCun et al. 1998): 5x5 convs to 6 and 16 channels, dense 120-84."""
    shape = tuple(input_shape)
    if len(shape) != 3 or min(shape[1:]) < 12:
        raise ValueError("lenet5 needs images [channels, height, width] of at least 12x12; "
                         f"the dataset's input_shape is {shape}")
    if not isinstance(batchnorm, bool):
        raise ValueError(f"lenet5: batchnorm must be true or false; got {batchnorm!r}")
    for key, value in (("mean", mean), ("std", std)):
        if value is not None and not (
                isinstance(value, list) and len(value) == shape[0]
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
                and (key == "mean" or min(value) > 0)):
            what = "numbers > 0" if key == "std" else "numbers"
            raise ValueError(f"lenet5: {key} must be a list of {shape[0]} {what} (one per "
                             f"channel); got {value!r}")
    from benchbench_example_model.lenet import LeNet5

    return LeNet5(shape, num_classes, batchnorm=batchnorm, mean=mean, std=std)


@benchbench.hookimpl
def register_models(register):
    register("lenet5", build_lenet5)
