"""Models with batch statistics (BatchNorm in training mode) and a batch of one example.

9 images in batches of 4 end every epoch on a batch of one, which BatchNorm cannot
normalise (torch: "Expected more than 1 value per channel when training"): that example is
left out of each epoch, said in one line, and the run finishes. A training set of one
example, or --batch-size 1, cannot be trained that way at all: refused in one line, exit 2,
nothing written. Models without BatchNorm (texts) and frozen BatchNorm are not touched.
"""

from __future__ import annotations

import json

import pytest
from conftest import draw

from edgetransfer.errors import ConfigError
from edgetransfer.train.training import lone_last_example


def write_split(root, counts: dict):
    for name, n in counts.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw(name, 100 * len(name) + i, 40, "RGB").save(folder / f"{i}.png")
    return root


@pytest.fixture()
def nine_images(tmp_path):
    """train: 5 circles and 4 squares (9 images); validation: 2 of each."""
    write_split(tmp_path / "data" / "train", {"circle": 5, "square": 4})
    write_split(tmp_path / "data" / "validation", {"circle": 2, "square": 2})
    return tmp_path / "data"


def finetune_args(model, data, out, *extra):
    return ["finetune", "--model", model, "--train", data / "train", "--validation",
            data / "validation", "--out", out, "--epochs", "2", "--lr", "3e-3", "--seed", "0",
            "--patience", "0", *extra]


def test_nine_images_in_batches_of_four_train_to_the_end(cli, tmp_path, tiny_effnet,
                                                         nine_images):
    out = tmp_path / "teacher"
    code, err = cli(*finetune_args(tiny_effnet, nine_images, out, "--batch-size", "4"))
    assert code == 0, err
    assert "Traceback" not in err and "more than 1 value per channel" not in err
    said = [line for line in err.splitlines() if "leave a last batch of one" in line]
    assert len(said) == 1, err
    assert "9 training examples in batches of 4 leave a last batch of one, and the model's " \
           "28 BatchNorm layer(s) normalise each training batch by its own mean and " \
           "variance" in said[0]
    assert "each epoch leaves its last example out (a different one each epoch" in said[0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["training"]["steps"] == 4  # 2 epochs of 2 full batches; no batch of one
    assert json.loads((out / "settings.json").read_text())["rows"]["train"] == 9

    # distillation trains a CNN student with BatchNorm on the same 9 images
    student = tmp_path / "student"
    code, err = cli("distill", "--teacher", out, "--train", nine_images / "train",
                    "--validation", nine_images / "validation", "--student-layers", "7",
                    "--epochs", "1", "--batch-size", "4", "--lr", "3e-3", "--out", student)
    assert code == 0, err
    assert "leave a last batch of one" in err and "Traceback" not in err
    assert json.loads((student / "metrics.json").read_text())["training"]["steps"] == 2


def test_ten_images_in_batches_of_four_leave_nothing_out(cli, tmp_path, tiny_effnet,
                                                         nine_images):
    draw("square", 99, 40, "RGB").save(nine_images / "train" / "square" / "9.png")
    out = tmp_path / "out"
    code, err = cli(*finetune_args(tiny_effnet, nine_images, out, "--batch-size", "4",
                                   "--epochs", "1"))
    assert code == 0, err
    assert "last batch of one" not in err  # a last batch of 2 is a batch
    assert json.loads((out / "metrics.json").read_text())["training"]["steps"] == 3


@pytest.mark.parametrize("extra, message", [
    (("--train-sample", "1", "--batch-size", "4"),
     "error: training on 1 example: the model's 28 BatchNorm layer(s) normalise each "
     "training batch by its own mean and variance, which a batch of one example does not "
     "have; give at least 2 training examples, or --method head (BatchNorm frozen)"),
    (("--batch-size", "1"),
     "error: --batch-size 1: the model's 28 BatchNorm layer(s) normalise each training batch "
     "by its own mean and variance, which a batch of one example does not have; use "
     "--batch-size 2 or more"),
])
def test_batches_that_can_only_be_one_example_are_refused(cli, tmp_path, tiny_effnet,
                                                          nine_images, extra, message):
    before = sorted(p.relative_to(nine_images) for p in nine_images.rglob("*"))
    out = tmp_path / "out"
    code, err = cli("-q", *finetune_args(tiny_effnet, nine_images, out, *extra))
    assert code == 2, err
    errors = [line for line in err.splitlines() if not line.startswith("warning: ")]
    assert errors == [message], err  # (the one warning: --train-sample's note)
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing written
    assert sorted(p.relative_to(nine_images) for p in nine_images.rglob("*")) == before


def test_head_only_training_keeps_batchnorm_frozen_so_one_example_trains(cli, tmp_path,
                                                                        tiny_effnet,
                                                                        nine_images):
    out = tmp_path / "out"
    code, err = cli("-q", *finetune_args(tiny_effnet, nine_images, out, "--method", "head",
                                         "--batch-size", "1", "--epochs", "1"))
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["training"]["steps"] == 9


def test_only_layers_with_batch_statistics_count(caplog):
    import torch

    from edgetransfer.train.methods import keep_batchnorm_frozen

    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert lone_last_example(cnn, 9, 4) is True
    assert "9 training examples in batches of 4 leave a last batch of one" in caplog.text
    assert lone_last_example(cnn, 10, 4) is False and lone_last_example(cnn, 8, 4) is False
    assert lone_last_example(cnn, 3, 4) is False  # one batch of 3
    with pytest.raises(ConfigError, match="^training on 1 example: "):
        lone_last_example(cnn, 1, 4)
    with pytest.raises(ConfigError, match="^--batch-size 1: "):
        lone_last_example(cnn, 9, 1)
    # no batch statistics: a transformer's LayerNorm, or BatchNorm kept frozen
    text = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    assert lone_last_example(text, 9, 4) is False and lone_last_example(text, 1, 1) is False
    for p in cnn.parameters():
        p.requires_grad_(False)
    keep_batchnorm_frozen(cnn)
    assert lone_last_example(cnn, 9, 4) is False and lone_last_example(cnn, 1, 1) is False
