"""FGSM and the attack harness: exact agreement with a reference written here."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbench.attacks.fgsm import FGSM
from benchbench.attacks.harness import attack_batch, project


def reference_fgsm(model, x, y, eps, lo=0.0, hi=1.0):
    """Textbook FGSM, one example at a time: clip(x + eps * sign(dCE/dx), lo, hi)."""
    out = []
    for xi, yi in zip(x, y, strict=True):
        xi = xi.unsqueeze(0).clone().requires_grad_(True)
        loss = nn.functional.cross_entropy(model(xi), yi.unsqueeze(0))
        loss.backward()
        out.append(torch.clamp(xi.detach() + eps * xi.grad.sign(), lo, hi)[0])
    return torch.stack(out)


@pytest.fixture
def model_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x = torch.rand(50, 1, 8, 8)
    y = torch.randint(0, 10, (50,))
    return model, x, y


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fgsm_equals_reference_exactly(model_and_data, dtype):
    model, x, y = model_and_data
    model, x = model.to(dtype), x.to(dtype)
    eps = (0.0, 0.05, 0.3)
    result = attack_batch(FGSM(), model, x, y, eps=eps, bounds=(0.0, 1.0))
    for i, e in enumerate(eps):
        expected = reference_fgsm(model, x, y, e)
        assert torch.equal(result.x_adv[i], expected), f"eps={e}"
        assert torch.equal(result.correct[i], model(expected).argmax(1) == y)


def test_one_gradient_serves_every_eps(model_and_data, monkeypatch):
    model, x, y = model_and_data
    import benchbench.attacks.losses as losses

    calls = []
    real = losses.loss_gradient
    monkeypatch.setattr(losses, "loss_gradient", lambda *a: calls.append(1) or real(*a))
    attack_batch(FGSM(), model, x, y, eps=(0.01, 0.02, 0.03, 0.04, 0.05), bounds=(0.0, 1.0))
    assert len(calls) == 1


def test_labels_are_the_true_labels_not_predictions(model_and_data):
    model, x, y = model_and_data
    wrong = (y + 1) % 10
    a = attack_batch(FGSM(), model, x, y, eps=(0.1,), bounds=(0.0, 1.0)).x_adv
    b = attack_batch(FGSM(), model, x, wrong, eps=(0.1,), bounds=(0.0, 1.0)).x_adv
    assert not torch.equal(a, b)


def test_harness_uses_eval_mode_and_restores_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.Dropout(0.9), nn.Linear(32, 10))
    x, y = torch.rand(20, 1, 8, 8), torch.randint(0, 10, (20,))
    model.train()
    first = attack_batch(FGSM(), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    second = attack_batch(FGSM(), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    assert torch.equal(first.x_adv, second.x_adv)  # dropout would make these differ
    assert model.training


def test_harness_projects_an_overreaching_attack():
    class Overreach:
        norm = "linf"

        def perturb(self, model, x, y, *, eps, bounds):
            return torch.stack([x + 10 * e + 5.0 for e in eps])

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    x = torch.full((3, 4), 0.5)
    result = attack_batch(Overreach(), model, x, torch.zeros(3, dtype=torch.long),
                          eps=(0.1, 0.7), bounds=(0.0, 1.0))
    assert torch.allclose(result.x_adv[0], torch.full((3, 4), 0.6))
    assert torch.equal(result.x_adv[1], torch.ones(3, 4))  # the data bound wins


def test_l2_projection_and_bad_shapes():
    x = torch.zeros(2, 3)
    out = project(torch.tensor([[3.0, 4.0, 0.0], [0.1, 0.0, 0.0]]), x, 1.0, "l2", (-9.0, 9.0))
    assert torch.allclose(out[0].norm(), torch.tensor(1.0))
    assert torch.equal(out[1], torch.tensor([0.1, 0.0, 0.0]))

    class Flat:
        norm = "linf"

        def perturb(self, model, x, y, *, eps, bounds):
            return x

    with pytest.raises(ValueError, match="one batch per eps"):
        attack_batch(Flat(), nn.Linear(3, 2), x, torch.zeros(2, dtype=torch.long), eps=(0.1,),
                     bounds=(0.0, 1.0))


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="loss must be one of"):
        FGSM(loss="hinge")


def test_harness_calls_the_model_on_batches_shaped_like_x(model_and_data):
    model, x, y = model_and_data
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    attack_batch(FGSM(), model, x, y, eps=(0.1, 0.2, 0.3), bounds=(0.0, 1.0))
    assert set(shapes) == {tuple(x.shape)}


def test_harness_freezes_parameters_during_the_attack_and_restores_them(model_and_data):
    model, x, y = model_and_data
    seen = []

    class Spy:
        norm = "linf"

        def perturb(self, model, x, y, *, eps, bounds):
            seen.append([p.requires_grad for p in model.parameters()])
            return FGSM().perturb(model, x, y, eps=eps, bounds=bounds)

    attack_batch(Spy(), model, x, y, eps=(0.1,), bounds=(0.0, 1.0))
    assert seen == [[False] * 4]
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
