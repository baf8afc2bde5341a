"""The adversarial regimes beside their reference implementations, on fixed inputs.

Each test runs a reference formula, copied below from the named repository, file and function
(``.cuda()`` dropped, the random draw given a generator so both sides draw the same numbers),
beside benchbench's regime on the same model, batch and noise. Exact comparisons are where both
sides run the same operations in the same order (the same machine computes both, so the CPU's
vector width does not matter); elsewhere the tolerance is derived from float rounding and the
comment says how. References (read at these commits):

* yaodongyu/TRADES 6e8e11b ``trades.py``, ``trades_loss``;
* YisenWang/MART 2d83e17 ``mart.py``, ``mart_loss``;
* locuslab/fast_adversarial 54f7287 ``MNIST/train_mnist.py``, ``main`` (FGSM and PGD branches) and
  ``CIFAR10/train_fgsm.py``, ``main`` (its clamped start);
* MadryLab/mnist_challenge 3ee3643 ``pgd_attack.py``, ``LinfPGDAttack.perturb``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchbench.regimes.adversarial import FGSMAT, MART, PGDAT, TRADES
from benchbench.regimes.context import TrainContext
from benchbench.regimes.inner_max import crafting, mode_dependent
from benchbench.testing import tiny_data

ROWS = 16  # a power of two: a mean's 1/N scales gradients exactly, so their signs are the sum's
EPS, STEP, STEPS = 0.1, 0.03, 5
U32 = 2.0 ** -24  # float32's unit roundoff (half an ulp of 1)


def batch():
    x, y = tiny_data(ROWS)  # real digits: many pixels at 0 and 1, where starts leave the box
    return x, y


def bn_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(),
                         nn.Linear(32, 10))


def plain_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def context(seed: int = 7) -> TrainContext:
    return TrainContext(1, (seed,), (0.0, 1.0), torch.float32, "cpu", log=lambda _: None)


def twin_generator(ctx: TrainContext) -> torch.Generator:
    """A generator in the state of the context's: the reference draws what the regime draws."""
    return torch.Generator().set_state(ctx.generators[0].get_state())


def ours(regime, model, x, y, ctx):
    """The harness's batch: training mode, craft, loss per example, mean over the rows."""
    model.train()
    x_train = regime.craft(ctx, model, x, y)
    model.zero_grad(set_to_none=True)
    loss = regime.loss(ctx, model, x, x_train, y).sum() / len(y)
    loss.backward()
    return x_train, loss


def reduction_bound(*terms: torch.Tensor) -> float:
    """Both sides add the same float32 terms in different orders: each sum of n terms is within
    (n - 1) u sum|t| of the exact one (Higham's bound), so they differ by at most twice that,
    plus one rounding per term for the per-row scaling by beta."""
    n = sum(t.numel() for t in terms)
    return 2 * (n + 1) * U32 * float(sum(t.abs().sum() for t in terms)) / ROWS


def state_of(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def grads_of(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


# --- TRADES ------------------------------------------------------------------------------------

def reference_trades_loss(model, x_natural, y, optimizer, step_size=0.003, epsilon=0.031,
                          perturb_steps=10, beta=1.0, *, generator):
    """yaodongyu/TRADES ``trades.py`` ``trades_loss``, ``distance='l_inf'``, as written there
    (``nn.KLDivLoss(size_average=False)`` is ``reduction='sum'``; ``Variable`` is a tensor)."""
    criterion_kl = nn.KLDivLoss(reduction="sum")
    model.eval()
    batch_size = len(x_natural)
    # generate adversarial example
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape,
                                                     generator=generator).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_kl = criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                   F.softmax(model(x_natural), dim=1))
        grad = torch.autograd.grad(loss_kl, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    # zero gradient
    optimizer.zero_grad()
    # calculate robust loss
    logits = model(x_natural)
    loss_natural = F.cross_entropy(logits, y)
    loss_robust = (1.0 / batch_size) * criterion_kl(F.log_softmax(model(x_adv), dim=1),
                                                    F.softmax(model(x_natural), dim=1))
    loss = loss_natural + beta * loss_robust
    return loss, x_adv


def run_trades_reference(model, x, y, gen, beta):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, x_adv = reference_trades_loss(model, x, y, opt, step_size=STEP, epsilon=EPS,
                                        perturb_steps=STEPS, beta=beta, generator=gen)
    loss.backward()
    return x_adv, loss


@pytest.mark.parametrize("make", [bn_mlp, plain_mlp])
def test_trades_is_the_reference_loss_with_its_unclamped_start_and_passes(make):
    x, y = batch()
    beta = 6.0
    model = make()
    theirs_model = copy.deepcopy(model)
    ctx = context()
    x_ref, loss_ref = run_trades_reference(theirs_model, x, y, twin_generator(ctx), beta)
    regime = TRADES(eps=EPS, steps=STEPS, step_size=STEP, beta=beta, batch_size=ROWS)
    x_ours, loss = ours(regime, model, x, y, ctx)
    # the same ops in the same order: their start, KL criterion and steps, bit for bit
    assert torch.equal(x_ours, x_ref)
    # their three passes in their order: BatchNorm's running statistics bit for bit
    for (k, mine), theirs in zip(state_of(model).items(), state_of(theirs_model).values(),
                                 strict=True):
        assert torch.equal(mine, theirs), k
    # the loss: the same float32 terms, reduced per example here, per term there
    with torch.no_grad():
        theirs_model.train()
        nat, adv = theirs_model(x), theirs_model(x_ref)
        ce = F.cross_entropy(nat, y, reduction="none")
        kl = F.kl_div(F.log_softmax(adv, dim=1), F.softmax(nat, dim=1), reduction="none")
    assert abs(loss.item() - loss_ref.item()) <= reduction_bound(ce, beta * kl)
    for mine, theirs in zip(grads_of(model), grads_of(theirs_model), strict=True):
        if mode_dependent(model):
            # their three graphs: 1/16 and beta/16 are exact, so every op sees the same values
            # in the same order as theirs
            assert torch.equal(mine, theirs)
        else:
            # no third pass: the CE's and the KL's gradients meet at the first pass's logits
            # instead of in the weights' gradients, a few roundings apart (float32, relative
            # to the largest entry)
            scale = theirs.abs().max().item()
            assert (mine - theirs).abs().max().item() <= 64 * U32 * scale


def test_trades_clamped_start_is_a_key_and_differs_from_the_reference():
    x, y = batch()
    ctx = context()
    x_ref, _ = run_trades_reference(bn_mlp(), x, y, twin_generator(ctx), 1.0)
    regime = TRADES(eps=EPS, steps=STEPS, step_size=STEP, batch_size=ROWS, clamp_start=True)
    x_ours, _ = ours(regime, bn_mlp(), x, y, ctx)
    assert not torch.equal(x_ours, x_ref)  # pixels at 0 and 1: the start moves when clamped


def test_trades_one_batchnorm_pass_was_not_the_reference():
    """benchbench's former loss ran x and x_adv through the model as one batch: with BatchNorm
    in training mode that shares batch statistics, a difference far above rounding."""
    x, y = batch()
    ctx = context()
    model = bn_mlp()
    x_ref, loss_ref = run_trades_reference(copy.deepcopy(model), x, y, twin_generator(ctx), 1.0)
    model.train()
    with torch.no_grad():
        logits = model(torch.cat([x, x_ref]))
        nat, adv = logits[:ROWS], logits[ROWS:]
        joint = (F.cross_entropy(nat, y) + F.kl_div(F.log_softmax(adv, dim=1),
                                                    F.softmax(nat, dim=1),
                                                    reduction="sum") / ROWS).item()
    assert abs(joint - loss_ref.item()) > 1e-4


# --- MART --------------------------------------------------------------------------------------

def reference_mart_loss(model, x_natural, y, optimizer, step_size=0.007, epsilon=0.031,
                        perturb_steps=10, beta=6.0, *, generator):
    """YisenWang/MART ``mart.py`` ``mart_loss``, ``distance='l_inf'``, as written there."""
    kl = nn.KLDivLoss(reduction="none")
    model.eval()
    batch_size = len(x_natural)
    # generate adversarial example
    x_adv = x_natural.detach() + 0.001 * torch.randn(x_natural.shape,
                                                     generator=generator).detach()
    for _ in range(perturb_steps):
        x_adv.requires_grad_()
        with torch.enable_grad():
            loss_ce = F.cross_entropy(model(x_adv), y)
        grad = torch.autograd.grad(loss_ce, [x_adv])[0]
        x_adv = x_adv.detach() + step_size * torch.sign(grad.detach())
        x_adv = torch.min(torch.max(x_adv, x_natural - epsilon), x_natural + epsilon)
        x_adv = torch.clamp(x_adv, 0.0, 1.0)
    model.train()
    x_adv = torch.clamp(x_adv, 0.0, 1.0).detach()
    # zero gradient
    optimizer.zero_grad()
    logits = model(x_natural)
    logits_adv = model(x_adv)
    adv_probs = F.softmax(logits_adv, dim=1)
    tmp1 = torch.argsort(adv_probs, dim=1)[:, -2:]
    new_y = torch.where(tmp1[:, -1] == y, tmp1[:, -2], tmp1[:, -1])
    loss_adv = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - adv_probs + 1e-12),
                                                           new_y)
    nat_probs = F.softmax(logits, dim=1)
    true_probs = torch.gather(nat_probs, 1, (y.unsqueeze(1)).long()).squeeze()
    loss_robust = (1.0 / batch_size) * torch.sum(
        torch.sum(kl(torch.log(adv_probs + 1e-12), nat_probs), dim=1) * (1.0000001 - true_probs))
    loss = loss_adv + float(beta) * loss_robust
    return loss, x_adv, logits, logits_adv


@pytest.mark.parametrize("make", [bn_mlp, plain_mlp])
def test_mart_is_the_reference_loss_with_its_start_passes_and_kl_target(make):
    x, y = batch()
    model = make()
    theirs_model = copy.deepcopy(model)
    ctx = context()
    opt = torch.optim.SGD(theirs_model.parameters(), lr=0.1)
    loss_ref, x_ref, nat, adv = reference_mart_loss(
        theirs_model, x, y, opt, step_size=STEP, epsilon=EPS, perturb_steps=STEPS, beta=6.0,
        generator=twin_generator(ctx))
    loss_ref.backward()
    regime = MART(eps=EPS, steps=STEPS, step_size=STEP, beta=6.0, batch_size=ROWS)
    x_ours, loss = ours(regime, model, x, y, ctx)
    # their start and steps; our summed cross-entropy's gradient is their mean's times 16,
    # exactly (a power of two), so the signs and every step are theirs bit for bit
    assert torch.equal(x_ours, x_ref)
    for (k, mine), theirs in zip(state_of(model).items(), state_of(theirs_model).values(),
                                 strict=True):
        assert torch.equal(mine, theirs), k  # their two passes: the same running statistics
    # the loss: their terms, summed per example here and per term there
    with torch.no_grad():
        adv_p, nat_p = F.softmax(adv, dim=1), F.softmax(nat, dim=1)
        terms = [F.cross_entropy(adv, y, reduction="none"),
                 torch.log(1.0001 - adv_p + 1e-12).max(1).values,  # a bound on the term picked
                 6.0 * F.kl_div(torch.log(adv_p + 1e-12), nat_p, reduction="none")]
    assert abs(loss.item() - loss_ref.item()) <= reduction_bound(*terms)
    # the gradients: the same up to the reductions' rounding (float32, relative to the largest)
    for mine, theirs in zip(grads_of(model), grads_of(theirs_model), strict=True):
        scale = theirs.abs().max().item()
        assert (mine - theirs).abs().max().item() <= 64 * U32 * scale


def test_mart_kl_is_the_reference_kl_per_example():
    """MART's KL term, ``KLDivLoss(log(p_adv + 1e-12), p_nat)``: their target is ``p_nat``
    itself (benchbench's former ``log(p_nat + 1e-12)`` with ``log_target`` was 2e-11 away)."""
    from benchbench.regimes.inner_max import kl_per_example

    torch.manual_seed(3)
    nat, adv = torch.randn(ROWS, 10) * 4, torch.randn(ROWS, 10) * 4
    adv_probs, nat_probs = F.softmax(adv, dim=1), F.softmax(nat, dim=1)
    theirs = torch.sum(nn.KLDivLoss(reduction="none")(torch.log(adv_probs + 1e-12), nat_probs),
                       dim=1)
    assert torch.equal(kl_per_example(torch.log(adv_probs + 1e-12), nat_probs), theirs)


# --- FGSM-AT (Wong et al.) ---------------------------------------------------------------------

def reference_fgsm_delta(model, X, y, epsilon, alpha, *, generator, clamp_start: bool):
    """locuslab/fast_adversarial ``MNIST/train_mnist.py`` ``main``, ``args.attack == 'fgsm'``
    with ``init == 'random'``; ``clamp_start`` adds ``CIFAR10/train_fgsm.py``'s
    ``delta.data = clamp(delta, lower_limit - X, upper_limit - X)`` (limits 0 and 1 here). The
    model stays in training mode, as theirs (neither script calls ``model.eval()``)."""
    delta = torch.zeros_like(X).uniform_(-epsilon, epsilon, generator=generator)
    if clamp_start:
        delta.data = torch.max(torch.min(delta, 1 - X), 0 - X)
    delta.requires_grad = True
    output = model(X + delta)
    loss = F.cross_entropy(output, y)
    loss.backward()
    grad = delta.grad.detach()
    delta.data = torch.clamp(delta + alpha * torch.sign(grad), -epsilon, epsilon)
    delta.data = torch.max(torch.min(1 - X, delta.data), 0 - X)
    delta = delta.detach()
    return torch.clamp(X + delta, 0, 1)  # what they train on: model(torch.clamp(X + delta, 0, 1))


@pytest.mark.parametrize("clamp_start", [False, True])
def test_fgsm_at_crafts_the_reference_point_in_training_mode(clamp_start):
    x, y = batch()
    model = bn_mlp()
    theirs_model = copy.deepcopy(model).train()
    ctx = context()
    alpha = 1.25 * EPS
    x_ref = reference_fgsm_delta(theirs_model, x, y, EPS, alpha, generator=twin_generator(ctx),
                                 clamp_start=clamp_start)
    regime = FGSMAT(eps=EPS, batch_size=ROWS, clamp_start=clamp_start)
    assert regime.craft_mode == "train"
    model.train()
    x_ours = regime.craft(ctx, model, x, y)
    # the same gradient point and signs (a power-of-two batch); the step is taken on x + delta
    # here and on delta there: two roundings of values below 2 on each side, 2^-24 each at most
    assert (x_ours - x_ref).abs().max().item() <= 4 * U32
    assert (x_ours != x_ref).float().mean() < 0.05  # and mostly the very same floats
    # their crafting pass ran in training mode: BatchNorm's running statistics moved as theirs
    for (k, mine), theirs in zip(state_of(model).items(), state_of(theirs_model).values(),
                                 strict=True):
        assert torch.equal(mine, theirs), k
    assert model.training and all(p.requires_grad for p in model.parameters())


# --- PGD-AT (Madry et al.) ---------------------------------------------------------------------

def reference_madry_perturb(model, x_nat, y, epsilon, k, a, *, generator):
    """MadryLab/mnist_challenge ``pgd_attack.py`` ``LinfPGDAttack.perturb`` with
    ``random_start`` and ``loss_func='xent'`` (``model.xent`` is ``tf.reduce_sum`` of the
    per-example cross-entropy), transcribed from NumPy/TensorFlow to torch in float32 (their
    NumPy start promotes to float64, which TensorFlow rounds to float32 when fed)."""
    x = x_nat + torch.empty_like(x_nat).uniform_(-epsilon, epsilon, generator=generator)
    x = torch.clip(x, 0, 1)  # ensure valid pixel range
    for _ in range(k):
        x_in = x.clone().requires_grad_(True)
        xent = F.cross_entropy(model(x_in), y, reduction="sum")
        grad = torch.autograd.grad(xent, x_in)[0]
        x = x + a * torch.sign(grad)
        x = torch.clip(x, x_nat - epsilon, x_nat + epsilon)
        x = torch.clip(x, 0, 1)  # ensure valid pixel range
    return x


def test_pgd_at_crafts_madrys_point_bit_for_bit():
    x, y = batch()
    model = plain_mlp()  # theirs has neither BatchNorm nor dropout: no mode to choose
    ctx = context()
    x_ref = reference_madry_perturb(copy.deepcopy(model).eval(), x, y, EPS, STEPS, STEP,
                                    generator=twin_generator(ctx))
    regime = PGDAT(eps=EPS, steps=STEPS, step_size=STEP, batch_size=ROWS)
    model.train()
    assert torch.equal(regime.craft(ctx, model, x, y), x_ref)


def reference_wong_pgd(model, X, y, epsilon, alpha, attack_iters, *, generator,
                       zero_grad: bool = False):
    """locuslab/fast_adversarial ``MNIST/train_mnist.py`` ``main``, ``args.attack == 'pgd'``
    (``opt.zero_grad()`` dropped: it clears the weights' gradients, not the input's). A step
    moves only the rows the model still classifies correctly (``I``). Their ``delta.grad`` is
    never cleared, so each step takes the sign of the gradients summed over the steps so far;
    ``zero_grad`` adds the ``delta.grad.zero_()`` of their ``CIFAR10/train_pgd.py``."""
    criterion = nn.CrossEntropyLoss()
    delta = torch.zeros_like(X).uniform_(-epsilon, epsilon, generator=generator)
    delta.data = torch.max(torch.min(1 - X, delta.data), 0 - X)
    for _ in range(attack_iters):
        delta.requires_grad = True
        output = model(X + delta)
        loss = criterion(output, y)
        loss.backward()
        grad = delta.grad.detach()
        I = output.max(1)[1] == y  # noqa: E741 (theirs)
        delta.data[I] = torch.clamp(delta + alpha * torch.sign(grad), -epsilon, epsilon)[I]
        delta.data[I] = torch.max(torch.min(1 - X, delta.data), 0 - X)[I]
        if zero_grad:
            delta.grad.zero_()
    delta = delta.detach()
    return torch.clamp(X + delta, 0, 1)  # what they train on


def test_pgd_at_freeze_misclassified_crafts_wongs_mnist_pgd_point():
    x, y = batch()
    model = plain_mlp(3)  # untrained: most rows misclassified, frozen at once
    ctx = context()
    steps = 20
    ctx_state = ctx.generators[0].get_state()
    x_ref = reference_wong_pgd(copy.deepcopy(model).train(), x, y, EPS, STEP, steps,
                               generator=twin_generator(ctx), zero_grad=True)
    x_theirs = reference_wong_pgd(copy.deepcopy(model).train(), x, y, EPS, STEP, steps,
                                  generator=twin_generator(ctx))
    regime = PGDAT(eps=EPS, steps=steps, step_size=STEP, batch_size=ROWS,
                   freeze_misclassified=True)
    model.train()
    x_ours = regime.craft(ctx, model, x, y)
    # the same signs (a power-of-two batch: their mean's gradient is our sum's scaled by 2^-4);
    # they step delta and add x at the end, we step x + delta: at most one rounding of a value
    # below 2 (2^-24 each) per step taken and one for the sum, on each side
    assert (x_ours - x_ref).abs().max().item() <= 2 * (steps + 1) * U32
    # where we differ on purpose (the class docstring): their MNIST script sums the gradients
    assert (x_ours - x_theirs).abs().max().item() > STEP
    # the rule is doing something here: rows stopped early, and others walked on
    start = torch.clamp(x + torch.empty_like(x).uniform_(
        -EPS, EPS, generator=torch.Generator().set_state(ctx_state)), 0, 1)
    moved = (x_ours - start).abs().flatten(1).amax(1) > STEP / 2
    wrong = model(start).argmax(1) != y
    assert wrong.any() and not moved[wrong].any() and moved[~wrong].all()
    madry = PGDAT(eps=EPS, steps=steps, step_size=STEP, batch_size=ROWS)
    ctx.generators[0].set_state(ctx_state)
    assert not torch.equal(madry.craft(ctx, model, x, y), x_ours)


def test_freeze_misclassified_is_a_late_key_and_checked(tmp_path):
    assert cell_of(tmp_path, "pgd_at", "freeze_misclassified = false").cell_id == \
        cell_of(tmp_path, "pgd_at").cell_id
    assert cell_of(tmp_path, "pgd_at", "freeze_misclassified = true").cell_id != \
        cell_of(tmp_path, "pgd_at").cell_id
    with pytest.raises(ValueError, match="freeze_misclassified must be true or false"):
        PGDAT(freeze_misclassified=1)
    with pytest.raises(ValueError, match="a named attack crafts on its own terms"):
        PGDAT(freeze_misclassified=True, attack={"name": "pgd"})


# --- crafting modes ----------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["eval", "train"])
def test_craft_mode_is_the_models_mode_while_crafting_and_training_mode_comes_back(mode):
    model = bn_mlp().train()
    before = state_of(model)
    seen = []
    with crafting(context(), model, mode) as m:
        seen.append((m.training, [p.requires_grad for p in m.parameters()]))
        m(batch()[0])
    assert seen == [(mode == "train", [False] * 6)]
    assert model.training and all(p.requires_grad for p in model.parameters())
    moved = not torch.equal(before["2.running_mean"], model.state_dict()["2.running_mean"])
    assert moved == (mode == "train")


def test_bad_craft_mode_and_clamp_start_are_one_line_errors():
    with pytest.raises(ValueError, match="craft_mode must be one of eval, train"):
        TRADES(craft_mode="training")
    with pytest.raises(ValueError, match="clamp_start must be true or false"):
        MART(clamp_start=1)


# --- what a changed default does to stored cells -----------------------------------------------

SUITE = """[suite]
name = "ids"
seeds = 1
[dataset]
name = "digits"
train = "train[:64]"
test = "test[:32]"
[model]
name = "mlp"
[regime]
name = "{name}"
{keys}
"""


def cell_of(tmp_path, name: str, keys: str = ""):
    from benchbench.plugins import load_registry
    from benchbench.suite.load import load_suite

    path = tmp_path / f"{name}{len(list(tmp_path.iterdir()))}.toml"
    path.write_text(SUITE.format(name=name, keys=keys))
    return load_suite(path, load_registry()).cells()[0]


def test_the_new_keys_at_their_defaults_keep_the_cell_ids_of_older_suites(tmp_path):
    """clamp_start, craft_mode and lr_schedule are late keys: at their defaults, written out or
    not, they stay out of the spec, so a suite written before them keeps its cell ids."""
    implicit = cell_of(tmp_path, "trades")
    assert not {"clamp_start", "craft_mode", "lr_schedule"} & set(implicit.regime.params)
    explicit = cell_of(tmp_path, "trades", 'clamp_start = false\ncraft_mode = "eval"\n'
                                           'lr_schedule = "constant"')
    assert explicit.cell_id == implicit.cell_id
    for keys in ("clamp_start = true", 'craft_mode = "train"', 'lr_schedule = "cosine"'):
        assert cell_of(tmp_path, "trades", keys).cell_id != implicit.cell_id
    # pgd_at's defaults are Madry's clamp and eval mode: the same cell as before either way
    assert cell_of(tmp_path, "pgd_at", "clamp_start = true").cell_id == \
        cell_of(tmp_path, "pgd_at").cell_id


def test_cells_measured_before_the_reference_defaults_are_reported_as_other_code():
    """trades, mart and fgsm_at measure other numbers than before for the same keys: their
    revision is stored with every cell, so a store's older cells are stale (run, report and
    leaderboard say so; ``run --force`` measures them again), never taken for new numbers."""
    from benchbench.plugins import load_registry
    from benchbench.store.versions import differences, installed_versions

    installed = installed_versions(load_registry())
    base = installed["benchbench"]
    for name in ("trades", "mart", "fgsm_at"):
        assert installed[f"regime:{name}"] == f"benchbench {base} revision 2"
    for name in ("pgd_at", "standard"):
        assert installed[f"regime:{name}"] == f"benchbench {base}"
    stored = {"regime:trades": f"benchbench {base}", "regime:pgd_at": f"benchbench {base}"}
    assert [d.name for d in differences(stored, installed)] == ["regime:trades"]
