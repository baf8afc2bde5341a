"""An interrupted run resumes a cell (or a stack) from its last checkpoint, and its results equal
an uninterrupted run's bit for bit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from benchbench.engine.cell import Events
from benchbench.engine.resume import resume_path
from benchbench.engine.runner import run_suite
from benchbench.regimes.memberwise import MemberwiseOptimizer
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.test_stacked import GRID

COLS = ["model", "regime", "seed", "epoch", "split", "attack", "eps", "metric", "value"]
# two Adam regimes with their own learning rates: one stack with a MemberwiseOptimizer
LR_GRID = "".join(GRID.format(label=f"lr{lr}", optimizer="adam", lr=lr, momentum=0.0,
                              weight_decay=0.0) for lr in (0.01, 0.02))


class Epochs(Events):
    """Records every epoch trained; raises KeyboardInterrupt (as Ctrl-C would) after ``stop``."""

    def __init__(self, stop: int | None = None) -> None:
        self.stop, self.seen = stop, []

    def epoch_done(self, spec, epoch) -> None:
        self.seen.append(epoch)
        if epoch == self.stop:
            raise KeyboardInterrupt


def run(suite, registry, out, engine, events=None):
    run_suite(suite, registry=registry, out_dir=out, device="cpu", engine=engine,
              events=events)


def tidy(out):
    with read_store(out) as store:
        return store.tidy()[COLS].sort_values(COLS[:-1]).reset_index(drop=True), \
            store.tidy()[["cell_id"]].drop_duplicates().cell_id.tolist()


@pytest.mark.parametrize(("engine", "regimes", "expect_resumed"), [
    ("auto", "", [4, 5, 6]),  # 2 seeds as one stack
    ("sequential", "", [4, 5, 6, 1, 2, 3, 4, 5, 6]),  # seed 0 resumes, seed 1 runs
    ("auto", LR_GRID, [4, 5, 6]),  # 2 regimes x 2 seeds as one stack, memberwise Adam
])
def test_interrupted_run_resumes_from_the_last_checkpoint_bit_for_bit(
        write_suite, registry, tmp_path, engine, regimes, expect_resumed):
    path = write_suite(epochs=6, checkpoints="[1, 3, 6]")
    if regimes:
        path.write_text(path.read_text().split("[regime]")[0] + regimes)
    suite = load_suite(path, registry)
    run(suite, registry, tmp_path / "whole", engine)

    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, out, engine, Epochs(stop=4))
    assert list((out / "checkpoints" / "resume").glob("*.pt"))
    events = Epochs()
    run(suite, registry, out, engine, events)
    assert events.seen == expect_resumed

    whole, cells = tidy(tmp_path / "whole")
    resumed, _ = tidy(out)
    assert resumed.equals(whole)
    for cell in cells:
        a = load_file(tmp_path / "whole" / "checkpoints" / cell / "epoch_0006.safetensors")
        b = load_file(out / "checkpoints" / cell / "epoch_0006.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert not list((out / "checkpoints" / "resume").glob("*"))  # spent once stored


def test_an_unreadable_resume_file_means_starting_over(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(epochs=3, checkpoints="[1, 3]"), registry)
    run(suite, registry, tmp_path / "whole", "auto")
    out = tmp_path / "torn"
    target = resume_path(out / "checkpoints", suite.cells())
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not a torch file")
    events = Epochs()
    run(suite, registry, out, "auto", events)
    assert events.seen == [1, 2, 3]
    assert tidy(out)[0].equals(tidy(tmp_path / "whole")[0])


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_memberwise_optimizer_continues_from_its_state_dict(kind):
    hypers = [{"lr": 0.1, "weight_decay": 0.0, "momentum": 0.9},
              {"lr": 0.2, "weight_decay": 0.01, "momentum": 0.9}]
    gen = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(2, 3, 4, generator=gen, dtype=torch.float64) for _ in range(5)]

    def steps(p, opt, gs):
        for g in gs:
            p.grad = g.clone()
            opt.step()

    p = start.clone().requires_grad_(True)
    opt = MemberwiseOptimizer([p], hypers, kind)
    steps(p, opt, grads)

    q = start.clone().requires_grad_(True)
    first = MemberwiseOptimizer([q], hypers, kind)
    steps(q, first, grads[:2])
    saved = {k: [t.clone() if torch.is_tensor(t) else [s.clone() for s in t]
                 if isinstance(t, list) else t for t in v] for k, v in first.state_dict().items()}
    second = MemberwiseOptimizer([q], hypers, kind)
    second.load_state_dict(saved)
    steps(q, second, grads[2:])
    assert torch.equal(p, q)
    with pytest.raises(ValueError, match="not the state"):
        second.load_state_dict({"momentum_buffer": []} if kind == "adam" else {"steps": []})
