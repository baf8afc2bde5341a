"""Attacks that break the harness's contract, one way each (issue 16's table): what the harness
must refuse or make harmless. Each returns its input unchanged unless its way is the proposal."""

from __future__ import annotations

import torch

from benchbench import hookimpl


class _Base:
    norm = "linf"

    def __init__(self, **_: object) -> None:
        pass

    def perturb(self, model, x, y, *, eps, bounds):
        self.act(model, x, y)
        return self.proposal(x, eps)

    def act(self, model, x, y) -> None: ...

    def proposal(self, x, eps):
        return x.unsqueeze(0).repeat(len(eps), *[1] * x.dim())


class NaNLinf(_Base):
    """Proposes NaN everywhere (L-inf)."""

    def proposal(self, x, eps):
        return torch.full((len(eps), *x.shape), float("nan"), dtype=x.dtype)


class InfL2(_Base):
    """Proposes NaN and +inf (L2)."""

    norm = "l2"

    def proposal(self, x, eps):
        out = super().proposal(x, eps).clone()
        out.view(len(eps), -1)[:, 0] = float("inf")
        out.view(len(eps), -1)[:, 1] = float("nan")
        return out


class ZeroInputs(_Base):
    """Zeroes the clean inputs in place."""

    def act(self, model, x, y):
        x.mul_(0)


class ShiftLabels(_Base):
    """Shifts the labels in place."""

    def act(self, model, x, y):
        y.add_(1).remainder_(10)


class ZeroWeights(_Base):
    """Zeroes the model's weights under no_grad."""

    def act(self, model, x, y):
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()


class ZeroWeightsData(_Base):
    """Zeroes the model's weights through ``.data`` (no version counter)."""

    def act(self, model, x, y):
        for p in model.parameters():
            p.data.zero_()


class TrainMode(_Base):
    """Leaves the model in train mode."""

    def act(self, model, x, y):
        model.train()


ATTACKS = {"threat_nan": NaNLinf, "threat_inf_l2": InfL2, "threat_zero_x": ZeroInputs,
           "threat_shift_y": ShiftLabels, "threat_zero_w": ZeroWeights,
           "threat_zero_w_data": ZeroWeightsData, "threat_train_mode": TrainMode}


@hookimpl
def register_attacks(register):
    for name, cls in ATTACKS.items():
        register(name, cls)
