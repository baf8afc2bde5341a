"""Certified training (``ibp``, ``crown_ibp``): beside the reference formulas, its bounds beside
``benchbench.verify``'s, the kit, stacking, resume and what it buys on digits.

References, copied below with their source named (read at these commits):

* huanzhang12/CROWN-IBP a636004: ``bound_layers.py`` (``BoundLinear.interval_propagate`` and
  ``bound_backward``, ``BoundReLU.interval_propagate`` and ``bound_backward``,
  ``BoundSequential.interval_range`` and ``backward_range``, default ``bound_opts``),
  ``train.py`` ``Train`` (the ``crown-interval`` bound and ``robust_natural`` loss) and
  ``eps_scheduler.py`` ``EpsilonScheduler.linear_schedule``;
* deepmind/interval-bound-propagation 217a14d (TensorFlow, transliterated op for op to torch:
  ``tf.einsum`` -> ``torch.einsum``, ``tf.gather_nd`` -> indexing, a Sonnet ``w`` is ``[in,
  out]``, our ``weight.t()``): ``bounds.py`` ``IntervalBounds._affine`` and
  ``apply_increasing_monotonic_fn``, ``specification.py`` ``ClassificationSpecification._build``
  (elision), ``loss.py`` ``Losses._build_nominal_loss`` and ``_build_verified_loss`` (``xent``),
  ``utils.py`` ``linear_schedule``, ``build_loss_schedule`` and
  ``create_classification_losses`` (``train_loss``), with ``examples/train.py``'s loss weights.

Float64 comparisons are to 1e-12: both sides compute the same sums in a different order
(einsum against matmul, a mean of terms against a mean of per-example sums), each within
``n u sum|t|`` of the exact value (u = 1.1e-16, n <= 64 terms, sums of order 10-100).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import benchbench
from benchbench.errors import VerifierError
from benchbench.models.stacked_mlp import stack_mlps
from benchbench.regimes.certified import CROWNIBPTraining, IBPTraining
from benchbench.regimes.certified_bounds import (
    box,
    crown_ibp_margins,
    ibp_margins,
    interval_layers,
    training_network,
)
from benchbench.regimes.context import TrainContext
from benchbench.testing import check_regime, tiny_data
from benchbench.verify.bounds import build_network
from benchbench.verify.crown import crown_margins, relaxation
from benchbench.verify.domain import make_domain
from benchbench.verify.ibp import ibp_layers

TOL = 1e-12
SPE = 10  # training steps (batches) per epoch in the schedule tests


def mlp(seed: int = 0, dtype=torch.float64, hidden=(32, 16)) -> nn.Sequential:
    """A digits MLP with two hidden layers, fitted a little so ReLUs are stable and not."""
    torch.manual_seed(seed)
    sizes = [64, *hidden, 10]
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(sizes) - 2 else [])
    model = nn.Sequential(*layers).to(dtype)
    x, y = tiny_data(64, dtype=dtype)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(20):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model


def context(dtype=torch.float64, *, epoch: int, batch: int, members: int = 1) -> TrainContext:
    ctx = TrainContext(members, tuple(range(members)), (0.0, 1.0), dtype, "cpu",
                       log=lambda _: None)
    ctx.epoch, ctx.batch, ctx.batches = epoch, batch, SPE
    return ctx


def ours(regime, model, x, y, ctx):
    """The harness's step: the per-example losses averaged, backpropagated."""
    model.zero_grad(set_to_none=True)
    loss = regime.loss(ctx, model, x, x, y).sum() / len(y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def same(a, b, tol=TOL) -> bool:
    return all(float((u - v).abs().max()) <= tol * max(1.0, float(v.abs().max()))
               for u, v in zip((t.detach() for t in a), (t.detach() for t in b), strict=True))


# --- the references ----------------------------------------------------------------------------

def crown_ibp_linear_schedule(step, init_step, final_step, init_value, final_value):
    """CROWN-IBP ``eps_scheduler.py`` ``EpsilonScheduler.linear_schedule``, as written."""
    assert final_step >= init_step
    if init_step == final_step:
        return final_value
    rate = float(step - init_step) / float(final_step - init_step)
    linear_value = rate * (final_value - init_value) + init_value
    return np.clip(linear_value, min(init_value, final_value), max(init_value, final_value))


def crown_ibp_eps(t, i, *, schedule_start, schedule_length, end_epsilon):
    """CROWN-IBP ``train.py`` ``main``'s ``EpsilonScheduler(...)`` and ``get_eps(t, i)``
    (``t`` the epoch from 0, ``i`` the batch; starting_epsilon 0)."""
    init_step = schedule_start * SPE
    final_step = ((schedule_start + schedule_length) - 1) * SPE
    return crown_ibp_linear_schedule(t * SPE + i, init_step, final_step, 0.0, end_epsilon)


def crown_ibp_reference_loss(model, data, labels, eps, max_eps, final_beta, final_kappa):
    """CROWN-IBP ``train.py`` ``Train`` (bound_type ``crown-interval``, method
    ``robust_natural``, ``bounded_input``, std 1 and mean 0) on ``bound_layers.py``'s
    ``interval_range`` and ``backward_range``; ``.cuda()`` dropped, ``lb_s`` made in the data's
    dtype (theirs is float32, the default dtype), ``model_defs.Flatten`` is ``nn.Flatten``."""
    num_class = 10
    sa = np.zeros((num_class, num_class - 1), dtype=np.int32)
    for i in range(sa.shape[0]):
        for j in range(sa.shape[1]):
            sa[i][j] = j if j < i else j + 1
    sa = torch.LongTensor(sa)
    c = (torch.eye(num_class).type_as(data)[labels].unsqueeze(1)
         - torch.eye(num_class).type_as(data).unsqueeze(0))
    eye = labels.data.unsqueeze(1) == torch.arange(num_class).type_as(labels.data).unsqueeze(0)
    c = c[~eye].view(data.size(0), num_class - 1, num_class)
    sa_labels = sa[labels]
    lb_s = torch.zeros(data.size(0), num_class, dtype=data.dtype)
    data_max = torch.reshape(torch.tensor([1.0]), (1, -1, 1, 1))
    data_min = torch.reshape(torch.tensor([0.0]), (1, -1, 1, 1))
    data_ub = torch.min(data + eps, data_max)
    data_lb = torch.max(data - eps, data_min)
    output = model(data)
    regular_ce = nn.CrossEntropyLoss()(output, labels)
    modules = list(model)
    relus = {}
    # BoundSequential.interval_range
    h_U, h_L = data_ub, data_lb
    for i, module in enumerate(modules):
        C = c if i == len(modules) - 1 else None
        if isinstance(module, nn.Flatten):
            h_U, h_L = h_U.view(h_U.size(0), -1), h_L.view(h_L.size(0), -1)
        elif isinstance(module, nn.ReLU):
            relus[i] = (h_U, h_L)
            h_U, h_L = F.relu(h_U), F.relu(h_L)
        else:  # BoundLinear.interval_propagate, norm = inf
            weight = module.weight if C is None else C.matmul(module.weight)
            bias = module.bias if C is None else C.matmul(module.bias)
            mid, diff = (h_U + h_L) / 2.0, (h_U - h_L) / 2.0
            weight_abs = weight.abs()
            if C is not None:
                center = (weight.matmul(mid.unsqueeze(-1)) + bias.unsqueeze(-1)).squeeze(-1)
                deviation = weight_abs.matmul(diff.unsqueeze(-1)).squeeze(-1)
            else:
                center = torch.addmm(bias, mid, weight.t())
                deviation = diff.matmul(weight_abs.t())
            h_U, h_L = center + deviation, center - deviation
    ilb = h_L
    beta = (max_eps - eps * (1.0 - final_beta)) / max_eps
    if beta < 1e-5:
        lb = ilb
    else:  # BoundSequential.backward_range(lower=True, upper=False)
        lower_A, lower_sum_b = c, data_ub.new([0])
        for i in reversed(range(len(modules))):
            module = modules[i]
            if isinstance(module, nn.Linear):  # BoundLinear.bound_backward
                lower_b = lower_A.matmul(module.bias)
                lower_A = lower_A.matmul(module.weight)
            elif isinstance(module, nn.ReLU):  # BoundReLU.bound_backward
                upper_u, lower_l = relus[i]
                lb_r, ub_r = lower_l.clamp(max=0), upper_u.clamp(min=0)
                ub_r = torch.max(ub_r, lb_r + 1e-8)
                upper_d = ub_r / (ub_r - lb_r)
                upper_b = -lb_r * upper_d
                upper_d = upper_d.unsqueeze(1)
                lower_d = (upper_d > 0.5).float()
                neg_lA, pos_lA = lower_A.clamp(max=0), lower_A.clamp(min=0)
                mult_lA = neg_lA.view(lower_A.size(0), lower_A.size(1), -1)
                lower_A = upper_d * neg_lA + lower_d * pos_lA
                lower_b = mult_lA.matmul(upper_b.view(upper_b.size(0), -1, 1)).squeeze(-1)
            else:  # BoundFlatten.bound_backward
                lower_A, lower_b = lower_A.view(lower_A.size(0), lower_A.size(1),
                                                *data.shape[1:]), 0
            lower_sum_b = lower_b + lower_sum_b
        A = lower_A.view(lower_A.size(0), lower_A.size(1), -1)
        x_ub, x_lb = data_ub.view(data_ub.size(0), -1, 1), data_lb.view(data_lb.size(0), -1, 1)
        center, diff = (x_ub + x_lb) / 2.0, (x_ub - x_lb) / 2.0
        clb = (A.bmm(center) - A.abs().bmm(diff)).squeeze(-1) + lower_sum_b
        lb = clb * beta + ilb * (1 - beta)
    lb = lb_s.scatter(1, sa_labels, lb)
    robust_ce = nn.CrossEntropyLoss()(-lb, labels)
    kappa = (max_eps - eps * (1.0 - final_kappa)) / max_eps
    return (1 - kappa) * robust_ce + kappa * regular_ce


def ibp_linear_schedule(step, init_step, final_step, init_value, final_value):
    """deepmind ``utils.py`` ``linear_schedule`` (``tf.clip_by_value`` -> min/max)."""
    assert final_step >= init_step
    if init_step == final_step:
        return final_value
    rate = float(step - init_step) / float(final_step - init_step)
    linear_value = rate * (final_value - init_value) + init_value
    return min(max(linear_value, min(init_value, final_value)), max(init_value, final_value))


def ibp_loss_schedule(step, warmup_steps, rampup_steps, init, final, warmup=None):
    """deepmind ``utils.py`` ``build_loss_schedule`` (``tf.cond`` -> if)."""
    if warmup is None and init == final:
        return init
    schedule = ibp_linear_schedule(step, warmup_steps, warmup_steps + rampup_steps, init,
                                   final)
    if warmup is not None:
        return warmup if step < warmup_steps else schedule
    return schedule


def gowal_reference_loss(model, inputs, label, step, *, epsilon, warmup_steps, rampup_steps):
    """deepmind ``create_classification_losses`` with ``examples/train.py``'s weights
    (nominal 1 -> 0.5, warmup 1; verified 0 -> 0.5, warmup 0; no attack), elided
    ``ClassificationSpecification`` and the ``xent`` verified loss."""
    nominal_w = ibp_loss_schedule(step, warmup_steps, rampup_steps, 1.0, 0.5, 1.0)
    verified_w = ibp_loss_schedule(step, warmup_steps, rampup_steps, 0.0, 0.5, 0.0)
    train_epsilon = ibp_linear_schedule(step, warmup_steps, warmup_steps + rampup_steps, 0.0,
                                        epsilon)
    logits = model(inputs)
    nominal = F.cross_entropy(logits, label)  # sparse_softmax_cross_entropy, reduce_mean
    lower = torch.clamp(inputs - train_epsilon, min=0.0).flatten(1)
    upper = torch.clamp(inputs + train_epsilon, max=1.0).flatten(1)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for lin in linears[:-1]:  # IntervalBounds._affine, then the ReLU (monotonic)
        w, b = lin.weight.t(), lin.bias
        c, r = (lower + upper) / 2.0, (upper - lower) / 2.0
        c, r = c @ w + b, r @ w.abs()
        lower, upper = F.relu(c - r), F.relu(c + r)
    w, b = linears[-1].weight.t(), linears[-1].bias  # ClassificationSpecification, elided
    num_classes, batch = w.shape[1], len(label)
    indices = torch.tensor([list(range(i)) + list(range(i + 1, num_classes))
                            for i in range(num_classes)])
    i = torch.arange(batch)
    w_t = w.t().unsqueeze(0).expand(batch, -1, -1)
    b_t = b.unsqueeze(0).expand(batch, -1)
    w_correct = w_t[i, label].unsqueeze(-1)
    b_correct = b_t[i, label].unsqueeze(1)
    wrong = indices[label]
    w_wrong = w_t[i.unsqueeze(1), wrong].transpose(1, 2)
    b_wrong = b_t[i.unsqueeze(1), wrong]
    w, b = w_wrong - w_correct, b_wrong - b_correct
    c, r = (lower + upper) / 2.0, (upper - lower) / 2.0
    bounds = torch.einsum("ij,ijk->ik", c, w) + b + torch.einsum("ij,ijk->ik", r, w.abs())
    v = torch.cat([bounds, torch.zeros([batch, 1], dtype=bounds.dtype)], dim=1)
    lab = torch.cat([torch.zeros_like(bounds), torch.ones([batch, 1], dtype=bounds.dtype)], 1)
    verified = torch.mean(-(lab * F.log_softmax(v, dim=1)).sum(1))
    return nominal * nominal_w + verified * verified_w


# --- beside the references ---------------------------------------------------------------------

@pytest.mark.parametrize("epoch", [1, 4, 8])  # warmup, ramp, after the ramp
def test_crown_ibp_loss_and_gradients_equal_the_reference(epoch):
    model, (x, y) = mlp(), tiny_data(16, dtype=torch.float64)
    start, length, eps, batch = 2, 5, 0.2, 3  # eps ramps over epochs 3-6 (schedule 2..6)
    regime = CROWNIBPTraining(epochs=10, eps=eps, warmup_epochs=start,
                              ramp_epochs=length - 1, dtype="float64")
    loss, grads = ours(regime, model, x, y, context(epoch=epoch, batch=batch))
    ref_model = mlp()
    eps_t = crown_ibp_eps(epoch - 1, batch, schedule_start=start, schedule_length=length,
                          end_epsilon=eps)
    if eps_t < np.finfo(np.float32).tiny:  # their Train: "eps close to 0, natural training"
        ref = F.cross_entropy(ref_model(x), y)
    else:
        ref = crown_ibp_reference_loss(ref_model, x, y, float(eps_t), eps, 0.0, 0.5)
    ref.backward()
    assert same([loss], [ref.detach()])
    assert same(grads, [p.grad for p in ref_model.parameters()])


@pytest.mark.parametrize("epoch", [1, 4, 8])
def test_ibp_loss_and_gradients_equal_gowal_et_al(epoch):
    model, (x, y) = mlp(), tiny_data(16, dtype=torch.float64)
    regime = IBPTraining(epochs=10, eps=0.2, warmup_epochs=2, ramp_epochs=3, dtype="float64")
    batch = 4
    loss, grads = ours(regime, model, x, y, context(epoch=epoch, batch=batch))
    ref_model = mlp()
    ref = gowal_reference_loss(ref_model, x, y, (epoch - 1) * SPE + batch, epsilon=0.2,
                               warmup_steps=2 * SPE, rampup_steps=3 * SPE)
    ref.backward()
    assert same([loss], [ref.detach()])
    assert same(grads, [p.grad for p in ref_model.parameters()])


def test_schedules_follow_both_references_step_by_step():
    ibp = IBPTraining(epochs=10, eps=0.3, warmup_epochs=1, ramp_epochs=4, kappa_end=0.5)
    crown = CROWNIBPTraining(epochs=10, eps=0.3, warmup_epochs=1, ramp_epochs=4)
    worst = 0.0
    for epoch in range(1, 11):
        for batch in range(SPE):
            ctx, step = context(epoch=epoch, batch=batch), (epoch - 1) * SPE + batch
            r = ibp.rate(ctx)
            eps_ref = crown_ibp_eps(epoch - 1, batch, schedule_start=1, schedule_length=5,
                                    end_epsilon=0.3)
            kappa_ref = (0.3 - eps_ref * (1.0 - 0.5)) / 0.3  # train.py robust_natural
            beta_ref = (0.3 - eps_ref * (1.0 - 0.0)) / 0.3  # train.py crown-interval
            gowal = [ibp_linear_schedule(step, SPE, 5 * SPE, 0.0, 0.3),
                     ibp_loss_schedule(step, SPE, 4 * SPE, 1.0, 0.5, 1.0),
                     1.0 - ibp_loss_schedule(step, SPE, 4 * SPE, 0.0, 0.5, 0.0)]
            eps, kappa = ibp.eps * r, ibp.ramped(ibp.kappa_start, ibp.kappa_end, r)
            beta = crown.ramped(crown.beta_start, crown.beta_end, crown.rate(ctx))
            assert crown.rate(ctx) == r
            worst = max(worst, abs(eps - eps_ref), abs(kappa - kappa_ref),
                        abs(beta - beta_ref), *(abs(a - b) for a, b in zip(
                            (eps, kappa, kappa), gowal, strict=True)))
    assert worst <= 4e-16  # a few roundings of numbers below 1


def test_default_schedules_are_the_references_shares_of_the_run():
    gowal = IBPTraining(epochs=60)  # their 60,000 steps: warmup 2,000, ramp 10,000
    assert (gowal.warmup_epochs, gowal.ramp_epochs) == pytest.approx((2.0, 10.0), rel=1e-15)
    zhang = CROWNIBPTraining(epochs=100)  # mnist_dm-large_0.2.json: start 3, length 18
    assert (zhang.warmup_epochs, zhang.ramp_epochs) == pytest.approx((3.0, 17.0), rel=1e-15)
    assert (zhang.kappa_start, zhang.kappa_end, zhang.beta_start, zhang.beta_end) == (
        1.0, 0.5, 1.0, 0.0)


# --- the training bounds are verify's ------------------------------------------------------------

def _off_label(m, y):
    keep = ~F.one_hot(y, m.shape[1]).bool()
    return m[keep]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_training_bounds_equal_verifys(dtype):
    model, (x, y) = mlp(dtype=dtype), tiny_data(32, dtype=dtype)
    eps = 0.05
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    net = training_network(model, x.shape[1:], dtype=dtype)
    dom = box(x, lo, hi, eps)
    layers = interval_layers(net, dom)
    ibp, crown = ibp_margins(net, dom, y, layers), crown_ibp_margins(net, dom, y, layers)
    assert ibp.dtype == crown.dtype == dtype and ibp.requires_grad and crown.requires_grad
    assert float(ibp.detach().gather(1, y[:, None]).abs().max()) == 0.0  # the label's: 0
    want = benchbench.verify.margin_bounds(model, x, y, eps=eps, method="ibp")
    net64 = build_network(model, x.shape[1:])
    dom64 = make_domain(x, eps, (0.0, 1.0))
    want_crown = crown_margins(net64, dom64, y, [relaxation(*b) for b in ibp_layers(net64,
                                                                                       dom64)])
    # float64: the same operations in the same order (measured equal). float32: every dot
    # product of at most 64 terms in float32 (u = 6e-8) is within 64 u of the sum of |terms|,
    # of the order of the margins' scale here, through three layers: 1.2e-5 relative
    # (measured: 5.9e-6 on margins up to 11, 5e-7 relative)
    tol = TOL if dtype == torch.float64 else 3 * 64 * 2.0 ** -24
    assert same([_off_label(ibp, y).double()], [_off_label(want, y)], tol)
    assert same([_off_label(crown, y).double()], [_off_label(want_crown, y)], tol)


def test_a_stacked_mlps_bounds_are_each_members_own():
    seeds, (x, y) = (0, 1, 2), tiny_data(16, dtype=torch.float64)
    members = [mlp(s) for s in seeds]
    stack = stack_mlps(members)
    xs, ys = x.repeat(3, 1, 1, 1), y.repeat(3)
    eps = 0.05
    lo, hi = (xs - eps).clamp(min=0), (xs + eps).clamp(max=1)
    net = training_network(stack, xs.shape[1:], dtype=torch.float64)
    dom = box(xs, lo, hi, eps)
    layers = interval_layers(net, dom)
    ibp = ibp_margins(net, dom, ys, layers)
    crown = crown_ibp_margins(net, dom, ys, layers)
    for i, m in enumerate(members):
        n1 = training_network(m, x.shape[1:], dtype=torch.float64)
        d1 = box(x, lo[:16], hi[:16], eps)
        l1 = interval_layers(n1, d1)
        rows = slice(16 * i, 16 * (i + 1))
        assert same([ibp[rows]], [ibp_margins(n1, d1, y, l1)])
        assert same([crown[rows]], [crown_ibp_margins(n1, d1, y, l1)])


def test_the_bounds_are_differentiable_and_sound():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(),
                          nn.Linear(4, 3)).double()
    x = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 2])
    eps = 0.3
    lo, hi = (x - eps).clamp(min=0), (x + eps).clamp(max=1)
    params = list(model.parameters())

    def bounds(method):
        def f(*_):
            net = training_network(model, x.shape[1:], dtype=torch.float64)
            dom = box(x, lo, hi, eps)
            return method(net, dom, y, interval_layers(net, dom))
        return f

    for method in (ibp_margins, crown_ibp_margins):
        assert torch.autograd.gradcheck(bounds(method), params)
        got = bounds(method)().detach()
        z = lo + (hi - lo) * torch.rand(4000, *x.shape, dtype=torch.float64)  # inside the box
        logits = model(z.flatten(0, 1)).view(4000, 3, 3)
        true = logits.gather(2, y.view(1, 3, 1).expand(4000, 3, 1)) - logits
        assert bool((true.amin(0) >= got - 1e-12).all())


def test_a_cnn_trains_through_verifys_decomposition_and_an_unboundable_model_is_refused():
    from benchbench.models.wong_cnn import WongCNN

    x, y = tiny_data(16, dtype=torch.float64)
    torch.manual_seed(0)
    cnn = WongCNN(input_shape=(1, 8, 8), num_classes=10).double()
    net = training_network(cnn, x.shape[1:], dtype=torch.float64)
    dom = box(x, (x - 0.02).clamp(min=0), (x + 0.02).clamp(max=1), 0.02)
    want = benchbench.verify.margin_bounds(cnn, x, y, eps=0.02, method="ibp")
    assert same([_off_label(ibp_margins(net, dom, y, interval_layers(net, dom)), y)],
                [_off_label(want, y)])
    regime = IBPTraining(epochs=10, eps=0.1, warmup_epochs=0, ramp_epochs=1, dtype="float64")
    ctx = context(epoch=2, batch=0)
    normalising = WongCNN(input_shape=(1, 8, 8), num_classes=10, mean=[0.5], std=[0.3]).double()
    with pytest.raises(VerifierError, match=r"ibp: WongCNN's layers do not compute its forward"):
        regime.loss(ctx, normalising, x, x, y)
    bn = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.BatchNorm1d(8), nn.ReLU(),
                       nn.Linear(8, 10)).double()
    with pytest.raises(VerifierError, match=r"ibp cannot bound layer 2 \(BatchNorm1d\)"):
        regime.loss(ctx, bn, x, x, y)


# --- the harness: kit, stacking, resume, keys ----------------------------------------------------

@pytest.mark.parametrize("cls", [IBPTraining, CROWNIBPTraining])
def test_certified_regimes_pass_the_kit(cls):
    names = {c.name for c in check_regime(cls, eps=0.1)}
    assert {"stacked members equal their seeds trained alone",
            "interrupted and resumed equals uninterrupted"} <= names


def test_certified_regimes_stack_like_alone_and_resume_bit_for_bit(registry, tmp_path):
    from benchbench.suite.load import load_suite
    from tests.test_regimes import AT_SUITE, StopAfter, regime_table, run, tidy

    path = tmp_path / "certified.toml"
    path.write_text(AT_SUITE.replace("train[:400]", "train[:200]").format(regimes=(
        regime_table("ibp", epochs=3, checkpoints="[1, 3]", eps=0.1)
        + regime_table("crown_ibp", epochs=3, checkpoints="[1, 3]", eps=0.1))))
    suite = load_suite(path, registry)
    run(suite, registry, tmp_path / "stacked", "auto")
    run(suite, registry, tmp_path / "alone", "sequential")
    (stacked, cells), (alone, _) = tidy(tmp_path / "stacked"), tidy(tmp_path / "alone")
    assert {c["engine"] for c in cells} == {"stacked x2"}
    assert stacked.drop(columns="value").equals(alone.drop(columns="value"))
    assert (stacked.value - alone.value).abs().max() <= 1e-9
    fit = stacked[stacked.split == "fit"]
    assert set(fit.metric) == {"loss", "verified_accuracy"}
    with pytest.raises(KeyboardInterrupt):
        run(suite, registry, tmp_path / "resumed", events=StopAfter(2))
    events = StopAfter(0)
    run(suite, registry, tmp_path / "resumed", events=events)
    assert events.seen == [2, 3, 1, 2, 3]  # ibp resumes from its checkpoint 1; crown_ibp runs
    assert tidy(tmp_path / "resumed")[0].equals(stacked)


@pytest.mark.parametrize(("keys", "message"), [
    ({"kappa_end": 1.5}, r"kappa_end must be a finite number >= 0 and <= 1; got 1.5"),
    ({"warmup_epochs": 2, "ramp_epochs": 2}, r"warmup_epochs \+ ramp_epochs must be at most "
                                             r"epochs = 3"),
    ({"eps": 0}, r"eps must be a finite number > 0"),
    ({"beta_end": -1}, r"beta_end must be a finite number >= 0"),
])
def test_bad_schedule_keys_are_refused_naming_them(keys, message):
    with pytest.raises(ValueError, match=message):
        CROWNIBPTraining(epochs=3, **keys)


# --- what it buys -------------------------------------------------------------------------------

def test_ibp_training_certifies_what_standard_training_does_not():
    """Digits, a 64-64-10 MLP, eps 0.1, 10 epochs of Adam (lr 0.01, batches of 100), seed 0:
    IBP-certified test accuracy (verify, method ibp); measured 0.0% and 56.2% (README)."""
    from benchbench.datasets.digits import Digits
    from benchbench.engine.training import Trainer
    from benchbench.models.mlp import build_mlp
    from benchbench.regimes.standard import StandardTraining

    x, y = Digits().load("train")
    xt, yt = Digits().load("test")
    x, xt = x.float(), xt.float()
    certified = {}
    for name, regime in (("standard", StandardTraining(epochs=10, lr=0.01)),
                         ("ibp", IBPTraining(epochs=10, lr=0.01, eps=0.1))):
        torch.manual_seed(0)
        model = build_mlp(input_shape=(1, 8, 8), num_classes=10, hidden=[64])
        ctx = TrainContext(1, (0,), (0.0, 1.0), torch.float32, "cpu", log=lambda _: None)
        trainer = Trainer(regime, model=model, x=x, y=y, seeds=[0], ctx=ctx, stacked=False)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for _ in trainer.epochs():
                pass
        certified[name] = float(benchbench.verify(model.eval(), xt, yt, eps=[0.1],
                                                  method="ibp").double().mean())
    assert certified["standard"] <= 0.02 and certified["ibp"] >= 0.4, certified
