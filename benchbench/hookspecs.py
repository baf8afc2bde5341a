"""The public plugin contract of benchbench.

A plugin is a module (or object) with functions named after these hooks, decorated with
``benchbench.hookimpl``. Built-ins (``benchbench.default_plugins``) use exactly the same hooks as
third-party packages, which register through the ``benchbench`` entry-point group::

    [project.entry-points.benchbench]
    my_attack = "my_package.plugin"

Every hook is *register-style*: it receives a ``register(name, obj, *, summary=None)`` callback
and calls it once per thing it provides. Names are global per kind; registering a name twice is
an error naming both plugins. Registration must be cheap: register classes or factories and import
heavy libraries (torch, ART) only inside them.

What each kind of object must provide (duck-typed, no base classes needed):

* model factory: ``factory(*, input_shape, num_classes, **params) -> torch.nn.Module``. Its
  keyword parameters are the keys a suite's ``[model]`` table may set. The harness seeds torch's
  RNG before calling it, so initialisation is reproducible. Optional capability:
  ``factory.stack(models) -> Module | None`` returns one module computing several same-shape
  models on a member-major batch (see ``benchbench.models.stacked_mlp``), so a cell's seeds
  train together. That module may add ``cross_entropy_backward(x, y)``: set every parameter's
  ``.grad`` to the gradient of the sum over members of each member's mean cross-entropy on its
  rows, without autograd; regimes training on cross-entropy then call it instead of
  ``loss.backward()``.
* dataset class: ``cls(**params)`` with ``splits``, ``bounds``, ``num_classes``, ``input_shape``,
  ``load(split, *, data_dir) -> (x, y)`` and ``prepare(*, data_dir, log) -> str``.
* attack class: ``cls(**params)`` with ``norm`` (``"linf"`` or ``"l2"``) and
  ``perturb(model, x, y, *, eps, bounds) -> Tensor[len(eps), *x.shape]`` (``bounds`` is the
  data range ``(lo, hi)``). The harness puts the model in eval mode, projects onto the eps-ball
  and the data bounds and counts successes. Optional
  capability: ``per_example = True`` when each example's result depends only on that example,
  its label and the model (no random draws, no coupling across the batch); such attacks run on
  all seeds of a stacked model at once.
* regime class: ``cls(**params)`` with ``epochs``, ``checkpoint_epochs``, ``dtype`` and
  ``train(*, model, x, y, seed) -> Iterator[int]`` yielding after every epoch (the harness saves
  and evaluates at ``checkpoint_epochs``). Optional: ``train_stacked(*, model, x, y, seeds)``,
  the same for a stacked model whose member ``i`` must see what ``train(seed=seeds[i])`` sees;
  and a class attribute ``member_params``, the parameter names that may differ between the
  members of one stack (cells differing only in those and in the seed then stack), in which
  case ``train_stacked`` also takes ``regimes=`` (member ``i`` trains as ``regimes[i]`` would).
  And ``resumable = True`` when both take ``state=``, a dict the regime keeps current before
  every yield: ``state["epoch"]`` (the epoch just trained) and ``state["optimizer"]`` (anything
  with ``state_dict()``/``load_state_dict()``). Given ``state["epoch"]`` and
  ``state["optimizer_state"]`` on entry, it loads that state and trains on from the next epoch,
  drawing the same shuffles as if it had never stopped (the model already holds that epoch's
  weights, torch's RNG its state, so what runs before the first epoch trained must not draw
  from it): the harness then resumes an interrupted cell from its last checkpoint, bit for bit
  (``benchbench.engine.resume``).
"""

from __future__ import annotations

from typing import Protocol

import pluggy

hookspec = pluggy.HookspecMarker("benchbench")


class Register(Protocol):
    """The callback every register hook receives."""

    def __call__(self, name: str, obj: object, *, summary: str | None = None) -> None:
        """Register ``obj`` under ``name``; ``summary`` defaults to the first docstring line."""


@hookspec
def register_models(register: Register) -> None:
    """Register model factories, e.g. ``register("mlp", build_mlp)``.

    A model factory is called as ``factory(input_shape=..., num_classes=..., **params)`` with the
    suite's ``[model]`` keys as ``params`` and returns a ``torch.nn.Module`` mapping a batch of
    inputs to logits.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register dataset classes, e.g. ``register("mnist", MNIST)``.

    The class is built with the suite's ``[dataset]`` keys other than ``name``, ``train`` and
    ``test``, and loads whole splits into memory as ``(x, y)`` tensors.
    """


@hookspec
def register_attacks(register: Register) -> None:
    """Register attack classes, e.g. ``register("fgsm", FGSM)``.

    The class is built with the keys of an ``[[attacks]]`` table other than ``name``, ``label``,
    ``eps`` and ``split``; its ``perturb`` returns one adversarial batch per eps.
    """


@hookspec
def register_regimes(register: Register) -> None:
    """Register training regimes, e.g. ``register("standard", StandardTraining)``.

    The class is built with the suite's ``[regime]`` keys and trains a model in place, yielding
    after every epoch; the harness saves and evaluates the model at ``checkpoint_epochs``.
    """
