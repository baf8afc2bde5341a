"""Cells: serialisable specs, reproducible training, checkpoints and stored numbers."""

from __future__ import annotations

import pickle

import torch

from benchbench.engine.cell import CellContext, build_model, run_cell
from benchbench.engine.data import DataCache
from benchbench.models.mlp import build_mlp
from benchbench.store.checkpoints import checkpoint_path, load_checkpoint
from benchbench.suite.cells import CellSpec
from benchbench.suite.load import load_suite


def cells(write_suite, registry, **kw):
    return load_suite(write_suite(**kw), registry).cells()


def run(spec, registry, tmp_path=None):
    ctx = CellContext(registry, DataCache(registry, None), "cpu",
                      tmp_path / "ckpt" if tmp_path else None)
    return run_cell(spec, ctx)


def test_cell_spec_round_trips_and_is_content_addressed(write_suite, registry):
    spec = cells(write_suite, registry)[0]
    again = CellSpec.from_json(spec.to_json())
    assert again == spec and again.cell_id == spec.cell_id
    assert pickle.loads(pickle.dumps(spec)) == spec
    other = cells(write_suite, registry, epochs=3, checkpoints="[1, 3]")[0]
    assert other.cell_id != spec.cell_id


def test_same_seed_same_numbers_different_seed_different(write_suite, registry):
    first, second = cells(write_suite, registry)
    a, b = run(first, registry), run(first, registry)
    assert a.records == b.records
    assert run(second, registry).records != a.records
    epochs = sorted({r.epoch for r in a.records})
    assert epochs == [1, 2]
    kinds = {(r.split, r.attack, r.eps, r.metric) for r in a.records}
    assert kinds == {("train", "none", 0.0, "accuracy"), ("train", "none", 0.0, "loss"),
                     ("test", "none", 0.0, "accuracy"), ("test", "none", 0.0, "loss"),
                     ("test", "none", 0.0, "zero_grad_frac"),
                     ("test", "none", 0.0, "saturated_frac"),
                     ("test", "fgsm", 0.05, "accuracy"), ("test", "fgsm", 0.2, "accuracy"),
                     # which examples stayed correct (benchbench.store.examples)
                     ("train", "none", 0.0, "correct"), ("test", "none", 0.0, "correct"),
                     ("test", "fgsm", 0.05, "correct"), ("test", "fgsm", 0.2, "correct")}


def test_float64_regime_trains_in_float64(write_suite, registry, tmp_path):
    spec = cells(write_suite, registry, dtype="float64")[0]
    outcome = run(spec, registry, tmp_path)
    assert outcome.dtype == "float64"
    path = checkpoint_path(tmp_path / "ckpt", spec.cell_id, 2)
    model = build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16]).double()
    meta = load_checkpoint(path, model)
    assert meta["epoch"] == "2" and CellSpec.from_json(meta["spec"]) == spec
    assert next(model.parameters()).dtype == torch.float64


def test_checkpoint_reproduces_the_stored_accuracy(write_suite, registry, tmp_path):
    spec = cells(write_suite, registry)[0]
    outcome = run(spec, registry, tmp_path)
    data = DataCache(registry, None)
    x, y = data.get(spec.dataset, "test", dtype=torch.float32, device="cpu")
    model = build_model(registry, spec.model, 99, data.dataset(spec.dataset))
    load_checkpoint(checkpoint_path(tmp_path / "ckpt", spec.cell_id, 1), model)
    acc = (model.eval()(x).argmax(1) == y).double().mean().item()
    stored = [r.value for r in outcome.records
              if (r.epoch, r.split, r.attack, r.metric) == (1, "test", "none", "accuracy")]
    assert stored == [acc]


def test_mlp_init_is_glorot_uniform_with_zero_biases():
    torch.manual_seed(0)
    model = build_mlp(input_shape=(1, 28, 28), num_classes=10, hidden=[200, 300])
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 200), (200, 300),
                                                                   (300, 10)]
    for m in linears:
        bound = (6 / (m.in_features + m.out_features)) ** 0.5
        assert m.weight.abs().max() <= bound
        assert m.weight.abs().max() > 0.95 * bound
        assert torch.count_nonzero(m.bias) == 0


def test_split_slices_follow_python_semantics(registry):
    from benchbench.suite.cells import DatasetRef

    data = DataCache(registry, None)
    full, _ = data.get(DatasetRef("digits", "train", "test"), "train", dtype=torch.float32,
                       device="cpu")
    tail, _ = data.get(DatasetRef("digits", "train[500:]", "test"), "train",
                       dtype=torch.float32, device="cpu")
    head, _ = data.get(DatasetRef("digits", "train[:500]", "test"), "train",
                       dtype=torch.float32, device="cpu")
    assert len(full) == 1500 and torch.equal(tail, full[500:]) and torch.equal(head, full[:500])
    test, _ = data.get(DatasetRef("digits", "train", "test"), "test", dtype=torch.float32,
                       device="cpu")
    assert len(test) == 297 and float(full.max()) == 1.0 and float(full.min()) == 0.0
