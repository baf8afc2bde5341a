"""Which examples stayed correct, and the worst case over attacks derived from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbench.engine.evaluate import packed_correct
from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.store.examples import (
    count,
    decode,
    encode,
    exact_worst,
    read_examples,
    unpack,
    worst_rows,
)
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from tests.test_resume import Epochs

SUITE = """
[suite]
name = "worst"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train"
test = "test"

[model]
name = "mlp"
hidden = [16]

[regime]
name = "standard"
lr = 0.01
batch_size = 100
epochs = {epochs}
checkpoints = {checkpoints}
dtype = "float64"

[[attacks]]
name = "fgsm"
eps = [0.05, 0.2]

[[attacks]]
name = "pgd"
eps = [0.1, 0.2]
steps = 3
random_start = false

[[attacks]]
name = "pgd"
label = "pgd_rs"
eps = [0.2]
steps = 2

[[attacks]]
name = "pgd"
label = "pgd_l2"
norm = "l2"
eps = [0.5]
steps = 2
"""


def test_packing_is_numpys_packbits_and_round_trips():
    gen = torch.Generator().manual_seed(0)
    for n in (0, 1, 7, 8, 9, 297, 10_000):
        bools = torch.rand(n, generator=gen) < 0.6
        text = packed_correct(bools)
        m, packed = decode(text)
        assert m == n and packed == np.packbits(bools.numpy()).tobytes()
        assert (unpack(m, packed) == bools.numpy()).all()
        assert count(packed) == int(bools.sum())
    assert len(decode(packed_correct(torch.ones(10_000, dtype=torch.bool)))[1]) == 1250
    with pytest.raises(ValueError):
        encode(9, b"\x00")


def _bits(values: list[int]) -> tuple[int, bytes]:
    return len(values), np.packbits(np.array(values, dtype=bool)).tobytes()


def test_worst_is_the_ensemble_over_the_attacks_of_a_norm_at_each_eps():
    a, b = _bits([1, 1, 0, 1, 1, 0, 1, 1, 1]), _bits([1, 0, 1, 1, 1, 0, 1, 1, 0])
    short = _bits([0, 1, 1, 1])  # an attack on the split's first 4 rows only
    norms = {"a": "linf", "b": "linf", "short": "linf", "c": "l2", "odd": None}
    rows = [(1, "test", "none", 0.0, *_bits([1] * 9)),
            (1, "test", "a", 0.1, *a), (1, "test", "b", 0.1, *b),
            (1, "test", "a", 0.3, *a),  # an eps only "a" has
            (1, "test", "c", 0.1, *b), (1, "test", "odd", 0.1, *_bits([0] * 9)),
            (2, "test", "a", 0.1, *a), (2, "test", "short", 0.1, *short)]
    got = {(e, s, att, eps): v for e, s, att, eps, metric, v in worst_rows(rows, norms)}
    assert got == {(1, "test", "worst_linf", 0.1): 5 / 9,  # both correct on 5 of 9
                   (1, "test", "worst_linf", 0.3): 7 / 9,  # "a" alone: its own accuracy
                   (1, "test", "worst_l2", 0.1): 6 / 9,
                   (2, "test", "worst_linf", 0.1): 2 / 4}  # over the rows both saw
    assert got[(1, "test", "worst_linf", 0.1)] <= min(7 / 9, 6 / 9)


def test_exact_worst_without_bits_takes_single_attacks_only():
    norms = {"fgsm": "linf", "pgd": "linf", "pgd_l2": "l2"}
    rows = [("c", 1, "test", "fgsm", 0.05, "accuracy"), ("c", 1, "test", "fgsm", 0.2, "accuracy"),
            ("c", 1, "test", "pgd", 0.2, "accuracy"), ("c", 1, "test", "pgd_l2", 0.5, "accuracy"),
            ("c", 1, "test", "none", 0.0, "accuracy"), ("d", 1, "test", "pgd", 0.2, "accuracy")]
    assert sorted(exact_worst(rows, norms)) == [(0, "worst_linf"), (3, "worst_l2"),
                                                (5, "worst_linf")]


def _run(tmp_path, registry, name, engine="auto", epochs=2, checkpoints="[1, 2]", events=None):
    path = tmp_path / "worst.toml"
    path.write_text(SUITE.format(epochs=epochs, checkpoints=checkpoints))
    suite = load_suite(path, registry)
    run_suite(suite, registry=registry, out_dir=tmp_path / name, device="cpu", engine=engine,
              events=events)
    return tmp_path / name


def _stored(run_dir):
    with read_store(run_dir) as store:
        bits = {(e.cell_id, e.epoch, e.split, e.attack, e.eps): e for e in read_examples(store)}
        values = {tuple(r[:5]): r[5] for r in store.conn.execute(
            "SELECT cell_id, epoch, split, attack, eps, value FROM results "
            "WHERE metric = 'accuracy'")}
        norms = {r[0]: r[1] for r in store.conn.execute(
            "SELECT key, value FROM meta WHERE key = 'attack_norms'")}
    return bits, values, norms


def test_stored_bits_give_the_stored_accuracies_and_the_worst_rows(registry, tmp_path):
    auto = _run(tmp_path, registry, "auto")
    bits, values, _ = _stored(auto)
    # 2 cells x 2 checkpoints x (2 clean splits + 6 attack x eps)
    assert len(bits) == 2 * 2 * 8
    for key, e in bits.items():
        assert e.accuracy == values[key]  # exactly: the same count over the same n
        assert e.n == (297 if e.split == "test" else 1500)
    cells = {k[0] for k in bits}
    for cell in cells:
        for epoch in (1, 2):
            def acc(attack, eps, cell=cell, epoch=epoch):
                return values[(cell, epoch, "test", attack, eps)]

            worst = {eps: acc("worst_linf", eps) for eps in (0.05, 0.1, 0.2)}
            assert worst[0.05] == acc("fgsm", 0.05) and worst[0.1] == acc("pgd", 0.1)
            assert worst[0.2] <= min(acc("fgsm", 0.2), acc("pgd", 0.2), acc("pgd_rs", 0.2))
            assert acc("worst_l2", 0.5) == acc("pgd_l2", 0.5)
            robust = np.logical_and.reduce([bits[(cell, epoch, "test", a, 0.2)].correct
                                            for a in ("fgsm", "pgd", "pgd_rs")])
            assert worst[0.2] == robust.sum() / 297
            assert (cell, epoch, "test", "worst_linf", 0.5) not in values  # no linf attack there


def test_stacked_and_sequential_store_the_same_bits(registry, tmp_path):
    auto = _run(tmp_path, registry, "auto")
    alone = _run(tmp_path, registry, "sequential", engine="sequential")
    a, va, _ = _stored(auto)
    b, vb, _ = _stored(alone)
    assert a.keys() == b.keys() and va.keys() == vb.keys()
    assert all(a[k].packed == b[k].packed for k in a)  # float64: in practice every bit
    assert {k: v for k, v in va.items() if "worst" in k[3]} == {
        k: v for k, v in vb.items() if "worst" in k[3]}


def test_an_interrupted_run_resumes_with_the_same_bits(registry, tmp_path):
    whole = _run(tmp_path, registry, "whole", epochs=3, checkpoints="[1, 3]")
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, registry, "resumed", epochs=3, checkpoints="[1, 3]", events=Epochs(2))
    events = Epochs()
    resumed = _run(tmp_path, registry, "resumed", epochs=3, checkpoints="[1, 3]",
                   events=events)
    assert events.seen == [2, 3]  # epoch 1's bits came from the saved state
    a, va, _ = _stored(whole)
    b, vb, _ = _stored(resumed)
    assert {k: v.packed for k, v in a.items()} == {k: v.packed for k, v in b.items()}
    assert {k[1] for k in b} == {1, 3} and va == vb


def test_an_attack_may_not_take_a_worst_case_label(registry, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(SUITE.format(epochs=1, checkpoints="[1]").replace('"pgd_l2"',
                                                                       '"worst_l2"'))
    with pytest.raises(SuiteError, match="reserved for the worst case"):
        run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
                  device="cpu")
    assert not (tmp_path / "run").exists()
