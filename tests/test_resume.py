"""An interrupted run resumes a cell (or a stack) from its last checkpoint, and its results equal
an uninterrupted run's bit for bit."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file

from benchbench import hookimpl
from benchbench.attacks.fgsm import FGSM
from benchbench.engine.cell import Events
from benchbench.engine.resume import resume_path
from benchbench.engine.runner import run_suite
from benchbench.regimes.memberwise import MemberwiseOptimizer
from benchbench.regimes.standard import StandardTraining
from benchbench.store.results import open_store, read_store
from benchbench.store.rundir import MARKER
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
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


def build_dropout_mlp(*, input_shape, num_classes):
    """An MLP whose training draws from torch's global RNG (dropout): it does not stack."""
    from torch import nn

    inputs = 1
    for d in input_shape:
        inputs *= d
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, 16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, num_classes))


class DrawingFGSM(FGSM):
    """FGSM whose constructor draws from the global RNG, as a plugin's may."""

    def __init__(self, **params) -> None:
        super().__init__(**params)
        torch.rand(1)


@hookimpl
def register_models(register):
    register("dropout_mlp", build_dropout_mlp)


@hookimpl
def register_attacks(register):
    register("drawing_fgsm", DrawingFGSM)


class OldStyleTraining(StandardTraining):
    """A plugin regime written for the old contract: it derives from the built-in regime but
    overrides ``train`` (the harness, which runs every ``Regime``, would never call it)."""

    def train(self, *, model, x, y, seed):
        yield from range(1, self.epochs + 1)


@hookimpl
def register_regimes(register):
    register("old_style", OldStyleTraining)


def test_a_regime_overriding_train_on_the_harness_base_is_refused(write_suite, tmp_path):
    from benchbench.errors import SuiteError

    registry = isolated_registry(sys.modules[__name__])
    path = write_suite(epochs=3, checkpoints="[1, 3]")
    path.write_text(path.read_text().replace('name = "standard"', 'name = "old_style"'))
    suite = load_suite(path, registry)
    with pytest.raises(SuiteError, match=r"regime: .*'old_style'.*defines train\(\)"):
        run(suite, registry, tmp_path / "run", "auto")
    assert not (tmp_path / "run").exists()


def test_resuming_restores_the_rng_that_training_draws_from(write_suite, tmp_path):
    """Dropout draws from torch's global RNG: a resumed cell goes on with the RNG as the
    uninterrupted run had it, whatever ran in between (here an attack built from the RNG)."""
    registry = isolated_registry(sys.modules[__name__])
    path = write_suite(epochs=5, checkpoints="[2, 5]")
    path.write_text(path.read_text().replace('name = "mlp"\nhidden = [16]',
                                             'name = "dropout_mlp"')
                    .replace('name = "fgsm"', 'name = "drawing_fgsm"'))
    suite = load_suite(path, registry)
    run(suite, registry, tmp_path / "whole", "auto")
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, out, "auto", Epochs(stop=4))
    events = Epochs()
    run(suite, registry, out, "auto", events)
    assert events.seen == [3, 4, 5, 1, 2, 3, 4, 5]
    assert tidy(out)[0].equals(tidy(tmp_path / "whole")[0])


def test_an_unreadable_resume_file_means_starting_over(write_suite, registry, tmp_path):
    suite = load_suite(write_suite(epochs=3, checkpoints="[1, 3]"), registry)
    run(suite, registry, tmp_path / "whole", "auto")
    out = tmp_path / "torn"
    target = resume_path(out / "checkpoints", suite.cells())
    target.parent.mkdir(parents=True)
    for junk in (b"not a torch file", [1, 2], {"identity": "another unit"}):
        (out / MARKER).touch()  # a run directory benchbench made: its store, a resume file
        open_store(out / "results.sqlite").close()
        if isinstance(junk, bytes):
            target.write_bytes(junk)
        else:
            torch.save(junk, target)
        events = Epochs()
        run(suite, registry, out, "auto", events)
        assert events.seen == [1, 2, 3]
        assert tidy(out)[0].equals(tidy(tmp_path / "whole")[0])
        shutil.rmtree(out)
        target.parent.mkdir(parents=True)


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


@pytest.mark.parametrize("seeds", ["[0, 1]", "[0]"])
def test_another_grouping_starts_over_and_the_stale_file_goes(write_suite, registry, tmp_path,
                                                              seeds):
    """A stack interrupted, then run with --engine sequential: its cells start over alone (the
    stack's file is not theirs; for one seed, a stack of one has the cell's name but not the
    model's layout), and once all are stored the stack's file is removed."""
    suite = load_suite(write_suite(seeds=seeds, epochs=4, checkpoints="[2, 4]"), registry)
    run(suite, registry, tmp_path / "whole", "sequential")
    out = tmp_path / "switched"
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, out, "auto", Epochs(stop=3))
    assert resume_path(out / "checkpoints", suite.cells()).exists()
    events = Epochs()
    run(suite, registry, out, "sequential", events)
    assert events.seen == [1, 2, 3, 4] * len(suite.cells())
    assert tidy(out)[0].equals(tidy(tmp_path / "whole")[0])
    assert not (out / "checkpoints" / "resume").exists()


def test_a_state_saved_by_another_benchbench_version_is_not_used(write_suite, registry,
                                                                 tmp_path, monkeypatch):
    suite = load_suite(write_suite(epochs=4, checkpoints="[2, 4]"), registry)
    out = tmp_path / "upgraded"
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, out, "auto", Epochs(stop=3))
    monkeypatch.setattr("benchbench.__version__", "99.0")
    events = Epochs()
    run(suite, registry, out, "auto", events)
    assert events.seen == [1, 2, 3, 4]
