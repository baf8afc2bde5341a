"""Stacked multi-seed training: every member matches the same seed trained alone.

Tolerances (6 epochs on digits, 3 seeds): float64, every stored number and every weight within
1e-12; float32, weights within 1e-5 and stored numbers within 1e-5 (accuracies may differ by at
most one example, and in practice are equal).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from benchbench.engine.runner import run_suite
from benchbench.engine.stacked import plan_units
from benchbench.models.stacked_mlp import StackedMLP, stack_mlps
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite

COLS = ["model", "seed", "epoch", "split", "attack", "eps", "metric"]


def both_paths(write_suite, registry, tmp_path, dtype, extra_regimes="", seeds=3):
    path = write_suite(seeds=seeds, epochs=6, checkpoints="[1, 3, 6]", dtype=dtype)
    if extra_regimes:
        path.write_text(path.read_text().replace("[regime]", "[[regime]]") + extra_regimes)
    suite = load_suite(path, registry)
    for engine in ("auto", "sequential"):
        run_suite(suite, registry=registry, out_dir=tmp_path / engine, device="cpu",
                  engine=engine)
    with read_store(tmp_path / "auto") as a, read_store(tmp_path / "sequential") as b:
        return suite, a.tidy(), b.tidy()


@pytest.mark.parametrize(("dtype", "tol"), [("float64", 1e-12), ("float32", 1e-5)])
def test_stacked_equals_sequential(write_suite, registry, tmp_path, dtype, tol):
    suite, stacked, alone = both_paths(write_suite, registry, tmp_path, dtype)
    assert set(stacked.engine) == {"stacked x3"}
    assert set(alone.engine) == {"sequential: --engine sequential"}
    assert stacked[COLS].equals(alone[COLS])
    # two computation paths (batched products against nn.Linear with autograd): losses within
    # float rounding; counts (accuracies, fractions) may differ by one test example in float32,
    # where a logit within rounding of a tie can fall either way, and must agree in float64
    counts = stacked.metric != "loss"
    diff = (stacked.value - alone.value).abs()
    assert diff[~counts].max() <= tol
    n_test = 297
    assert diff[counts].max() <= (1 / n_test + 1e-12 if dtype == "float32" else tol)
    for cell in suite.cells():
        for epoch in (1, 3, 6):
            name = f"{cell.cell_id}/epoch_{epoch:04d}.safetensors"
            a = load_file(tmp_path / "auto" / "checkpoints" / name)
            b = load_file(tmp_path / "sequential" / "checkpoints" / name)
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == getattr(torch, dtype)
                assert (a[key] - b[key]).abs().max() <= tol, (cell.seed, epoch, key)


def test_members_are_independent_and_round_trip():
    torch.manual_seed(0)
    from benchbench.models.mlp import build_mlp

    models = [build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16, 12])
              for _ in range(3)]
    stack = stack_mlps(models)
    assert isinstance(stack, StackedMLP) and stack.members == 3
    x = torch.rand(5, 1, 8, 8)
    out = stack(x.repeat(3, 1, 1, 1)).view(3, 5, 10)
    for i, model in enumerate(models):
        assert torch.allclose(out[i], model(x), atol=1e-6)
        assert all(torch.equal(v, model.state_dict()[k])
                   for k, v in stack.member_state_dict(i).items())
    gelu = [build_mlp(input_shape=(4,), num_classes=2, activation="gelu") for _ in range(2)]
    assert stack_mlps(gelu) is None


def test_plan_groups_only_cells_that_differ_in_seed(write_suite, registry):
    text = (write_suite(seeds=2).read_text().replace("[model]", "[[model]]")
            + '\n[[model]]\nname = "mlp"\nlabel = "wide"\nhidden = [32]\n')
    suite = load_suite(write_suite(text=text), registry)
    units = plan_units(suite.cells(), registry, stack=True)
    assert [[(c.model.label, c.seed) for c in u] for u in units] == [
        [("mlp", 0), ("mlp", 1)], [("wide", 0), ("wide", 1)]]
    assert all(len(u) == 1 for u in plan_units(suite.cells(), registry, stack=False))


def test_random_attacks_run_member_by_member(write_suite, registry, tmp_path):
    """An attack without ``per_example = True`` sees, per cell, the stream it sees alone."""
    from benchbench import hookimpl
    from benchbench.plugins import load_registry

    class Jitter:
        norm = "linf"

        def perturb(self, model, x, y, *, eps, bounds):
            noise = torch.rand(x.shape, dtype=x.dtype).sub(0.5).sign()
            return torch.stack([x + e * noise for e in eps])

    class Plugin:
        @hookimpl
        def register_attacks(self, register):
            register("jitter", Jitter)

    reg = load_registry(load_entry_points=False, extra=(Plugin(),))
    text = write_suite(seeds=2).read_text() + '\n[[attacks]]\nname = "jitter"\neps = [0.3]\n'
    suite = load_suite(write_suite(text=text), reg)
    for engine in ("auto", "sequential"):
        run_suite(suite, registry=reg, out_dir=tmp_path / engine, device="cpu", engine=engine)
    with read_store(tmp_path / "auto") as a, read_store(tmp_path / "sequential") as b:
        ja, jb = (t[t.attack == "jitter"].value.tolist() for t in (a.tidy(), b.tidy()))
    assert ja == jb and len(ja) == 2 * 2


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_cross_entropy_backward_equals_autograd(activation):
    """The stack's own training gradient is autograd's through the stack, bit for bit in float64
    (the same per-member products: exact on any CPU)."""
    from benchbench.models.mlp import build_mlp

    torch.manual_seed(0)
    models = [build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16, 12],
                        activation=activation).double() for _ in range(3)]
    x, y = torch.rand(3 * 7, 1, 8, 8, dtype=torch.float64), torch.randint(0, 10, (3 * 7,))
    ours, ref = stack_mlps(models), stack_mlps(models)
    ours.cross_entropy_backward(x, y)
    torch.nn.functional.cross_entropy(ref(x), y, reduction="sum").div(7).backward()
    for a, b in zip(ours.parameters(), ref.parameters(), strict=True):
        assert a.grad.shape == b.grad.shape
        assert torch.equal(a.grad, b.grad)
    alone = models[1]  # member 1 trained alone on its own rows: the same gradient
    torch.nn.functional.cross_entropy(alone(x[7:14]), y[7:14]).backward()
    layers = dict(alone.named_children())
    for name, w, b in zip(ours.names, ours.weights, ours.biases, strict=True):
        assert (w.grad[1] - layers[name].weight.grad).abs().max() <= 1e-12
        assert (b.grad[1, 0] - layers[name].bias.grad).abs().max() <= 1e-12
    grads = [p.grad for p in ours.parameters()]
    ours.cross_entropy_backward(x, y)  # a second step writes into the same tensors
    assert all(p.grad is g for p, g in zip(ours.parameters(), grads, strict=True))


GRID = """
[[regime]]
name = "standard"
label = "{label}"
optimizer = "{optimizer}"
lr = {lr}
momentum = {momentum}
weight_decay = {weight_decay}
batch_size = 100
epochs = 6
checkpoints = [1, 3, 6]
dtype = "float64"
"""


def test_cells_differing_in_member_params_stack_and_match_alone(write_suite, registry,
                                                                tmp_path):
    """A learning-rate / weight-decay grid trains as one stack; each member equals its cell
    trained alone (float64, 1e-12). A different optimizer is a different stack."""
    extra = (GRID.format(label="fast", optimizer="adam", lr=0.03, momentum=0.0,
                         weight_decay=0.001)
             + GRID.format(label="sgd", optimizer="sgd", lr=0.1, momentum=0.9,
                           weight_decay=0.0)
             + GRID.format(label="sgd-wd", optimizer="sgd", lr=0.05, momentum=0.5,
                           weight_decay=0.01))
    suite, stacked, alone = both_paths(write_suite, registry, tmp_path, "float64", extra)
    units = plan_units(suite.cells(), registry, stack=True)
    assert [sorted({c.regime.label for c in u}) for u in units] == [
        ["fast", "standard"], ["sgd", "sgd-wd"]]
    assert [len(u) for u in units] == [6, 6]
    assert set(stacked.engine) == {"stacked x6"}
    assert stacked[COLS].equals(alone[COLS])
    assert set(stacked.regime) == {"standard", "fast", "sgd", "sgd-wd"}
    assert (stacked.value - alone.value).abs().max() <= 1e-12
    # the hyper-parameters did act: the four regimes learn differently
    final = stacked[(stacked.metric == "loss") & (stacked.split == "train")
                    & (stacked.epoch == 6)].groupby("regime").value.mean()
    assert final.nunique() == 4


def test_a_single_cell_trains_as_a_stack_of_one(write_suite, registry, tmp_path):
    _, stacked, alone = both_paths(write_suite, registry, tmp_path, "float64", seeds=1)
    assert set(stacked.engine) == {"stacked x1"}
    assert set(alone.engine) == {"sequential: --engine sequential"}
    assert stacked[COLS].equals(alone[COLS])
    assert (stacked.value - alone.value).abs().max() <= 1e-12


def test_regimes_are_passed_only_when_member_params_differ(write_suite, registry, tmp_path,
                                                           monkeypatch):
    """Two regime entries that differ only in their label stack, and the harness trains them as
    seeds alone: one optimiser, no per-member ``regimes``."""
    from benchbench.engine.training import Trainer

    calls = []
    original = Trainer.__init__

    def spy(self, regime, **kwargs):
        calls.append((kwargs["regimes"], kwargs["stacked"]))
        original(self, regime, **kwargs)

    monkeypatch.setattr(Trainer, "__init__", spy)
    extra = GRID.format(label="again", optimizer="adam", lr=0.01, momentum=0.0,
                        weight_decay=0.0).replace('dtype = "float64"', 'dtype = "float32"')
    path = write_suite(seeds=2, epochs=6, checkpoints="[1, 3, 6]")
    path.write_text(path.read_text().replace("[regime]", "[[regime]]") + extra)
    suite = load_suite(path, registry)
    assert [len(u) for u in plan_units(suite.cells(), registry, stack=True)] == [4]
    run_suite(suite, registry=registry, out_dir=tmp_path / "run", device="cpu")
    assert calls == [(None, True)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cross_entropy_input_grad_has_autograds_bits(dtype):
    """pgd_at crafts with the stack's own input gradient: the bits autograd computes for the
    summed cross-entropy, including exactly-zero entries where a member's softmax saturates."""
    import torch.nn.functional as F

    from benchbench.models.mlp import build_mlp

    torch.manual_seed(0)
    models = [build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[32, 16]).to(dtype)
              for _ in range(3)]
    stack = stack_mlps(models)
    with torch.no_grad():  # member 2 saturates: its gradients round to exactly zero
        stack.weights[-1][2].mul_(1e4)
    x = torch.rand(3 * 20, 1, 8, 8, dtype=dtype)
    y = torch.randint(0, 10, (60,))
    with torch.no_grad():  # member 2's labels are its own predictions: p_y rounds to 1.0
        y[40:] = stack(x)[40:].argmax(1)
    for p in stack.parameters():
        p.requires_grad_(False)
    xa = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(F.cross_entropy(stack(xa), y, reduction="sum"), xa)
    got = stack.cross_entropy_input_grad(x, y)
    assert got.shape == x.shape and torch.equal(got, expected)
    assert got[40:].flatten(1).eq(0).all(1).any()  # a saturated example: exactly zero


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("inputs", "hidden"), [(64, [16]), (64, [24]), (64, [64, 32]),
                                                (784, [200, 300])])
def test_a_member_has_the_same_bits_in_any_stack_and_on_one_or_two_threads(inputs, hidden,
                                                                            dtype):
    """8 Adam steps: member 1 of a stack of 3 or 2 ends with the weights of the same model as a
    stack of one, at 1 and at 2 threads. Exact: every member's product is computed on one
    thread (``_bmm``: MKL's batched product gives each thread whole members; a stack of one runs
    a float64 or small product on one thread, a float32 large one on any, whose bits MKL's
    strict mode keeps), and the optimiser gets each member's slice as its own tensor
    (``lean_step``)."""
    from benchbench.models.mlp import build_mlp
    from benchbench.regimes.lean_step import lean_step

    side = int(inputs ** 0.5)

    def model(seed):
        torch.manual_seed(seed)
        return build_mlp(input_shape=(1, side, side), num_classes=10, hidden=hidden).to(dtype)

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 8, 100, inputs, generator=gen, dtype=dtype)
    y = torch.randint(0, 10, (3, 8, 100), generator=gen)

    def train(seeds, threads):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            stack = stack_mlps([model(s) for s in seeds])
            opt = torch.optim.Adam(stack.parameters(), lr=0.01, fused=True)
            step = lean_step(opt, members=len(seeds))
            for b in range(8):
                stack.cross_entropy_backward(x[list(seeds), b].reshape(-1, inputs),
                                             y[list(seeds), b].reshape(-1))
                step()
        finally:
            torch.set_num_threads(before)
        return [p.detach()[seeds.index(1)] for p in stack.parameters()]

    alone = train((1,), 2)
    for seeds, threads in [((1,), 1), ((0, 1, 2), 2), ((0, 1, 2), 1), ((2, 1), 2)]:
        got = train(seeds, threads)
        assert all(torch.equal(a, b) for a, b in zip(got, alone, strict=True)), (seeds, threads)


def test_a_cpu_whose_batched_product_rounds_members_otherwise_falls_back_member_by_member(
        monkeypatch):
    """The stack's promise (every member has the bits of the member alone) rests on MKL's
    batched product computing each member as the member alone; Intel does not document it, so
    the first product of each shape is checked. A CPU where it fails (simulated: the batched
    product's last bit changed) gets the members computed one by one, bit for bit the ones
    alone, with one warning per shape, and the stack still trains and attacks. Exact: the
    fallback runs the very products the members alone run."""
    import warnings

    from benchbench.models import stacked_mlp
    from benchbench.models.mlp import build_mlp

    real = stacked_mlp._product

    def skewed(a, b, bias, out):  # a batched product that differs in the last bit
        result = real(a, b, bias, out)
        if a.dim() == 3 and a.shape[0] > 1:
            result.copy_(torch.nextafter(result, torch.full_like(result, float("inf"))))
        return result

    monkeypatch.setattr(stacked_mlp, "_product", skewed)
    monkeypatch.setattr(stacked_mlp, "_BATCHED_EXACT", {})
    models = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        models.append(build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16]))
    stack, alone = stack_mlps(models), [stack_mlps([m]) for m in models]
    x = torch.rand(3 * 20, 1, 8, 8)
    y = torch.randint(0, 10, (60,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            logits = stack(x)
        grad = stack.cross_entropy_input_grad(x, y)
        again = stack.cross_entropy_input_grad(x, y)  # known shapes: no second warning
    said = [str(w.message) for w in caught if "rounds stack members" in str(w.message)]
    assert said and len(said) == len(set(said))  # once per shape
    assert torch.equal(grad, again)
    for i, (member, xi, yi) in enumerate(zip(alone, x.chunk(3), y.chunk(3), strict=True)):
        with torch.no_grad():
            assert torch.equal(logits[20 * i:20 * (i + 1)], member(xi))
        assert torch.equal(grad[20 * i:20 * (i + 1)], member.cross_entropy_input_grad(xi, yi))
    assert not any(stacked_mlp._BATCHED_EXACT.values())


def test_the_batched_product_is_checked_once_per_shape_not_per_call():
    """The check costs one member-by-member product per shape, layout, dtype and thread count
    (its verdict, whatever this CPU's, is kept for the run's process)."""
    from benchbench.models import stacked_mlp
    from benchbench.models.mlp import build_mlp

    stacked_mlp._BATCHED_EXACT.clear()
    torch.manual_seed(0)
    models = [build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[16]) for _ in range(2)]
    with torch.no_grad():
        stack_mlps(models)(torch.rand(40, 1, 8, 8))
    assert stacked_mlp._BATCHED_EXACT  # every product shape was checked
    checked = dict(stacked_mlp._BATCHED_EXACT)
    with torch.no_grad():
        stack_mlps(models)(torch.rand(40, 1, 8, 8))
    assert checked == stacked_mlp._BATCHED_EXACT  # once per shape, not per call
