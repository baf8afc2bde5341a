"""What a run's device decides, checked on the CPU (the GPU side is tests/test_cuda.py): the
memory format a declared ``channels_last`` model gets on each device, the CUDA settings the
Python API applies for its call only, and the CPU copy verifiers compute on."""

from __future__ import annotations

import torch

from benchbench.engine.cell import memory_format
from benchbench.engine.device import (
    REPRODUCIBLE,
    _flag,
    cuda_settings,
    reproducible_cuda,
    rng_devices,
)
from benchbench.engine.verdicts import cpu_copy, on_cpu
from benchbench.suite.cells import ComponentRef
from benchbench.testing import isolated_registry
from tests.plugins import layout_model


def test_a_declared_channels_last_model_is_contiguous_on_cuda():
    registry = isolated_registry(layout_model)
    ref = ComponentRef("layout_cnn", "layout_cnn")
    assert memory_format(registry, ref, "cpu") == "channels_last"
    assert memory_format(registry, ref, "cuda") is None
    assert memory_format(registry, ComponentRef("plain_cnn", "plain_cnn"), "cpu") is None


def _flags():
    return {name: getattr(*_flag(name)) for name in REPRODUCIBLE}


def test_cuda_settings_hold_for_the_block_and_restore_what_was_set():
    before = _flags()
    try:
        for name in REPRODUCIBLE:  # torch's defaults for cuDNN, the opposite of benchbench's
            obj, attr = _flag(name)
            setattr(obj, attr, not REPRODUCIBLE[name])
        user = _flags()
        with cuda_settings():
            assert _flags() == REPRODUCIBLE
        assert _flags() == user
        try:
            with cuda_settings():
                raise RuntimeError("a failed measurement")
        except RuntimeError:
            pass
        assert _flags() == user
        reproducible_cuda()  # what a run's process keeps
        assert _flags() == REPRODUCIBLE
    finally:
        for name, value in before.items():
            obj, attr = _flag(name)
            setattr(obj, attr, value)


def test_the_cpu_copy_has_its_own_tensors_and_the_same_numbers():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(),
                              torch.nn.Linear(3, 2))
    net[0].weight.requires_grad_(False)
    net.train()(torch.rand(8, 4))  # running statistics that differ from the defaults
    copy = cpu_copy(net.eval())
    assert on_cpu(net) is net  # already on the CPU: the module itself
    for (k, a), b in zip(net.state_dict().items(), copy.state_dict().values(), strict=True):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), k
    assert all(isinstance(p, torch.nn.Parameter) for p in copy.parameters())
    assert [p.requires_grad for p in copy.parameters()] == [p.requires_grad
                                                             for p in net.parameters()]
    x = torch.rand(5, 4)
    assert torch.equal(copy(x), net(x))
    with torch.no_grad():
        copy[3].bias.add_(1.0)
    assert not torch.equal(copy[3].bias, net[3].bias)


def test_a_cpu_measurement_forks_no_cuda_generator_and_a_cuda_one_forks_them_all():
    """``rng_devices``: none on the CPU; on CUDA every visible device, by index or not
    (``torch.manual_seed`` reseeds them all). Exact: lists of indices."""
    assert rng_devices("cpu") == []
    everyone = list(range(torch.cuda.device_count()))
    assert rng_devices("cuda") == everyone
    assert rng_devices("cuda:0") == everyone
