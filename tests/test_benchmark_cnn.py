"""The CNN benchmark (``benchmarks/engine.py --cnn``, ``benchmarks/cnn.py``) still runs, its FLOP
count is torch's, and its grouped stack computes what each model computes alone (not a timing)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_cnn():
    spec = importlib.util.spec_from_file_location("cnn_benchmark", BENCHMARKS / "cnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cnn_section_runs_and_prints_its_summary_line():
    # engine.py's own --cnn path, with batches of 10 and a small floor convolution (seconds);
    # one thread: on a loaded machine two threads' barriers cost more than the work here
    code = ("import runpy, sys; sys.path.insert(0, sys.argv[1]); import cnn; cnn.BATCH = 10; "
            "cnn.CONV_ROWS = 8; sys.argv = [sys.argv[2], '--cnn', '--synthetic', '--steps', "
            "'1', '--repeats', '1', '--threads', '1']; "
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, str(BENCHMARKS),
                           str(BENCHMARKS / "engine.py")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    number = r"[\d.]+"
    optional = r"([\d.]+|nan)"  # torchattacks (the plain loop) and ART are optional
    fields = []
    for model in ("small", "wong"):
        fields += [f"{model}_over_floor={number}", f"{model}_vs_plain={optional}",
                   f"{model}_vs_art={optional}", f"{model}_nograd_vs_grads={number}",
                   f"{model}_channels_last={number}", f"{model}_vmap2={number}",
                   f"{model}_grouped2={number}"]
    assert re.fullmatch(" ".join(fields), lines[-1]), lines[-1]
    for row in ("floor", "pgd_at", "grads_on", "channels_last", "onednn_off", "crafting",
                "one_by_one", "grouped", "vmap"):
        assert re.search(rf"^  {row} +{number} s", done.stdout, re.M), row
    if importlib.util.find_spec("torchattacks") is None:
        assert "torchattacks not installed" in done.stdout
    else:
        assert re.search(rf"^  torchattacks +{number} s", done.stdout, re.M)


@pytest.mark.parametrize("name", ["small_cnn", "wong_cnn"])
def test_floor_counts_what_flop_counter_mode_counts(name):
    bench = load_cnn()
    model = bench.build(name)
    counted = bench.counted_flops(model)
    # integer counts on both sides: exact
    assert bench.image_flops(model) == counted["train"] + bench.STEPS * counted["craft"]
    # autograd.grad of the input alone computes no weight gradients, frozen or not
    assert counted["craft_grads_on"] == counted["craft"]
    fwd = sum(bench.forward_flops(model))
    assert counted["craft"] == 2 * fwd and counted["train"] < 3 * fwd


@pytest.mark.parametrize("name", ["small_cnn", "wong_cnn"])
def test_grouped_stack_computes_what_each_model_computes_alone(name):
    bench = load_cnn()
    models = [bench.build(name, seed) for seed in range(2)]
    for m in models:  # small_cnn's last layer starts at zero: logits and gradients would be 0
        torch.nn.init.normal_(bench.layers(m)[-1].weight, std=0.1)
        m.eval()
    stack = bench.grouped(models).eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 6, 1, 28, 28, generator=gen)  # [members, rows, C, H, W]
    y = torch.randint(0, 10, (2, 6), generator=gen)
    xs = x.transpose(0, 1).flatten(1, 2).requires_grad_(True)  # [rows, members * C, H, W]
    logits = stack(xs)
    (grad,) = torch.autograd.grad(bench.ce_sum(logits, y), xs)
    for m, model in enumerate(models):
        xm = x[m].clone().requires_grad_(True)
        alone = model(xm)
        (grad_alone,) = torch.autograd.grad(bench.ce_sum(alone, y[m]), xm)
        # float32, other summation orders (grouped convolutions, batched products): sums of
        # up to 1,568 products, so a relative error up to about 1,568 x 6e-8 = 1e-4
        torch.testing.assert_close(logits[m], alone, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(grad[:, m:m + 1], grad_alone, rtol=1e-4, atol=1e-5)
