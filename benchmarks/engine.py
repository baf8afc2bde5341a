"""Speed of benchbench's engine against the usual ways, as ratios measured in one run.

    python benchmarks/engine.py [--repeats 5] [--steps 550] [--full] [--eval] [--synthetic]
                                [--threads N] [--at] [--cnn] [--blas]

Variants run interleaved (A B C A B C ...) and each ratio is the median of per-round ratios, so
machine noise that hits a whole round cancels. Training is timed on ``--steps`` batches of 100
(the seed study's shapes: MLP 784-200-300-10, Adam lr 0.002; the default is one whole epoch of
the study's 55,000 training images) and scaled to a 55,000-image epoch.
The floor is the epoch's FLOPs (forward, weight gradients, input gradients of layers 2..n) over
the rate of a large sgemm measured in the same round. ``--eval`` also times evaluating 10
checkpoints of 5 seeds per checkpoint (the engine) against one stack of all 50. ``stacked_bmm``
is the stack with one ``bmm`` over all members per product (the engine before per-member
products, whose member bits depended on the stack). ``--blas`` also times the stacked epoch in
fresh processes under MKL's default and strict reproducible modes. Ends with one summary line
(``stack5_vs_stack1_per_model``: how many times faster per model a stack of 5 trains than a
stack of one).

``--at`` times PGD-10 adversarial training instead (eps 0.1, step 0.025, random start; 20
batches by default): benchbench's ``pgd_at`` with 5 seeds stacked through ``Trainer`` against
its floor (per batch 10 x [forward + input gradients] + one training step, at the sgemm rate
of the round), a bound (``products``: the same training with every PGD step cut to the stacked
input gradient, no update or projection), a plain loop calling ``torchattacks.PGD`` per seed (if
installed) and ART's ``AdversarialTrainerMadryPGD.fit``; it ends with ``at_over_floor=X
at_speedup_vs_plain=Y at_speedup_vs_art=Z products_speedup_vs_plain=W`` (nan for a comparison
whose library is missing).

``--cnn`` times PGD-10 adversarial training of ``small_cnn`` and ``wong_cnn`` instead
(``benchmarks/cnn.py``, which says what it measures; its own summary line).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.harness import project
from benchbench.engine.cell import ATTACK_BATCH, EVAL_BATCH
from benchbench.engine.evaluate import attack_records, clean_records, masking_records
from benchbench.engine.memory import keep_freed_memory
from benchbench.models.mlp import build_mlp
from benchbench.models.stacked_mlp import stack_mlps
from benchbench.regimes.standard import StandardTraining
from benchbench.suite.cells import AttackRef

SEEDS, BATCH, EPOCH_IMAGES, HIDDEN = 5, 100, 55_000, (200, 300)
EPS5 = (0.01, 0.02, 0.05, 0.1, 0.2)


def mnist_like(synthetic: bool, n: int):
    if not synthetic:
        try:
            from benchbench.datasets.mnist import MNIST
            from benchbench.datasets.mnist_source import default_data_dir, is_materialised

            if is_materialised(default_data_dir()):
                x, y = MNIST().load("train", data_dir=None)
                return x[5000:5000 + n].float().contiguous(), y[5000:5000 + n], "MNIST"
        except Exception as exc:  # the benchmark still runs without the data
            print(f"(MNIST unavailable: {exc}; using synthetic data)")
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=gen).float() / 255
    return x, torch.randint(0, 10, (n,), generator=gen), "synthetic"


def sgemm_gflops(size: int = 2048, dtype=torch.float32) -> float:
    """Rate of a large square matrix product (sgemm, or dgemm for float64)."""
    a, b = torch.rand(size, size, dtype=dtype), torch.rand(size, size, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(3):
        a @ b
    return 3 * 2 * size**3 / (time.perf_counter() - t) / 1e9


def epoch_flops(sizes: list[int], n: int = EPOCH_IMAGES, craft_steps: int = 0) -> float:
    """FLOPs of one epoch of ``n`` images through the MLP of layer widths ``sizes``: per batch
    one training step (forward, weight gradients, input gradients of layers 2..n) and, for
    adversarial training, ``craft_steps`` crafting steps (forward and every layer's input
    gradient, no weight gradients)."""
    layers = list(zip(sizes[:-1], sizes[1:], strict=True))
    fwd = sum(i * o for i, o in layers)
    train = 2 * fwd + sum(i * o for i, o in layers[1:])
    return 2 * n * (train + craft_steps * 2 * fwd)


def models(seeds=SEEDS, dtype=torch.float32):
    out = []
    for s in range(seeds):
        torch.manual_seed(s)
        out.append(build_mlp(input_shape=(1, 28, 28), num_classes=10, hidden=HIDDEN).to(dtype))
    return out


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


# --- training variants: each returns seconds per model-epoch -------------------------------
def train_with_harness(x, y, models_, *, stacked: bool) -> float:
    """Seconds for one epoch of ``StandardTraining`` through the harness's ``Trainer`` (as
    ``benchbench run`` trains): the ``models_`` as one stack, or the one model alone."""
    from benchbench.engine.training import Trainer
    from benchbench.regimes.context import TrainContext

    seeds = list(range(len(models_)))
    model = stack_mlps(models_) if stacked else models_[0]
    ctx = TrainContext(len(seeds), tuple(seeds), (0.0, 1.0), x.dtype, "cpu",
                       log=lambda _: None)
    trainer = Trainer(StandardTraining(lr=0.002, batch_size=BATCH, epochs=1), model=model,
                      x=x, y=y, seeds=seeds, ctx=ctx, stacked=stacked)
    return timed(lambda: list(trainer.epochs()))


def train_engine_stacked(x, y):
    return train_with_harness(x, y, models(dtype=x.dtype), stacked=True) / SEEDS \
        * EPOCH_IMAGES / len(x)


def train_engine_stacked_bmm(x, y):
    """The stack with one batched product per layer (``bmm`` over all members, as the engine
    did before per-member products): faster or slower, its member's bits depend on the stack."""
    import benchbench.models.stacked_mlp as stacked_mlp

    per_member = stacked_mlp._bmm
    stacked_mlp._bmm = lambda a, b, bias=None, out=None: stacked_mlp._product(a, b, bias, out)
    try:
        return train_engine_stacked(x, y)
    finally:
        stacked_mlp._bmm = per_member


def blas_modes(steps: int, repeats: int) -> None:
    """The stacked engine's epoch in fresh processes under MKL's default mode and its strict
    reproducible mode (which ``import benchbench`` asks for), alternating A B A B."""
    import os

    modes = {"default": "AUTO", "strict": "AUTO,STRICT"}
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for name, value in modes.items():
            out = subprocess.run([sys.executable, __file__, "--blas-child", "--steps", str(steps),
                                  "--synthetic"], env={**os.environ, "MKL_CBWR": value},
                                 capture_output=True, text=True, check=True).stdout
            times[name].append(float(out.split()[-1]))
    print(f"\nMKL mode, stacked seconds per model-epoch (fresh process each, median of {repeats}):")
    for name in modes:
        print(f"  {name:<8} {statistics.median(times[name]):7.3f} s")
    print(f"  strict / default: {median_ratio(times, 'default', 'strict'):.3f}")


def train_engine_single(x, y):
    """One seed under ``--engine auto``: a stack of one (the stack's own training step)."""
    return train_with_harness(x, y, models(1, dtype=x.dtype), stacked=True) \
        * EPOCH_IMAGES / len(x)


def train_engine_sequential(x, y):
    return train_with_harness(x, y, models(1, dtype=x.dtype), stacked=False) \
        * EPOCH_IMAGES / len(x)


def train_plain(x, y):
    """The textbook loop: in-memory tensors, default Adam, one seed."""
    model = models(1, dtype=x.dtype)[0]
    opt = torch.optim.Adam(model.parameters(), lr=0.002)

    def loop():
        perm = torch.randperm(len(x))
        for start in range(0, len(x), BATCH):
            idx = perm[start:start + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return timed(loop) * EPOCH_IMAGES / len(x)


def train_art(x, y):
    from art.estimators.classification import PyTorchClassifier

    model = models(1)[0]
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                            optimizer=torch.optim.Adam(model.parameters(), lr=0.002),
                            input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0))
    xn, yn = x.numpy(), y.numpy()
    return timed(lambda: clf.fit(xn, yn, batch_size=BATCH, nb_epochs=1, verbose=False)) \
        * EPOCH_IMAGES / len(x)


# --- FGSM variants: all attack the same 10,000 images in chunks of ATTACK_BATCH --------------
def chunks(x, y):
    for start in range(0, len(x), ATTACK_BATCH):
        yield x[start:start + ATTACK_BATCH], y[start:start + ATTACK_BATCH]


def per_eps_fgsm(model, x, y, eps, predict=False):
    """torchattacks-style: one gradient per eps (torchattacks.FGSM called once per eps)."""
    outs = []
    for xb, yb in chunks(x, y):
        for e in eps:
            xr = xb.clone().detach().requires_grad_(True)
            # summed like benchbench's FGSM (torchattacks averages): averaging scales every
            # gradient term before the sum, and a near-cancelling input gradient can flip sign
            loss = F.cross_entropy(model(xr), yb, reduction="sum")
            grad = torch.autograd.grad(loss, xr)[0]
            adv = torch.clamp(xr.detach() + e * grad.sign(), 0, 1)
            outs.append(model(adv).argmax(1) if predict else adv)
    return outs


def ours_fgsm(model, x, y, eps, predict=False):
    """benchbench: one gradient for every eps, projected by the harness; with ``predict``, the
    harness's whole measurement (``attack_records``: attack, projection, accuracy per eps)."""
    if predict:
        ref = AttackRef("fgsm", "fgsm", tuple(eps))
        return attack_records(model, FGSM(), ref, x, y, epoch=0, bounds=(0.0, 1.0),
                              batch_size=ATTACK_BATCH)
    outs = []
    for xb, yb in chunks(x, y):
        adv = FGSM().perturb(model, xb, yb, eps=eps)
        outs += [project(a, xb, e, "linf", (0.0, 1.0), out=a) for a, e in zip(adv, eps,
                                                                             strict=True)]
    return outs


def art_fgsm(model, x, y, eps, predict=False):
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                            input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0))
    xn, yn = x.numpy(), torch.nn.functional.one_hot(y, 10).numpy()
    outs = []
    for e in eps:
        adv = FastGradientMethod(clf, eps=e, batch_size=ATTACK_BATCH).generate(xn, yn)
        outs.append(clf.predict(adv, batch_size=ATTACK_BATCH).argmax(1) if predict else adv)
    return outs


# --- checkpoint evaluation: per checkpoint (the engine) or one stack of every checkpoint ------
def evaluate_stack(stack, members, x, y, xt, yt, scale=1):
    """What the engine measures at a checkpoint for a per-example attack: clean train and test
    metrics, the masking checks and FGSM at eps 0.05 (``evaluate`` in engine/cell.py); the
    records, one list per member."""
    parts = [
        clean_records(stack, x, y, epoch=0, split="train", batch_size=EVAL_BATCH * scale,
                      members=members),
        clean_records(stack, xt, yt, epoch=0, split="test", batch_size=EVAL_BATCH * scale,
                      members=members),
        masking_records(stack, xt, yt, epoch=0, split="test", batch_size=ATTACK_BATCH * scale,
                        members=members),
        attack_records(stack, FGSM(), AttackRef("fgsm", "fgsm", (0.05,)), xt, yt, epoch=0,
                       bounds=(0.0, 1.0), batch_size=ATTACK_BATCH * scale, members=members)]
    return [sum(per, []) for per in zip(*parts, strict=True)]


def eval_per_checkpoint(x, y, xt, yt, checkpoints):
    stack = stack_mlps(models())
    return timed(lambda: [evaluate_stack(stack, SEEDS, x, y, xt, yt)
                          for _ in range(checkpoints)])


def eval_all_checkpoints(x, y, xt, yt, checkpoints, scale):
    stack = stack_mlps(models() * checkpoints)
    return timed(lambda: evaluate_stack(stack, SEEDS * checkpoints, x, y, xt, yt, scale))


# --- adversarial training (--at): PGD-10 training, seconds per model-epoch ------------------
AT_EPS, AT_STEPS, AT_BATCHES = 0.1, 10, 20
AT_STEP_SIZE = 2.5 * AT_EPS / AT_STEPS  # pgd_at's default step, given to every variant


def stacked_trainer(regime, x, y):
    """``SEEDS`` fresh seed models stacked through the harness's ``Trainer`` with ``regime``."""
    from benchbench.engine.training import Trainer
    from benchbench.regimes.context import TrainContext

    seeds = list(range(SEEDS))
    ctx = TrainContext(SEEDS, tuple(seeds), (0.0, 1.0), x.dtype, "cpu", log=lambda _: None)
    return Trainer(regime, model=stack_mlps(models(dtype=x.dtype)), x=x, y=y, seeds=seeds,
                   ctx=ctx, stacked=True)


def pgd_at(cls=None, **params):
    from benchbench.regimes.adversarial import PGDAT

    return (cls or PGDAT)(eps=AT_EPS, steps=AT_STEPS, lr=0.002, batch_size=BATCH, epochs=1,
                          **params)


def at_engine(x, y):
    """benchbench's ``pgd_at``: ``SEEDS`` seeds stacked through the harness's ``Trainer`` (as
    ``benchbench run`` trains them), the per-epoch monitor off (timed apart: ``at_monitor``).
    Returns seconds per model-epoch, of all the work and of ``craft`` alone."""
    regime = pgd_at(monitor=False)
    trainer = stacked_trainer(regime, x, y)
    craft, crafting = regime.craft, []

    def timed_craft(*args):
        t = time.perf_counter()
        out = craft(*args)
        crafting.append(time.perf_counter() - t)
        return out

    regime.craft = timed_craft  # the trainer calls the instance's craft
    scale = EPOCH_IMAGES / len(x) / SEEDS
    return timed(lambda: list(trainer.epochs())) * scale, sum(crafting) * scale


def at_products(x, y):
    """``at_engine`` with each PGD step cut down to the stacked model's input gradient alone
    (``cross_entropy_input_grad``: the products, the softmax and the ReLU masks), no update or
    projection: a lower bound on any stacked PGD-10 training of this model, used to tell how far
    the engine's own work is from what its matrix products cost on this machine."""
    from benchbench.regimes.adversarial import PGDAT

    class ProductsOnly(PGDAT):
        def craft(self, ctx, model, x, y):
            for _ in range(self.steps):
                model.cross_entropy_input_grad(x, y)
            return x

    trainer = stacked_trainer(pgd_at(ProductsOnly, monitor=False), x, y)
    return timed(lambda: list(trainer.epochs())) * EPOCH_IMAGES / len(x) / SEEDS


def at_monitor(x, y):
    """What ``pgd_at``'s default monitor adds to every epoch, per model: PGD-10 accuracy on the
    first 1,000 training images, stacked (``Trainer``'s own method; not scaled: a fixed cost)."""
    trainer = stacked_trainer(pgd_at(), x, y)
    return timed(lambda: trainer._monitor(1, AT_EPS)) / SEEDS


def at_torchattacks(x, y):
    """The plain PyTorch loop: per seed its own model, default Adam and ``torchattacks.PGD``
    (random start, 10 signed steps, clamp) on every batch."""
    import torchattacks

    total = 0.0
    for model in models(dtype=x.dtype):
        opt = torch.optim.Adam(model.parameters(), lr=0.002)
        atk = torchattacks.PGD(model, eps=AT_EPS, alpha=AT_STEP_SIZE, steps=AT_STEPS,
                               random_start=True)

        def loop(model=model, opt=opt, atk=atk):
            perm = torch.randperm(len(x))
            for start in range(0, len(x), BATCH):
                idx = perm[start:start + BATCH]
                xb, yb = x[idx], y[idx]
                loss = F.cross_entropy(model(atk(xb, yb)), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
        total += timed(loop)
    return total / SEEDS * EPOCH_IMAGES / len(x)


def at_art(x, y):
    """ART's ``AdversarialTrainerMadryPGD.fit``, one seed (its PGD crafts in ART's default
    batches of 32, which the trainer does not expose)."""
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    model = models(1, dtype=x.dtype)[0]
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(),
                            optimizer=torch.optim.Adam(model.parameters(), lr=0.002),
                            input_shape=(1, 28, 28), nb_classes=10, clip_values=(0.0, 1.0))
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=BATCH, eps=AT_EPS,
                                         eps_step=AT_STEP_SIZE, max_iter=AT_STEPS,
                                         num_random_init=1)
    xn, yn = x.numpy(), y.numpy()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        return timed(lambda: trainer.fit(xn, yn)) * EPOCH_IMAGES / len(x)


def at_section(synthetic: bool, steps: int, repeats: int, have_art: bool) -> None:
    """PGD-10 adversarial training, interleaved rounds; ends with the ``at_*`` summary line."""
    try:
        import torchattacks  # noqa: F401
        have_torchattacks = True
    except ImportError:
        have_torchattacks = False
        print("torchattacks not installed: no plain-loop comparison "
              "(pip install torchattacks)")
    x, y, source = mnist_like(synthetic, steps * BATCH)
    print(f"benchbench adversarial-training benchmark: {platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}, data {source}, "
          f"{repeats} rounds of {steps} batches of {BATCH}")
    variants = {"torchattacks": at_torchattacks} if have_torchattacks else {}
    if have_art:
        variants["art_madry"] = at_art
    flops = epoch_flops([784, *HIDDEN, 10], craft_steps=AT_STEPS)
    times: dict[str, list[float]] = {k: [] for k in ["floor", "products", "pgd_at", *variants]}
    crafting, monitor = [], []
    for _ in range(repeats):
        times["floor"].append(flops / (sgemm_gflops() * 1e9))
        times["products"].append(at_products(x, y))
        total, craft = at_engine(x, y)
        times["pgd_at"].append(total)
        crafting.append(craft)
        monitor.append(at_monitor(x, y))
        for name, fn in variants.items():
            times[name].append(fn(x, y))
    med = statistics.median
    print(f"\nPGD-{AT_STEPS} adversarial training at eps {AT_EPS} (step {AT_STEP_SIZE:g}, random "
          f"start), {SEEDS} seeds, seconds per model-epoch of {EPOCH_IMAGES:,} images (median of "
          f"{repeats}; {flops / 1e9:.1f} GFLOP per model-epoch)")
    refs = [r for r in ("torchattacks", "art_madry") if r in times]
    for name in times:
        faster = "".join(f"   {median_ratio(times, name, r):5.2f}x faster than {r}"
                         for r in refs)
        print(f"  {name:<13} {med(times[name]):7.3f} s   "
              f"{median_ratio(times, 'floor', name):5.2f}x floor{faster}")
        if name == "products":
            print("    (pgd_at with each step cut to the stacked input gradient: no update, no "
                  "projection; the most a stacked engine reaches here)")
        if name == "pgd_at":
            share = med(c / t for c, t in zip(crafting, times["pgd_at"], strict=True))
            print(f"    crafting    {med(crafting):7.3f} s   {share:.0%} of pgd_at (the rest: "
                  "training steps, loop)")
            print(f"    + monitor   {med(monitor):7.3f} s   per epoch, not in pgd_at (PGD-10 on "
                  "1,000 training images, on by default)")
    ratios = {"at_over_floor": median_ratio(times, "floor", "pgd_at"),
              "at_speedup_vs_plain": median_ratio(times, "pgd_at", "torchattacks")
              if have_torchattacks else math.nan,
              "at_speedup_vs_art": median_ratio(times, "pgd_at", "art_madry")
              if have_art else math.nan,
              "products_speedup_vs_plain": median_ratio(times, "products", "torchattacks")
              if have_torchattacks else math.nan}
    print(" ".join(f"{k}={v:.2f}" for k, v in ratios.items()))
    assert math.isfinite(ratios["at_over_floor"])


def median_ratio(times: dict, a, b) -> float:
    """Median over rounds of time(b) / time(a): how many times faster a is than b."""
    return statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None,
                    help="training batches timed per variant (default 550: one whole epoch; "
                         f"with --at, {AT_BATCHES})")
    ap.add_argument("--full", action="store_true", help="also time the whole overfit_mnist suite")
    ap.add_argument("--synthetic", action="store_true", help="random MNIST-sized data")
    ap.add_argument("--eval", action="store_true",
                    help="also time checkpoint evaluation batched across checkpoints (3 rounds)")
    ap.add_argument("--at", action="store_true",
                    help="time PGD adversarial training instead (its own rounds and summary)")
    ap.add_argument("--cnn", action="store_true",
                    help="time PGD adversarial training of small_cnn and wong_cnn instead "
                         "(benchmarks/cnn.py; --steps: small_cnn's batches, default 10)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="with --cnn: where every contender runs (default cpu)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every variant and the floor's sgemm (default: torch's)")
    ap.add_argument("--blas", action="store_true",
                    help="also time the stacked epoch under MKL's default and strict modes")
    ap.add_argument("--blas-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.device != "cpu" and not args.cnn:
        ap.error("--device cuda times the CNN section only: add --cnn")
    if args.blas_child:  # one timing for --blas, in this process's MKL mode
        xb, yb, _ = mnist_like(True, (args.steps or 550) * BATCH)
        train_engine_stacked(xb, yb)  # warm-up
        print(train_engine_stacked(xb, yb))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # as `benchbench run` does, for every variant alike
    try:
        import art  # noqa: F401
        have_art = True
    except ImportError:
        have_art = False
    if args.at:
        at_section(args.synthetic, args.steps or AT_BATCHES, args.repeats, have_art)
        return
    if args.cnn:
        from cnn import cnn_section  # benchmarks/cnn.py, beside this script

        cnn_section(data=lambda n: mnist_like(args.synthetic, n), steps=args.steps or 10,
                    repeats=args.repeats, have_art=have_art, device=args.device)
        return
    args.steps = args.steps or 550
    x, y, source = mnist_like(args.synthetic, max(args.steps * BATCH, EPOCH_IMAGES))
    xt, yt = x[:10_000], y[:10_000]
    xs, ys = x[:args.steps * BATCH], y[:args.steps * BATCH]
    print(f"benchbench engine benchmark: {platform.machine()}, {torch.get_num_threads()} threads,"
          f" torch {torch.__version__}, data {source}, {args.repeats} rounds")

    train = {"stacked": train_engine_stacked, "stacked_bmm": train_engine_stacked_bmm,
             "single": train_engine_single,
             "sequential": train_engine_sequential, "plain": train_plain}
    if have_art:
        train["art_fit"] = train_art
    flops = epoch_flops([784, *HIDDEN, 10])
    times: dict[str, list[float]] = {k: [] for k in [*train, "floor"]}
    for _ in range(args.repeats):
        times["floor"].append(flops / (sgemm_gflops() * 1e9))
        for name, fn in train.items():
            times[name].append(fn(xs, ys))
    print(f"\ntraining, seconds per model-epoch (median of {args.repeats}; "
          f"{flops / 1e9:.1f} GFLOP per model-epoch)")
    for name in times:
        print(f"  {name:<11} {statistics.median(times[name]):7.3f} s   "
              f"{median_ratio(times, 'floor', name):5.2f}x floor   "
              f"{median_ratio(times, name, 'plain'):5.2f}x faster than plain")

    print("\nfloat64 (the seed study's dtype), seconds per model-epoch, floor from a dgemm:")
    t64: dict[str, list[float]] = {"stacked": [], "plain": [], "floor": []}
    x64, y64 = xs[:len(xs) // 2].double(), ys[:len(xs) // 2]
    for _ in range(args.repeats):
        t64["floor"].append(flops / (sgemm_gflops(dtype=torch.float64) * 1e9))
        t64["stacked"].append(train_engine_stacked(x64, y64))
        t64["plain"].append(train_plain(x64, y64))
    for name in t64:
        print(f"  {name:<11} {statistics.median(t64[name]):7.3f} s   "
              f"{median_ratio(t64, 'floor', name):5.2f}x floor   "
              f"{median_ratio(t64, name, 'plain'):5.2f}x faster than plain")
    med = statistics.median
    print(f"  float64 / float32 time, stacked: {med(t64['stacked']) / med(times['stacked']):.2f}"
          f" (dgemm / sgemm time: {med(t64['floor']) / med(times['floor']):.2f})")

    model = models(1)[0].eval()
    for p in model.parameters():
        p.requires_grad_(False)
    attacks = {"ours": ours_fgsm, "per_eps": per_eps_fgsm}
    if have_art:
        attacks["art"] = art_fgsm
    same = all(torch.equal(o, p) for o, p in zip(
        [a for xb, yb in chunks(xt, yt) for a in ours_fgsm(model, xb, yb, EPS5)],
        per_eps_fgsm(model, xt, yt, EPS5), strict=True))
    ft: dict[tuple[str, int, bool], list[float]] = {}
    for _ in range(args.repeats):
        for name, fn in attacks.items():
            for eps in (EPS5[2:3], EPS5):
                for predict in (False, True):
                    ft.setdefault((name, len(eps), predict), []).append(
                        timed(lambda f=fn, e=eps, p=predict: f(model, xt, yt, e, predict=p)))
    print(f"\nFGSM on {len(xt)} images in batches of {ATTACK_BATCH}, median seconds ('+acc' "
          f"also predicts every adversarial batch); ours equals per-eps bit for bit: {same}")
    for (name, n_eps, predict), values in ft.items():
        ratio = median_ratio(ft, (name, n_eps, predict), ("per_eps", n_eps, predict))
        label = f"{name} {n_eps} eps{' +acc' if predict else ''}"
        print(f"  {label:<18} {statistics.median(values):7.3f} s   {ratio:5.2f}x vs per-eps")
    fgsm5 = median_ratio(ft, ("ours", 5, False), ("per_eps", 5, False))
    fgsm5_acc = median_ratio(ft, ("ours", 5, True), ("per_eps", 5, True))
    print(f"  5 eps: the attack {fgsm5:.2f}x faster than five per-eps passes; attack and "
          f"accuracy {fgsm5_acc:.2f}x")

    if args.eval:
        ev: dict[str, list[float]] = {"per checkpoint": [], "one stack": [], "one stack 10x": []}
        xe = x[:EPOCH_IMAGES].reshape(EPOCH_IMAGES, -1)
        xte = xt.reshape(len(xt), -1)
        for _ in range(3):
            ev["per checkpoint"].append(eval_per_checkpoint(xe, y[:EPOCH_IMAGES], xte, yt, 10))
            ev["one stack"].append(eval_all_checkpoints(xe, y[:EPOCH_IMAGES], xte, yt, 10, 1))
            ev["one stack 10x"].append(eval_all_checkpoints(xe, y[:EPOCH_IMAGES], xte, yt, 10,
                                                            10))
        print(f"\ncheckpoint evaluation, 10 checkpoints x {SEEDS} seeds (clean train and test, "
              "masking checks, FGSM at eps 0.05), median of 3 rounds: the engine's stacks of "
              f"{SEEDS} per checkpoint vs one stack of {10 * SEEDS} (rows per call as the "
              "engine's, and 10x)")
        for name, values in ev.items():
            print(f"  {name:<15} {statistics.median(values):7.2f} s   "
                  f"{median_ratio(ev, name, 'per checkpoint'):5.2f}x faster than per checkpoint")

    if args.full:
        with tempfile.TemporaryDirectory() as out:
            suite = Path(__file__).parents[1] / "suites" / "overfit_mnist.toml"
            t = timed(lambda: subprocess.run([sys.executable, "-m", "benchbench", "run",
                                              str(suite), "--out", out], check=True))
        print(f"\nfull overfit_mnist suite: {t:.0f} s ({t / 60:.1f} min)")

    if args.blas:
        blas_modes(args.steps, args.repeats)

    over_floor = median_ratio(times, "floor", "stacked")
    speedup = median_ratio(times, "stacked", "plain")
    per_model = median_ratio(times, "stacked", "single")
    print(f"train_over_floor={over_floor:.2f} train_speedup_vs_plain={speedup:.2f} "
          f"stack5_vs_stack1_per_model={per_model:.2f} fgsm5_speedup={fgsm5:.2f}")
    assert math.isfinite(over_floor)


if __name__ == "__main__":
    main()
