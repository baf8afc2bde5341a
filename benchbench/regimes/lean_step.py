"""``optimizer.step`` without its per-step Python bookkeeping, for fused Adam.

``torch.optim.Adam(fused=True).step()`` spends about 0.1 ms a step re-grouping tensors by device
and dtype, checking flags and looking up state before it calls one fused kernel; with a step of
a few milliseconds that is a few percent of training. ``lean_step(opt)`` returns a callable
that lets the first step go through ``opt.step()`` (which creates the state) and afterwards
calls the same kernel on the same state tensors, exactly as ``opt.step()`` would: the numbers
are bit-identical (tested), and the optimiser's ``state_dict`` stays the true state.

Anything it does not cover (SGD, several parameter groups, amsgrad, tensor learning rates,
capturable or differentiable Adam, a torch without the kernel) gets ``opt.step`` itself.
"""

from __future__ import annotations

from collections.abc import Callable


def fused_adam(params, grads, exp_avgs, exp_avg_sqs, steps, *, lr: float, betas, eps: float,
               weight_decay: float, maximize: bool = False) -> None:
    """One Adam step exactly as ``torch.optim.Adam(fused=True)`` takes it: count the step, then
    the fused kernel (no amsgrad, no grad scaling)."""
    import torch

    torch._foreach_add_(steps, 1)
    torch._fused_adam_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=lr,
                       beta1=float(betas[0]), beta2=float(betas[1]),
                       weight_decay=weight_decay, eps=eps, maximize=maximize,
                       grad_scale=None, found_inf=None)


def lean_step(opt) -> Callable[[], object]:
    import torch

    if (type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1
            or not hasattr(torch, "_fused_adam_")):
        return opt.step
    group = opt.param_groups[0]
    if (not group.get("fused") or group.get("amsgrad") or group.get("capturable")
            or group.get("differentiable") or group.get("decoupled_weight_decay")
            or not isinstance(group["lr"], float)):
        return opt.step
    params = list(group["params"])
    if len({(p.device, p.dtype) for p in params}) != 1:
        return opt.step
    state: list[list] = []

    def step() -> None:
        grads = [p.grad for p in params]
        if not state or any(g is None for g in grads):
            # opt.step creates the state, and skips parameters without a gradient (which
            # then have no state yet): the slow way until every parameter has both
            opt.step()
            if not state and all("exp_avg" in opt.state.get(p, {}) for p in params):
                per = [opt.state[p] for p in params]
                state.append([s["exp_avg"] for s in per])
                state.append([s["exp_avg_sq"] for s in per])
                state.append([s["step"] for s in per])
            return
        fused_adam(params, grads, *state, lr=group["lr"], betas=group["betas"], eps=group["eps"],
                   weight_decay=group["weight_decay"], maximize=group["maximize"])

    return step
