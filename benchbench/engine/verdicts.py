"""Verifiers at checkpoints: proofs per example beside the attacks, and the soundness check.

``check_verifiers`` runs at validation (``benchbench validate`` and ``run``, before anything
trains): it builds every verifier of the suite once and refuses, naming the key and the layer,
a model that one of them cannot bound (``check_model``) or a verifier that declares itself
unsound. ``verify_checkpoint`` runs at each checkpoint after the attacks (``at = "all"`` or
the last checkpoint only), on the test split's first ``rows`` rows: member by member
(``member_model(i)``; no built-in verifier bounds a stack), on the CPU, bounds in float64
whatever the model's dtype, through the harness (``benchbench.verify.run_verifier``: eval
mode, counterexamples checked by the model's own forward pass). Per eps each member gets
three records: ``accuracy`` (the fraction proved robust), ``unknown`` (complete verifiers:
how many examples are undecided) and its verdicts (``benchbench.store.verdicts``). A member
whose verdicts contradict an attack's, the clean pass's or another verifier's fails with
``SoundnessError`` naming both; its numbers are never stored.
"""

from __future__ import annotations

import copy

from benchbench.errors import SuiteError
from benchbench.store.verdicts import UNKNOWN, VERDICTS, contradiction, encode_codes


def capabilities(verifier, name: str) -> dict:
    """What a built verifier declares that the store's derived rows read."""
    return {"name": name, "norm": getattr(verifier, "norm", None),
            "complete": bool(getattr(verifier, "complete", False)),
            "sound": bool(getattr(verifier, "sound", False))}


def suite_capabilities(suite, registry) -> dict[str, dict]:
    """Each verifier label's ``capabilities`` as its built verifier states them (what ``run``
    records in the store's ``verifier_capabilities``), having built each once."""
    return check_verifiers(suite, registry, models=False)


def check_verifiers(suite, registry, *, models: bool = True) -> dict[str, dict]:
    """Build each of ``suite.verifiers`` and check it against every model of the suite
    (built once, seed 0); each label's ``capabilities``, or a one-line ``SuiteError``."""
    from benchbench.engine.cell import build_model
    from benchbench.engine.data import build
    from benchbench.verify.verifiers import check_model

    if not suite.verifiers:
        return {}
    caps, built = {}, []
    for i, ref in enumerate(suite.verifiers):
        where = f"verifiers[{i}]"
        try:
            verifier = build(registry, "verifier", ref.name, ref.params)
        except Exception as exc:  # noqa: BLE001 - a plugin's refusal is the suite's problem
            text = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SuiteError(suite.path, where, text) from None
        found = capabilities(verifier, ref.name)
        if found["norm"] not in ("linf", "l2"):
            raise SuiteError(suite.path, where, f"verifier {ref.name!r} declares norm "
                             f"{found['norm']!r}; a verifier proves linf or l2")
        if not found["sound"]:
            raise SuiteError(suite.path, where, f"verifier {ref.name!r} does not declare "
                             "sound = True: its 'robust' is not a proof, so it cannot certify")
        caps[ref.label] = found
        built.append((where, ref, verifier))
    if not models:
        return caps
    dataset = build(registry, "dataset", suite.dataset.name, suite.dataset.params)
    for j, model_ref in enumerate(suite.models):
        model = build_model(registry, model_ref, 0, dataset)
        for where, ref, verifier in built:
            try:
                check_model(model, verifier, name=ref.label)
            except Exception as exc:  # noqa: BLE001 - VerifierError names the layer
                model_key = "model" if len(suite.models) == 1 else f"model[{j}]"
                raise SuiteError(suite.path, where, f"{exc} (in {model_key} "
                                 f"{model_ref.label!r}); verify another model or drop this "
                                 "verifier") from None
    return caps


def _last_epoch(registry, spec) -> int:
    regime = registry.get("regime", spec.regime.name).obj(**spec.regime.params)
    return max(regime.checkpoint_epochs)


def on_cpu(net):
    """``net`` itself on the CPU, else a CPU copy (the shared module stays where it is). The
    copy's tensors are made on the CPU directly (a ``deepcopy`` memo maps each parameter and
    buffer to its CPU copy), so the GPU never holds the model twice."""
    if all(t.device.type == "cpu" for t in [*net.parameters(), *net.buffers()]):
        return net
    return cpu_copy(net)


def cpu_copy(net):
    """A deep copy of ``net`` whose parameters and buffers are new CPU tensors (see ``on_cpu``)."""
    import torch

    memo = {}
    for p in net.parameters():
        memo[id(p)] = torch.nn.Parameter(p.detach().to("cpu", copy=True),
                                         requires_grad=p.requires_grad)
    for b in net.buffers():
        memo[id(b)] = b.detach().to("cpu", copy=True)
    return copy.deepcopy(net, memo)


def verifier_records(ref, result, *, epoch: int, complete: bool) -> list:
    """The records of one member's ``run_verifier`` result (see the module)."""
    from benchbench.engine.evaluate import Record
    from benchbench.verify import ROBUST
    from benchbench.verify import UNKNOWN as UNDECIDED

    out = []
    for e_i, eps in enumerate(ref.eps):
        codes = result.codes[e_i]
        n = len(codes)
        out.append(Record(epoch, "test", ref.label, eps, "accuracy",
                          int((codes == ROBUST).sum()) / n))
        if complete:
            out.append(Record(epoch, "test", ref.label, eps, UNKNOWN,
                              float(int((codes == UNDECIDED).sum()))))
        out.append(Record(epoch, "test", ref.label, eps, VERDICTS, encode_codes(codes)))
    return out


def verify_checkpoint(specs, ctx, attacks, records: list[list], *, epoch: int, test,
                      bounds, member_model, failed: dict[int, str]) -> None:
    """Run the verifiers of ``specs[0]`` at ``epoch`` on ``test`` (the test split's inputs and
    labels) for each member not in ``failed``, adding to ``records``; then the soundness check
    of each member's records at this checkpoint (``failed[i]`` on a contradiction)."""
    import torch

    from benchbench.attacks import attack_capabilities
    from benchbench.engine.data import build
    from benchbench.verify.verifiers import run_verifier

    spec = specs[0]
    refs = [ref for ref in spec.verifiers if ref.at == "all"
            or epoch == _last_epoch(ctx.registry, spec)]
    if not refs:
        return
    built = [(ref, build(ctx.registry, "verifier", ref.name, ref.params)) for ref in refs]
    caps = {ref.label: capabilities(v, ref.name) for ref, v in built}
    norms = {ref.label: attack_capabilities(attack)["norm"] for ref, attack in attacks}
    x, y = test
    for ref, verifier in built:
        ctx.events.evaluating(spec, epoch, ref.label)
        xs, ys = (x, y) if ref.rows is None else (x[:ref.rows], y[:ref.rows])
        xs, ys = xs.cpu(), ys.cpu()
        for i in range(len(specs)):
            if i in failed:
                continue
            try:  # member_model(i) reloads one shared module: fetch it right before use
                with torch.random.fork_rng(devices=[]):
                    result = run_verifier(verifier, on_cpu(member_model(i)), xs, ys,
                                          eps=ref.eps, bounds=tuple(bounds), name=ref.label)
            except Exception as exc:  # noqa: BLE001 - this member fails, the others go on
                failed[i] = (f"{type(exc).__name__}: {exc} (verifier {ref.label}, "
                             f"epoch {epoch})")
                continue
            records[i] += verifier_records(ref, result, epoch=epoch,
                                           complete=caps[ref.label]["complete"])
    from benchbench.store.verdicts import bits_of, verdicts_of

    for i, mine in enumerate(records):
        if i in failed:
            continue
        now = [r for r in mine if r.epoch == epoch and r.split == "test"]
        problem = contradiction(bits_of(now), verdicts_of(now), norms, caps)
        if problem:
            failed[i] = f"SoundnessError: {problem}"
