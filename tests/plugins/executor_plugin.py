"""A test plugin whose regime kills its own process (SIGKILL) at a given epoch, a given number
of times in all (counted in a marker file), as an out-of-memory kill or ``kill -9`` would: what
executors must survive. Never run it inline: it would kill the test process."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from benchbench import hookimpl
from benchbench.regimes.standard import StandardTraining


class Crashy(StandardTraining):
    """Standard training that SIGKILLs its process at epoch ``die_at`` while ``marker`` counts
    fewer than ``times`` deaths."""

    def __init__(self, *, die_at: int = 0, marker: str = "", times: int = 1, **kwargs) -> None:
        super().__init__(**kwargs)
        self.die_at, self.marker, self.times = die_at, marker, times

    def loss(self, ctx, model, x, x_train, y):
        if ctx.epoch == self.die_at and ctx.batch == 0 and self.marker:
            path = Path(self.marker)
            # claim death number n atomically (two workers may get here at once under load),
            # note which model died (its first hidden width), then count the deaths
            for n in range(self.times):
                try:
                    fd = os.open(f"{path}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    continue
                os.write(fd, f"h{next(model.parameters()).shape[-2]}".encode())
                os.close(fd)
                path.write_text(str(n + 1))
                os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(ctx, model, x, x_train, y)


@hookimpl
def register_regimes(register):
    register("crashy", Crashy)
