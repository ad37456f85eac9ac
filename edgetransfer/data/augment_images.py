"""Image augmentation while training: padded random crop, random resized crop, flip,
rotation, colour jitter, and the automatic policies TrivialAugmentWide and RandAugment, as
named presets; on the training split only, never at evaluation.

torchvision.transforms.v2 holds all of these, but PyPI's torchvision does not import beside
the CPU torch this project installs (its `torchvision::nms` operator is missing), and the
build that does is a 5.5 GB CUDA one. So they are written here on Pillow, following
torchvision's definitions (RandomCrop's padding, RandomResizedCrop's area and ratio draw,
the policies' operations and magnitude bins), deterministic by seed: row r of the training
split in epoch e draws from a generator seeded by (seed, e, r), so what a picture becomes
depends neither on the order it is read in nor on how many processes read the split, and a
run resumed from a checkpoint draws the pictures an uninterrupted one would (the Trainer's
sampler is seeded too).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import ConfigError


@dataclass(frozen=True)
class ImageAugment:
    shift: float = 0.0  # RandomCrop(padding): moved up to this share of the side, black fill
    crop_scale: tuple[float, float] | None = None  # RandomResizedCrop's area share
    flip: bool = False  # horizontal, half the time
    rotate: float = 0.0  # degrees, uniform in [-rotate, rotate]
    jitter: float = 0.0  # brightness, contrast, saturation factors in [1 - j, 1 + j]
    policy: str | None = None  # an automatic policy of POLICIES, after the crop and flip

    def record(self) -> dict:
        """What settings.json keeps: the preset's parameters, a policy's with them."""
        said = asdict(self)
        if self.policy:
            said["policy"] = {"name": self.policy, **asdict(POLICIES[self.policy])}
        return said


@dataclass(frozen=True)
class Policy:
    """An automatic policy: `ops` operations a picture, each drawn from OPS, at bin
    `magnitude` of BINS (None: a bin drawn each time), and the strongest magnitude of each
    operation (torchvision's augmentation space of the policy)."""

    ops: int
    magnitude: int | None
    shear: float  # shear factor
    translate: float  # pixels, or a share of the side where translate_of_side
    translate_of_side: bool
    rotate: float  # degrees
    enhance: float  # brightness, colour, contrast, sharpness factors in [1 - e, 1 + e]
    posterize: int  # bits taken off


BINS = 31  # the magnitude bins of both policies (torchvision's num_magnitude_bins)
POLICIES = {
    # TrivialAugmentWide (Mueller & Hutter 2021): one operation, its strength drawn
    "trivial": Policy(ops=1, magnitude=None, shear=0.99, translate=32.0,
                      translate_of_side=False, rotate=135.0, enhance=0.99, posterize=6),
    # RandAugment (Cubuk et al. 2020) at torchvision's defaults: two operations at bin 9
    "randaugment": Policy(ops=2, magnitude=9, shear=0.3, translate=150 / 331,
                          translate_of_side=True, rotate=30.0, enhance=0.9, posterize=4),
}


PRESETS = {
    # (the mildest: the whole object stays in the picture; CIFAR's usual 4 px of 32 each
    # way, and a flip. What each preset taught Lite2 on Fashion-MNIST: docs/tasks.md)
    "pad-crop": ImageAugment(shift=0.125, flip=True),
    "flip-crop": ImageAugment(crop_scale=(0.5, 1.0), flip=True),
    "standard": ImageAugment(crop_scale=(0.5, 1.0), flip=True, rotate=15.0, jitter=0.3),
    "trivial": ImageAugment(crop_scale=(0.5, 1.0), flip=True, policy="trivial"),
    "randaugment": ImageAugment(crop_scale=(0.5, 1.0), flip=True, policy="randaugment"),
}
RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect ratios


def preset(name: str) -> ImageAugment:
    if name not in PRESETS:
        raise ConfigError(f"--augment {name}: not an image preset; use one of "
                          f"{', '.join(PRESETS)}")
    return PRESETS[name]


def _crop(image, scale, rng):
    """RandomResizedCrop: a box of `scale` of the area at a ratio in RATIO (10 tries, then
    the whole image), resized back to the image's size."""
    from PIL import Image

    w, h = image.size
    for _ in range(10):
        area = w * h * rng.uniform(*scale)
        ratio = math.exp(rng.uniform(math.log(RATIO[0]), math.log(RATIO[1])))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return image.resize((w, h), Image.BILINEAR, box=(x, y, x + cw, y + ch))
    return image


def _shift(image, share, rng):
    """RandomCrop(size, padding=p) with p = `share` of each side: the image moved by whole
    pixels in [-p, p] each way, the uncovered border black (torchvision's fill 0)."""
    w, h = image.size
    px, py = round(share * w), round(share * h)
    dx, dy = int(rng.integers(-px, px + 1)), int(rng.integers(-py, py + 1))
    return image.crop((dx, dy, dx + w, dy + h))  # (Pillow fills what lies outside with 0)


# The policies' operations (torchvision's list, the same for both)
OPS = ("identity", "shear_x", "shear_y", "translate_x", "translate_y", "rotate",
       "brightness", "color", "contrast", "sharpness", "posterize", "solarize",
       "autocontrast", "equalize")


def _policy(image, policy: Policy, rng):
    """`policy.ops` operations, each drawn uniformly, at the policy's bin or one drawn of
    BINS, with a random sign where the operation has one."""
    for _ in range(policy.ops):
        op = OPS[int(rng.integers(len(OPS)))]
        level = (policy.magnitude if policy.magnitude is not None
                 else int(rng.integers(BINS))) / (BINS - 1)
        sign = -1 if rng.random() < 0.5 else 1
        image = _op(image, op, level, sign, policy)
    return image


def _op(image, op: str, level: float, sign: int, policy: Policy):
    """One of OPS at `level` (0..1) of the policy's strongest, in the direction `sign`."""
    from PIL import Image, ImageEnhance, ImageOps

    if op in ("shear_x", "shear_y"):
        m = sign * policy.shear * level
        coeffs = (1, m, 0, 0, 1, 0) if op == "shear_x" else (1, 0, 0, m, 1, 0)
        return image.transform(image.size, Image.AFFINE, coeffs, Image.NEAREST)
    if op in ("translate_x", "translate_y"):
        side = image.size[0] if op == "translate_x" else image.size[1]
        d = sign * policy.translate * (side if policy.translate_of_side else 1) * level
        coeffs = (1, 0, d, 0, 1, 0) if op == "translate_x" else (1, 0, 0, 0, 1, d)
        return image.transform(image.size, Image.AFFINE, coeffs, Image.NEAREST)
    if op == "rotate":
        return image.rotate(sign * policy.rotate * level)
    if op in ("brightness", "color", "contrast", "sharpness"):
        enhance = {"brightness": ImageEnhance.Brightness, "color": ImageEnhance.Color,
                   "contrast": ImageEnhance.Contrast, "sharpness": ImageEnhance.Sharpness}[op]
        return enhance(image).enhance(1.0 + sign * policy.enhance * level)
    if op == "posterize":
        return ImageOps.posterize(image, 8 - int(round(policy.posterize * level)))
    if op == "solarize":
        return ImageOps.solarize(image, int(round(255 * (1 - level))))
    if op == "autocontrast":
        return ImageOps.autocontrast(image)
    if op == "equalize":
        return ImageOps.equalize(image)
    return image


def apply(image, aug: ImageAugment, rng: np.random.Generator):
    """One augmented copy of an RGB Pillow image, of the same size."""
    from PIL import ImageEnhance, ImageOps

    if aug.shift:
        image = _shift(image, aug.shift, rng)
    if aug.crop_scale:
        image = _crop(image, aug.crop_scale, rng)
    if aug.flip and rng.random() < 0.5:
        image = ImageOps.mirror(image)
    if aug.rotate:
        image = image.rotate(float(rng.uniform(-aug.rotate, aug.rotate)))
    if aug.jitter:
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            image = enhance(image).enhance(float(rng.uniform(1 - aug.jitter, 1 + aug.jitter)))
    if aug.policy:
        image = _policy(image, POLICIES[aug.policy], rng)
    return image


class Augmented:
    """The training split, each image augmented as it is read, drawn by (seed, epoch, row):
    a map-style dataset the Trainer's loader reads rows of by number (`__getitems__`), so
    the row is at hand without a column added to the split, which would rewrite a split
    selected from a larger one (every picture's bytes) before training could start.

    `set_epoch` is told each epoch by the training loop (train/checkpoints.py,
    `epoch_to_dataset`); until then it is epoch 0.
    """

    def __init__(self, split, aug: ImageAugment, seed: int):
        self.split, self.aug, self.seed, self.epoch = split, aug, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, row: int) -> dict:
        return self.__getitems__([row])[0]

    def __getitems__(self, rows: list[int]) -> list[dict]:
        from ..tasks.image_classification import rgb

        batch = self.split[list(rows)]
        batch["image"] = [apply(rgb(image), self.aug,
                                np.random.default_rng([self.seed, self.epoch, int(row)]))
                          for image, row in zip(batch["image"], rows)]
        return [dict(zip(batch, values)) for values in zip(*batch.values())]


def on_splits(name: str, seed: int, task, splits: dict) -> dict:
    """The splits with the training images augmented as they are read (--augment; an image
    task only; the evaluation splits are left as they are)."""
    from ..bundle import inputs as bundle_inputs

    if task.inputs.reader is not bundle_inputs.IMAGE:
        raise ConfigError(f"--augment {name}: image augmentation, for an image task (not "
                          f"{task.name}); text is augmented for distillation: distill "
                          f"--augment {', '.join(_text_presets())}")
    return splits | {"train": Augmented(splits["train"], preset(name), seed)}


def _text_presets() -> list[str]:
    from .augment_text import PRESETS as TEXT

    return list(TEXT)
