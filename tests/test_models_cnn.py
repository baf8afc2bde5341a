"""The built-in image models: the model kit on each, the reference repositories' state-dict
layouts, BatchNorm and dropout under the harness, bit-exact resume with BatchNorm, a run."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from benchbench.models.factories import (
    build_madry_cnn,
    build_preact_resnet18,
    build_small_cnn,
    build_wide_resnet,
    build_wong_cnn,
)
from benchbench.models.mlp import build_mlp
from benchbench.testing import check_model, model_conformance
from tests.plugins.model_broken import BROKEN


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: a second thread only waits (and spins on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded(factory, seed=0, **params):
    torch.manual_seed(seed)
    return factory(**params)


# --- the model kit ------------------------------------------------------------------------

KIT = [  # small widths and depths where the keys allow; each on a shape it takes
    (build_small_cnn, {"input_shape": (1, 16, 16)}),
    (build_small_cnn, {"input_shape": (3, 16, 16), "dropout": 0.0, "mean": [0.5, 0.4, 0.3],
                       "std": 0.25}),
    (build_madry_cnn, {}),
    (build_wong_cnn, {"mean": 0.1307, "std": 0.3081}),
    (build_preact_resnet18, {"input_shape": (3, 8, 8), "width": 4}),
    (build_wide_resnet, {"input_shape": (3, 8, 8), "depth": 10, "widen_factor": 1,
                         "dropout": 0.3}),
    (build_wide_resnet, {"depth": 10, "widen_factor": 1, "sub_block1": True}),
    (build_mlp, {"hidden": [16]}),  # the stack checks, on the one model that stacks
]


@pytest.mark.parametrize(("factory", "params"), KIT,
                         ids=[f"{f.__name__}-{i}" for i, (f, _) in enumerate(KIT)])
def test_every_builtin_model_passes_the_model_kit(factory, params):
    names = [c.name for c in check_model(factory, **params)]
    assert "logits [N, num_classes] in float64" in names
    has_bn = factory in (build_preact_resnet18, build_wide_resnet)
    assert ("BatchNorm: train mode updates the running statistics" in names) == has_bn
    assert ("dropout: train mode draws from torch's RNG" in names) == (
        params.get("dropout", 0.5 if factory is build_small_cnn else 0) > 0)
    assert ("stack: each member's logits on its rows" in names) == (factory is build_mlp)


@pytest.mark.parametrize(("factory", "check"), list(BROKEN.items()),
                         ids=[f.__name__ for f in BROKEN])
def test_a_broken_model_fails_the_named_check(factory, check):
    failed = {c.name: c.detail for c in model_conformance(factory) if not c.passed}
    assert check in failed, failed
    with pytest.raises(AssertionError, match=r"^model conformance failed: .*" + re.escape(check)):
        check_model(factory)


def test_the_kit_fixture_is_check_model(benchbench_check_model):
    assert benchbench_check_model is check_model
    assert len(benchbench_check_model(build_wong_cnn)) >= 20


def test_the_kit_restores_torch_threads():
    torch.set_num_threads(2)
    model_conformance(build_wong_cnn)
    assert torch.get_num_threads() == 2


# --- the reference layouts ----------------------------------------------------------------
# Each reference network below is written here from its repository's code, module for module
# and op for op (source named on each). Loading its state dict into ours with strict=True and
# comparing logits in float64 is exact: the same ops on the same numbers.


class TradesSmallCNN(nn.Module):
    """yaodongyu/TRADES models/small_cnn.py (SmallCNN, drop=0.5), MNIST 1x28x28."""

    def __init__(self, drop=0.5):
        super().__init__()
        act = nn.ReLU(True)
        self.feature_extractor = nn.Sequential()
        for name, layer in [("conv1", nn.Conv2d(1, 32, 3)), ("relu1", act),
                            ("conv2", nn.Conv2d(32, 32, 3)), ("relu2", act),
                            ("maxpool1", nn.MaxPool2d(2, 2)), ("conv3", nn.Conv2d(32, 64, 3)),
                            ("relu3", act), ("conv4", nn.Conv2d(64, 64, 3)), ("relu4", act),
                            ("maxpool2", nn.MaxPool2d(2, 2))]:
            self.feature_extractor.add_module(name, layer)
        self.classifier = nn.Sequential()
        for name, layer in [("fc1", nn.Linear(64 * 4 * 4, 200)), ("relu1", act),
                            ("drop", nn.Dropout(drop)), ("fc2", nn.Linear(200, 200)),
                            ("relu2", act), ("fc3", nn.Linear(200, 10))]:
            self.classifier.add_module(name, layer)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.constant_(m.bias, 0)
        nn.init.constant_(self.classifier.fc3.weight, 0)
        nn.init.constant_(self.classifier.fc3.bias, 0)

    def forward(self, x):
        return self.classifier(self.feature_extractor(x).view(-1, 64 * 4 * 4))


def fast_adversarial_mnist_net():
    """locuslab/fast_adversarial MNIST/mnist_net.py (its Flatten is x.view(x.size(0), -1))."""
    class Flatten(nn.Module):
        def forward(self, x):
            return x.view(x.size(0), -1)

    return nn.Sequential(nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(), Flatten(),
                         nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10))


# the state dict of fast_adversarial's published MNIST/models/fgsm.pth and pgd_madry.pth, read
# from the files (both the same): names and shapes, in order
WONG_PUBLISHED = [("0.weight", (16, 1, 4, 4)), ("0.bias", (16,)), ("2.weight", (32, 16, 4, 4)),
                  ("2.bias", (32,)), ("5.weight", (100, 1568)), ("5.bias", (100,)),
                  ("7.weight", (10, 100)), ("7.bias", (10,))]


class RefPreActBlock(nn.Module):
    """locuslab/fast_adversarial CIFAR10/preact_resnet.py PreActBlock."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride,
                                                    bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(x) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        out += shortcut
        return out


class RefPreActResNet18(nn.Module):
    """locuslab/fast_adversarial CIFAR10/preact_resnet.py PreActResNet(PreActBlock, [2,2,2,2])."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.in_planes = 64
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.layer1 = self._make_layer(64, 1)
        self.layer2 = self._make_layer(128, 2)
        self.layer3 = self._make_layer(256, 2)
        self.layer4 = self._make_layer(512, 2)
        self.bn = nn.BatchNorm2d(512)
        self.linear = nn.Linear(512, num_classes)

    def _make_layer(self, planes, stride):
        layers = []
        for s in [stride, 1]:
            layers.append(RefPreActBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        out = F.avg_pool2d(F.relu(self.bn(out)), 4)
        return self.linear(out.view(out.size(0), -1))


class RefBasicBlock(nn.Module):
    """RobustBench robustbench/model_zoo/architectures/wide_resnet.py BasicBlock."""

    def __init__(self, in_planes, out_planes, stride, drop_rate=0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.droprate = drop_rate
        self.equalInOut = in_planes == out_planes
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(
            in_planes, out_planes, 1, stride=stride, padding=0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(out if self.equalInOut else x)))
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(out)
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class RefNetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, stride, drop_rate=0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            RefBasicBlock(i == 0 and in_planes or out_planes, out_planes, i == 0 and stride or 1,
                          drop_rate) for i in range(int(nb_layers))])

    def forward(self, x):
        return self.layer(x)


class RefWideResNet(nn.Module):
    """RobustBench robustbench/model_zoo/architectures/wide_resnet.py WideResNet (3 channels)."""

    def __init__(self, depth=28, num_classes=10, widen_factor=10, sub_block1=False,
                 drop_rate=0.0):
        super().__init__()
        ch = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        n = (depth - 4) / 6
        self.conv1 = nn.Conv2d(3, ch[0], 3, stride=1, padding=1, bias=False)
        self.block1 = RefNetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        if sub_block1:
            self.sub_block1 = RefNetworkBlock(n, ch[0], ch[1], 1, drop_rate)
        self.block2 = RefNetworkBlock(n, ch[1], ch[2], 2, drop_rate)
        self.block3 = RefNetworkBlock(n, ch[2], ch[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(ch[3], num_classes)
        self.nChannels = ch[3]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / k))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()

    def forward(self, x):
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        out = F.avg_pool2d(self.relu(self.bn1(out)), 8)
        return self.fc(out.view(-1, self.nChannels))


def layout(model) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def warm_bn(model, x, steps=2):
    """A few train-mode passes, so running statistics are not the initial 0 and 1."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(x)
    return model.eval()


REFERENCES = [  # (ours, its parameters, the reference, input shape)
    (build_small_cnn, {}, lambda: TradesSmallCNN(), (1, 28, 28)),
    (build_wong_cnn, {}, fast_adversarial_mnist_net, (1, 28, 28)),
    (build_preact_resnet18, {}, lambda: RefPreActResNet18(), (3, 32, 32)),
    (build_wide_resnet, {"depth": 10, "widen_factor": 2, "dropout": 0.3},
     lambda: RefWideResNet(depth=10, widen_factor=2, drop_rate=0.3), (3, 32, 32)),
    (build_wide_resnet, {"depth": 16, "widen_factor": 1, "sub_block1": True},
     lambda: RefWideResNet(depth=16, widen_factor=1, sub_block1=True), (3, 32, 32)),
]


@pytest.mark.parametrize(("factory", "params", "reference", "shape"), REFERENCES,
                         ids=[f"{r[0].__name__}-{i}" for i, r in enumerate(REFERENCES)])
def test_a_reference_state_dict_loads_strictly_and_computes_the_same(factory, params,
                                                                     reference, shape):
    ref = seeded(reference, 3)
    ours = seeded(factory, 3, input_shape=shape, num_classes=10, **params)
    # the same initialisation, drawn in the same order: one seed, the reference's weights
    assert layout(ours) == layout(ref)
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(),
                                                 ref.state_dict().values(), strict=True))
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, *shape, generator=gen, dtype=torch.float64)
    ref = warm_bn(ref.double(), x)
    with torch.no_grad():  # nonzero last layers (TRADES' starts at zero)
        for p in ref.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.01)
    other = seeded(factory, 4, input_shape=shape, num_classes=10, **params).double()
    other.load_state_dict(ref.state_dict(), strict=True)
    other.eval()
    with torch.no_grad():  # exact: the same ops in float64
        assert torch.equal(other(x), ref(x))
        other.train(), ref.train()
        torch.manual_seed(9)
        a = other(x)
        torch.manual_seed(9)  # dropout: nn.Dropout draws as the reference's F.dropout
        assert torch.equal(a, ref(x))


def test_wong_cnn_has_the_published_checkpoints_keys():
    model = build_wong_cnn(input_shape=(1, 28, 28), num_classes=10)
    assert layout(model) == WONG_PUBLISHED
    assert layout(fast_adversarial_mnist_net()) == WONG_PUBLISHED
    model.load_state_dict({k: torch.zeros(s) for k, s in WONG_PUBLISHED}, strict=True)


@pytest.mark.parametrize(("depth", "sub_block1"), [(28, False), (34, True)])
def test_wide_resnet_has_robustbenchs_full_size_layout(depth, sub_block1):
    """WRN-28-10 and WRN-34-10 (TRADES' keeps sub_block1) on the meta device: no weights."""
    with torch.device("meta"):
        ours = build_wide_resnet(input_shape=(3, 32, 32), num_classes=10, depth=depth,
                                 widen_factor=10, sub_block1=sub_block1)
        ref = RefWideResNet(depth=depth, widen_factor=10, sub_block1=sub_block1)
    assert layout(ours) == layout(ref)
    params = sum(p.numel() for p in ours.parameters())
    assert params == sum(p.numel() for p in ref.parameters())
    if depth == 28:
        assert params == 36_479_194  # WRN-28-10's well-known 36.5 M


def test_madry_cnn_is_mnist_challenges_network():
    model = seeded(build_madry_cnn, 0, input_shape=(1, 28, 28), num_classes=10)
    # mnist_challenge's variables: W_conv1 5x5x1x32, W_conv2 5x5x32x64, W_fc1 3136x1024,
    # W_fc2 1024x10, and their biases
    assert layout(model) == [("conv1.weight", (32, 1, 5, 5)), ("conv1.bias", (32,)),
                             ("conv2.weight", (64, 32, 5, 5)), ("conv2.bias", (64,)),
                             ("fc1.weight", (1024, 3136)), ("fc1.bias", (1024,)),
                             ("fc2.weight", (10, 1024)), ("fc2.bias", (10,))]
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0.1), name  # tf.constant(0.1)
        else:  # tf.truncated_normal(stddev=0.1): inside two std
            assert p.abs().max() <= 0.2 and abs(float(p.detach().std()) - 0.088) < 0.01, name
    odd = build_madry_cnn(input_shape=(1, 7, 9), num_classes=3)  # "SAME": 7 -> 4 -> 2
    assert odd.fc1.in_features == 64 * 2 * 3 and odd(torch.rand(2, 1, 7, 9)).shape == (2, 3)


# --- normalisation, shapes and keys -------------------------------------------------------


@pytest.mark.parametrize("factory", [build_small_cnn, build_madry_cnn, build_wong_cnn,
                                     build_preact_resnet18, build_wide_resnet])
def test_normalisation_is_inside_the_model_and_outside_its_state_dict(factory):
    small = {build_preact_resnet18: {"width": 4},
             build_wide_resnet: {"depth": 10, "widen_factor": 1}}.get(factory, {})
    mean, std = [0.4914, 0.4822, 0.4465], [0.2471, 0.2435, 0.2616]  # CIFAR-10's
    plain = seeded(factory, 1, input_shape=(3, 32, 32), num_classes=10, **small)
    normed = seeded(factory, 1, input_shape=(3, 32, 32), num_classes=10, mean=mean, std=std,
                    **small)
    assert list(normed.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(normed.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    plain, normed = plain.double().eval(), normed.double().eval()
    assert normed.input_mean.dtype == torch.float64  # follows .to(dtype)
    # the constants as float32 (the model's, like its weights, made in float32), then float64
    m32 = torch.tensor(mean).double().view(3, 1, 1)
    s32 = torch.tensor(std).double().view(3, 1, 1)
    with torch.no_grad():
        assert torch.equal(normed(x), plain((x - m32) / s32))  # exact: the same ops


@pytest.mark.parametrize(("factory", "params", "message"), [
    (build_small_cnn, {"input_shape": (1, 8, 8)},
     r"small_cnn needs images of at least 16x16 pixels .*input_shape is 1x8x8"),
    (build_wong_cnn, {"input_shape": (1, 3, 3)}, r"wong_cnn needs images of at least 4x4"),
    (build_madry_cnn, {"input_shape": (2,)},
     r"madry_cnn needs images shaped \[channels, height, width\]; .* \(2,\)"),
    (build_wong_cnn, {"mean": [0.1, 0.2]}, r"wong_cnn: mean must be a number or a list of 1 "),
    (build_small_cnn, {"input_shape": (3, 32, 32), "std": [1, 0, 1]},
     r"small_cnn: std must be .* of 1 or 3 \(one per channel\) finite numbers > 0"),
    (build_small_cnn, {"dropout": 1.0}, r"small_cnn: dropout must be a number from 0 up to"),
    (build_wide_resnet, {"depth": 12}, r"wide_resnet: depth must be 6n \+ 4 .*got 12"),
    (build_wide_resnet, {"widen_factor": 0}, r"wide_resnet: widen_factor must be a whole"),
    (build_wide_resnet, {"sub_block1": 1}, r"wide_resnet: sub_block1 must be true or false"),
    (build_preact_resnet18, {"width": 2.5}, r"preact_resnet18: width must be a whole number"),
])
def test_bad_keys_and_shapes_are_refused_on_one_line(factory, params, message):
    params = {"input_shape": (1, 28, 28), "num_classes": 10, **params}
    with pytest.raises(ValueError, match=message) as info:
        factory(**params)
    assert "\n" not in str(info.value)


# --- BatchNorm and dropout under the harness ----------------------------------------------


class ModeSpy:
    """An attack that records the mode of the model and of each of its modules."""

    norm = "linf"

    def __init__(self):
        self.seen = []

    def perturb(self, model, x, y, *, eps, bounds):
        self.seen.append({m.training for m in model.modules()})
        return torch.stack([x for _ in eps])


def test_attacks_and_clean_evaluation_see_eval_mode_and_leave_batchnorm_alone():
    from benchbench.attacks.harness import attack_batch
    from benchbench.engine.evaluate import clean_records

    model = build_wide_resnet(input_shape=(1, 8, 8), num_classes=10, depth=10, widen_factor=1,
                              dropout=0.3)
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spy = ModeSpy()
    attack_batch(spy, model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    clean_records(model, x, y, epoch=1, split="test", batch_size=6)
    assert spy.seen == [{False}]  # every module, BatchNorm and dropout too, in eval mode
    assert model.training and all(m.training for m in model.modules())  # restored
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


BN_SUITE = """
[suite]
name = "bn"
seeds = [0]

[dataset]
name = "digits"
train = "train[:400]"
test = "test"

[model]
name = "wide_resnet"
depth = 10
widen_factor = 1
dropout = 0.3
mean = 0.3
std = 0.4

[regime]
name = "standard"
optimizer = "sgd"
lr = 0.05
momentum = 0.9
batch_size = 100
epochs = 2
checkpoints = [1, 2]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def test_a_batchnorm_dropout_model_resumes_bit_for_bit(tmp_path):
    """2 epochs in one go against 1 epoch, an interruption and a resume: the final weights,
    BatchNorm running statistics and numbers are identical (the same code path twice)."""
    from benchbench.engine.runner import run_suite
    from benchbench.suite.load import load_suite
    from benchbench.testing import isolated_registry
    from tests.test_resume import Epochs, tidy

    registry = isolated_registry()
    path = tmp_path / "bn.toml"
    path.write_text(BN_SUITE)
    suite = load_suite(path, registry)
    whole, out = tmp_path / "whole", tmp_path / "resumed"
    run_suite(suite, registry=registry, out_dir=whole, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        run_suite(suite, registry=registry, out_dir=out, device="cpu", events=Epochs(stop=2))
    [saved] = (out / "checkpoints" / "resume").glob("*.pt")
    state = torch.load(saved, weights_only=True)["model"]
    assert "block1.layer.0.bn1.running_mean" in state and "bn1.num_batches_tracked" in state
    events = Epochs()
    run_suite(suite, registry=registry, out_dir=out, device="cpu", events=events)
    assert events.seen == [2]  # resumed after epoch 1

    assert tidy(out)[0].equals(tidy(whole)[0])
    [cell] = tidy(whole)[1]
    a = load_file(whole / "checkpoints" / cell / "epoch_0002.safetensors")
    b = load_file(out / "checkpoints" / cell / "epoch_0002.safetensors")
    assert a.keys() == b.keys()
    stats = [k for k in a if "running_" in k or "num_batches" in k]
    assert len(stats) == 3 * 7  # 2 BatchNorms in each group's block, a last: mean, var, count
    assert int(a["bn1.num_batches_tracked"]) == 2 * 4  # 400 rows, batches of 100
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = load_file(whole / "checkpoints" / cell / "epoch_0001.safetensors")
    assert not torch.equal(first["bn1.running_mean"], a["bn1.running_mean"])


DIGITS_CNN = """
[suite]
name = "cnn"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "wong_cnn"
mean = 0.3
std = 0.4

[regime]
name = "standard"
optimizer = "sgd"
lr = 0.05
momentum = 0.9
batch_size = 50
epochs = 3
checkpoints = [1, 3]

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


def test_benchbench_run_trains_and_attacks_wong_cnn_on_digits(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from benchbench.cli import app
    from benchbench.store.results import read_store

    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    path = tmp_path / "cnn.toml"
    path.write_text(DIGITS_CNN)
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"),
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "wong_cnn" in result.output and "ran 2 cell(s)" in result.output
    with read_store(tmp_path / "run") as store:
        tidy = store.tidy()
    test = tidy[(tidy.split == "test") & (tidy.metric == "accuracy") & (tidy.epoch == 3)]
    clean = test[test.attack == "none"].value
    assert len(clean) == 2 and (clean > 0.7).all()  # it learns digits (about 0.85) in 3 epochs
    assert (test[test.attack == "fgsm"].value.to_numpy() <= clean.to_numpy()).all()


def test_a_model_that_cannot_take_the_datasets_shape_is_refused_before_running(tmp_path,
                                                                              monkeypatch):
    from typer.testing import CliRunner

    from benchbench.cli import app

    monkeypatch.setenv("BENCHBENCH_DISABLE_PLUGINS", "1")
    path = tmp_path / "bad.toml"
    path.write_text(DIGITS_CNN.replace('name = "wong_cnn"', 'name = "small_cnn"'))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"),
                                      "--device", "cpu"])
    assert result.exit_code == 2
    assert ("model: small_cnn needs images of at least 16x16 pixels (two 3x3 convolutions and "
            "a 2x2 pool, twice); the dataset's input_shape is 1x8x8") in result.output
    assert not (tmp_path / "run").exists()


def test_no_cnn_claims_the_stack_capability():
    for factory in (build_small_cnn, build_madry_cnn, build_wong_cnn, build_preact_resnet18,
                    build_wide_resnet):
        assert not hasattr(factory, "stack"), factory.__name__
