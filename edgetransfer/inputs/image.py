"""Input kind `image`: one image per example (photos, scans, product shots).

Read from a folder of class folders or a table of image paths or bytes; the bundled runtime
reads image files with Pillow and numpy (bundle/runtime/pixels.py).
"""

from __future__ import annotations

from pathlib import Path

from ..bundle import inputs as readers
from ..bundle.runtime.pixels import MAX_IMAGE_PIXELS
from . import register
from .kind import LABEL, Column, InputKind

IMAGE_COLUMN = Column.of("image_column", str | None, description="Image classification: the "
                         "column of a CSV/JSONL/Parquet file holding each image's path "
                         "(relative to the file) or bytes [default: the first of image, img, "
                         "image_path, path, file, filename].")
MAX_PIXELS = Column.of("max_image_pixels", int, MAX_IMAGE_PIXELS, ge=1, description="Image "
                       "classification: the most pixels (width x height) an image may have; a "
                       "larger one is refused from its header, before it is decoded. "
                       f"{MAX_IMAGE_PIXELS / 1e6:g} Mpx is above any camera photo (phones "
                       f"12-50, full-frame 24-61) and decodes to "
                       f"{3 * MAX_IMAGE_PIXELS / 1e6:g} MB; Pillow's own guard only warns "
                       f"below 179 Mpx.")


def latency_images(cfg, task, scratch: Path) -> list[str]:
    """Image paths to time the runtime on: --latency-data's (checked by the task's reader;
    images held as bytes are written to `scratch`), else the task's probe images."""
    from datasets import Image

    if cfg.latency_data is None:
        images = [r["image"] for r in task.probe_rows]
    else:
        ds = task.read_eval(str(cfg.latency_data), None, cfg)
        images = ds.cast_column("image", Image(decode=False))["image"]
    paths = []
    for i, image in enumerate(images):
        if isinstance(image, dict) and image.get("path") and Path(image["path"]).is_file():
            paths.append(image["path"])
            continue
        target = scratch / f"{i:05d}.png"
        if isinstance(image, dict):
            target.write_bytes(image["bytes"])
        else:
            image.save(target)
        paths.append(str(target))
    return paths


IMAGE = register(InputKind(
    name="image",
    summary="an image per example",
    reader=readers.IMAGE,
    columns=(IMAGE_COLUMN, LABEL, MAX_PIXELS),
    latency_inputs=latency_images,
    device_inputs=None,  # (its image files would have to travel with it)
    runtime={"pairs": False},
    teacher_cache=False,
))
