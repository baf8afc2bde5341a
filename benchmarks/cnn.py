"""PGD adversarial training of the MNIST CNNs, as ratios measured in one run
(``python benchmarks/engine.py --cnn``).

For ``small_cnn`` (TRADES' SmallCNN) and ``wong_cnn`` (Wong et al.'s MNIST CNN), seconds per
model-epoch of 60,000 images, timed on a fixed number of images per round (``--steps`` batches
of 100 for small_cnn, default 10; 2.5x as many for wong_cnn, whose image costs 16x fewer FLOPs;
ART on half of them, oneDNN off on a quarter) and scaled, after a warm-up round of one batch
per variant (oneDNN builds its kernels for each new shape there). Every contender
trains one fresh seed-0 model with PGD-10 at eps 0.3 (step 0.03, random start), batches of 100,
Adam lr 0.001, crafting in eval mode and training in train mode:

- **floor**: the FLOPs per image (convolutions and linear layers, counted from the layer
  shapes and checked against ``torch.utils.flop_counter``): 10 crafting passes (forward and
  every layer's input gradient) and one training step (forward, weight gradients, input
  gradients of layers 2..n), at the rate of a large convolution's forward and backward timed
  in the same round;
- **pgd_at**: benchbench's ``PGDAT`` through the harness's ``Trainer`` (as ``benchbench run``
  trains a model that does not stack), the monitor off; its variants with weight gradients
  on while crafting, the model in ``channels_last`` and oneDNN off;
- **torchattacks**: the plain PyTorch loop calling ``torchattacks.PGD`` (skipped when missing);
- **art_madry**: ART's ``AdversarialTrainerMadryPGD.fit``.

Then stacking: two seeds' PGD-AT trained one by one against the same two as one model with
grouped convolutions, and through ``torch.func.vmap`` (the same loop code in all three).
Ends with one summary line of ratios (``*_vs_plain``: how many times faster pgd_at is than the
plain loop; ``*_over_floor``: pgd_at's time over the floor; ``nan`` for a missing library).

``--device cuda``: every contender, the floor's convolution included, on the GPU, the data
there once, timed between ``torch.cuda.synchronize()`` calls, under the settings ``benchbench
run`` uses there (``benchbench.engine.device.reproducible_cuda``: TF32 off, cuDNN
deterministic); oneDNN's variant is left out and three GPU variants come in: **torch_defaults**
(pgd_at under torch's own settings: TF32 convolutions, cuDNN free to pick non-deterministic
algorithms), **autocast** (the regime's ``autocast = "bfloat16"``) and **autocast_last** (that
and ``channels_last``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import platform
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from benchbench.attacks.harness import attacking
from benchbench.models.small_cnn import SmallCNN
from benchbench.models.wong_cnn import WongCNN

BATCH, EPOCH_IMAGES, SHAPE, CLASSES = 100, 60_000, (1, 28, 28), 10
EPS, STEPS, ALPHA, LR = 0.3, 10, 0.03, 1e-3
MODELS: dict[str, tuple[type, float]] = {"small_cnn": (SmallCNN, 1.0), "wong_cnn": (WongCNN, 2.5)}
STACK = 2  # seeds stacked in the stacking comparison
DEVICE = "cpu"  # set by cnn_section's ``device``
CONV_ROWS = 128  # images in the convolution that measures the floor's rate


def sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable) -> float:
    sync()
    t = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t


def median_ratio(times: dict, a, b) -> float:
    """Median over rounds of time(b) / time(a): how many times faster a is than b."""
    return statistics.median(tb / ta for ta, tb in zip(times[a], times[b], strict=True))


def build(name: str, seed: int = 0, channels_last: bool = False,
          device: str | None = None) -> nn.Module:
    """A fresh model, initialised on the CPU from ``seed``, on ``device`` (default DEVICE)."""
    torch.manual_seed(seed)
    model = MODELS[name][0](input_shape=SHAPE, num_classes=CLASSES).to(device or DEVICE)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def layers(model: nn.Module) -> list[nn.Module]:
    """The model's modules in the order its forward applies them (normalisation off)."""
    if isinstance(model, SmallCNN):
        return [*model.feature_extractor, nn.Flatten(), *model.classifier]
    return list(model)


# --- the floor --------------------------------------------------------------------------------
def forward_flops(model: nn.Module) -> list[int]:
    """FLOPs of one image's forward per convolution and linear layer, from the layer shapes:
    2 x output elements x (input channels / groups) x kernel area, or 2 x in x out."""
    out: list[int] = []

    def count(module, _inputs, output):
        if isinstance(module, nn.Conv2d):
            per = module.in_channels // module.groups * math.prod(module.kernel_size)
            out.append(2 * output[0].numel() * per)
        else:
            out.append(2 * module.in_features * module.out_features)
    hooks = [m.register_forward_hook(count) for m in model.modules()
             if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *SHAPE))
    for h in hooks:
        h.remove()
    return out


def image_flops(model: nn.Module, steps: int = STEPS) -> int:
    """One image's PGD-AT FLOPs: ``steps`` crafting passes (forward and every layer's input
    gradient, no weight gradients) and a training step (forward, weight gradients, input
    gradients of every layer but the first)."""
    fwd = forward_flops(model)
    return 3 * sum(fwd) - fwd[0] + steps * 2 * sum(fwd)


def counted_flops(model: nn.Module, rows: int = 4) -> dict[str, float]:
    """Per image, as ``torch.utils.flop_counter.FlopCounterMode`` counts them: a crafting pass
    with the harness's frozen parameters (``craft``), one with the parameters left requiring
    gradients as torchattacks leaves them (``craft_grads_on``: ``autograd.grad`` of the input
    alone), and a training step (``train``)."""
    from torch.utils.flop_counter import FlopCounterMode

    x, y = torch.rand(rows, *SHAPE), torch.arange(rows) % CLASSES
    out = {}
    with FlopCounterMode(display=False) as count, attacking(model):
        xr = x.clone().requires_grad_(True)  # backward(): its hooks refuse autograd.grad of a leaf
        F.cross_entropy(model(xr), y, reduction="sum").backward()
    out["craft"] = count.get_total_flops() / rows
    model.eval()
    with FlopCounterMode(display=False) as count:
        xr = x.clone().requires_grad_(True) * 1  # not a leaf: autograd.grad is allowed
        torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)
    out["craft_grads_on"] = count.get_total_flops() / rows
    with FlopCounterMode(display=False) as count:
        F.cross_entropy(model.train()(x), y).backward()
    out["train"] = count.get_total_flops() / rows
    model.zero_grad(set_to_none=True)
    return out


def conv_gflops(reps: int = 3) -> float:
    """Rate of a large convolution's forward and backward (input and weight gradients):
    ``CONV_ROWS`` x 64 x 28 x 28 through 64 3x3 filters, padding 1."""
    conv = nn.Conv2d(64, 64, 3, padding=1).to(DEVICE)
    x = torch.rand(CONV_ROWS, 64, 28, 28, device=DEVICE, requires_grad=True)
    g = torch.rand(CONV_ROWS, 64, 28, 28, device=DEVICE)

    def once():
        torch.autograd.grad(conv(x), (x, conv.weight), g)
    once()
    seconds = timed(lambda: [once() for _ in range(reps)])
    return reps * 3 * 2 * CONV_ROWS * 28 * 28 * 64 * 64 * 9 / seconds / 1e9


# --- the contenders: each returns seconds per model-epoch -------------------------------------
def harness(name: str, x, y, *, grads_on: bool = False, channels_last: bool = False,
            onednn: bool = True, autocast: str = "none",
            torch_defaults: bool = False) -> tuple[float, float]:
    """benchbench's ``pgd_at`` through ``Trainer``; (seconds, of which crafting) per epoch.
    ``grads_on``: the parameters keep ``requires_grad`` while crafting (eval mode still);
    ``autocast``: the regime's key; ``torch_defaults``: on CUDA, torch's TF32 and cuDNN
    settings instead of benchbench's (restored after)."""
    from benchbench.engine.training import Trainer
    from benchbench.regimes.adversarial import PGDAT
    from benchbench.regimes.context import TrainContext

    class GradsOn(TrainContext):
        @contextlib.contextmanager
        def frozen(self, model):
            was = model.training
            model.eval()
            try:
                yield model
            finally:
                model.train(was)

    regime = PGDAT(eps=EPS, steps=STEPS, step_size=ALPHA, lr=LR, batch_size=BATCH, epochs=1,
                   monitor=False, autocast=autocast)
    ctx = (GradsOn if grads_on else TrainContext)(1, (0,), (0.0, 1.0), x.dtype, DEVICE,
                                                   log=lambda _: None)
    trainer = Trainer(regime, model=build(name, channels_last=channels_last), x=x, y=y,
                      seeds=[0], ctx=ctx, stacked=False)
    craft, crafting = regime.craft, []

    def timed_craft(*args):
        sync()
        t = time.perf_counter()
        out = craft(*args)
        sync()
        crafting.append(time.perf_counter() - t)
        return out
    regime.craft = timed_craft  # the trainer calls the instance's craft
    settings = (torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False,
                                           allow_tf32=True) if torch_defaults
                else contextlib.nullcontext())
    with torch.backends.mkldnn.flags(enabled=onednn), settings:
        total = timed(lambda: list(trainer.epochs()))
    return total * EPOCH_IMAGES / len(x), sum(crafting) * EPOCH_IMAGES / len(x)


def plain(name: str, x, y) -> float:
    """The plain PyTorch loop: default Adam and ``torchattacks.PGD`` on every batch."""
    import torchattacks

    model = build(name)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    atk = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

    def loop():
        model.train()
        perm = torch.randperm(len(x), device=x.device)
        for start in range(0, len(x), BATCH):
            idx = perm[start:start + BATCH]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(model(atk(xb, yb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return timed(loop) * EPOCH_IMAGES / len(x)


def art_madry(name: str, x, y) -> float:
    """ART's ``AdversarialTrainerMadryPGD.fit`` (its PGD crafts in ART's default batches of 32,
    which the trainer does not expose)."""
    from art.defences.trainer import AdversarialTrainerMadryPGD
    from art.estimators.classification import PyTorchClassifier

    model = build(name)
    clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(),
                            optimizer=torch.optim.Adam(model.parameters(), lr=LR),
                            input_shape=SHAPE, nb_classes=CLASSES, clip_values=(0.0, 1.0),
                            device_type="gpu" if DEVICE == "cuda" else "cpu")
    trainer = AdversarialTrainerMadryPGD(clf, nb_epochs=1, batch_size=BATCH, eps=EPS,
                                         eps_step=ALPHA, max_iter=STEPS, num_random_init=1)
    xn, yn = x.cpu().numpy(), y.cpu().numpy()
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bars
        return timed(lambda: trainer.fit(xn, yn)) * EPOCH_IMAGES / len(x)


# --- stacking two seeds -----------------------------------------------------------------------
class GroupedLinear(nn.Module):
    """Members' linear layers as one batched product: ``[M, N, in] -> [M, N, out]``."""

    def __init__(self, group) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach().t() for m in group]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in group]).unsqueeze(1))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight)


class MemberFlatten(nn.Module):
    def __init__(self, members: int) -> None:
        super().__init__()
        self.members = members

    def forward(self, x):  # [N, M * C, h, w] -> [M, N, C * h * w]
        return x.reshape(len(x), self.members, -1).transpose(0, 1)


def grouped(models: list[nn.Module]) -> nn.Sequential:
    """Models of one architecture as one: convolutions with ``groups = M`` (member ``m``'s
    image in channels ``m * C ...``), linear layers batched; input ``[N, M * C, H, W]``,
    logits ``[M, N, classes]``. Each member computes what it computes alone."""
    members, out = len(models), []
    for group in zip(*map(layers, models), strict=True):
        first = group[0]
        if isinstance(first, nn.Conv2d):
            conv = nn.Conv2d(first.in_channels * members, first.out_channels * members,
                             first.kernel_size, first.stride, first.padding, groups=members)
            with torch.no_grad():
                conv.weight.copy_(torch.cat([m.weight for m in group]))
                conv.bias.copy_(torch.cat([m.bias for m in group]))
            out.append(conv)
        elif isinstance(first, nn.Linear):
            out.append(GroupedLinear(group))
        elif isinstance(first, nn.Flatten):
            out.append(MemberFlatten(members))
        else:  # ReLU, max-pooling, dropout: element- or channel-wise
            out.append(copy.deepcopy(first))
    return nn.Sequential(*out).to(DEVICE)


def ce_sum(logits, y):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")


def pgd_at_batch(model, opt, x, y, rows: int) -> None:
    """One PGD-AT batch, the same code for a model alone and a grouped stack: random start,
    ``STEPS`` signed steps with frozen parameters in eval mode, each projected; then the mean
    cross-entropy per member (summed over members) and one Adam step."""
    lo, hi = (x - EPS).clamp_(0, 1), (x + EPS).clamp_(0, 1)
    adv = torch.clamp(x + torch.empty_like(x).uniform_(-EPS, EPS), lo, hi)
    with attacking(model):
        for _ in range(STEPS):
            adv.requires_grad_(True)
            (g,) = torch.autograd.grad(ce_sum(model(adv), y), adv)
            adv = adv.detach().add_(g.sign_(), alpha=ALPHA).clamp_(lo, hi)
    loss = ce_sum(model(adv), y) / rows
    opt.zero_grad()
    loss.backward()
    opt.step()


def batches(x, y, members: int):
    """``members`` blocks of ``BATCH`` rows per batch (member ``m``: its own shuffle)."""
    perms = [torch.randperm(len(x), device=x.device) for _ in range(members)]
    for start in range(0, len(x), BATCH):
        idx = [p[start:start + BATCH] for p in perms]
        yield torch.stack([x[i] for i in idx]), torch.stack([y[i] for i in idx])


def one_by_one(name: str, x, y) -> float:
    def epoch(model):
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        for xb, yb in batches(x, y, 1):
            pgd_at_batch(model, opt, xb[0], yb[0], BATCH)
    return sum(timed(lambda m=build(name, s): epoch(m.train())) for s in range(STACK))


def stacked_grouped(name: str, x, y) -> float:
    model = grouped([build(name, s) for s in range(STACK)]).train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    def epoch():
        for xb, yb in batches(x, y, STACK):  # [M, N, C, H, W] -> [N, M * C, H, W]
            pgd_at_batch(model, opt, xb.transpose(0, 1).flatten(1, 2), yb, BATCH)
    return timed(epoch)


def stacked_vmap(name: str, x, y) -> float:
    """The two seeds through ``torch.func``: parameters stacked, ``vmap`` of ``grad`` for the
    input gradients (crafting) and for the parameters' (training), Adam on the stacked tensors."""
    from torch.func import functional_call, grad, stack_module_state, vmap

    models = [build(name, s) for s in range(STACK)]
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    opt = torch.optim.Adam(params.values(), lr=LR)

    def loss(p, xb, yb):
        return ce_sum(functional_call(base, p, (xb,)), yb)
    input_grad = vmap(grad(loss, argnums=1))
    param_grad = vmap(grad(lambda p, xb, yb: loss(p, xb, yb) / BATCH), randomness="different")

    def epoch():
        for xb, yb in batches(x, y, STACK):
            lo, hi = (xb - EPS).clamp_(0, 1), (xb + EPS).clamp_(0, 1)
            adv = torch.clamp(xb + torch.empty_like(xb).uniform_(-EPS, EPS), lo, hi)
            frozen = {k: v.detach() for k, v in params.items()}
            base.eval()
            for _ in range(STEPS):
                adv.add_(input_grad(frozen, adv, yb).sign_(), alpha=ALPHA).clamp_(lo, hi)
            base.train()
            for k, g in param_grad(frozen, adv, yb).items():
                params[k].grad = g
            opt.step()
    return timed(epoch)


# --- the section ------------------------------------------------------------------------------
def cnn_section(*, data: Callable, steps: int, repeats: int, have_art: bool,
                device: str = "cpu") -> None:
    """Interleaved rounds for both CNNs; ends with the summary line. ``data(n)`` returns
    ``(x [n, 1, 28, 28], y [n], source)``; ``device``: ``cpu`` or ``cuda``."""
    global DEVICE
    DEVICE = device
    where = f"{torch.get_num_threads()} threads"
    if device == "cuda":
        from benchbench.engine.device import reproducible_cuda

        reproducible_cuda()
        where = f"{torch.cuda.get_device_name()} (TF32 off, cuDNN deterministic)"
    try:
        import torchattacks  # noqa: F401
        have_plain = True
    except ImportError:
        have_plain = False
        print("torchattacks not installed: no plain-loop comparison (pip install torchattacks)")
    images = {name: max(BATCH, round(steps * scale) * BATCH) for name, (_, scale) in
              MODELS.items()}
    x_all, y_all, source = data(max(images.values()))
    x_all, y_all = x_all.reshape(-1, *SHAPE).to(device), y_all.to(device)  # on it once
    print(f"benchbench CNN adversarial-training benchmark: {platform.machine()}, "
          f"{where}, torch {torch.__version__}, data {source}, "
          f"{repeats} rounds; PGD-{STEPS} at eps {EPS}, step {ALPHA}, random start, batches of "
          f"{BATCH}, Adam lr {LR}; images per timed epoch: "
          + ", ".join(f"{n} {i:,}" for n, i in images.items()))
    for name in MODELS:
        c = counted_flops(build(name, device="cpu"))
        total = c["train"] + STEPS * c["craft"]
        flops = image_flops(build(name, device="cpu"))
        print(f"  {name}: {flops / 1e6:.1f} MFLOP per image from the layer shapes, "
              f"{total / 1e6:.1f} by FlopCounterMode (a crafting pass "
              f"{c['craft'] / 1e6:.2f} with frozen parameters, {c['craft_grads_on'] / 1e6:.2f} "
              f"with requires_grad on; a training step {c['train'] / 1e6:.2f})")
    # (name, function, share of the images): the slow ones time fewer, scaled alike
    variants: list[tuple[str, Callable, float]] = [
        ("pgd_at", harness, 1.0),
        ("grads_on", lambda n, x, y: harness(n, x, y, grads_on=True), 1.0),
        ("channels_last", lambda n, x, y: harness(n, x, y, channels_last=True), 1.0)]
    if device == "cuda":
        variants += [
            ("torch_defaults", lambda n, x, y: harness(n, x, y, torch_defaults=True), 1.0),
            ("autocast", lambda n, x, y: harness(n, x, y, autocast="bfloat16"), 1.0),
            ("autocast_last", lambda n, x, y: harness(n, x, y, autocast="bfloat16",
                                                      channels_last=True), 1.0)]
    else:
        variants.append(("onednn_off", lambda n, x, y: harness(n, x, y, onednn=False), 0.25))
    if have_plain:
        variants.append(("torchattacks", plain, 1.0))
    if have_art:
        variants.append(("art_madry", art_madry, 0.5))
    stacking = {"one_by_one": one_by_one, "grouped": stacked_grouped, "vmap": stacked_vmap}
    keys = ["floor", *(v[0] for v in variants), "crafting", *stacking]
    times = {n: {k: [] for k in keys} for n in MODELS}

    def part(x, share):
        return x[:max(BATCH, round(len(x) * share / BATCH) * BATCH)]
    for warm in (True, *([False] * repeats)):  # a warm-up round of one batch, not kept
        for name in MODELS:
            x, y = x_all[:BATCH if warm else images[name]], y_all[:BATCH if warm else
                                                               images[name]]
            t = {k: [] for k in keys} if warm else times[name]
            t["floor"].append(image_flops(build(name, device="cpu")) * EPOCH_IMAGES
                              / (conv_gflops() * 1e9))
            for key, fn, share in variants:
                out = fn(name, part(x, share), part(y, share))
                t[key].append(out[0] if isinstance(out, tuple) else out)
                if key == "pgd_at":
                    t["crafting"].append(out[1])
            xs, ys = part(x, 0.5), part(y, 0.5)  # two seeds' epochs of half the images
            for key, fn in stacking.items():
                t[key].append(fn(name, xs, ys) * EPOCH_IMAGES / len(xs) / STACK)
    summary = {}
    for name, t in times.items():
        print(f"\n{name}: seconds per model-epoch of {EPOCH_IMAGES:,} images (median of "
              f"{repeats}; {image_flops(build(name, device='cpu')) * EPOCH_IMAGES / 1e12:.2f} "
              "TFLOP)")
        for key in ["floor", *(v[0] for v in variants), "crafting"]:
            vs = "".join(f"   {median_ratio(t, key, r):5.2f}x faster than {r}"
                         for r in ("torchattacks", "art_madry") if r in t and key != "crafting")
            print(f"  {key:<14} {statistics.median(t[key]):8.2f} s   "
                  f"{median_ratio(t, 'floor', key):5.2f}x floor{vs}")
        print(f"  stacking {STACK} seeds (the same PGD-AT loop code), per model-epoch:")
        for key in stacking:
            print(f"  {key:<14} {statistics.median(t[key]):8.2f} s   "
                  f"{median_ratio(t, key, 'one_by_one'):5.2f}x faster than one_by_one")
        short = name.split("_")[0]
        summary.update({
            f"{short}_over_floor": median_ratio(t, "floor", "pgd_at"),
            f"{short}_vs_plain": median_ratio(t, "pgd_at", "torchattacks")
            if have_plain else math.nan,
            f"{short}_vs_art": median_ratio(t, "pgd_at", "art_madry") if have_art else math.nan,
            f"{short}_nograd_vs_grads": median_ratio(t, "pgd_at", "grads_on"),
            f"{short}_channels_last": median_ratio(t, "channels_last", "pgd_at"),
            f"{short}_vmap2": median_ratio(t, "vmap", "one_by_one"),
            f"{short}_grouped2": median_ratio(t, "grouped", "one_by_one")})
        if device == "cuda":
            summary.update({
                f"{short}_autocast": median_ratio(t, "autocast", "pgd_at"),
                f"{short}_torch_defaults": median_ratio(t, "torch_defaults", "pgd_at")})
    print(" ".join(f"{k}={v:.2f}" for k, v in summary.items()))
    assert all(math.isfinite(v) for k, v in summary.items() if "plain" not in k
               and "art" not in k)
