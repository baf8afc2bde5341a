"""The verifiers' Python API, plugin kind and kit: shapes, refusals, registration, the kit
catching verifiers that break their claims."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest
import torch
from torch import nn

import benchbench
from benchbench.errors import VerifierError
from benchbench.plugins import load_registry
from benchbench.testing import tiny_data, tiny_model
from benchbench.testing_verifiers import check_verifier, verifier_conformance
from benchbench.verify import NOT_ROBUST, ROBUST, UNKNOWN
from benchbench.verify.api import margin_bounds
from benchbench.verify.bounds import LAYERS
from benchbench.verify.verifiers import CROWN, IBP, MIP, Verdicts, run_verifier


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many small products: one thread is several times faster than two on a busy machine
    (and strict MKL mode makes the bits the same); the setting is restored afterwards."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def digits():
    x, y = tiny_data(24, dtype=torch.float64)
    return tiny_model(dtype=torch.float64), x, y


def test_verify_returns_a_bool_tensor_per_eps(digits):
    model, x, y = digits
    proved = benchbench.verify(model, x, y, eps=[0.0, 0.02, 0.1], method="crown")
    assert proved.dtype == torch.bool and proved.shape == (3, len(x))
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    assert torch.equal(proved[0], correct)  # eps 0: the bound is the margin itself
    assert bool((proved[1] <= proved[0]).all()) and bool((proved[2] <= proved[1]).all())


def test_a_list_of_methods_takes_the_best_per_example(digits):
    model, x, y = digits
    each = {m: benchbench.verify(model, x, y, eps=[0.05], method=m)
            for m in ("ibp", "crown_ibp", "crown")}
    best = benchbench.verify(model, x, y, eps=[0.05], method=["ibp", "crown_ibp", "crown"])
    assert torch.equal(best, each["ibp"] | each["crown_ibp"] | each["crown"])


def test_verdicts_codes_and_the_float32_model(digits):
    model, x, y = digits
    model32, x32 = tiny_model(dtype=torch.float32), x.float()
    codes = benchbench.verify.verdicts(model32, x32, y, eps=[0.05], method="mip", time_limit=5)
    assert codes.dtype == torch.int8 and set(codes.unique().tolist()) <= {-1, 0, 1}
    crown = benchbench.verify.verdicts(model32, x32, y, eps=[0.05], method="crown")
    assert set(crown.unique().tolist()) <= {0, 1}
    assert bool((codes[crown == ROBUST] == ROBUST).all())  # certified => exact


def test_importing_benchbench_and_registering_verifiers_imports_no_torch():
    code = ("import sys, benchbench\n"
            "from benchbench.default_plugins import verifiers\n"
            "names = []\n"
            "verifiers.register_verifiers(lambda name, obj, **kw: names.append(name))\n"
            "assert names == ['ibp', 'crown_ibp', 'crown', 'mip'], names\n"
            "assert 'torch' not in sys.modules\n"
            "import benchbench.verify\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_unsupported_layer_is_refused_naming_it(digits):
    _, x, y = digits
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(18, 10))
    with pytest.raises(VerifierError) as err:
        benchbench.verify(model.double(), x, y, eps=[0.1], method="crown")
    assert str(err.value) == ("crown cannot bound layer 1 (MaxPool2d); supported: "
                              + ", ".join(LAYERS))


class OwnLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


def test_a_subclass_with_its_own_forward_is_not_its_base(digits):
    _, x, y = digits
    model = nn.Sequential(nn.Flatten(), OwnLinear(64, 10)).double()
    with pytest.raises(VerifierError, match=r"layer 1 \(OwnLinear\)"):
        margin_bounds(model, x, y, eps=0.1)


@pytest.mark.parametrize(("model", "message"), [
    (nn.Linear(64, 10), "cannot read the layers of Linear"),
    (nn.Sequential(nn.Linear(64, 10)), r"layer 0 \(Linear\) takes 64 features; its input has "
                                       r"shape \[1, 8, 8\] \(a Flatten missing\?\)"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.AvgPool2d(2, ceil_mode=True)),
     r"layer 2 \(AvgPool2d: ceil_mode or divisor_override set\)"),
])
def test_models_that_cannot_be_read_are_refused(digits, model, message):
    _, x, y = digits
    with pytest.raises(VerifierError, match=message):
        margin_bounds(model.double(), x, y, eps=0.1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"eps": [-0.1]}, "eps must be a list of finite numbers >= 0"),
    ({"eps": [0.1], "method": "alpha_crown"}, "unknown verification method 'alpha_crown'"),
    ({"eps": [0.1], "bounds": (1, 0)}, "bounds must be"),
    ({"eps": [0.1], "norm": "l1"}, "norm must be one of linf, l2"),
    ({"eps": [0.1], "method": "mip", "norm": "l2"}, "method 'mip' solves the L-inf box only"),
    ({"eps": [0.1], "method": ["crown", "mip"], "norm": "l2"}, "'mip' solves the L-inf box"),
    ({"eps": [0.1], "bounds": (0.2, 1)}, "x lies outside the data bounds"),
])
def test_bad_arguments_are_refused(digits, kwargs, message):
    model, x, y = digits
    with pytest.raises(VerifierError, match=message):
        benchbench.verify(model, x, y, **kwargs)


def test_register_verifiers_files_built_ins_and_plugins_under_their_kind():
    class Nothing:
        """Proves nothing."""

        norm, sound, complete, layers = "linf", True, False, LAYERS

        def verify(self, model, x, y, *, eps, bounds):
            return Verdicts(torch.zeros(len(x), dtype=torch.int8))

    plugin = types.ModuleType("nothing_plugin")
    plugin.register_verifiers = benchbench.hookimpl(
        lambda register: register("nothing", Nothing))
    registry = load_registry(load_entry_points=False, extra=(plugin,))
    assert {"ibp", "crown_ibp", "crown", "mip", "nothing"} <= set(registry.entries["verifier"])
    assert registry.get("verifier", "crown").source.plugin == (
        "benchbench.default_plugins.verifiers")
    assert registry.get("verifier", "nothing").summary == "Proves nothing."
    assert registry.params_of("verifier", "mip") == [
        "norm", "time_limit", "tol", "attack_steps", "attack_restarts", "seed"]
    check_verifier(Nothing)  # proves nothing: sound, and declares no completeness


def test_the_kit_passes_the_built_ins():
    check_verifier(CROWN)
    check_verifier(IBP, norm="l2")
    check_verifier(MIP, time_limit=5.0)


class AlwaysRobust:
    """Claims every example: unsound."""

    norm, sound, complete, layers = "linf", True, False, LAYERS

    def verify(self, model, x, y, *, eps, bounds):
        return Verdicts(torch.ones(len(x), dtype=torch.int8))


class FakeComplete:
    """Declares completeness and says -1 with counterexamples that are the clean inputs."""

    norm, sound, complete, layers = "linf", True, True, LAYERS

    def verify(self, model, x, y, *, eps, bounds):
        return Verdicts(torch.full((len(x),), NOT_ROBUST, dtype=torch.int8), x.clone())


class ClaimsConv:
    """Declares Conv2d and MaxPool2d, then cannot bound anything."""

    norm, sound, complete = "linf", True, False
    layers = (*LAYERS, "MaxPool2d")

    def verify(self, model, x, y, *, eps, bounds):
        raise RuntimeError("no bounds here")


def test_the_kit_catches_broken_claims():
    failed = {c.name for c in verifier_conformance(AlwaysRobust) if not c.passed}
    assert failed == {"sound", "planted"}
    failed = {c.name for c in verifier_conformance(FakeComplete) if not c.passed}
    assert failed == {"planted", "complete"}
    checks = {c.name: c for c in verifier_conformance(ClaimsConv)}
    assert not checks["layers"].passed and "Conv2d declared but RuntimeError" in (
        checks["layers"].detail)
    with pytest.raises(AssertionError, match="verifier conformance failed: sound"):
        check_verifier(AlwaysRobust)


def test_the_harness_refuses_before_running_and_rejects_unchecked_counterexamples(digits):
    model, x, y = digits
    calls = []

    class Spy(FakeComplete):
        layers = ("Linear", "ReLU")  # no Flatten

        def verify(self, *args, **kwargs):
            calls.append(1)
            return super().verify(*args, **kwargs)

    with pytest.raises(VerifierError, match=r"Spy cannot bound layer 0 \(Flatten\)"):
        run_verifier(Spy(), model, x, y, eps=[0.1])
    assert calls == []
    result = run_verifier(FakeComplete(), model, x, y, eps=[0.0, 0.1])
    with torch.no_grad():
        wrong = int((model(x).argmax(1) != y).sum())
    # only the clean inputs the model misclassifies are counterexamples; the rest become unknown
    assert result.rejected == [len(x) - wrong] * 2
    assert int((result.codes == NOT_ROBUST).sum()) == 2 * wrong
    assert int((result.codes == UNKNOWN).sum()) == 2 * (len(x) - wrong)
