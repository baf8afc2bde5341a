"""``optimizer.step`` without its per-step Python bookkeeping, for fused Adam and SGD, member by
member for a stacked model.

``torch.optim.Adam(fused=True).step()`` spends about 0.1 ms a step re-grouping tensors by device
and dtype, checking flags and looking up state before it calls one fused kernel; with a step of
a few milliseconds that is a few percent of training. ``lean_step(opt, members=S)`` returns a
callable that creates the optimiser's state as ``opt.step()`` would (the same tensors, in
``opt.state``, so ``state_dict`` stays the true state) and calls the same kernel on it.

A stacked model's parameters are ``[members, ...]``. The fused CPU kernels run a vectorised loop
over each tensor and a scalar loop over its last ``numel % width`` elements, and the two round
differently (fused multiply-adds): a 10-element bias alone is all tail, the same bias as member 1
of a stack of 5 lies in vector lanes. So with ``members > 1`` every tensor is handed to the kernel
as ``members`` slices (``p[0], p[1], ...``, each contiguous): each member is computed exactly as
its own tensor would be, and a stacked member's numbers equal the cell trained as a stack of one,
bit for bit (``tests/test_stacked.py``). It is still one kernel call a step.

Anything it does not cover (several parameter groups, amsgrad, nesterov with dampening,
capturable or differentiable optimisers, tensor learning rates, another optimiser, a torch
without the kernels) gets ``opt.step`` itself: correct, but member slices are not separated;
``lean_step`` says which with ``exact_members``.
"""

from __future__ import annotations

from collections.abc import Callable


def member_slices(tensors, members: int) -> list:
    """Every tensor's dim-0 slices, tensor by tensor (``tensors`` as they are if one member)."""
    if members == 1:
        return list(tensors)
    return [t[i] for t in tensors for i in range(members)]


def fused_adam(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr: float, betas, eps: float,
               weight_decay: float, maximize: bool = False, members: int = 1) -> None:
    """One Adam step exactly as ``torch.optim.Adam(fused=True)`` takes it: count the step, then
    the fused kernel (no amsgrad, no grad scaling), on each member's slice with ``members``."""
    import torch

    torch._foreach_add_(steps, 1)
    torch._fused_adam_(member_slices(params, members), member_slices(grads, members),
                       member_slices(exp_avgs, members), member_slices(exp_avg_sqs, members), [],
                       [s for s in steps for _ in range(members)], amsgrad=False, lr=lr,
                       beta1=float(betas[0]), beta2=float(betas[1]),
                       weight_decay=weight_decay, eps=eps, maximize=maximize,
                       grad_scale=None, found_inf=None)


def fused_sgd(params, grads, buffers, *, lr: float, momentum: float, weight_decay: float,
              dampening: float = 0.0, nesterov: bool = False, maximize: bool = False,
              first: bool, members: int = 1) -> None:
    """One SGD step exactly as ``torch.optim.SGD(fused=True)`` takes it, per member slice."""
    import torch

    torch._fused_sgd_(member_slices(params, members), member_slices(grads, members),
                      member_slices(buffers, members) if momentum else [],
                      weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=dampening,
                      nesterov=nesterov, maximize=maximize, is_first_step=first and bool(momentum),
                      grad_scale=None, found_inf=None)


def _leanable(opt) -> str | None:
    """``"adam"`` or ``"sgd"`` when ``lean_step`` can take ``opt``'s steps itself, else None."""
    import torch

    kind = {torch.optim.Adam: "adam", torch.optim.SGD: "sgd"}.get(type(opt))
    kernel = {"adam": "_fused_adam_", "sgd": "_fused_sgd_"}.get(kind)
    if kind is None or len(opt.param_groups) != 1 or not hasattr(torch, kernel):
        return None
    group = opt.param_groups[0]
    if (not group.get("fused") or group.get("amsgrad") or group.get("capturable")
            or group.get("differentiable") or group.get("decoupled_weight_decay")
            or not isinstance(group["lr"], float)
            or kind == "sgd" and group.get("nesterov") and group.get("dampening")):
        return None
    if len({(p.device, p.dtype) for p in group["params"]}) != 1:
        return None
    return kind


def exact_members(opt) -> bool:
    """Whether ``lean_step(opt, members=...)`` updates each member as its own tensor."""
    return _leanable(opt) is not None


def lean_step(opt, *, members: int = 1) -> Callable[[], object]:
    """``opt.step`` for ``opt``'s parameters (each ``[members, ...]`` with ``members > 1``)."""
    import torch

    kind = _leanable(opt)
    if kind is None:
        return opt.step
    group = opt.param_groups[0]
    params = list(group["params"])

    @torch.no_grad()
    def step() -> None:
        grads = [p.grad for p in params]
        if any(g is None for g in grads):  # torch.optim skips them; rare: its own way
            opt.step()
            return
        if kind == "adam":
            for p in params:  # the state torch.optim.Adam(fused=True) creates at its first step
                if "exp_avg" not in opt.state[p]:
                    opt.state[p].update(
                        step=torch.zeros((), dtype=torch.float32, device=p.device),
                        exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                        exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
            per = [opt.state[p] for p in params]
            fused_adam(params, grads, [s["exp_avg"] for s in per],
                       [s["exp_avg_sq"] for s in per], [s["step"] for s in per],
                       lr=group["lr"], betas=group["betas"], eps=group["eps"],
                       weight_decay=group["weight_decay"], maximize=group["maximize"],
                       members=members)
            return
        first = False
        if group["momentum"]:
            first = all(opt.state[p].get("momentum_buffer") is None for p in params)
            if first:  # as torch.optim.SGD(fused=True)'s first step
                for p, g in zip(params, grads, strict=True):
                    opt.state[p]["momentum_buffer"] = torch.empty_like(g)
        buffers = [opt.state[p]["momentum_buffer"] for p in params] if group["momentum"] else []
        fused_sgd(params, grads, buffers,
                  lr=group["lr"], momentum=group["momentum"],
                  weight_decay=group["weight_decay"], dampening=group["dampening"],
                  nesterov=group["nesterov"], maximize=group["maximize"], first=first,
                  members=members)

    return step
