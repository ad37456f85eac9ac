"""Image augmentation: deterministic by seed, the same size, training split only, and the
stages that take it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import draw, image_args, stop_after_first_save

from edgetransfer.data import augment_images as ai
from edgetransfer.errors import ConfigError


def _image():
    return draw("circle", 0, size=40, mode="RGB")


@pytest.mark.parametrize("name", sorted(ai.PRESETS))
def test_each_preset_is_seeded_and_keeps_the_size(name):
    aug = ai.preset(name)
    first = [np.asarray(ai.apply(_image(), aug, np.random.default_rng([7, i])))
             for i in range(6)]
    again = [np.asarray(ai.apply(_image(), aug, np.random.default_rng([7, i])))
             for i in range(6)]
    assert all(a.shape == (40, 40, 3) for a in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert any(not np.array_equal(first[0], a) for a in first[1:])  # (it does change them)


def test_pad_crop_moves_the_picture_by_whole_pixels_within_its_share():
    from PIL import Image

    image = Image.new("RGB", (32, 32), (200, 200, 200))
    aug = ai.ImageAugment(shift=0.125)  # (4 px of 32 each way, no flip)
    moved = set()
    for i in range(60):
        a = np.asarray(ai.apply(image, aug, np.random.default_rng([3, i])))[..., 0]
        assert set(np.unique(a)) <= {0, 200}  # (moved, not resampled; the border black)
        lit = np.argwhere(a == 200)
        (top, left), (bottom, right) = lit.min(0), lit.max(0)
        h, w = bottom - top + 1, right - left + 1
        assert len(lit) == h * w and 28 <= h <= 32 and 28 <= w <= 32
        assert (top == 0 or bottom == 31) and (left == 0 or right == 31)
        moved.add((int(top) - (31 - int(bottom)), int(left) - (31 - int(right))))
    assert len(moved) > 20  # (offsets drawn over the whole range)


@pytest.mark.parametrize("name", sorted(ai.POLICIES))
def test_a_policy_draws_every_operation_and_each_changes_the_picture(name, monkeypatch):
    from PIL import Image

    policy = ai.POLICIES[name]
    # (coloured noise of middling range: every operation but identity has something to do)
    pixels = np.random.default_rng(0).integers(60, 140, size=(40, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    for op in ai.OPS:
        out = ai._op(image, op, 1.0, 1, policy)
        assert out.size == image.size
        assert np.array_equal(np.asarray(out), pixels) == (op == "identity"), op
    drawn = []
    real = ai._op
    monkeypatch.setattr(ai, "_op", lambda im, op, level, sign, policy: (
        drawn.append((op, level, sign)) or real(im, op, level, sign, policy)))
    for i in range(300):
        ai.apply(image, ai.preset(name), np.random.default_rng([1, i]))
    assert len(drawn) == 300 * policy.ops  # (its number of operations a picture)
    assert {op for op, _, _ in drawn} == set(ai.OPS)  # (each operation drawn)
    assert {s for _, _, s in drawn} == {-1, 1}
    levels = {level for _, level, _ in drawn}
    if policy.magnitude is None:  # (TrivialAugmentWide: a strength drawn each time)
        assert len(levels) > 20
    else:  # (RandAugment: the one strength)
        assert levels == {policy.magnitude / (ai.BINS - 1)}


def test_translation_is_in_pixels_or_a_share_of_the_side_as_each_policy_defines():
    """TrivialAugmentWide shifts by up to 32 pixels whatever the size; RandAugment by up to
    150/331 of the side (torchvision's augmentation spaces): a lit column at x=40 of 64."""
    from PIL import Image

    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, 40] = 255
    image = Image.fromarray(pixels)

    def column(policy: str, level: float) -> int:
        out = np.asarray(ai._op(image, "translate_x", level, 1, ai.POLICIES[policy]))
        return int(np.flatnonzero(out[0, :, 0] == 255)[0])

    assert column("trivial", 1.0) == 40 - 32
    assert column("randaugment", 1.0) == 40 - round(150 / 331 * 64)  # (29 px of 64)
    assert column("randaugment", 9 / 30) == 40 - round(150 / 331 * 64 * 9 / 30)


def test_the_record_names_the_policy_with_its_parameters():
    said = ai.preset("randaugment").record()
    assert said["crop_scale"] == (0.5, 1.0) and said["flip"] is True
    assert said["policy"] == {"name": "randaugment", "ops": 2, "magnitude": 9, "shear": 0.3,
                              "translate": 150 / 331, "translate_of_side": True,
                              "rotate": 30.0, "enhance": 0.9, "posterize": 4}
    assert ai.preset("trivial").record()["policy"]["magnitude"] is None
    assert ai.preset("pad-crop").record()["policy"] is None


def test_the_reader_draws_by_seed_epoch_and_row(image_data):
    """The augmented split: the same --seed reads the same pictures, another seed others, another
    epoch new ones; a picture is drawn by its row, not by the order rows are read in (a
    resumed run, or another process, reads them in another)."""
    from datasets import Dataset, Image

    from edgetransfer import tasks

    paths = sorted(str(p) for p in (image_data / "train").rglob("*.png"))[:4]
    ds = Dataset.from_dict({"image": paths}).cast_column("image", Image())
    task = tasks.get("image-classification")

    def read(seed: int, epoch: int = 0, rows=(0, 1, 2, 3)) -> list[np.ndarray]:
        train = ai.on_splits("standard", seed, task, {"train": ds})["train"]
        train.set_epoch(epoch)
        got = train.__getitems__(list(rows))  # (as the Trainer's loader reads a batch)
        assert [set(r) for r in got] == [{"image"}] * len(rows)
        return [np.asarray(r["image"]) for r in got]

    def same(a, b) -> bool:
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    first = read(0)
    assert same(first, read(0)) and not same(first, read(1)) and not same(first, read(0, 1))
    backwards = read(0, rows=(3, 2, 1, 0))[::-1]
    assert same(first, backwards) and same(first[2:], read(0, rows=(2, 3)))


def test_only_the_training_split_is_augmented(image_data):
    from datasets import Dataset, Image

    from edgetransfer import tasks

    paths = sorted(str(p) for p in (image_data / "train").rglob("*.png"))[:4]
    ds = Dataset.from_dict({"image": paths}).cast_column("image", Image())
    splits = {"train": ds, "validation": ds}
    out = ai.on_splits("standard", 0, tasks.get("image-classification"), splits)
    assert out["validation"] is ds
    plain = [np.asarray(im.convert("RGB")) for im in ds["image"]]
    seen = [np.asarray(out["train"][i]["image"]) for i in range(4)]
    assert any(not np.array_equal(a, b) for a, b in zip(plain, seen))
    with pytest.raises(ConfigError, match="for an image task"):
        ai.on_splits("standard", 0, tasks.get("text-classification"), splits)


def test_finetune_and_distill_take_an_image_preset(cli, tiny_effnet, image_data, tmp_path,
                                                   monkeypatch):
    teacher = tmp_path / "teacher"
    # (two epochs read each training picture twice, augmented; the validation and test
    # pictures that score the model as they are: no augmentation at evaluation)
    augmented = []
    real = ai.apply
    monkeypatch.setattr(ai, "apply", lambda image, aug, rng: (
        augmented.append(image.size) or real(image, aug, rng)))
    epochs = []
    told = ai.Augmented.set_epoch
    monkeypatch.setattr(ai.Augmented, "set_epoch", lambda self, epoch: (
        epochs.append(epoch) or told(self, epoch)))
    code, out = cli(*image_args(tiny_effnet, image_data, teacher, "--augment", "standard",
                                "--epochs", "2"))
    assert code == 0, out
    assert len(augmented) == 2 * len(list((image_data / "train").rglob("*.png")))
    # (the training loop tells the reader each epoch, in order; accelerate's loader tells
    # it too where it can, so an epoch may be told more than once)
    assert [e for i, e in enumerate(epochs) if not i or e != epochs[i - 1]] == [0, 1]
    settings = json.loads((teacher / "settings.json").read_text())
    assert settings["augment"]["preset"] == "standard" and settings["augment"]["rotate"] == 15
    student = tmp_path / "student"
    code, out = cli("-q", "distill", "--teacher", teacher, "--train", image_data / "train",
                    "--validation", image_data / "validation", "--out", student, "--epochs",
                    "1", "--batch-size", "8", "--patience", "0", "--student-layers", "7",
                    "--augment", "trivial")
    assert code == 0, out
    settings = json.loads((student / "settings.json").read_text())
    assert settings["augment"]["teacher"] == "online"
    code, out = cli("-q", "distill", "--teacher", teacher, "--train", image_data / "train",
                    "--out", tmp_path / "s2", "--augment", "tinybert")
    assert code == 2 and ("takes an image preset: pad-crop, flip-crop, standard, trivial"
                          in out)
    # (every transfer picture, --unlabeled's too, is augmented as it is read already)
    code, out = cli("-q", "distill", "--teacher", teacher, "--train", image_data / "train",
                    "--out", tmp_path / "s3", "--augment", "trivial", "--unlabeled",
                    image_data / "test", "--augment-unlabeled")
    assert code == 2 and "--augment-unlabeled: pictures are augmented as they are read" in out
    assert not (tmp_path / "s3").exists()


def test_a_run_resumed_in_mid_epoch_draws_the_pictures_it_would_have(
        cli, tiny_effnet, image_data, tmp_path, monkeypatch):
    """Cut off at step 4 (of 3 a epoch: the second epoch) and resumed, an augmented run ends
    with the model of a run never cut off: its pictures are drawn by seed, epoch and row,
    not by how many the command has read (which restarts with the command)."""
    from safetensors.torch import load_file

    from edgetransfer.train import training

    out, whole = tmp_path / "out", tmp_path / "whole"
    args = ("--augment", "standard", "--epochs", "3", "--eval-steps", "4")
    monkeypatch.setattr(training, "progress_callback",
                        stop_after_first_save(training.progress_callback))
    code, err = cli(*image_args(tiny_effnet, image_data, out, *args))
    assert code == 130 and (tmp_path / ".out.partial/checkpoints/checkpoint-4").is_dir()
    monkeypatch.undo()
    code, err = cli(*image_args(tiny_effnet, image_data, out, *args, "--resume"))
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["training"]["resumed_from"] == \
        "checkpoint-4"
    code, err = cli(*image_args(tiny_effnet, image_data, whole, *args))
    assert code == 0, err
    got, want = (load_file(str(f / "model.safetensors")) for f in (out, whole))
    assert all(np.allclose(got[k].numpy(), want[k].numpy(), atol=1e-5) for k in want)
    # (and the evaluations after the cut: the best checkpoint may be the one before it)
    after = [[h["eval_loss"] for h in json.loads((f / "history.json").read_text())
              if "eval_loss" in h and h["step"] > 4] for f in (out, whole)]
    assert after[1] and np.allclose(after[0], after[1], atol=1e-6)


def test_the_training_loop_tells_the_reader_its_epoch_a_resumed_one_too():
    """epoch_to_dataset: on each epoch's start the reader is told the epoch the Trainer's
    state is in (a resumed run's first, part done, included); accelerate's loader does not
    tell a dataset in a run over several processes, so this does."""
    from types import SimpleNamespace

    from edgetransfer.train.checkpoints import epoch_to_dataset

    reader = ai.Augmented([], ai.preset("standard"), 0)
    callbacks = []
    epoch_to_dataset(SimpleNamespace(train_dataset=reader, add_callback=callbacks.append))
    for epoch, told in [(0.0, 0), (1.0, 1), (1.75, 1), (2.0, 2)]:
        callbacks[0].on_epoch_begin(None, SimpleNamespace(epoch=epoch), None)
        assert reader.epoch == told
    epoch_to_dataset(SimpleNamespace(train_dataset=[], add_callback=callbacks.append))
    assert len(callbacks) == 1  # (a split that draws nothing by epoch is told nothing)


def test_a_text_finetune_refuses_an_image_preset(cli, tiny_backbone, data_dir, tmp_path):
    code, out = cli("-q", "finetune", "--model", tiny_backbone, "--train",
                    data_dir / "train.jsonl", "--out", tmp_path / "o", "--augment", "trivial")
    assert code == 2 and "image augmentation, for an image task" in out
    assert not (tmp_path / "o").exists()
    code, out = cli("-q", "finetune", "--model", tiny_backbone, "--train",
                    data_dir / "train.jsonl", "--out", tmp_path / "o", "--augment", "nope")
    assert code == 2 and "--augment nope: not an image preset" in out

