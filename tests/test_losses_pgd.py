"""Attack losses, PGD and BIM: correctness against references, and the saturation they fix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.harness import attack_batch
from benchbench.attacks.losses import loss_gradient
from benchbench.attacks.pgd import BIM, PGD


class Scaled(nn.Module):
    """A linear classifier whose logits are multiplied by ``scale``: large scales saturate."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(8, 3)
        self.scale = scale

    def forward(self, x):
        return self.linear(x) * self.scale


@pytest.fixture
def batch():
    torch.manual_seed(1)
    return torch.rand(64, 8), torch.randint(0, 3, (64,))


def test_ce_stable_has_the_sign_and_direction_of_float64_cross_entropy(batch):
    x, y = batch
    model = Scaled(1.0)
    exact = loss_gradient(model.double(), x.double(), y, "ce")
    stable = loss_gradient(model.double(), x.double(), y, "ce_stable")
    assert torch.equal(exact.sign(), stable.sign())
    cos = nn.functional.cosine_similarity(exact, stable, dim=1)
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-12)


def test_plain_ce_gradient_vanishes_when_saturated_and_ce_stable_does_not(batch):
    x, y = batch
    model = Scaled(1e4)  # logit gaps in the thousands: p_y is exactly 1.0 in float32
    with torch.no_grad():
        pred = model(x).argmax(1)
    right = pred == y
    plain = loss_gradient(model, x, pred, "ce")
    assert (plain.flatten(1) == 0).all(dim=1).all()
    for loss in ("ce_stable", "margin"):
        grad = loss_gradient(model, x, pred, loss)
        assert (grad.flatten(1) != 0).any(dim=1).all(), loss
    assert right.any()


def test_margin_gradient_is_the_cw_margin(batch):
    x, y = batch
    model = Scaled(1.0).double()
    x = x.double()
    grad = loss_gradient(model, x, y, "margin")
    w = model.linear.weight * model.scale
    logits = model(x)
    other = logits.scatter(1, y[:, None], float("-inf")).argmax(1)
    assert torch.allclose(grad, w[other] - w[y], atol=1e-12)


def test_fgsm_losses_and_bad_loss(batch):
    x, _ = batch
    model = Scaled(1e4)
    with torch.no_grad():
        y = model(x).argmax(1)  # every input correctly classified, with p_y == 1.0
    plain = attack_batch(FGSM(loss="ce"), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    stable = attack_batch(FGSM(loss="ce_stable"), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    assert torch.equal(plain.x_adv[0], x)  # plain CE is blind once saturated: nothing moves

    def margin(inputs):
        with torch.no_grad():
            z = model(inputs)
        return z.gather(1, y[:, None]).squeeze(1) - z.scatter(1, y[:, None], -1e30).amax(1)

    assert (margin(stable.x_adv[0]) < margin(x)).all()  # every step heads for the boundary
    with pytest.raises(ValueError, match="loss must be one of ce, ce_stable, margin"):
        FGSM(loss="hinge")


def reference_pgd_linf(model, x, y, eps, steps, step):
    """Textbook L-inf PGD without random start."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + step * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    return adv


def test_pgd_without_random_start_equals_the_reference(batch):
    x, y = batch
    model = Scaled(1.0).double()
    x = x.double()
    out = PGD(steps=7, step_size=0.01, random_start=False).perturb(model, x, y, eps=(0.03,),
                                                                   bounds=(0.0, 1.0))
    assert torch.allclose(out[0], reference_pgd_linf(model, x, y, 0.03, 7, 0.01), atol=1e-12)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_stays_in_the_ball_and_beats_fgsm(batch, norm):
    x, y = batch
    model = Scaled(3.0)
    eps = (0.05, 0.3) if norm == "linf" else (0.2, 1.0)
    pgd = PGD(norm=norm, steps=20, restarts=2)
    torch.manual_seed(0)
    result = attack_batch(pgd, model, x, y, eps=eps, bounds=(0.0, 1.0))
    delta = (result.x_adv - x).flatten(2)
    size = delta.abs().amax(2) if norm == "linf" else delta.norm(dim=2)
    assert (size <= torch.tensor(eps)[:, None] + 1e-6).all()
    assert result.x_adv.min() >= 0 and result.x_adv.max() <= 1
    if norm == "linf":
        fgsm = attack_batch(FGSM(), model, x, y, eps=eps, bounds=(0.0, 1.0))
        assert (result.correct.sum(1) <= fgsm.correct.sum(1)).all()
    assert pgd.per_example is False and PGD(random_start=False).per_example is True


def test_pgd_restarts_keep_the_first_success(batch):
    x, y = batch
    model = Scaled(3.0)
    torch.manual_seed(0)
    one = attack_batch(PGD(steps=3, restarts=1), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    torch.manual_seed(0)
    many = attack_batch(PGD(steps=3, restarts=4), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    assert many.correct.sum() <= one.correct.sum()


def test_bim_is_pgd_from_the_clean_input(batch):
    x, y = batch
    model = Scaled(2.0)
    bim = BIM(steps=5, step_size=0.02).perturb(model, x, y, eps=(0.05,), bounds=(0.0, 1.0))
    pgd = PGD(steps=5, step_size=0.02, random_start=False).perturb(
        model, x, y, eps=(0.05,), bounds=(0.0, 1.0))
    assert torch.equal(bim, pgd) and BIM().per_example


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"norm": "l1"}, "norm must be one of linf, l2"),
    ({"steps": 0}, "steps must be a positive integer"),
    ({"restarts": 1.5}, "restarts must be a positive integer"),
    ({"step_size": -1}, "step_size must be a positive number"),
    ({"loss": "nll"}, "loss must be one of"),
])
def test_pgd_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PGD(**kwargs)
