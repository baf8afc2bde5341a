"""The engine benchmark still runs: a tiny, synthetic round of every section (not a timing)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "engine.py"


def test_benchmark_runs_and_prints_its_summary_line():
    done = subprocess.run([sys.executable, str(SCRIPT), "--synthetic", "--steps", "2",
                           "--repeats", "1", "--blas"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"train_over_floor=[\d.]+ train_speedup_vs_plain=[\d.]+ "
                        r"stack5_vs_stack1_per_model=[\d.]+ fgsm5_speedup=[\d.]+",
                        lines[-1]), lines[-1]
    assert "stacked_bmm" in done.stdout and "strict / default:" in done.stdout
    assert "ours equals per-eps bit for bit: True" in done.stdout


def test_one_stack_of_all_checkpoints_measures_what_the_per_checkpoint_stacks_do():
    spec = importlib.util.spec_from_file_location("engine_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(300, 784, generator=gen), torch.randint(0, 10, (300,), generator=gen)
    seeds = bench.SEEDS
    alone = bench.evaluate_stack(bench.stack_mlps(bench.models()), seeds, x, y, x[:100], y[:100])
    together = bench.evaluate_stack(bench.stack_mlps(bench.models() * 2), 2 * seeds, x, y,
                                    x[:100], y[:100], scale=10)
    assert len(alone) == seeds and len(together) == 2 * seeds
    for i, records in enumerate(together):
        expected = alone[i % seeds]
        assert [r[:5] for r in records] == [r[:5] for r in expected]
        assert [r.value for r in records] == pytest.approx([r.value for r in expected],
                                                           rel=1e-6)


def test_adversarial_training_section_runs_and_prints_its_summary_line():
    # one thread: on a loaded machine two threads' barriers cost more than the work here
    done = subprocess.run([sys.executable, str(SCRIPT), "--at", "--synthetic", "--steps", "2",
                           "--repeats", "1", "--threads", "1"], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    # torchattacks (the plain loop) and ART are optional: a comparison without them is nan
    assert re.fullmatch(r"at_over_floor=[\d.]+ at_speedup_vs_plain=([\d.]+|nan) "
                        r"at_speedup_vs_art=([\d.]+|nan) "
                        r"products_speedup_vs_plain=([\d.]+|nan)", lines[-1]), lines[-1]
    assert "pgd_at" in done.stdout and "crafting" in done.stdout and "products" in done.stdout


def test_adversarial_training_floor_counts_ten_input_gradient_passes_and_one_step():
    spec = importlib.util.spec_from_file_location("engine_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    fwd = 784 * 200 + 200 * 300 + 300 * 10
    step = 2 * fwd + 200 * 300 + 300 * 10  # forward, weight gradients, input gradients 2..n
    assert bench.epoch_flops([784, 200, 300, 10], n=1) == 2 * step
    assert bench.epoch_flops([784, 200, 300, 10], n=1, craft_steps=10) == 2 * (step
                                                                             + 10 * 2 * fwd)
