"""The harness owns the threat model (issue 16): an attack that proposes NaN or infinity, edits
the clean inputs or labels, changes the model's weights (under no_grad or through .data) or
leaves it in train mode never changes a stored number: the cell fails naming the attack, or the
edit is made harmless. Each test failed before benchbench.attacks.guard."""

from __future__ import annotations

import pytest
import torch

from benchbench.attacks.guard import AttackContractError
from benchbench.attacks.harness import attack_batch
from benchbench.engine.runner import run_suite
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import conformance, isolated_registry, tiny_data, tiny_model
from tests.plugins import threat_plugin

SUITE = """
[suite]
name = "threat"
seeds = [0, 1]

[dataset]
name = "digits"
train = "train[:300]"
test = "test[:100]"

[model]
name = "mlp"
hidden = [16]

[regime]
name = "standard"
lr = 0.01
batch_size = 50
epochs = 2
checkpoints = [2]

[[attacks]]
name = "fgsm"
eps = [0.1]
{extra}
"""


@pytest.fixture(scope="module")
def registry():
    return isolated_registry(threat_plugin)


def _run(tmp_path, registry, attack: str | None, name: str):
    extra = f'\n[[attacks]]\nname = "{attack}"\neps = [0.1]\n' if attack else ""
    path = tmp_path / f"{name}.toml"
    path.write_text(SUITE.format(extra=extra))
    run_suite(load_suite(path, registry), registry=registry, out_dir=tmp_path / name,
              device="cpu")
    with read_store(tmp_path / name) as store:
        return store.tidy(), store.cells()


def _clean(tidy):
    rows = tidy[(tidy.attack.isin(["none", "fgsm"]))]
    return rows.sort_values(["seed", "epoch", "split", "attack", "metric"])[
        ["seed", "epoch", "split", "attack", "metric", "value"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, registry):
    return _clean(_run(tmp_path_factory.mktemp("ref"), registry, None, "ref")[0])


@pytest.mark.parametrize("attack", ["threat_nan", "threat_inf_l2", "threat_zero_w",
                                    "threat_zero_w_data"])
def test_a_broken_proposal_or_an_edited_model_fails_the_cell_naming_the_attack(
        tmp_path, registry, attack):
    tidy, cells = _run(tmp_path, registry, attack, "run")
    assert [c["status"] for c in cells] == ["failed", "failed"]
    assert all(attack in c["error"] or threat_plugin.ATTACKS[attack].__name__ in c["error"]
               for c in cells), [c["error"] for c in cells]
    assert len(tidy) == 0  # never a stored number from it


@pytest.mark.parametrize("attack", ["threat_zero_x", "threat_shift_y", "threat_train_mode"])
def test_editing_inputs_labels_or_mode_changes_no_stored_number(tmp_path, registry, attack,
                                                                reference):
    # exact: the same computation as the reference run (the attack got copies)
    tidy, cells = _run(tmp_path, registry, attack, "run")
    assert {c["status"] for c in cells} == {"ok"}
    assert _clean(tidy).equals(reference)
    if attack == "threat_zero_x":
        return  # it proposed its zeroed copy: projected onto the ball, a weak attack, no harm
    mine = tidy[(tidy.attack == attack) & (tidy.metric == "accuracy")]
    clean = tidy[(tidy.attack == "none") & (tidy.split == "test") & (tidy.metric == "accuracy")]
    # it returned its (copied) input unchanged: its accuracy is the clean accuracy
    assert sorted(mine.value) == sorted(clean.value)


@pytest.mark.parametrize(("attack", "check"), [
    ("threat_nan", "proposal is finite"), ("threat_zero_x", "input not modified"),
    ("threat_shift_y", "input not modified"), ("threat_zero_w", "weights and buffers"),
    ("threat_zero_w_data", "weights and buffers"), ("threat_train_mode", "eval mode")])
def test_the_attack_kit_fails_each_broken_attack_on_a_named_check(attack, check):
    checks = conformance(threat_plugin.ATTACKS[attack])
    failed = [c.name for c in checks if not c.passed]
    assert any(check in name for name in failed), failed


def test_attack_batch_restores_eval_mode_before_classifying_and_refuses_bad_shapes():
    model, (x, y) = tiny_model(), tiny_data()
    model.train()
    result = attack_batch(threat_plugin.TrainMode(), model, x, y, eps=(0.1,), bounds=(0, 1))
    assert model.training  # the run's own mode back
    assert result.correct.shape == (1, len(x))

    class Wrong(threat_plugin._Base):
        def proposal(self, x, eps):
            return x[:, None]

    with pytest.raises(AttackContractError, match="Wrong returned shape"):
        attack_batch(Wrong(), model, x, y, eps=(0.1,), bounds=(0, 1))

    class Ints(threat_plugin._Base):
        def proposal(self, x, eps):
            return super().proposal(x, eps).long()

    with pytest.raises(AttackContractError, match="floating dtype"):
        attack_batch(Ints(), model, x, y, eps=(0.1,), bounds=(0, 1))
    assert torch.isfinite(x).all()
