"""What a regime's ``craft`` and ``loss`` receive: the threat model, seeded randomness, records.

One ``TrainContext`` serves a whole unit (one model, or a stack of ``members`` models trained as
one). Every batch it is handed holds ``members`` blocks of equal size, member ``i``'s rows being
block ``i``; whatever the context draws for block ``i`` comes from member ``i``'s own generator,
seeded from that member's seed, so a member sees exactly the numbers it would see alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from benchbench.attacks.harness import attacking, linf_limits, project

CRAFT_SALT = 0x5DEECE66D  # the crafting stream is seeded apart from shuffles and initialisation


@dataclass
class TrainContext:
    """The harness's side of a regime's batch: read-only facts plus a few services.

    Facts: ``members`` (models trained together; 1 alone), ``seeds`` (one per member),
    ``bounds`` (the dataset's data range), ``dtype`` and ``device`` of the run, ``epoch`` (from
    1) and ``batch`` (from 0) being trained, ``batches`` per epoch.
    """

    members: int
    seeds: tuple[int, ...]
    bounds: tuple[float, float]
    dtype: torch.dtype
    device: str
    registry: object = None
    member_model: Callable[[int], torch.nn.Module] | None = None
    log: Callable[[str], None] = print
    epoch: int = 0
    batch: int = 0
    batches: int = 1
    generators: list[torch.Generator] = field(default_factory=list)
    _attack_rng: list[dict] = field(default_factory=list)
    _sums: dict[str, torch.Tensor] = field(default_factory=dict)
    _counts: dict[str, torch.Tensor] = field(default_factory=dict)
    _said: set = field(default_factory=set)

    def __post_init__(self) -> None:
        if not self.generators:
            self.generators = [torch.Generator(device=self.device).manual_seed(s + CRAFT_SALT)
                               for s in self.seeds]
        if not self._attack_rng:
            self._attack_rng = [_seeded_rng(s + CRAFT_SALT, self.device) for s in self.seeds]

    # --- randomness, per member -----------------------------------------------------------

    def _blocks(self, like: torch.Tensor) -> Iterator[tuple[torch.Generator, tuple]]:
        rows = len(like) // self.members
        for gen in self.generators:
            yield gen, (rows, *like.shape[1:])

    def uniform(self, like: torch.Tensor, low: float, high: float) -> torch.Tensor:
        """Uniform noise in ``[low, high)`` shaped like ``like``, block ``i`` from member ``i``'s
        generator."""
        return torch.cat([torch.empty(shape, dtype=like.dtype, device=like.device)
                          .uniform_(low, high, generator=gen)
                          for gen, shape in self._blocks(like)])

    def normal(self, like: torch.Tensor, std: float) -> torch.Tensor:
        """Gaussian noise with standard deviation ``std``, shaped like ``like``, per member."""
        return torch.cat([torch.empty(shape, dtype=like.dtype, device=like.device)
                          .normal_(0.0, std, generator=gen)
                          for gen, shape in self._blocks(like)])

    # --- the threat model -----------------------------------------------------------------

    def limits(self, x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lo, hi)``: the L-inf ball of radius ``eps`` around ``x`` within the bounds, for
        projecting many points around the same ``x`` (``torch.clamp(x_adv, lo, hi)`` gives
        ``project``'s bits)."""
        return linf_limits(x, eps, self.bounds)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor, eps: float,
                norm: str = "linf") -> torch.Tensor:
        """``x_adv`` projected onto the ``norm`` ball of radius ``eps`` around ``x`` and the data
        bounds: the projection evaluation applies to every attack."""
        limits = linf_limits(x, eps, self.bounds) if norm == "linf" else None
        return project(x_adv, x, eps, norm, self.bounds, limits=limits)

    @contextmanager
    def frozen(self, model) -> Iterator[torch.nn.Module]:
        """``model`` in eval mode with its parameters frozen, for input gradients while crafting
        (training mode and gradients come back afterwards)."""
        with attacking(model) as m:
            yield m

    def attack(self, name: str, **params):
        """A registered attack (built-in or a plugin's), built with suite parameters."""
        return self.registry.get("attack", name).obj(**params)

    def perturb(self, attack, model, x: torch.Tensor, y: torch.Tensor,
                eps: float) -> torch.Tensor:
        """Adversarial inputs from a registered ``attack`` under the evaluation threat model
        (eval mode, frozen parameters, projection onto the eps-ball and the bounds).

        An attack that declares ``per_example = True`` runs on the whole stack at once; any
        other (random starts, say) runs member by member on ``member_model(i)``, drawing from
        member ``i``'s own random stream, as it would alone. The run says so once."""
        if self.members == 1 or getattr(attack, "per_example", False):
            return self._perturb_one(attack, model, x, y, eps, 0 if self.members == 1 else None)
        name = type(attack).__name__
        if name not in self._said:
            self._said.add(name)
            self.log(f"crafting with {name} member by member: it does not declare "
                     "per_example = True (its random draws are per member)")
        rows = len(x) // self.members
        return torch.cat([self._perturb_one(attack, self.member_model(i),
                                            x[i * rows:(i + 1) * rows],
                                            y[i * rows:(i + 1) * rows], eps, i)
                          for i in range(self.members)])

    def _perturb_one(self, attack, model, x, y, eps: float, member: int | None):
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        from benchbench.attacks.guard import check_proposal, model_unchanged

        with torch.random.fork_rng(devices=devices), attacking(model):
            if member is not None:
                _set_rng(self._attack_rng[member])
            with model_unchanged(attack, model):  # copies: the attack cannot edit x, y
                proposal = attack.perturb(model, x.clone(), y.clone(), eps=(eps,),
                                          bounds=self.bounds)
            if member is not None:
                self._attack_rng[member] = _get_rng(self.device)
        proposal = check_proposal(attack, proposal, x, 1)
        return self.project(proposal[0].detach().to(x.dtype), x, eps, attack.norm)

    # --- records --------------------------------------------------------------------------

    def record(self, metric: str, values: torch.Tensor) -> None:
        """Add one value per example (``Tensor[N]``, e.g. each example's loss, or whether the
        crafted input was classified correctly) to ``metric``'s epoch mean, per member; the
        harness stores the means after every epoch as split ``fit``."""
        v = values.detach().reshape(self.members, -1).double()
        if metric not in self._sums:
            self._sums[metric] = torch.zeros(self.members, dtype=torch.float64,
                                             device=v.device)
            self._counts[metric] = torch.zeros(self.members, dtype=torch.float64,
                                               device=v.device)
        self._sums[metric] += v.sum(1)
        self._counts[metric] += v.shape[1]

    def epoch_means(self) -> dict[str, list[float]]:
        """Each recorded metric's mean per member over the epoch; clears them."""
        out = {m: (self._sums[m] / self._counts[m]).tolist() for m in self._sums}
        self._sums.clear()
        self._counts.clear()
        return out

    # --- resume ---------------------------------------------------------------------------

    def state(self) -> dict:
        return {"generators": [g.get_state() for g in self.generators],
                "attack_rng": list(self._attack_rng)}

    def load_state(self, state: dict) -> None:
        for gen, saved in zip(self.generators, state["generators"], strict=True):
            gen.set_state(saved)
        self._attack_rng = list(state["attack_rng"])


def _seeded_rng(seed: int, device: str) -> dict:
    state = {"cpu": torch.Generator().manual_seed(seed).get_state()}
    if device == "cuda":
        gen = torch.Generator(device="cuda").manual_seed(seed)
        state["cuda"] = gen.get_state()
    return state


def _get_rng(device: str) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device == "cuda":
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def member_rows(x: torch.Tensor, members: int) -> Sequence[torch.Tensor]:
    """The ``members`` blocks of a member-major batch."""
    return x.view(members, -1, *x.shape[1:]).unbind(0)
