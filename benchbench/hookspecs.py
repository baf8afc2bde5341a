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
  RNG before calling it, so initialisation is reproducible (draw only from that RNG), builds it
  on the CPU in float32, then calls ``model.to(device, dtype)`` for the run's dtype: keep every
  tensor a parameter or a buffer (``register_buffer(..., persistent=False)`` keeps constants,
  such as a ``mean``/``std`` normalisation applied first, out of the state dict) and create
  none in another dtype in ``forward``. The harness sets the mode: ``model.train()`` to train,
  eval mode for evaluation and every attack; BatchNorm statistics and every buffer in the state
  dict are saved in checkpoints and resume files. Refuse a dataset shape the architecture
  cannot take with a one-line ``ValueError`` naming the model. ``benchbench.testing.check_model``
  checks all of this. Optional capability:
  ``factory.stack(models) -> Module | None`` returns one module computing several same-shape
  models on a member-major batch (see ``benchbench.models.stacked_mlp``), so a cell's seeds
  train together. That module may add ``cross_entropy_backward(x, y)``: set every parameter's
  ``.grad`` to the gradient of the sum over members of each member's mean cross-entropy on its
  rows, without autograd; regimes training on cross-entropy then call it instead of
  ``loss.backward()``. It may also add ``cross_entropy_input_grad(x, y) -> Tensor``: the
  gradient of the summed cross-entropy with respect to ``x`` (shaped like ``x``, the bits
  autograd would give), which crafting with plain cross-entropy (``pgd_at``, ``fgsm_at``) then
  calls instead of building an autograd graph per step. A stack promises each member the bits
  of the same model alone (a stack of one) at the same thread count: each member's products
  must be computed by the same calls whatever the stack (``stacked_mlp._bmm``: one ``mm`` per
  member on the CPU), since a batched product may round otherwise (README, "What is the same
  bit for bit"); the harness's optimiser step and evaluation chunks do the rest.
* dataset class: ``cls(**params)`` with ``splits``, ``bounds``, ``num_classes``, ``input_shape``,
  ``load(split, *, data_dir) -> (x, y)`` and ``prepare(*, data_dir, log) -> str``. ``load``
  returns ``x`` as ``Tensor[N, *input_shape]`` (any float dtype; the harness converts it:
  digits gives ``[N, 1, 8, 8]``, MNIST ``[N, 1, 28, 28]``, pixels in ``bounds``) and ``y`` as
  ``Tensor[N]`` of int64 class indices; ``prepare`` makes the data available (download, verify)
  and returns one line saying where it came from. Optional: ``split_sizes: dict[str, int]``, the
  number of rows of each base split (e.g. ``{"train": 60000, "test": 10000}``); when present, a
  suite's split expression that selects no rows, or whose start or stop lies beyond those rows,
  is refused before anything runs.
* attack class: ``cls(**params)`` with ``norm`` (``"linf"`` or ``"l2"``) and
  ``perturb(model, x, y, *, eps, bounds) -> Tensor[len(eps), *x.shape]`` (``bounds`` is the
  data range ``(lo, hi)``). The harness puts the model in eval mode, projects onto the eps-ball
  and the data bounds and counts successes. Optional
  capability: ``per_example = True`` when each example's result depends only on that example,
  its label and the model (no random draws, no coupling across the batch); such attacks run on
  all seeds of a stacked model at once, in evaluation and when a regime crafts with them.
  Optional capability for the report's gradient-masking flags: ``iterative = True`` for an
  attack that ascends its loss inside the eps-ball in several gradient steps (PGD, BIM: flag
  "I" when it is weaker than a single-step attack of the same norm at the same eps),
  ``iterative = False`` for a single gradient step (FGSM: the reference it is compared with;
  with a ``loss`` parameter, also flag "L"); leave it out (``None``) for anything else
  (minimal-perturbation, decision-based, random search), which no flag compares. A class or
  instance attribute, declared, never inferred; ``benchbench run`` stores it per attack label
  (``benchbench.attacks.attack_capabilities``), so reports read it from the store.
* regime class, one of two kinds:

  - **harness-driven** (the usual kind): a subclass of ``benchbench.regimes.Regime``, which
    owns the training loop (epochs, shuffles, batches, the optimiser, stacking seeds into one
    model, checkpoints, resume; ``benchbench.engine.training``). The subclass implements either
    or both of ``craft(ctx, model, x, y) -> x_train`` (the inputs to train on, shaped like the
    batch ``x``; default ``x``) and ``loss(ctx, model, x, x_train, y) -> Tensor[N]`` (one loss
    per example; default the cross-entropy of ``model(x_train)``; the harness averages each
    member's rows). ``ctx`` is a ``benchbench.regimes.context.TrainContext``: the data bounds,
    dtype and device, one seeded generator per member (``ctx.uniform``, ``ctx.normal``), the
    evaluation's projection (``ctx.project``), any registered attack (``ctx.attack``,
    ``ctx.perturb``), frozen-model input gradients (``ctx.frozen``) and per-epoch records
    (``ctx.record``, stored as split ``fit``). Class capabilities, declared, never inferred:
    ``stackable`` (default True: ``craft``/``loss`` act on each member's rows alone and draw only
    from ``ctx``, so a stack's member ``i`` trains exactly as seed ``i`` alone) and
    ``member_params`` (parameters that may differ within one stack; default ``lr``,
    ``momentum``, ``weight_decay``). Optional: ``monitor_eps`` (the eps of the per-epoch PGD
    accuracy on a fixed training batch, the catastrophic-overfitting watch; None: off),
    ``early_stop`` (also evaluate each seed's best monitored epoch) and ``crafting_attack() ->
    (name, params) | None`` (the registered attack ``craft`` uses, built during validation).
    Such a regime resumes bit for bit. It must not define ``train`` or ``train_stacked``: such a
    class is refused, naming it, since the harness would never call them.
  - **self-driven** (a library's own ``fit`` loop, e.g. ART's trainers): not a ``Regime``; it
    has ``epochs``, ``checkpoint_epochs``, ``dtype`` and ``train(*, model, x, y, seed[,
    context]) -> Iterator[int]`` that trains ``model`` in place and yields after each epoch
    (``context`` is the ``TrainContext``, passed if ``train`` names it). It trains alone (never
    stacked) and starts over when a run is resumed. One that declares ``evaluate_only = True``
    (the built-in ``pretrained``) trains nothing: its ``train`` yields epoch 0 and leaves the
    weights as given, every ``[model]`` of its suite must give ``weights`` (or ``zoo``), the
    harness loads them before ``train`` and writes no checkpoint copy.

  Either kind must reach every epoch of ``checkpoint_epochs``: a cell whose training stops
  before one fails, saying so. A member whose weights or numbers stop being finite fails with
  "diverged at epoch N"; the other members of its stack are stored.
* executor class (where units of cells run; ``benchbench run --executor NAME``): built as
  ``cls(**options)`` with the keyword-only options it declares among ``workers``, ``address``,
  ``cpus_per_unit`` and ``gpus_per_unit`` (the flags ``--workers``, ``--ray-address``,
  ``--cpus-per-unit``, ``--gpus-per-unit``; only those the user set are passed, and a set
  option the class does not declare is refused). ``run(units, *, emit, retries) ->
  Iterator[UnitDone]`` runs each ``benchbench.engine.units.Unit`` (plain data: the cells' JSON
  specs, device, data and checkpoint directories, the plugin recipe) by calling
  ``benchbench.engine.units.run_caught(unit, emit_here)`` in whatever process it chooses, passes
  every ``Progress`` event to ``emit`` in the calling process, and yields one ``UnitDone`` per
  unit as each finishes, in any order. A unit whose process dies is run again up to
  ``retries`` times (it resumes from its last checkpoint), then yielded with an ``error``. An
  executor never writes the results store; the runner stores each unit as it arrives, and a
  unit is planned the same way whatever runs it, so every executor stores the same numbers.
* verifier class: ``cls(**params)`` with declared (never inferred) ``norm`` (``"linf"`` or
  ``"l2"``), ``sound`` (every "robust" is a proof), ``complete`` (it can also answer "not
  robust" and, given time, decides every example) and ``layers`` (the layer kinds it bounds:
  torch's names, ``benchbench.verify.bounds.LAYERS``, or a plugin's own class names), and
  ``verify(model, x, y, *, eps, bounds) -> benchbench.verify.verifiers.Verdicts`` for one eps
  (int8 codes per example: 1 robust, 0 unknown, -1 not robust, with the counterexample of each
  -1). The harness (``benchbench.verify.verifiers.run_verifier``) refuses a model with an
  undeclared layer before anything runs, naming it, evaluates in eval mode and keeps a -1 only
  where the model's own forward pass misclassifies its counterexample inside the threat model.
  ``benchbench.testing_verifiers.check_verifier`` checks the declarations.
"""

from __future__ import annotations

from typing import Protocol

import pluggy

hookspec = pluggy.HookspecMarker("benchbench")


class Register(Protocol):
    """The callback every register hook receives."""

    def __call__(self, name: str, obj: object, *, summary: str | None = None) -> None:
        """Register ``obj`` under ``name``; ``summary`` defaults to the docstring's first
        sentence (``benchbench.docstrings.summary``)."""


@hookspec
def register_models(register: Register) -> None:
    """Register model factories, e.g. ``register("mlp", build_mlp)``.

    A model factory is called as ``factory(input_shape=..., num_classes=..., **params)`` with the
    suite's ``[model]`` keys as ``params`` and returns a ``torch.nn.Module`` mapping a batch of
    inputs to logits. Built-ins: ``mlp`` (it alone declares ``stack``), and the image models of
    ``benchbench.models.factories``, which train one seed at a time and take ``mean``/``std``:
    ``small_cnn`` (TRADES' SmallCNN; ``dropout``), ``madry_cnn`` (mnist_challenge's CNN),
    ``wong_cnn`` (fast_adversarial's MNIST CNN, its published state dicts' keys),
    ``preact_resnet18`` (``width``) and ``wide_resnet`` (``depth``, ``widen_factor``,
    ``dropout``, ``sub_block1``; RobustBench's layout).
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
    """Register training regimes, e.g. ``register("pgd_at", PGDAT)``.

    The class is built with the suite's ``[regime]`` keys (its keyword-only ``__init__``
    parameters, its base's too when it forwards ``**kwargs``). A ``Regime`` subclass supplies
    ``craft``/``loss`` and the harness trains; a self-driven class trains in ``train``. Either
    way the harness saves and evaluates the model at ``checkpoint_epochs``.
    """


@hookspec
def register_executors(register: Register) -> None:
    """Register executors, e.g. ``register("local", LocalPool)``.

    An executor decides where the runner's units run (this process, a process pool, a Ray
    cluster); what runs and what is stored do not change with it. The class is built with the
    ``benchbench run`` options it declares as keyword-only parameters, and its ``run(units, *,
    emit, retries)`` yields each unit's ``UnitDone``.
    """


@hookspec
def register_verifiers(register: Register) -> None:
    """Register verifier classes, e.g. ``register("crown", CROWN)``.

    The class is built with the keys of a suite's ``[[verifiers]]`` table other than ``name``,
    ``eps``, ``rows`` and ``at``; its ``verify`` returns a verdict per example for one eps
    (robust, unknown or not robust), and it declares ``norm``, ``sound``, ``complete`` and the
    ``layers`` it bounds.
    """
