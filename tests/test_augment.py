"""Training-data augmentation (``[dataset] augment``): random crop with zero padding and
horizontal flip, per member from (seed, epoch, batch), vectorised; suites keep their cell ids
without it, runs and resumes stay bit for bit.

Exactness: crop and flip only move values (and write zeros), so comparisons of augmented
tensors are exact; comparisons of two runs on the same machine through the same code path are
exact; the stacked-against-alone comparison is float64 within 1e-12 as in test_stacked.
"""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from benchbench import hookimpl
from benchbench.engine import augment as aug
from benchbench.engine.augment import augment_rows, random_crop, random_flip
from benchbench.errors import SuiteError
from benchbench.store.results import read_store
from benchbench.suite.load import load_suite
from benchbench.testing import isolated_registry
from tests.test_resume import Epochs, run, tidy

CROP_FLIP = "augment = {crop = 1, flip = true}\n"


def _images(n: int = 6, c: int = 3, h: int = 5, w: int = 7) -> torch.Tensor:
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w) + 1.0


# --- the operations ------------------------------------------------------------------------


def test_crop_is_a_window_of_the_padded_image() -> None:
    x, pad = _images(), 2
    offsets = torch.tensor([[0, 0], [4, 4], [1, 3], [2, 2], [4, 0], [0, 4]])
    out = random_crop(x, offsets, pad)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = F.pad(x, (pad, pad, pad, pad))
    for n, (dy, dx) in enumerate(offsets.tolist()):  # the definition, image by image
        assert torch.equal(out[n], padded[n, :, dy:dy + 5, dx:dx + 7])
    assert torch.equal(out[3], x[3])  # offset (pad, pad): the image itself
    assert out[0, :, :2, :].eq(0).all() and out[0, :, 2:, 2:].eq(x[0, :, :3, :5]).all()


def test_flip_mirrors_exactly_the_masked_images() -> None:
    x = _images()
    mask = torch.tensor([True, False, True, False, False, True])
    out = random_flip(x, mask)
    for n in range(6):
        assert torch.equal(out[n], x[n].flip(-1) if mask[n] else x[n])


def test_augment_keeps_shape_values_and_input() -> None:
    x = _images(n=40)
    before = x.clone()
    out = augment_rows(x, {"crop": 2, "flip": True}, [7], epoch=1, batch=0)
    assert torch.equal(x, before)  # not modified in place
    assert out.shape == x.shape
    values = set(x.unique().tolist()) | {0.0}
    assert set(out.unique().tolist()) <= values  # only moved pixels and the padding's zeros
    assert augment_rows(x, None, [7], epoch=1, batch=0) is x


def test_draws_cover_every_offset_and_both_flips() -> None:
    x = torch.ones(400, 1, 8, 8)  # ones: the zero padding shows where the window went
    out = augment_rows(x, {"crop": 1}, [0], epoch=1, batch=0)
    top, left = out[:, 0, 0, :].eq(0).all(1), out[:, 0, :, 0].eq(0).all(1)
    bottom, right = out[:, 0, -1, :].eq(0).all(1), out[:, 0, :, -1].eq(0).all(1)
    assert top.any() and bottom.any() and left.any() and right.any()
    assert (~(top | bottom | left | right)).any()  # the centred window too
    assert not (top & bottom).any() and not (left & right).any()
    ramp = torch.arange(8.0).expand(400, 1, 8, 8)
    flipped = augment_rows(ramp, {"flip": True}, [0], epoch=1, batch=0)[:, 0, 0, 0].eq(7)
    assert 150 < int(flipped.sum()) < 250  # p = 1/2 over 400 draws: far inside 10 sigma


def test_draws_are_per_seed_epoch_batch_and_member() -> None:
    x = _images(n=64)
    spec = {"crop": 2, "flip": True}
    a = augment_rows(x, spec, [3], epoch=2, batch=5)
    assert torch.equal(a, augment_rows(x, spec, [3], epoch=2, batch=5))  # deterministic
    for other in ({"seeds": [4]}, {"epoch": 3}, {"batch": 6}):
        kw = {"seeds": [3], "epoch": 2, "batch": 5, **other}
        assert not torch.equal(a, augment_rows(x, spec, kw.pop("seeds"), **kw)), other
    # a stack of two members: member i's rows are drawn from seeds[i], as it would alone
    stacked = augment_rows(torch.cat([x, x]), spec, [3, 4], epoch=2, batch=5)
    assert torch.equal(stacked[:64], a)
    assert torch.equal(stacked[64:], augment_rows(x, spec, [4], epoch=2, batch=5))
    assert not torch.equal(stacked[:64], stacked[64:])


# --- suite keys --------------------------------------------------------------------------


def _with(path, augment: str):
    path.write_text(path.read_text().replace('test = "test"\n', f'test = "test"\n{augment}'))
    return path


def test_suite_without_augment_keeps_its_cell_ids(write_suite, registry) -> None:
    plain = load_suite(write_suite(), registry)
    assert plain.dataset.augment is None
    for cell in plain.cells():
        assert set(cell.to_dict()["dataset"]) == {"name", "train", "test", "params"}
        assert "augment" not in cell.to_json()
    off = load_suite(_with(write_suite("off.toml"), "augment = {crop = 0, flip = false}\n"),
                     registry)
    assert off.hash == plain.hash and [c.cell_id for c in off.cells()] == \
        [c.cell_id for c in plain.cells()]
    on = load_suite(_with(write_suite("on.toml"), CROP_FLIP), registry)
    assert on.dataset.augment == {"crop": 1, "flip": True}
    assert on.hash != plain.hash
    table = load_suite(_with(write_suite("t.toml"), "[dataset.augment]\ncrop = 1\nflip = true\n"),
                       registry)
    assert table.hash == on.hash
    (cell,) = [c for c in on.cells() if c.seed == 0]
    assert type(cell).from_json(cell.to_json()) == cell  # travels to other processes


@pytest.mark.parametrize(("augment", "key", "pattern"), [
    ("augment = {crop = 1, rotate = 5}\n", "dataset.augment.rotate", "unknown key; allowed: crop"),
    ("augment = {crop = 8}\n", "dataset.augment.crop", r"from 0 \(off\) to 7 for 8x8 images"),
    ("augment = {crop = -1}\n", "dataset.augment.crop", "got -1"),
    ("augment = {crop = true}\n", "dataset.augment.crop", "got True"),
    ("augment = {flip = 1}\n", "dataset.augment.flip", "true or false"),
    ("augment = 4\n", "dataset.augment", r"must be a table such as \{crop = 4, flip = true\}"),
])
def test_bad_augment_keys_are_refused_in_one_line(write_suite, registry, augment, key,
                                                   pattern) -> None:
    with pytest.raises(SuiteError, match=pattern) as err:
        load_suite(_with(write_suite(), augment), registry)
    assert err.value.key == key and "\n" not in str(err.value)


class OwnLoop:
    """A self-driven regime: it trains in its own ``train``."""

    def __init__(self, *, epochs: int = 1, dtype: str = "float32") -> None:
        self.epochs, self.dtype, self.checkpoint_epochs = epochs, dtype, (epochs,)

    def train(self, *, model, x, y, seed):
        yield 1


@hookimpl
def register_regimes(register):
    register("own_loop", OwnLoop)


def test_augment_with_a_self_driven_regime_is_refused(write_suite) -> None:
    registry = isolated_registry(sys.modules[__name__])
    path = _with(write_suite(), CROP_FLIP)
    path.write_text(path.read_text().split("[regime]")[0] + '[regime]\nname = "own_loop"\n'
                    "epochs = 1\n")
    with pytest.raises(SuiteError, match="regime 'own_loop' trains in its own loop") as err:
        load_suite(path, registry)
    assert err.value.key == "dataset.augment"


# --- runs ----------------------------------------------------------------------------------


def _weights(out, cells, epoch: int) -> dict:
    return {(c, k): v for c in cells
            for k, v in load_file(out / "checkpoints" / c / f"epoch_{epoch:04d}.safetensors")
            .items()}


def test_resume_with_augmentation_is_bit_for_bit(write_suite, registry, tmp_path) -> None:
    suite = load_suite(_with(write_suite(epochs=2, checkpoints="[1, 2]"), CROP_FLIP), registry)
    run(suite, registry, tmp_path / "whole", "auto")
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):  # stops after epoch 2, resumes after epoch 1
        run(suite, registry, out, "auto", Epochs(stop=2))
    events = Epochs()
    run(suite, registry, out, "auto", events)
    assert events.seen == [2]
    whole, cells = tidy(tmp_path / "whole")
    resumed, _ = tidy(out)
    assert resumed.equals(whole)  # same machine, same code path: exact
    a, b = _weights(tmp_path / "whole", cells, 2), _weights(out, cells, 2)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    plain = load_suite(write_suite("plain.toml", epochs=2, checkpoints="[1, 2]"), registry)
    run(plain, registry, tmp_path / "plain", "auto")
    p, plain_cells = tidy(tmp_path / "plain")
    fit = _weights(tmp_path / "plain", plain_cells, 2)
    assert not any(torch.equal(x, y) for x, y in zip(fit.values(), a.values(), strict=True))
    assert not whole.value.equals(p.value)  # the augmentation reached training


def test_unaugmented_numbers_are_unchanged(write_suite, registry, tmp_path, monkeypatch) -> None:
    """A suite without augment trains exactly as with the augmentation call taken out."""
    suite = load_suite(write_suite(epochs=2, checkpoints="[2]"), registry)
    run(suite, registry, tmp_path / "now", "auto")
    calls = []

    def identity(xb, spec, seeds, *, epoch, batch):
        calls.append(spec)
        return xb

    monkeypatch.setattr(aug, "augment_rows", identity)
    run(suite, registry, tmp_path / "without", "auto")
    assert calls and set(map(str, calls)) == {"None"}
    assert tidy(tmp_path / "now")[0].equals(tidy(tmp_path / "without")[0])  # exact


def test_stacked_members_augment_as_alone(write_suite, registry, tmp_path) -> None:
    """float64: every stored number within 1e-12 of the member trained alone (test_stacked's
    bound for the same comparison without augmentation)."""
    from benchbench.engine.runner import run_suite

    suite = load_suite(_with(write_suite(epochs=2, checkpoints="[2]", dtype="float64"),
                             CROP_FLIP), registry)
    for engine in ("auto", "sequential"):
        run_suite(suite, registry=registry, out_dir=tmp_path / engine, device="cpu",
                  engine=engine)
    with read_store(tmp_path / "auto") as a, read_store(tmp_path / "sequential") as b:
        stacked, alone = a.tidy(), b.tidy()
    assert set(stacked.engine) == {"stacked x2"}
    assert set(alone.engine) == {"sequential: --engine sequential"}
    cols = ["model", "seed", "epoch", "split", "attack", "eps", "metric"]
    assert stacked[cols].equals(alone[cols])
    assert (stacked.value - alone.value).abs().max() <= 1e-12
