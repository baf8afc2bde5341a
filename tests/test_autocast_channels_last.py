"""Two ways of running the same training faster: a model's declared ``channels_last`` and a
regime's ``autocast``. Each is applied where declared, said in the store and the log, and keeps
bit-exact resume (the same code path twice: exact on every CPU)."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.plugins import layout_model
from tests.test_resume import Epochs, tidy

SUITE = """
[suite]
name = "layout"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:400]"
test = "test"

[model]
name = "{model}"

[regime]
name = "{regime}"
lr = 0.01
batch_size = 100
epochs = 2
checkpoints = [1, 2]
{extra}

[[attacks]]
name = "fgsm"
eps = [0.1]
"""


@pytest.fixture
def registry():
    return isolated_registry(layout_model)


def _run(registry, tmp_path, name, *, events=None, **fill):
    text = SUITE.format(**{"model": "layout_cnn", "regime": "standard", "extra": "", **fill})
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    suite = load_suite(path, registry)
    out = tmp_path / name
    run_suite(suite, registry=registry, out_dir=out, device="cpu", events=events)
    return out


def _numbers(out):
    with read_store(out) as store:
        tidy = store.tidy().sort_values(["cell_id", "epoch", "split", "attack", "eps", "metric"])
        engines = {c["engine"] for c in store.cells()}
    return tidy.reset_index(drop=True), engines


def _weights(out):
    return {p.parent.name + "/" + p.name: load_file(p)
            for p in sorted((out / "checkpoints").glob("*/epoch_*.safetensors"))}


def _same_weights(a, b):
    assert a.keys() == b.keys() and a
    for key in a:
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key]), key


def _resumes_bit_for_bit(registry, tmp_path, **fill):
    whole = _run(registry, tmp_path, "whole", **fill)
    with pytest.raises(KeyboardInterrupt):
        _run(registry, tmp_path, "resumed", events=Epochs(stop=2), **fill)
    events = Epochs()
    resumed = _run(registry, tmp_path, "resumed", events=events, **fill)
    assert events.seen == [2, 1, 2]  # seed 0 from its epoch-1 resume file, then seed 1
    assert tidy(resumed)[0].equals(tidy(whole)[0])
    _same_weights(_weights(whole), _weights(resumed))
    return whole


def test_a_declared_channels_last_model_trains_and_is_measured_in_it(registry, tmp_path):
    layout_model.SEEN.clear()
    out = _resumes_bit_for_bit(registry, tmp_path)
    assert layout_model.SEEN and all(last for _, last, _ in layout_model.SEEN)
    _, engines = _numbers(out)
    assert engines == {"sequential: model 'layout_cnn' declares no stack; channels_last"}
    # checkpoints are stored contiguous and load into a fresh (contiguous) model
    state = next(iter(_weights(out).values()))
    model = layout_model.build_plain_cnn(input_shape=(1, 8, 8), num_classes=10)
    model.load_state_dict(state)
    assert all(t.is_contiguous() for t in state.values())


def test_an_undeclared_model_stays_contiguous(registry, tmp_path):
    layout_model.SEEN.clear()
    out = _run(registry, tmp_path, "plain", model="plain_cnn")
    assert layout_model.SEEN and not any(last for _, last, _ in layout_model.SEEN)
    assert _numbers(out)[1] == {"sequential: model 'plain_cnn' declares no stack"}


def test_autocast_runs_the_training_forward_in_bfloat16_and_evaluates_in_float32(registry,
                                                                                tmp_path):
    layout_model.SEEN.clear()
    out = _resumes_bit_for_bit(registry, tmp_path, model="plain_cnn", regime="fgsm_at",
                               extra='eps = 0.1\nautocast = "bfloat16"')
    training = {dtype for train, _, dtype in layout_model.SEEN if train}
    evaluation = {dtype for train, _, dtype in layout_model.SEEN if not train}
    assert training == {"torch.bfloat16"}  # crafting and the loss alike
    assert evaluation == {"torch.float32"}
    plain = _run(registry, tmp_path, "float32", model="plain_cnn", regime="fgsm_at",
                 extra="eps = 0.1")
    a, b = _numbers(out)[0], _numbers(plain)[0]
    assert set(a.cell_id).isdisjoint(b.cell_id)  # autocast makes other cells
    fit = (a.split == "fit") & (a.metric == "loss")
    assert not a[fit].value.reset_index(drop=True).equals(b[fit].value.reset_index(drop=True))


def test_autocast_keeps_a_stackable_model_out_of_the_stack(registry, tmp_path):
    out = _run(registry, tmp_path, "mlp", model="mlp", extra='autocast = "bfloat16"')
    assert _numbers(out)[1] == {"sequential: regime autocast = 'bfloat16' (a stack's own "
                                "kernels do not follow torch.autocast)"}


@pytest.mark.parametrize(("extra", "expected"), [
    ('autocast = "float16"', "regime: autocast must be one of none, bfloat16; got 'float16'"),
    ('autocast = "bfloat16"\ndtype = "float64"',
     "regime: autocast = 'bfloat16' lowers float32 training; this regime's dtype is 'float64'"),
])
def test_bad_autocast_is_refused_on_one_line(registry, tmp_path, extra, expected):
    from benchbench.engine.runner import validate_suite

    path = tmp_path / "bad.toml"
    path.write_text(SUITE.format(model="mlp", regime="standard", extra=extra))
    with pytest.raises(SuiteError) as info:
        validate_suite(load_suite(path, registry), registry)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_small_cnn_declares_channels_last_and_computes_the_same_in_it():
    """The declared capability holds: SmallCNN's forward takes NHWC feature maps. Tolerance:
    the layouts sum each output's 576 products (64 channels x 3 x 3) in other orders, float32
    rounding ~ 576 x 2**-24 x the size of the terms; 1e-4 relative to the logits' scale."""
    from benchbench.models.factories import build_small_cnn

    assert build_small_cnn.channels_last is True
    torch.manual_seed(0)
    model = build_small_cnn(input_shape=(1, 28, 28), num_classes=10).eval()
    torch.nn.init.normal_(model.classifier.fc3.weight)  # the reference's zero init: all logits 0
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        plain = model(x)
        last = model.to(memory_format=torch.channels_last)(x)
    assert plain.abs().max() > 0
    assert torch.allclose(last, plain, rtol=0, atol=1e-4 * float(plain.abs().max()))
