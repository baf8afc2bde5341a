"""Standard training: minibatch cross-entropy, reshuffled every epoch, seeded."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from benchbench.regimes.lean_step import lean_step

OPTIMIZERS = ("adam", "sgd")
DTYPES = ("float32", "float64")
SHUFFLE_SALT = 0x9E3779B9  # the shuffle stream is seeded apart from the initialisation stream


def checkpoint_schedule(checkpoints: Sequence[int] | Mapping[str, int] | None,
                        epochs: int) -> tuple[int, ...]:
    """Epochs to checkpoint: a list, ``{start, step[, stop]}`` or None (the last epoch only)."""
    if checkpoints is None:
        return (epochs,)
    if isinstance(checkpoints, Mapping):
        unknown = set(checkpoints) - {"start", "step", "stop"}
        if unknown or not {"start", "step"} <= set(checkpoints):
            raise ValueError("checkpoints must be a list of epochs or {start, step[, stop]}; "
                             f"got keys {sorted(checkpoints)}")
        start, step = checkpoints["start"], checkpoints["step"]
        stop = checkpoints.get("stop", epochs)
        if not all(isinstance(v, int) and v > 0 for v in (start, step, stop)):
            raise ValueError("checkpoints start, step and stop must be positive integers")
        epochs_list = list(range(start, stop + 1, step))
    elif isinstance(checkpoints, Sequence) and not isinstance(checkpoints, str):
        epochs_list = list(checkpoints)
    else:
        raise ValueError(f"checkpoints must be a list of epochs or {{start, step}}; "
                         f"got {checkpoints!r}")
    if not epochs_list or not all(isinstance(e, int) and 1 <= e <= epochs for e in epochs_list):
        raise ValueError(f"checkpoints must be epochs between 1 and epochs={epochs}; "
                         f"got {epochs_list}")
    return tuple(sorted(set(epochs_list)))


class StandardTraining:
    """Plain training: Adam or SGD on minibatch cross-entropy, reshuffled every epoch."""

    # may differ between the members of one stacked model (cells that differ only in these and
    # in their seed train together); everything else must be equal
    member_params = ("lr", "momentum", "weight_decay")
    # train and train_stacked take ``state=`` and can continue after a saved epoch
    resumable = True

    def __init__(self, *, optimizer: str = "adam", lr: float = 1e-3, batch_size: int = 100,
                 epochs: int = 10, checkpoints: Sequence[int] | Mapping[str, int] | None = None,
                 dtype: str = "float32", momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; "
                             f"got {optimizer!r}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
        for key, value in (("batch_size", batch_size), ("epochs", epochs)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{key} must be a positive integer; got {value!r}")
        for key, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{key} must be a non-negative number; got {value!r}")
        self.optimizer, self.lr, self.batch_size, self.epochs = optimizer, lr, batch_size, epochs
        self.momentum, self.weight_decay, self.dtype = momentum, weight_decay, dtype
        self.checkpoint_epochs = checkpoint_schedule(checkpoints, epochs)

    def make_optimizer(self, params):
        """Adam or SGD; fused kernels where torch has them (one element-wise pass per step)."""
        import torch

        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay,
                                    fused=True)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum,
                               weight_decay=self.weight_decay, fused=True)

    def shuffles(self, n: int, seed: int) -> Iterator:
        """One permutation of ``range(n)`` per epoch, from a generator seeded by ``seed``."""
        import torch

        gen = torch.Generator().manual_seed(seed + SHUFFLE_SALT)
        for _ in range(self.epochs):
            yield torch.randperm(n, generator=gen)

    @staticmethod
    def _resume(opt, state: dict | None) -> int:
        """The first epoch to train: 1, or the one after ``state["epoch"]`` when ``state``
        carries ``optimizer_state`` (``opt`` then loads it). ``state["optimizer"]`` is ``opt``
        from here on, for the engine to save."""
        if state is None:
            return 1
        first = 1
        if "optimizer_state" in state:
            opt.load_state_dict(state.pop("optimizer_state"))
            first = state["epoch"] + 1
        state["optimizer"] = opt
        return first

    def train(self, *, model, x, y, seed: int, state: dict | None = None) -> Iterator[int]:
        """Train ``model`` in place on ``(x, y)``, yielding after each epoch.

        With ``state`` (see ``hookspecs``): resume after ``state["epoch"]`` from
        ``state["optimizer_state"]`` if given (``model`` then holds that epoch's weights), and
        keep ``state["optimizer"]`` and ``state["epoch"]`` current.
        """
        import torch.nn.functional as F

        opt = self.make_optimizer(model.parameters())
        first = self._resume(opt, state)
        step = lean_step(opt)
        model.train()
        for epoch, perm in enumerate(self.shuffles(len(x), seed), start=1):
            if epoch < first:  # the shuffle stream still draws every epoch's permutation
                continue
            perm = perm.to(x.device, non_blocking=True)
            for start in range(0, len(perm), self.batch_size):
                idx = perm[start:start + self.batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                step()
            if state is not None:
                state["epoch"] = epoch
            yield epoch

    def train_stacked(self, *, model, x, y, seeds: Sequence[int],
                      regimes: Sequence[StandardTraining] | None = None,
                      state: dict | None = None) -> Iterator[int]:
        """Train a stack of ``len(seeds)`` models (see ``benchbench.models.stacked_mlp``).

        Member ``i`` sees exactly the batches ``train(seed=seeds[i])`` of ``regimes[i]`` (default:
        this regime) would: its own shuffle stream, the same batch boundaries, the same mean loss
        per batch and its own ``member_params`` (learning rate, momentum, weight decay). The
        losses of the members are summed, so each member's gradient is its own loss's gradient.
        A model with ``cross_entropy_backward(x, y)`` computes those gradients itself (see
        ``StackedMLP``). ``state`` works as in ``train``.
        """
        import torch
        import torch.nn.functional as F

        hypers = [{k: getattr(r, k) for k in self.member_params} for r in regimes or [self]]
        if all(h == hypers[0] for h in hypers):
            opt = self.make_optimizer(model.parameters())
            step = lean_step(opt)  # takes the optimiser's state at its first step, after _resume
        else:  # one fused kernel call per run of members that share hyper-parameters
            from benchbench.regimes.memberwise import MemberwiseOptimizer

            opt = MemberwiseOptimizer(model.parameters(), hypers, self.optimizer)
            step = opt.step
        first = self._resume(opt, state)
        model.train()
        n = len(x)
        streams = [self.shuffles(n, seed) for seed in seeds]
        # the model's own cross-entropy backward (no autograd graph) when it has one
        backward = getattr(model, "cross_entropy_backward", None)
        for epoch, perms in enumerate(zip(*streams, strict=True), start=1):
            if epoch < first:
                continue
            perm = torch.stack(perms).to(x.device, non_blocking=True)
            for start in range(0, n, self.batch_size):
                flat = perm[:, start:start + self.batch_size].reshape(-1)
                xb, yb = x.index_select(0, flat), y.index_select(0, flat)
                if backward is not None:
                    backward(xb, yb)
                else:
                    # every member's batch has the same rows: sum / rows = sum of member means
                    rows = len(flat) // len(seeds)
                    loss = F.cross_entropy(model(xb), yb, reduction="sum") / rows
                    model.zero_grad(set_to_none=True)
                    loss.backward()
                step()
            if state is not None:
                state["epoch"] = epoch
            yield epoch
