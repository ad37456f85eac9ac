"""Task `image-classification`: one label per image (a photo, a scan, a product shot).

The head is AutoModelForImageClassification; rows hold a decoded image (datasets' Image
feature) and the image processor saved in every checkpoint turns a batch into pixel_values.
Predictions, metrics, the paired comparison, the distillation loss and the parity agreement
are text classification's: a label per example is the same judgement whatever the input.
The bundled runtime reads image files with Pillow and numpy (bundle/runtime/pixels.py) the
way the processor does.
"""

from __future__ import annotations

import logging

from ..data import images
from ..data import labels as class_labels
from ..data.splits import sample_and_carve
from ..errors import DataError, ModelError
from ..inputs import image as image_inputs
from ..measure import floor, metrics, parity
from . import register
from . import text_classification as classification
from .task import Task, TaskData

log = logging.getLogger(__name__)
HEAD = "ForImageClassification"


def claims(config: dict) -> bool:
    return any(str(a).endswith(HEAD) for a in config.get("architectures") or [])


def _read_split(spec: str, opts, want_labels: bool = True):
    return images.read(spec, image_column=getattr(opts, "image_column", None),
                       label_column=getattr(opts, "label_column", None),
                       label_candidates=class_labels.LABEL_COLUMNS, want_labels=want_labels,
                       max_pixels=getattr(opts, "max_image_pixels", None))


def _encode_labels(ds, spec: str, where: list[str], names: list[str], fixed: bool,
                   trained: bool = False):
    """The split with its label names turned into the model's ids; a class folder the
    classes do not know is named as a folder."""
    raw = ds["label"]
    if images.is_folder(spec):
        unknown = sorted({v for v in raw if v not in names})
        if unknown:
            shown = names if len(names) <= 12 else names[:10] + [f"... ({len(names)} in all)"]
            where = f"{spec}/{unknown[0]}"
            if trained:
                raise DataError(f"{where}: a class folder training never saw; the model's "
                                f"classes are {shown}")
            if fixed:
                raise DataError(f"{where}: a class the checkpoint's head does not have (its "
                                f"classes are {shown}); pass --new-head to replace the head")
            raise DataError(f"{where}: a class folder train does not have (train's are "
                            f"{shown}); add its images to train or remove it")
    ids = class_labels.encode(raw, spec, names, fixed_by_model=fixed, trained=trained)
    return ds.remove_columns("label").add_column("label", ids)


def read(opts, model_labels: list[str] | None = None) -> TaskData:
    specs = {k: v for k, v in (("train", opts.train), ("validation", opts.validation),
                               ("test", opts.test)) if v}
    raw, where, sizes = {}, {}, {}
    for name, spec in specs.items():
        raw[name], where[name], sizes[name] = _read_split(spec, opts)
    train_labels = [class_labels.normalise(v, w) for v, w in zip(raw["train"]["label"],
                                                                 where["train"])]
    classes = class_labels.names_for(train_labels, opts.train, model_labels, opts.label_names)
    if len(classes) < 2 and not model_labels:
        raise DataError(f"{opts.train}: only one class ({classes[0]!r}); a classifier needs "
                        f"at least 2")
    splits = {name: _encode_labels(ds, specs[name], where[name], classes, bool(model_labels))
              for name, ds in raw.items()}
    notes = sample_and_carve(splits, train_sample=opts.train_sample,
                             validation_fraction=opts.validation_fraction,
                             seed=getattr(opts, "seed", 42), stratify=classes)
    for note in notes:
        log.warning(note)
    column = "image" if images.is_folder(opts.train) else opts.image_column
    return TaskData(splits=splits, label_names=classes,
                    columns={"image": column, "label": None if images.is_folder(opts.train)
                             else opts.label_column},
                    sources=specs, notes=notes,
                    checks=[(sizes[name], where[name]) for name in specs], options=opts)


def read_eval(spec: str, label_names: list[str] | None, opts=None):
    """One checked split for a trained model; `label_names=None`: images only (calibration,
    latency), any image under a folder."""
    ds, where, _ = _read_split(spec, opts, want_labels=label_names is not None)
    if label_names is None:
        return ds
    return _encode_labels(ds, spec, where, label_names, fixed=True, trained=True)


def read_unlabeled(spec: str, column, processor, max_length, data):
    ds, _, _ = images.read(spec, image_column=column, want_labels=False,
                           max_pixels=getattr(data.options, "max_image_pixels", None))
    log.info("unlabelled: %d images from %s", len(ds), spec)
    return ds.add_column("label", [class_labels.IGNORE] * len(ds))


def load_preprocessor(backbone, trust_remote_code: bool = False):
    from pathlib import Path

    from transformers import AutoImageProcessor

    if backbone.local and not (Path(backbone.source) / "preprocessor_config.json").exists():
        raise ModelError(f"--model {backbone.name}: has no preprocessor_config.json (the image "
                         f"processor: size and normalisation); copy in the one of the model "
                         f"it came from")
    try:  # the slow (PIL + numpy) processor: its fast twin needs torchvision
        return AutoImageProcessor.from_pretrained(backbone.source, use_fast=False,
                                                  trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001  (one line naming the folder)
        raise ModelError(f"--model {backbone.name}: could not load its image processor: "
                         f"{' '.join(str(e).split())[:200]}") from None


def size_of(processor) -> tuple[int, int]:
    """(height, width) the processor resizes to."""
    size = processor.size
    if "height" in size:
        return size["height"], size["width"]
    side = size.get("shortest_edge") or size.get("longest_edge")
    return side, side


def prepare(td: TaskData, processor, opts):
    """Set the resolution (--image-size) on the processor that the checkpoint will carry, and
    refuse, before training, images too small for it."""
    side = getattr(opts, "image_size", None)
    if side:
        processor.size = {"height": side, "width": side}
    for sizes, where in td.checks:
        images.check_sizes(sizes, where, size_of(processor))
    h, w = size_of(processor)
    return td.splits, _Resized({"height": h, "width": w})


def student_preprocessor(processor, opts):
    """distill: the student's processor where --image-size is not the side the teacher was
    fine-tuned at (its checkpoint's): each model reads a picture at its own side, the
    teacher at the one it is accurate at, the student at the one it will be deployed at;
    None where they are one."""
    import copy

    side = getattr(opts, "image_size", None)
    theirs = size_of(processor)
    if not side or theirs == (side, side):
        return None
    own = copy.deepcopy(processor)
    own.size = {"height": side, "width": side}
    return own, {"image_size": {"teacher": list(theirs), "student": [side, side]}}


def reads(model, processor, opts) -> str | None:
    """Why `model` cannot read the pictures `processor` makes, or None. A CNN's strided
    convolutions shrink a picture 32-fold (EfficientNet) and a kernel wider than what is
    left fails deep inside torch (EfficientNet below 32 px), so one blank picture goes
    through before training, and where it fails the smallest side that passes is named."""
    h, w = size_of(processor)
    why = _fails(model, h, w)
    if why is None:
        return None
    flag = (f"--image-size {opts.image_size}" if getattr(opts, "image_size", None)
            else f"the model's preprocessor_config.json (size {h}x{w})")
    fits = _smallest_side(model, max(h, w))
    fix = (f"use --image-size {fits} or more" if fits else
           "give --image-size the side the model was trained at")
    return f"{flag}: the model cannot read {h}x{w} px pictures ({why}); {fix}"


def _fails(model, h: int, w: int) -> str | None:
    """What a blank h x w picture through `model` raises (the layer's own words), or None."""
    import torch

    first = next(model.parameters())
    was = model.training
    model.eval()  # (BatchNorm's running statistics stay as they are)
    try:
        with torch.no_grad():
            model(pixel_values=torch.zeros(1, 3, h, w, dtype=first.dtype, device=first.device))
        return None
    except (RuntimeError, ValueError) as e:
        return " ".join(str(e).split())[:120]
    finally:
        model.train(was)


def _smallest_side(model, side: int) -> int | None:
    """The smallest square side above `side` the model reads, found by doubling then
    halving the gap (a CNN reads every side from its least on); None where no side up to
    MAX_IMAGE_SIZE passes (a model bound to one side)."""
    from ..options import MAX_IMAGE_SIZE

    low, high = side, side * 2
    while _fails(model, high, high) is not None:
        if high >= MAX_IMAGE_SIZE:
            return None
        low, high = high, min(high * 2, MAX_IMAGE_SIZE)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _fails(model, mid, mid) is None else (mid, high)
    return high


class _Resized:
    """What prepare did to the inputs, in text.Truncation's shape: images are resized, never
    cut, so metrics.json records the input size under "image_size"."""

    kind = "image_size"

    def __init__(self, size: dict):
        self.counts, self.longest = size, None


def rgb(image, where: str | None = None):
    from ..bundle.runtime.pixels import ImageProblem, to_rgb

    try:
        return to_rgb(image, where or getattr(image, "filename", "") or "an image")
    except ImageProblem as e:
        raise DataError(str(e)) from None


def encode(processor, rows: dict, max_length: int = 0) -> dict:
    """Images as the model's numpy input {"pixel_values": float32 [n, 3, h, w]}."""
    from ..bundle.runtime.pixels import too_small

    size = size_of(processor)
    batch = []
    for image in rows["image"]:
        name = getattr(image, "filename", "") or "an image"
        image = rgb(image, name)
        problem = too_small(image.size, size, name)
        if problem:
            raise DataError(problem)
        batch.append(image)
    return {"pixel_values": processor(batch, return_tensors="np")["pixel_values"]}


def collator(processor):
    """The Trainer's collator: images -> pixel_values, labels and any cached teacher
    outputs stacked."""
    import numpy as np
    import torch

    def collate(rows: list[dict]) -> dict:
        out = {"pixel_values": torch.from_numpy(encode(processor, {"image": [
            r["image"] for r in rows]})["pixel_values"])}
        if "label" in rows[0]:
            out["labels"] = torch.tensor([r["label"] for r in rows], dtype=torch.long)
        for key in (k for k in rows[0] if k.startswith("teacher_")):
            out[key] = torch.from_numpy(np.asarray([r[key] for r in rows], dtype=np.float32))
        return out

    return collate


def shipped(predictor, ds, batch_size: int = 1):
    """Each image's class id as the bundled runtime labels its file (pixels.py reads it,
    measure/shipped.py): the file the eval data names, or, for an image the data holds as
    bytes (Parquet, a hub dataset), those bytes written to a scratch file unchanged."""
    import tempfile
    from pathlib import Path

    import numpy as np
    from datasets import Image

    index = {n: i for i, n in enumerate(predictor.labels)}
    stored = ds.cast_column("image", Image(decode=False))["image"]
    with tempfile.TemporaryDirectory(prefix="edgetransfer-images-") as scratch:
        paths = []
        for i, image in enumerate(stored):
            if image.get("path") and Path(image["path"]).is_file():
                paths.append(image["path"])
                continue
            paths.append(str(Path(scratch) / f"{i:06d}.img"))
            Path(paths[-1]).write_bytes(image["bytes"])
        rows = predictor.predict(paths, batch_size=batch_size)
    return np.array([index[row["label"]] for row in rows])


def _probe_images() -> tuple[dict, ...]:
    """Images of mixed sizes and modes (grey, palette, RGBA, RGB) for the parity gate; the
    smallest side (75 px) is enough for inputs up to 600 px (pixels.MAX_UPSCALE)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return tuple({"image": Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8),
                                           mode).convert(final)}
                 for shape, mode, final in (((75, 106), "L", "L"), ((160, 192, 3), "RGB", "P"),
                                            ((128, 128, 4), "RGBA", "RGBA"),
                                            ((240, 180, 3), "RGB", "RGB")))


TASK = register(Task(
    name="image-classification",
    summary="a label for each image",
    model_class="AutoModelForImageClassification",
    optimum_task="image-classification",
    peft_task_type=None,  # peft has no image task type: its generic PeftModel
    claims=claims,
    head_config=class_labels.head_config,
    read=read,
    read_eval=read_eval,
    claims_data=images.has_images,
    load_preprocessor=load_preprocessor,
    prepare=prepare,
    encode=encode,
    collator=collator,
    read_unlabeled=read_unlabeled,
    per_example=lambda values, index: values,
    index_columns=(),
    predictions=classification.predictions,
    metrics=metrics.report,
    render=None,
    primary="accuracy",
    greater_is_better=True,
    compare=lambda y, ref, cand, names, seed=0: metrics.paired_drop(
        y, ref, cand, len(names), seed=seed),
    drop=classification.drop,
    per_label_delta=metrics.per_class_delta,
    distill_loss=classification.distill_loss,
    agreement=parity.top1_agreement,
    tolerances=None,
    probe_rows=_probe_images(),
    rewrites=frozenset(),
    runtime={"postprocess": "softmax-label"},
    inputs=image_inputs.IMAGE,
    secondary="macro_f1",
    floor=floor.classes,
    shipped=shipped,
    # a CNN with BatchNorm takes ten times the transformers' 1e-4 (bench/RESULTS.md):
    # Fashion-MNIST's recipe at 1e-3, teacher 0.944 and student 0.942; 60 pictures of shapes,
    # 5 epochs, 1.000 against 0.283 at 1e-4 ("Small data")
    learning_rates={"full": 1e-3, "distill": 1e-3},
    quantize_modes=("int8-static", "fp16"),
    student_preprocessor=student_preprocessor,
    reads=reads,
    variable_length=False,
))
