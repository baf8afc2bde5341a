"""What makes ART's trainers run bit for bit as benchbench epochs: the data order handed from
one one-epoch ``fit`` call to the next, numpy's and torch's global RNGs as the run's own
streams, and ART's progress bars off (``benchbench.art_regimes`` uses them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from benchbench.art_attacks import art_import

TRAINERS = "art.defences.trainer"


class EpochOrder:
    """ART's ``fit`` shuffles one index array in place every epoch, and a new call starts again
    from ``arange``. ``np.random.shuffle`` draws the same numbers whatever the array holds, so
    handing each one-epoch call the data in the order the earlier epochs left it makes the calls
    together equal one ``fit`` over all epochs, bit for bit."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.order = np.arange(n)

    def epoch(self, fit: Callable, x, y) -> None:
        import numpy as np

        ahead = np.random.RandomState()
        ahead.set_state(np.random.get_state())
        step = np.arange(len(self.order))
        ahead.shuffle(step)  # the permutation ART's call is about to draw
        fit(x[self.order], y[self.order])
        self.order = self.order[step]


class Streams:
    """numpy's and torch's global RNGs as this run's own streams, seeded from ``seed``: swapped
    in for ART's work and out again, so nothing run between epochs draws from them."""

    def __init__(self, seed: int, device: str) -> None:
        import numpy as np
        import torch

        self.numpy = np.random.RandomState(seed).get_state()
        self.cuda = device.startswith("cuda")
        self.torch = torch.Generator().manual_seed(seed).get_state()
        self.torch_cuda = (torch.Generator(device="cuda").manual_seed(seed).get_state()
                           if self.cuda else None)

    @contextmanager
    def active(self) -> Iterator[None]:
        import numpy as np
        import torch

        outside = np.random.get_state(), torch.get_rng_state(), (
            torch.cuda.get_rng_state() if self.cuda else None)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch)
        if self.cuda:
            torch.cuda.set_rng_state(self.torch_cuda)
        try:
            yield
        finally:
            self.numpy, self.torch = np.random.get_state(), torch.get_rng_state()
            np.random.set_state(outside[0])
            torch.set_rng_state(outside[1])
            if self.cuda:
                self.torch_cuda = torch.cuda.get_rng_state()
                torch.cuda.set_rng_state(outside[2])


@contextmanager
def quiet_bars() -> Iterator[None]:
    """ART's epoch progress bars (tqdm, drawn on stderr) off while it trains: they would draw
    over benchbench's own. Only the names ART's trainer modules imported are swapped."""
    import functools
    import sys

    art_import(TRAINERS, "regime")
    swapped = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("art.defences.trainer.") or module is None:
            continue
        for attr in ("tqdm", "trange"):
            bar = getattr(module, attr, None)
            if callable(bar) and not isinstance(bar, functools.partial):
                swapped.append((module, attr, bar))
                setattr(module, attr, functools.partial(bar, disable=True))
    try:
        yield
    finally:
        for module, attr, bar in swapped:
            setattr(module, attr, bar)
