"""The factories of the built-in image models, as ``register_models`` registers them.

Each checks its suite keys against the dataset's ``input_shape`` in plain Python (one-line
``ValueError`` naming the model and the key), then imports its network's module (torch) and
builds it. The networks, with their papers and the public code they follow, are in
``small_cnn.py``, ``madry_cnn.py``, ``wong_cnn.py``, ``preact_resnet.py`` and
``wide_resnet.py``; ``images.py`` has the checks and the in-model normalisation (``mean``,
``std``). None of them declares ``stack``: they train one seed at a time. ``small_cnn``
declares ``channels_last``: the engine runs it in that memory format.
"""

from __future__ import annotations

from benchbench.models.images import flag, image_shape, per_channel, probability, whole


def _normalization(model: str, channels: int, mean, std) -> None:
    per_channel(model, "mean", mean, channels)
    per_channel(model, "std", std, channels, positive=True)


def build_small_cnn(*, input_shape, num_classes: int, dropout: float = 0.5, mean=None,
                    std=None):
    """TRADES' SmallCNN (Zhang et al. 2019): four 3x3 convs, 200-200 dense, dropout.

    Suite keys:
        dropout: dropout probability after the first dense layer, in train mode only (TRADES'
            ``drop``, 0.5).
        mean: per-channel mean subtracted first, inside the model (a number or one per
            channel; default none: no normalisation), so attacks stay in pixel space.
        std: per-channel divisor applied after ``mean`` (numbers > 0; default none).
    """
    from benchbench.models.small_cnn import SmallCNN

    shape = image_shape("small_cnn", input_shape, min_size=16,
                        why="two 3x3 convolutions and a 2x2 pool, twice")
    dropout = probability("small_cnn", "dropout", dropout)
    _normalization("small_cnn", shape[0], mean, std)
    return SmallCNN(input_shape=shape, num_classes=num_classes, dropout=dropout, mean=mean,
                    std=std)


# capability: trained and measured in torch.channels_last (measured 1.14-1.21x faster for PGD-AT
# on one thread here, benchmarks/README.md "Adversarial training of CNNs"; not declared where it
# was not measured faster: wong_cnn 0.98-1.07x)
build_small_cnn.channels_last = True


def build_madry_cnn(*, input_shape, num_classes: int, mean=None, std=None):
    """Madry et al.'s MNIST CNN (mnist_challenge): 5x5 convs 32 and 64, dense 1024.

    Suite keys:
        mean: per-channel mean subtracted first, inside the model (a number or one per
            channel; default none: no normalisation), so attacks stay in pixel space.
        std: per-channel divisor applied after ``mean`` (numbers > 0; default none).
    """
    from benchbench.models.madry_cnn import MadryCNN

    shape = image_shape("madry_cnn", input_shape)
    _normalization("madry_cnn", shape[0], mean, std)
    return MadryCNN(input_shape=shape, num_classes=num_classes, mean=mean, std=std)


def build_wong_cnn(*, input_shape, num_classes: int, mean=None, std=None):
    """Wong et al.'s small MNIST CNN (fast_adversarial): 4x4 stride-2 convs 16, 32; dense 100.

    Suite keys:
        mean: per-channel mean subtracted first, inside the model (a number or one per
            channel; default none: no normalisation), so attacks stay in pixel space.
        std: per-channel divisor applied after ``mean`` (numbers > 0; default none).
    """
    from benchbench.models.wong_cnn import WongCNN

    shape = image_shape("wong_cnn", input_shape, min_size=4,
                        why="two 4x4 convolutions of stride 2")
    _normalization("wong_cnn", shape[0], mean, std)
    return WongCNN(input_shape=shape, num_classes=num_classes, mean=mean, std=std)


def build_preact_resnet18(*, input_shape, num_classes: int, width: int = 64, mean=None,
                          std=None):
    """PreAct ResNet-18 (He et al. 2016), as Wong et al. and Rice et al. train on CIFAR-10.

    Suite keys:
        width: the first stage's channels, the others 2, 4 and 8 times it (64, the reference's).
        mean: per-channel mean subtracted first, inside the model (a number or one per
            channel; default none: no normalisation), so attacks stay in pixel space.
        std: per-channel divisor applied after ``mean`` (numbers > 0; default none).
    """
    from benchbench.models.preact_resnet import PreActResNet18

    shape = image_shape("preact_resnet18", input_shape)
    whole("preact_resnet18", "width", width, high=512)
    _normalization("preact_resnet18", shape[0], mean, std)
    return PreActResNet18(input_shape=shape, num_classes=num_classes, width=width, mean=mean,
                          std=std)


def build_wide_resnet(*, input_shape, num_classes: int, depth: int = 28, widen_factor: int = 10,
                      dropout: float = 0.0, sub_block1: bool = False, mean=None, std=None):
    """WideResNet WRN-depth-k (Zagoruyko & Komodakis 2016) in RobustBench's layout.

    Suite keys:
        depth: layers, 6n + 4 for n blocks per group (28: WRN-28-10; 34: WRN-34-10).
        widen_factor: k, the width multiplier (10).
        dropout: dropout probability inside each block, in train mode only (0.0).
        sub_block1: add the reference's unused ``sub_block1``, which some checkpoints hold
            (TRADES' WRN-34-10), so they load (false).
        mean: per-channel mean subtracted first, inside the model (a number or one per
            channel; default none: no normalisation), so attacks stay in pixel space.
        std: per-channel divisor applied after ``mean`` (numbers > 0; default none).
    """
    from benchbench.models.wide_resnet import WideResNet

    shape = image_shape("wide_resnet", input_shape)
    whole("wide_resnet", "depth", depth, low=10, high=1000)
    if (depth - 4) % 6:
        raise ValueError(f"wide_resnet: depth must be 6n + 4 (10, 16, 22, 28, 34, 40, ...: "
                         f"n blocks in each of 3 groups); got {depth}")
    whole("wide_resnet", "widen_factor", widen_factor, high=64)
    dropout = probability("wide_resnet", "dropout", dropout)
    flag("wide_resnet", "sub_block1", sub_block1)
    _normalization("wide_resnet", shape[0], mean, std)
    return WideResNet(input_shape=shape, num_classes=num_classes, depth=depth,
                      widen_factor=widen_factor, dropout=dropout, sub_block1=sub_block1,
                      mean=mean, std=std)
