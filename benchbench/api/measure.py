"""``benchbench.evaluate``: a model in memory measured as ``benchbench run`` measures a
checkpoint, with the same harness, chunks and seeds, so its numbers equal a suite's.

Clean accuracy and loss come from ``clean_records`` in chunks of ``EVAL_ROWS``; each attack runs
through ``attack_records`` (the harness: eval mode, frozen parameters, copies of the inputs, the
proposal checked and projected onto the eps-ball and the bounds, the model checked unchanged) in
chunks of ``ATTACK_ROWS``, with torch's RNG forked and seeded ``seed * 100_003 + epoch`` as the
engine seeds each cell's attacks (``benchbench.engine.cell.evaluate``); the worst case over the
attacks of each norm follows the store's rule (``benchbench.store.examples.worst_rows``).
Verifiers run through ``run_verifier`` (``benchbench.verify``), and an example one proves robust
that an attack of its norm broke at the same eps is a bug, raised, never a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchbench.api.entries import Entry, fail, is_number, parse_entries, short
from benchbench.engine.device import rng_devices

#: the columns of ``Evaluation.table``
TABLE_COLUMNS = ("attack", "norm", "eps", "metric", "value", "n")
CLEAN = "none"  # the attack column of the clean rows, as in the store
SEED_LIMIT = 2**31


@dataclass(frozen=True, eq=False)
class Evaluation:
    """What ``benchbench.evaluate`` returns.

    ``table``: a tidy DataFrame, one row per number, columns ``attack, norm, eps, metric, value,
    n`` (``n``: the examples it is over): the clean rows (attack ``none``, eps 0, metrics
    ``accuracy`` and ``loss``), each attack's ``accuracy`` per eps, the worst case over the
    attacks of each norm per eps (``worst_linf``, ``worst_l2``) and each verifier's certified
    accuracy per eps (``certified_<label>``). ``examples``: one row per example (index
    ``example``), one column per measurement (a MultiIndex ``(attack, eps)`` with the table's
    names), the verdict codes of ``benchbench.verify``: 1 robust (proved; and at eps 0 a correct
    clean prediction), 0 unknown (the attack failed, the bound was too loose), -1 not robust
    (misclassified, or a checked counterexample), ``<NA>`` for rows an entry's ``rows`` left
    out. ``(examples[col] >= 0).mean()`` is an attack's accuracy and ``(examples[col] ==
    1).mean()`` a verifier's certified accuracy. A notebook shows ``table``."""

    table: Any
    examples: Any

    def __repr__(self) -> str:
        return repr(self.table)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()


def _check_bounds(bounds: Any) -> tuple[float, float]:
    import math

    if (not isinstance(bounds, list | tuple) or len(bounds) != 2
            or not all(is_number(b) and math.isfinite(b) for b in bounds)
            or not bounds[0] < bounds[1]):
        raise fail("bounds", "the data range (lo, hi), two finite numbers with lo < hi, e.g. "
                   f"(0, 1); got {short(bounds)}")
    return float(bounds[0]), float(bounds[1])


def _check_int(value: Any, key: str, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
        raise fail(key, f"an integer 0 <= {key} < {limit:,}; got {short(value)}")
    return value


def _device(model, device: Any) -> str:
    """The device to measure on: the model's (``None``) or ``auto``/``cpu``/``cuda``."""
    import torch

    from benchbench.engine.device import DEVICES

    if device is None:
        first = next((t for t in (*model.parameters(), *model.buffers())), None)
        return "cpu" if first is None else str(first.device)
    if device not in DEVICES:
        raise fail("device", f"one of {', '.join(DEVICES)} (or None: where the model is); got "
                   f"{short(device)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise fail("device", "cuda was asked for but torch sees no CUDA device; use 'cpu' or "
                   "'auto'")
    return "cuda" if device == "auto" and torch.cuda.is_available() else (
        "cpu" if device == "auto" else device)


def _inputs(model, x: Any, y: Any, device: str, bounds: tuple[float, float]):
    """``(x, y)`` as the engine holds a split: x in the model's floating dtype, y int64, both
    on ``device``, checked against each other, the bounds and the model's classes."""
    import torch

    try:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise fail("x, y", f"must be tensors (or arrays) of inputs and labels: {exc}") from None
    if not torch.is_floating_point(x) or x.dim() < 2 or len(x) == 0:
        raise fail("x", "a floating tensor [N, ...] of N >= 1 inputs within the bounds (scale "
                   f"images to floats first); got {x.dtype} {list(x.shape)}")
    if y.dim() != 1 or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise fail("y", f"an integer tensor [N] of class indices; got {y.dtype} "
                   f"{list(y.shape)}")
    if len(y) != len(x):
        raise fail("x, y", f"{len(x)} inputs but {len(y)} labels; pass one label per input")
    weights = [t for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()]
    dtype = weights[0].dtype if weights else x.dtype
    x = x.to(device=device, dtype=dtype).contiguous()
    y = y.to(device=device, dtype=torch.int64).contiguous()
    if not bool(torch.isfinite(x).all()):
        raise fail("x", "holds NaN or infinite values; every input must be finite")
    lo, hi = float(x.min()), float(x.max())
    if lo < bounds[0] or hi > bounds[1]:
        raise fail("x", f"lies outside the bounds [{bounds[0]:g}, {bounds[1]:g}]: values from "
                   f"{lo:g} to {hi:g}; pass bounds=(lo, hi) of the data, or scale x")
    was = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=rng_devices(device)), torch.no_grad():
            logits = model(x[:1])
    finally:
        model.train(was)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or len(logits) != 1:
        got = list(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise fail("model", f"must map [N, ...] inputs to [N, classes] logits; got {got} for "
                   "one input")
    classes = logits.shape[1]
    if int(y.min()) < 0 or int(y.max()) >= classes:
        raise fail("y", f"labels must be class indices 0 to {classes - 1} (the model has "
                   f"{classes} outputs); got {int(y.min())} to {int(y.max())}")
    return x, y


def _bits(records) -> dict[float, Any]:
    """eps -> the numpy bools of the ``CORRECT`` records among ``records``."""
    from benchbench.store.examples import CORRECT, decode, unpack

    return {r.eps: unpack(*decode(r.value)) for r in records if r.metric == CORRECT}


def _column(codes, n_total: int):
    """Verdict codes for the first ``len(codes)`` examples, ``<NA>`` for the rest."""
    import numpy as np
    import pandas as pd

    out = pd.array(np.full(n_total, 0, dtype=np.int8), dtype="Int8")
    out[:len(codes)] = codes
    if len(codes) < n_total:
        out[len(codes):] = pd.NA
    return out


def _attack(entry: Entry, model, x, y, *, bounds, seed: int, epoch: int, device: str):
    """The entry's accuracy records and bits, measured as the engine measures a cell."""
    from benchbench.engine.cell import AttackTimeout, measure_attack
    from benchbench.engine.timeouts import TimedOut, time_limit
    from benchbench.suite.cells import AttackRef

    ref = AttackRef(entry.name, entry.label, entry.eps, entry.split, entry.params,
                    rows=entry.rows, at=entry.at, timeout=entry.timeout)
    if ref.rows is not None:
        x, y = x[:ref.rows], y[:ref.rows]
    try:
        with time_limit(ref.timeout, f"attack {ref.label}") as mine:
            (records,) = measure_attack(model, entry.obj, ref, x, y, epoch=epoch, bounds=bounds,
                                        members=1, seed=seed, device=device)
    except TimedOut as exc:
        if exc.token is not mine:
            raise
        raise AttackTimeout(str(exc)) from None
    return [r for r in records if r.metric == "accuracy"], _bits(records)


def _verify(entry: Entry, model, x, y, *, bounds, seed: int, epoch: int, device: str):
    """The verifier's codes per eps (numpy int8), through ``run_verifier``'s harness, on the
    CPU (a copy of a model elsewhere) as ``benchbench run`` verifies: bounds in float64."""
    import torch

    from benchbench.engine.verdicts import on_cpu
    from benchbench.verify import run_verifier

    if entry.rows is not None:
        x, y = x[:entry.rows], y[:entry.rows]
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(seed * 100_003 + epoch)
        result = run_verifier(entry.obj, on_cpu(model), x.cpu(), y.cpu(), eps=entry.eps,
                              bounds=bounds, name=entry.label)
    return {e: result.codes[i].cpu().numpy() for i, e in enumerate(result.eps)}


def _contradictions(verifier: Entry, proved: dict, clean, attacks: list[Entry],
                    broken: dict[str, dict]) -> None:
    """Raise where ``verifier`` proved an example robust that clean or an attack of its norm
    at the same eps misclassified: one of the two is wrong, and no number may come of it."""
    from benchbench.errors import VerifierError

    for eps, codes in proved.items():
        yes = codes == 1
        against = [("the clean model", clean)] + [
            (f"attack {a.label!r}", broken[a.label][eps]) for a in attacks
            if a.norm == verifier.norm and eps in broken[a.label]]
        for who, correct in against:
            n = min(len(yes), len(correct))
            bad = (yes[:n] & ~correct[:n]).nonzero()[0]
            if len(bad):
                raise VerifierError(
                    f"verifier {verifier.label!r} proved {len(bad)} example(s) robust at eps "
                    f"{eps:g} that {who} misclassified (examples {bad[:5].tolist()}): a "
                    "verifier that is not sound or a harness bug; no number is reported")


def evaluate(model, x, y, *, attacks: Any = (), eps: Any = None, bounds: Any = (0.0, 1.0),
             device: str | None = None, seed: int = 0, epoch: int = 0, verifiers: Any = None,
             registry=None) -> Evaluation:
    """Measure ``model`` on ``(x, y)`` under ``attacks`` (and ``verifiers``), as ``benchbench
    run`` measures a checkpoint; see the README's "Python API" and ``Evaluation``.

    ``attacks`` and ``verifiers``: lists of names, ``(name, params)`` pairs or tables like a
    suite's ``[[attacks]]`` (``benchbench.api.entries``). ``eps``: the radii (a number or a
    list) of every entry that gives none of its own. ``bounds``: the data range the harness
    clips to. ``device``: ``None`` measures where the model is; ``"cpu"``, ``"cuda"`` or
    ``"auto"`` move the model there. ``x`` is converted to the model's floating dtype. ``seed``
    and ``epoch`` seed each attack as a suite seeds cell ``seed``'s attacks at ``epoch``, so the
    numbers equal the run's for that checkpoint. ``registry``: the plugins (default: the
    installed ones, as ``benchbench run`` loads them). The model's mode, torch's global RNG
    and ``x`` are left as they were.
    """
    import pandas as pd
    import torch

    from benchbench.engine.cell import EVAL_ROWS
    from benchbench.engine.evaluate import clean_records

    if not isinstance(model, torch.nn.Module):
        raise fail("model", f"a torch.nn.Module mapping inputs to logits; got "
                   f"{type(model).__name__}")
    bounds = _check_bounds(bounds)
    seed, epoch = _check_int(seed, "seed", SEED_LIMIT), _check_int(epoch, "epoch", 10**9)
    if registry is None:
        from benchbench.plugins import load_registry

        registry = load_registry()
    asked, device = device, _device(model, device)
    if asked is not None:
        model.to(device)
    x, y = _inputs(model, x, y, device, bounds)
    size, taken = x[0].numel(), set()
    if not attacks and not verifiers:
        raise fail("attacks", "nothing to measure: name at least one attack (or verifier), "
                   "e.g. attacks=[\"fgsm\"], eps=[0.1]")
    attack_entries = parse_entries("attack", attacks, arg="attacks", registry=registry,
                                   eps=eps, bounds=bounds, size=size, taken=taken)
    verifier_entries = parse_entries("verifier", verifiers, arg="verifiers", registry=registry,
                                     eps=eps, bounds=bounds, size=size, taken=taken)
    n = len(x)
    rows: list[tuple] = []
    columns: dict[tuple[str, float], Any] = {}

    # on CUDA under benchbench run's settings (TF32 off, cuDNN deterministic), for this call
    from benchbench.engine.device import cuda_settings

    with cuda_settings(device):
        (clean,) = clean_records(model, x, y, epoch=epoch, split="test", batch_size=EVAL_ROWS,
                                 examples=True)
        for r in clean:
            if r.metric != "correct":
                rows.append((CLEAN, None, 0.0, r.metric, r.value, n))
        clean_bits = _bits(clean)[0.0]
        columns[(CLEAN, 0.0)] = _column(clean_bits.astype("int8") * 2 - 1, n)

        bits: dict[str, dict[float, Any]] = {}
        for entry in attack_entries:
            numbers, bits[entry.label] = _attack(entry, model, x, y, bounds=bounds, seed=seed,
                                                 epoch=epoch, device=device)
            for r in numbers:
                rows.append((entry.label, entry.norm, r.eps, "accuracy", r.value,
                             len(bits[entry.label][r.eps])))
                columns[(entry.label, r.eps)] = _column(-(~bits[entry.label][r.eps]).astype("int8"),
                                                        n)
        rows += _worst(attack_entries, bits, columns, n)

        for entry in verifier_entries:
            codes = _verify(entry, model, x, y, bounds=bounds, seed=seed, epoch=epoch,
                            device=device)
            _contradictions(entry, codes, clean_bits, attack_entries, bits)
            for e, c in codes.items():
                rows.append((f"certified_{entry.label}", entry.norm, e, "accuracy",
                             int((c == 1).sum()) / len(c), len(c)))
                columns[(f"certified_{entry.label}", e)] = _column(c, n)

    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    examples = pd.DataFrame(columns, index=pd.RangeIndex(n, name="example"))
    examples.columns = pd.MultiIndex.from_tuples(list(columns), names=["attack", "eps"])
    return Evaluation(table, examples)


def _worst(entries: list[Entry], bits: dict, columns: dict, n: int) -> list[tuple]:
    """The worst case over the attacks of each norm at each eps (the store's rule: every
    attack of the norm at that eps, over the first ``min(rows)`` examples), as table rows; its
    verdict columns go into ``columns``."""
    import numpy as np

    from benchbench.store.worst import worst_name

    groups: dict[tuple[str, float], list] = {}
    for entry in entries:
        if entry.norm:
            for e, correct in bits[entry.label].items():
                groups.setdefault((entry.norm, e), []).append(correct)
    out = []
    for (norm, e), members in sorted(groups.items()):
        m = min(len(c) for c in members)
        robust = np.logical_and.reduce([c[:m] for c in members])
        out.append((worst_name(norm), norm, e, "accuracy", int(robust.sum()) / m if m else 0.0,
                    m))
        columns[(worst_name(norm), e)] = _column(-(~robust).astype("int8"), n)
    return out
