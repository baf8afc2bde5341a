"""The CUDA paths, where torch sees a GPU (skipped elsewhere: CI has none; a session lent a GPU
runs them there with ``scripts/gpu_check.sh``).

What holds on a GPU as on the CPU: a run trains, checkpoints and measures on the device, its
provenance names the GPU and the settings that fix its bits; an interrupted run resumes bit for
bit (the same code path twice on one GPU: exact, given cuDNN's deterministic algorithms); a
pool of workers sharing one GPU gives the inline run's bits; ``autocast = "bfloat16"`` trains
in bfloat16 there; the Python API measures a model on the GPU as on the CPU, and verifiers
answer the same (they compute on the CPU in float64 whatever the device).
"""

from __future__ import annotations

import pytest
import torch

from benchbench.engine.runner import run_suite
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.plugins import layout_model
from tests.test_autocast_channels_last import _same_weights, _weights
from tests.test_resume import Epochs, tidy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

SUITE = """
[suite]
name = "gpu"
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

[[attacks]]
name = "pgd"
eps = [0.1]
steps = 5
restarts = 2
"""

CASES = {  # what each case takes on the GPU
    "mlp_stacked": dict(model="mlp", regime="standard", extra=""),
    "cnn_pgd_at": dict(model="layout_cnn", regime="pgd_at", extra="eps = 0.1\nsteps = 3"),
    "cnn_trades": dict(model="plain_cnn", regime="trades", extra="eps = 0.1\nsteps = 3"),
    "cnn_autocast": dict(model="plain_cnn", regime="fgsm_at",
                         extra='eps = 0.1\nautocast = "bfloat16"'),
}


@pytest.fixture
def registry():
    return isolated_registry(layout_model)


def _run(registry, tmp_path, name, *, events=None, workers=None, **fill):
    path = tmp_path / f"{name}.toml"
    path.write_text(SUITE.format(**fill))
    out = tmp_path / name
    pool = {} if workers is None else {"executor": "local",
                                       "executor_options": {"workers": workers}}
    run_suite(load_suite(path, registry), registry=registry, out_dir=out, device="cuda",
              events=events, **pool)
    return out


@pytest.mark.parametrize("case", CASES)
def test_a_cuda_run_is_measured_there_and_resumes_bit_for_bit(registry, tmp_path, case):
    fill = CASES[case]
    whole = _run(registry, tmp_path, "whole", **fill)
    with read_store(whole) as store:
        devices = {c["device"] for c in store.cells()}
    (device,) = devices
    assert device.startswith(f"cuda ({torch.cuda.get_device_name()}, cuDNN deterministic, "
                             "TF32 off)"), device
    with pytest.raises(KeyboardInterrupt):
        _run(registry, tmp_path, "resumed", events=Epochs(stop=2), **fill)
    events = Epochs()
    resumed = _run(registry, tmp_path, "resumed", events=events, **fill)
    assert events.seen[0] == 2  # from the epoch-1 resume file, not started over
    assert tidy(resumed)[0].equals(tidy(whole)[0])  # every number, exactly
    _same_weights(_weights(whole), _weights(resumed))


def test_a_declared_channels_last_model_stays_contiguous_on_the_gpu(registry, tmp_path):
    layout_model.SEEN.clear()
    out = _run(registry, tmp_path, "layout", **CASES["cnn_pgd_at"])
    assert layout_model.SEEN and not any(last for _, last, _ in layout_model.SEEN)
    with read_store(out) as store:
        assert all("channels_last" not in c["engine"] for c in store.cells())


def test_autocast_trains_in_bfloat16_on_the_gpu(registry, tmp_path):
    layout_model.SEEN.clear()
    _run(registry, tmp_path, "bf16", **CASES["cnn_autocast"])
    assert {dtype for train, _, dtype in layout_model.SEEN if train} == {"torch.bfloat16"}
    assert {dtype for train, _, dtype in layout_model.SEEN if not train} == {"torch.float32"}


def test_workers_sharing_one_gpu_give_the_inline_bits(registry, tmp_path):
    """Two pool workers on GPU 0 (one GPU: worker i sees GPU i mod 1) train the suite's two
    seeds in two processes; the same code path as inline on the same GPU, so the same bits."""
    fill = CASES["cnn_pgd_at"]
    inline = _run(registry, tmp_path, "inline", **fill)
    pooled = _run(registry, tmp_path, "pooled", workers=2, **fill)
    assert tidy(pooled)[0].equals(tidy(inline)[0])
    _same_weights(_weights(inline), _weights(pooled))


def _digits_mlp():
    from sklearn.datasets import load_digits

    from benchbench.models.mlp import build_mlp

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.int64)
    torch.manual_seed(0)
    model = build_mlp(input_shape=(64,), num_classes=10, hidden=[64, 64])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:1500]), y[:1500]).backward()
        opt.step()
    return model.eval(), x[1500:], y[1500:]


def test_the_python_api_measures_on_the_gpu_as_on_the_cpu():
    """Clean accuracy and FGSM on the same model on both devices. Tolerance from rounding:
    float32 on both (TF32 off), the logits differ by about 1e-6 relative, so a prediction may
    differ only where the CPU's top-two margin is that small; every example whose margin
    exceeds 1e-3 of the logits' scale must get the same clean verdict."""
    import benchbench

    model, x, y = _digits_mlp()
    with torch.no_grad():
        logits = model(x)
    top2 = logits.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3 * logits.abs().amax(1)
    cpu = benchbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.05], device="cpu")
    gpu = benchbench.evaluate(model, x, y, attacks=["fgsm"], eps=[0.05], device="cuda")
    clean = [c for c in cpu.examples.columns if c[0] == "none"]
    a = torch.as_tensor(cpu.examples[clean[0]].to_numpy(dtype="int64"))
    b = torch.as_tensor(gpu.examples[clean[0]].to_numpy(dtype="int64"))
    assert bool((a[clear] == b[clear]).all())
    key = ["attack", "eps", "metric"]
    ta = cpu.table.set_index(key).value
    tb = gpu.table.set_index(key).value
    assert ta.index.equals(tb.index)
    acc = ta.index.get_level_values("metric") == "accuracy"
    assert ((ta[acc] - tb[acc]).abs() <= 2 / len(x)).all()


def test_the_python_api_leaves_every_cuda_generator_as_it_was():
    """A model already on the GPU, device left to the model ("cuda:0"): the attack's seeded
    draws (torch.manual_seed reseeds every CUDA generator) are forked, so the caller's CUDA
    RNG states come back unchanged, on every visible GPU; the same bits as device="cuda"."""
    import benchbench

    model, x, y = _digits_mlp()
    model, x, y = model.cuda(), x.cuda(), y.cuda()
    torch.cuda.manual_seed_all(123)
    before = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    mine = benchbench.evaluate(model, x, y, attacks=["pgd"], eps=[0.05], device=None)
    after = [torch.cuda.get_rng_state(i) for i in range(torch.cuda.device_count())]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    named = benchbench.evaluate(model, x, y, attacks=["pgd"], eps=[0.05], device="cuda")
    assert mine.examples.equals(named.examples)


def test_verifiers_answer_the_same_for_a_model_on_the_gpu():
    """Verifiers compute on the CPU in float64 whatever the device: the same bounds, so the
    same verdicts exactly (the model's threshold logits come from the same CPU copy)."""
    import benchbench

    model, x, y = _digits_mlp()
    on_cpu = benchbench.verify(model, x, y, eps=[0.01, 0.03], method=["ibp", "crown"])
    on_gpu = benchbench.verify(model.cuda(), x.cuda(), y.cuda(), eps=[0.01, 0.03],
                               method=["ibp", "crown"])
    assert on_gpu.device.type == "cpu" and torch.equal(on_cpu, on_gpu)
    assert next(model.parameters()).is_cuda  # the model stayed where it was
