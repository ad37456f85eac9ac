"""Read labelled images: a folder with one sub-folder per class, or a table (CSV, TSV, JSONL,
Parquet) with an image column (a path, relative to the table's folder, or bytes) and a label.

Listed here rather than by datasets' `imagefolder` builder, which skips a non-image file or an
empty class folder in silence; what is read becomes a `datasets.Dataset` whose "image" column
is datasets' `Image` feature (decoded by Pillow when a row is read). Every image is opened
once while reading, by the bundle runtime's own `pixels.load_rgb`, so a damaged file, an
unusable pixel mode or an image too small for the model is named before any training, and
one over the pixel limit (--max-image-pixels, pixels.MAX_IMAGE_PIXELS) from its header,
before it is decoded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..bundle.runtime.pixels import (
    IMAGE_COLUMNS,
    IMAGE_SUFFIXES,
    MAX_IMAGE_PIXELS,
    ImageProblem,
    list_images,
    load_rgb,
    min_side,
    open_image,
    too_small,
)
from ..bundle.runtime.predict import BundleError, beside
from ..errors import DataError
from .files import read_table
from .splits import pick_column, row_name

log = logging.getLogger(__name__)

# A data file is taken for image data by these columns alone: names a text table may carry
# too (path, file) are tried when reading (IMAGE_COLUMNS), never used to guess the task
CLAIMING_COLUMNS = IMAGE_COLUMNS[:3]
# The columns an image folder yields (what the task is told of a folder)
FOLDER_COLUMNS = ["image", "label"]


def is_folder(spec: str) -> bool:
    return Path(spec).is_dir()


def has_images(columns: list[str]) -> bool:
    return any(c in columns for c in CLAIMING_COLUMNS)


def may_name_files(path: Path, image_column: str | None = None) -> bool:
    """Whether a data file lists images beside it, files whose content its own does not hold:
    an image column (any that reading tries, or `image_column`) among the columns its header
    tells (a file whose header tells none, a report or a model file, is taken as it is)."""
    from .files import column_names

    return any(c in IMAGE_COLUMNS or c == image_column for c in column_names(path) or ())


def named_files(path: Path, image_column: str | None = None) -> list[Path] | None:
    """The picture files a data file names (each once, in the order first named), or None
    when it lists no images (may_name_files) or reading it as images fails: a text table
    whose `path` column holds something else, or an image table with a bad row, which the
    step reading it refuses, naming the row (a fingerprint refuses nothing). Pictures held in
    the table as bytes are not among them: the table's own bytes hold those."""
    if not may_name_files(path, image_column):
        return None
    try:
        sources = read_table_images(str(path), image_column, None, (), want_labels=False)[0]
    except DataError:
        return None
    return [Path(s) for s in dict.fromkeys(s for s in sources if isinstance(s, str))]


def _classes(folder: Path) -> list[Path]:
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if loose:
        raise DataError(f"{loose[0]}: a file beside the class folders of {folder}; an image "
                        f"folder holds one sub-folder per class (move it into one)")
    if not subdirs:
        raise DataError(f"{folder}: holds no class folders; give a folder with one sub-folder "
                        f"of images per class, or a CSV/JSONL/Parquet with an image column")
    return subdirs


def read_folder(folder: Path) -> tuple[list[str], list[str]]:
    """(image paths, class names): every file of every class folder (hidden ones skipped)."""
    paths, labels = [], []
    for sub in _classes(folder):
        files = sorted(p for p in sub.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(sub).parts))
        if not files:
            raise DataError(f"{sub}: an empty class folder; add images of {sub.name!r} or "
                            f"remove the folder")
        wrong = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
        if wrong:
            raise DataError(f"{wrong[0]}: not an image file ({wrong[0].suffix or 'no suffix'}; "
                            f"images are {', '.join(IMAGE_SUFFIXES)}); {len(wrong)} such "
                            f"file(s) in class folders; move them out")
        paths += [str(p) for p in files]
        labels += [sub.name] * len(files)
    return paths, labels


def read_table_images(spec: str, image_column: str | None, label_column: str | None,
                      label_candidates, want_labels: bool = True):
    """(image sources: paths or bytes, labels or None, the image column) of a data file."""
    from datasets import Image

    table = read_table(Path(spec))
    names = list(table.column_names)
    column = pick_column(names, image_column, IMAGE_COLUMNS, "image", spec, "--image-column")
    if isinstance(table.features[column], Image):  # a Parquet that datasets wrote
        table = table.cast_column(column, Image(decode=False))
    base = Path(spec).resolve().parent
    # (the columns whole from Arrow: a Dataset's column is formatted a row at a time)
    arrow = table.with_format("arrow")
    sources = []
    for i, value in enumerate(arrow[column].to_pylist()):
        if isinstance(value, dict):  # datasets' Image feature exported: {"bytes", "path"}
            value = value.get("bytes") or value.get("path")
        if isinstance(value, (bytes, bytearray)):
            sources.append(bytes(value))
        elif isinstance(value, str) and value.strip():
            try:  # (a table may come from someone else: it names images beside it only)
                sources.append(str(beside(base, value)))
            except BundleError as e:
                raise DataError(f"{row_name(spec, i)}: image path {e}; keep the table in the "
                                f"folder that holds its images") from None
        else:
            raise DataError(f"{row_name(spec, i)}: column {column!r} holds "
                            f"{'nothing' if value in (None, '') else repr(value)[:40]}, not "
                            f"an image path or bytes; fill or remove the row")
    labels = None
    if want_labels:
        label = pick_column(names, label_column, label_candidates, "label", spec,
                            "--label-column")
        if label == column:
            raise DataError(f"{spec}: the column {label!r} would be both image and label; "
                            f"pass --image-column and --label-column naming two columns")
        labels = arrow[label].to_pylist()
    return sources, labels, column


def read(spec: str, *, image_column: str | None = None, label_column: str | None = None,
         label_candidates=(), want_labels: bool = True, max_pixels: int | None = None):
    """One split: (datasets.Dataset with "image" (and "label" as read), where each row came
    from: a path, or the table's row, each image's (width, height)). Every image is opened
    and checked once; `max_pixels`: the pixel limit [default: pixels.MAX_IMAGE_PIXELS]."""
    from datasets import Dataset, Image

    path = Path(spec)
    if not path.exists():
        raise DataError(f"{spec}: no such folder or file; image data is a local folder of class "
                        f"folders or a CSV/JSONL/Parquet listing images (a hub dataset: save it "
                        f"with datasets' Dataset.to_parquet first)")
    path = path.resolve()  # (absolute paths: they are handed on to other processes)
    if path.is_dir():
        if want_labels:
            sources, labels = read_folder(path)
        else:  # unlabelled images (calibration, latency): any image under the folder
            sources, labels = [str(p) for p in list_images(path)], None
            if not sources:
                raise DataError(f"{path}: holds no images ({', '.join(IMAGE_SUFFIXES)})")
        where = list(sources)
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(f"{spec}: is one image; give a folder of class folders, or a "
                        f"CSV/JSONL/Parquet that lists images")
    else:
        sources, labels, _ = read_table_images(spec, image_column, label_column,
                                               label_candidates, want_labels)
        where = [s if isinstance(s, str) else row_name(spec, i) for i, s in enumerate(sources)]
    sizes = check(sources, where, max_pixels)
    columns = {"image": sources} | ({"label": labels} if labels is not None else {})
    ds = Dataset.from_dict(columns).cast_column("image", Image())
    return ds, where, sizes


def check(sources: list, where: list[str], max_pixels: int | None = None) -> list:
    """Open every image once; the first unusable one is named (with the count of such).
    Returns each image's (width, height)."""
    import time
    from collections import Counter

    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    started, first, bad, sizes, modes = time.perf_counter(), None, 0, [], Counter()
    for source, name in zip(sources, where):
        try:
            image = open_image(source, name, limit)
            modes[image.mode] += 1
            sizes.append(load_rgb(image, None, name).size)
        except ImageProblem as e:
            first, bad = first or str(e), bad + 1
    if first:
        raise DataError(first + (f" ({bad} unusable images in all)" if bad > 1 else ""))
    log.info("checked %d images in %.1fs", len(sources), time.perf_counter() - started)
    allow_decoding(limit)
    converted = {m: n for m, n in modes.items() if m != "RGB"}
    if converted:  # said, so a user sees what became of their images
        log.info("converted to RGB as they are read: %s", ", ".join(
            f"{n} {MODE_NAMES.get(m, m)}" for m, n in sorted(converted.items())))
    return sizes


def allow_decoding(limit: int) -> None:
    """Let Pillow decode, later, what was checked under `limit`: datasets' Image feature
    decodes each image again when training, verify or export reads its row, with Pillow's own
    guard (which warns above Image.MAX_IMAGE_PIXELS, 89 Mpx, and fails above twice that). A
    --max-image-pixels above Pillow's raises Pillow's to it for this process; never lowered
    (every image read here was checked under ours first)."""
    from PIL import Image

    if Image.MAX_IMAGE_PIXELS is not None and limit > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = limit


# how the log names Pillow's modes
MODE_NAMES = {"L": "grey", "P": "palette", "RGBA": "RGBA (alpha dropped)", "LA": "grey+alpha",
              "CMYK": "CMYK", "I;16": "16-bit grey (scaled to 8 bits)",
              "I": "16-bit grey (scaled to 8 bits)", "1": "black-and-white"}


def check_sizes(sizes: list, where: list[str], size: tuple[int, int]) -> None:
    """Refuse images too small for a model input of `size` (height, width), naming the first."""
    small = [i for i, s in enumerate(sizes) if min(s) < min_side(size)]
    if small:
        raise DataError(too_small(sizes[small[0]], size, where[small[0]])
                        + (f" ({len(small)} such images in all)" if len(small) > 1 else ""))
