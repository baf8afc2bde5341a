"""ART's adversarial trainers as regimes (``benchbench.art_regimes``): registration with or
without ART, keys, each trainer through a suite, one epoch at a time equal to ART's own ``fit``,
and the cross-check of ``art.madry_pgd`` against benchbench's ``pgd_at``.

Skipped only where ART is absent (CI installs it with ``benchbench[art]``), except the test of
what a user without ART sees.
"""

from __future__ import annotations

import copy
import importlib.util
import sys

import numpy as np
import pytest
import torch

import benchbench.art_attacks as art_attacks
import benchbench.art_epochs as art_epochs
from benchbench.engine.runner import run_suite
from benchbench.errors import SuiteError
from benchbench.plugins import load_registry
from benchbench.store.checkpoints import checkpoint_path, load_checkpoint
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry, tiny_data

needs_art = pytest.mark.skipif(importlib.util.find_spec("art") is None,
                               reason="ART not installed (pip install 'benchbench[art]')")
NAMES = ("art.madry_pgd", "art.trades", "art.fbf", "art.awp")
FAST = {"art.madry_pgd": 'max_iter = 3', "art.trades": 'max_iter = 3', "art.fbf": "",
        "art.awp": 'max_iter = 3'}

SUITE = """
[suite]
name = "{name}"
seeds = {seeds}
[dataset]
name = "digits"
train = "{train}"
test = "test"
[model]
name = "mlp"
hidden = [32]
{regimes}
[[attacks]]
name = "{attack}"
eps = [0.1]
{attack_keys}
"""


def write(tmp_path, *, regimes: str, name="art", seeds="[0]", train="train[:300]",
          attack="fgsm", attack_keys=""):
    path = tmp_path / f"{name}.toml"
    path.write_text(SUITE.format(name=name, seeds=seeds, train=train, regimes=regimes,
                                 attack=attack, attack_keys=attack_keys))
    return path


def test_regimes_register_through_the_entry_point(monkeypatch):
    monkeypatch.delenv("BENCHBENCH_DISABLE_PLUGINS", raising=False)
    registry = load_registry()
    assert {n for n in registry.entries["regime"] if n.startswith("art.")} == set(NAMES)
    entry = registry.get("regime", "art.madry_pgd")
    assert (entry.source.plugin, entry.source.distribution) == ("art", "benchbench")
    assert "AdversarialTrainerMadryPGD" in entry.summary


def test_registration_imports_neither_art_nor_torch():
    import subprocess

    code = ("import sys; import benchbench.art_attacks as a; from benchbench.plugins import "
            "load_registry; r = load_registry(load_entry_points=False, extra=(a,)); "
            "assert 'art.awp' in r.entries['regime']; "
            "print(sorted(m for m in ('art', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_without_art_the_regimes_say_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    for module in ("art", "art.defences.trainer", "art.attacks.evasion"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    registry = isolated_registry(art_attacks)
    for name in NAMES:
        assert "needs benchbench[art]" in registry.get("regime", name).summary
    path = write(tmp_path, regimes='[regime]\nname = "art.trades"\nepochs = 1')
    with pytest.raises(SuiteError, match=r"regime\.name: 'art.trades': this regime needs "
                                         r"benchbench\[art\]: pip install 'benchbench\[art\]'"):
        load_suite(path, registry)


@needs_art
def test_keys_come_from_arts_signatures_and_values_are_checked(tmp_path):
    adapters = {n: isolated_registry(art_attacks).get("regime", n).obj for n in NAMES}
    assert adapters["art.trades"].suite_params()[:6] == [
        "beta", "eps", "eps_step", "max_iter", "num_random_init", "batch_size"]
    assert {"mode", "gamma", "warmup", "proxy_lr"} <= set(adapters["art.awp"].suite_params())
    assert "use_amp" not in adapters["art.fbf"].suite_params()
    for cls in adapters.values():
        with pytest.raises(ValueError, match=r"unknown parameter\(s\) nb_epochs for ART's "
                                             r"Adversarial\w+; allowed: .*epochs"):
            cls(nb_epochs=3)
        with pytest.raises(ValueError, match="dtype must be float32 .ART's trainers compute "
                                             "in float32.; got 'float64'"):
            cls(dtype="float64")
        with pytest.raises(ValueError, match="eps must be a finite number > 0"):
            cls(eps=float("nan"))
        with pytest.raises(ValueError, match="batch_size must be an integer from 1"):
            cls(batch_size=0)
        with pytest.raises(ValueError, match=r"checkpoints must be epochs between 1 and "
                                             r"epochs=2; got \[3\]"):
            cls(epochs=2, checkpoints=[3])
    with pytest.raises(ValueError, match="num_random_init must be an integer from 0"):
        adapters["art.madry_pgd"](num_random_init=-1)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        adapters["art.trades"](beta=-1.0)
    with pytest.raises(ValueError, match="mode must be one of PGD, TRADES; got 'MART'"):
        adapters["art.awp"](mode="MART")
    with pytest.raises(ValueError, match="optimizer must be one of adam, sgd; got 'lbfgs'"):
        adapters["art.fbf"](optimizer="lbfgs")
    registry = isolated_registry(art_attacks)
    bad_key = write(tmp_path, name="k", regimes='[regime]\nname = "art.madry_pgd"\nratio = 0.5')
    with pytest.raises(SuiteError, match=r"regime\.ratio: unknown parameter for regime "
                                         r"'art.madry_pgd'; allowed: batch_size, eps"):
        load_suite(bad_key, registry)
    bad_value = write(tmp_path, name="v", regimes='[regime]\nname = "art.trades"\nmax_iter = 0')
    with pytest.raises(SuiteError, match="regime: max_iter must be an integer from 1"):
        run_suite(load_suite(bad_value, registry), registry=registry,
                  out_dir=tmp_path / "run", device="cpu")
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The four trainers through one tiny digits suite: 300 rows, 2 epochs, checkpoints 1, 2."""
    registry = isolated_registry(art_attacks)
    root = tmp_path_factory.mktemp("art_regimes")
    regimes = "\n".join(f'[[regime]]\nname = "{n}"\nepochs = 2\ncheckpoints = [1, 2]\n'
                        f'{FAST[n]}' for n in NAMES)
    suite = load_suite(write(root, regimes=regimes), registry)
    summary = run_suite(suite, registry=registry, out_dir=root / "run", device="cpu")
    with read_store(root / "run") as store:
        return summary, store.cells(), store.tidy(), suite, registry, root / "run"


@needs_art
@pytest.mark.parametrize("name", NAMES)
def test_each_trainer_runs_through_a_suite_and_trains_the_model(trained, name):
    from benchbench.engine.cell import build_model
    from benchbench.engine.data import DataCache

    summary, cells, tidy, suite, registry, run_dir = trained
    assert summary.failed == {}
    spec = next(c for c in suite.cells() if c.regime.name == name)
    assert next(c for c in cells if c["cell_id"] == spec.cell_id)["status"] == "ok"
    mine = tidy[(tidy.regime == name) & (tidy.split == "train") & (tidy.metric == "loss")]
    losses = dict(zip(mine.epoch, mine.value, strict=True))
    assert sorted(losses) == [1, 2] and losses[1] != losses[2]
    dataset = DataCache(registry, None).dataset(spec.dataset)
    weights = []
    for epoch in (0, 1, 2):  # the initial model, then each checkpoint
        model = build_model(registry, spec.model, spec.seed, dataset)
        if epoch:
            load_checkpoint(checkpoint_path(run_dir / "checkpoints", spec.cell_id, epoch), model)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert not torch.equal(weights[0], weights[1]) and not torch.equal(weights[1], weights[2])


@needs_art
@pytest.mark.parametrize("name", NAMES)
def test_one_epoch_at_a_time_equals_one_art_fit(name):
    """Three one-epoch calls (what the harness checkpoints between) leave exactly the weights
    of ART's own ``fit(nb_epochs=3)`` with the same seeds; the caller's numpy RNG and the data
    are untouched."""
    from benchbench import art_regimes
    from benchbench.regimes.context import TrainContext

    x, y = tiny_data(300)
    x_before = x.clone()
    cls = art_regimes.ADAPTERS[name]
    keys = {"art.fbf": {}, "art.awp": {"max_iter": 3, "warmup": 1}}.get(name, {"max_iter": 3})
    regime = cls(epochs=3, **keys)
    torch.manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 10))
    theirs = copy.deepcopy(ours)
    np.random.seed(123)
    outside = np.random.get_state()[1].copy()
    ctx = TrainContext(1, (5,), (0.0, 1.0), torch.float32, "cpu")
    assert list(regime.train(model=ours, x=x, y=y, seed=5, context=ctx)) == [1, 2, 3]
    assert np.array_equal(np.random.get_state()[1], outside)
    assert torch.equal(x, x_before)

    xn, yn = x.numpy().copy(), np.eye(10, dtype=np.float32)[y.numpy()]
    with art_epochs.Streams(5, "cpu").active():
        clf = regime.classifier(theirs, params=theirs.parameters(), lr=regime.params["lr"],
                                bounds=(0.0, 1.0), device="cpu", shape=x.shape[1:], classes=10)
        trainer, kwargs = regime.trainer_class(), regime.art_kwargs()
        if name == "art.madry_pgd":
            trainer = trainer(clf, nb_epochs=3, **kwargs)
            trainer.attack.set_params(batch_size=regime.params["batch_size"])
            trainer.fit(xn, yn)
        elif name == "art.fbf":
            trainer(clf, **kwargs).fit(xn, yn, batch_size=100, nb_epochs=3)
        elif name == "art.trades":
            trainer(clf, regime.pgd(clf), **kwargs).fit(xn, yn, batch_size=100, nb_epochs=3)
        else:
            proxy = copy.deepcopy(theirs)
            proxy_clf = regime.classifier(proxy, params=proxy.parameters(), lr=0.01,
                                          bounds=(0.0, 1.0), device="cpu", shape=x.shape[1:],
                                          classes=10)
            trainer(clf, proxy_clf, regime.pgd(clf), **kwargs).fit(xn, yn, batch_size=100,
                                                                   nb_epochs=3)
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


@needs_art
def test_art_madry_pgd_matches_benchbench_pgd_at(tmp_path):
    """benchbench's ``pgd_at`` and ART's ``AdversarialTrainerMadryPGD`` (``art.madry_pgd``) on
    the same MLP (hidden [32], the same initial weights per seed), the same 1,500 digits, eps
    0.1, 10 steps of 0.025 from a uniform random start, batches of 100, Adam at 0.005, 10
    epochs, 3 seeds, reach the same PGD-20 accuracy at eps 0.1 on the 297 test digits: their
    seed means within 3 points, each seed within 5, both at least 8 points above standard
    training (so two broken trainings cannot pass).

    Measured (6 seeds while choosing these settings): per seed within 1 point of each other,
    means 63.6% and 63.6%, standard training 47.6%. They cannot be bit-identical: the batches
    differ (ART shuffles with numpy's global RNG, benchbench's harness with a torch generator
    seeded per cell), so do the random starts (ART: numpy, per PGD call; benchbench: each
    member's own torch generator), ART's ``AdversarialTrainer`` reshuffles the rows of each
    batch through a torch DataLoader (a different summation order), its PGD steps on the
    batch-mean loss (benchbench's on the sum: the same signs but where a gradient underflows)
    and clips in a different order, and benchbench uses fused Adam. The tolerance is about
    three times the per-seed differences seen, well under the 16-point gap to standard training.
    """
    registry = isolated_registry(art_attacks)
    common = "eps = 0.1\nlr = 0.005\nbatch_size = 100\nepochs = 10\n"
    regimes = (f'[[regime]]\nname = "pgd_at"\nsteps = 10\nstep_size = 0.025\nmonitor = false\n'
               f'{common}\n[[regime]]\nname = "art.madry_pgd"\nmax_iter = 10\n'
               f'eps_step = 0.025\nnum_random_init = 1\n{common}\n'
               f'[[regime]]\nname = "standard"\nlr = 0.005\nbatch_size = 100\nepochs = 10\n')
    path = write(tmp_path, name="cross", seeds="[0, 1, 2]", train="train", regimes=regimes,
                 attack="pgd", attack_keys="steps = 20")
    summary = run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / "run",
                        device="cpu")
    assert summary.failed == {}
    with read_store(tmp_path / "run") as store:
        tidy = store.tidy()
    robust = tidy[(tidy.split == "test") & (tidy.attack == "pgd") & (tidy.metric == "accuracy")]
    by = {r: robust[robust.regime == r].set_index("seed").value for r in
          ("pgd_at", "art.madry_pgd", "standard")}
    ours, theirs = by["pgd_at"], by["art.madry_pgd"]
    assert abs(ours.mean() - theirs.mean()) <= 0.03, (ours.tolist(), theirs.tolist())
    assert ((ours - theirs).abs() <= 0.05).all(), (ours.tolist(), theirs.tolist())
    assert min(ours.mean(), theirs.mean()) >= by["standard"].mean() + 0.08


@needs_art
@pytest.mark.parametrize("name", NAMES)
def test_each_trainer_passes_the_regime_kit(name):
    """The kit's checks for a self-driven regime (trains to every checkpoint, leaves the data
    alone, deterministic under a seed); float32, as ART computes."""
    from benchbench import art_regimes
    from benchbench.testing import check_regime

    keys = {} if name == "art.fbf" else {"max_iter": 3}
    check_regime(art_regimes.ADAPTERS[name], dtype="float32", **keys)
