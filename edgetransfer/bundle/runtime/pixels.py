"""Images into model input with Pillow and numpy only: the bundle's runtime and edgetransfer's
readers both use this file, so an image is opened, converted and checked the same way in
training, in verify and on the device.

`pixel_values` must give what the checkpoint's transformers image processor gives (resize
with Pillow, rescale in float64 then float32, normalise in float32, channels first): a test
(tests/bundle/test_pixels.py) holds the two within 1e-6. transformers itself is not used
here: the bundle runs without it.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import warnings
from pathlib import Path

# Image columns tried, in order, when none is named (datasets' and common names); the
# bundle's predict.py and edgetransfer's readers both take them from here
IMAGE_COLUMNS = ("image", "img", "image_path", "path", "file", "filename")
# Files an image folder may hold (Pillow reads them all); anything else in a class folder is
# named as an error, never skipped in silence.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# The decoders Pillow may use, whatever a file is named: these formats, never one Pillow
# hands to another program (EPS runs Ghostscript) or a rarely used, rarely audited plug-in
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")
# Pillow's resampling filters by the names (and numbers) transformers' processors store
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
# An image is refused when the model would have to enlarge it more than this many times:
# past it there is no detail left to classify (28 px Fashion-MNIST at 224 px is exactly 8x).
MAX_UPSCALE = 8
# Modes Pillow converts to RGB without losing meaning (grey replicated, palette looked up,
# alpha dropped, CMYK and YCbCr by Pillow's own formulas).
TO_RGB = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa")


# The most pixels an image may have; a larger one is refused from its header, before a pixel
# is decoded. 64 megapixels (192 MB as RGB) is above every camera photo a classifier is fed
# (phones 12-50 Mpx, full-frame cameras 24-61 Mpx) and what a 1 GB device can still decode;
# Pillow's own guard only warns up to 179 Mpx (537 MB) and a PNG of a few hundred bytes can
# claim that many. `--max-image-pixels` (edgetransfer's stages, and this runtime, where
# input_spec.json's "image" "max_pixels" records the bundle's) changes it.
MAX_IMAGE_PIXELS = 64_000_000
# The longest side may be at most this many times the shortest: no photo, scan or screenshot
# is narrower (a scrolling phone screenshot is ~20:1, a 360-degree panorama ~10:1); squashed
# into the model's input such a strip keeps nothing to classify.
MAX_ASPECT_RATIO = 100
# (Pillow's guard is one module global; it is set for an open and restored under this lock)
_PILLOW_GUARD = threading.Lock()


class ImageProblem(ValueError):
    """An image that cannot be used, said in one line that names it."""


def open_image(source, where: str | None = None, max_pixels: int | None = None):
    """A decoded Pillow image from a path or bytes (decoded now, so a truncated file fails
    here, naming it, and not mid-training), turned upright as its EXIF orientation says:
    datasets' Image feature does the same when training reads it, so a phone photo is seen
    the same way in training, in verify and on the device.

    Its header is read first: an empty file, more pixels than `max_pixels` [default:
    MAX_IMAGE_PIXELS] or an absurd shape is refused before any pixel is decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    where = where or str(source)
    limit = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    data = isinstance(source, (bytes, bytearray))
    try:
        nbytes = len(source) if data else os.stat(source).st_size
        if nbytes == 0:  # (also what a FIFO or /dev/zero named as an image reads as)
            raise ImageProblem(f"{where}: " + ("holds 0 bytes" if data else
                                               "the file is empty (0 bytes)")
                               + ", not an image; replace it")
        with pillow_guard(None):  # the header only: ours is checked next, naming the size
            image = Image.open(io.BytesIO(source) if data else source, formats=FORMATS)
        problem = too_large(image.size, limit, where, nbytes)
        if problem:
            image.close()
            raise ImageProblem(problem)
        with pillow_guard(limit):  # frames and tiles Pillow checks while decoding
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageProblem:
        raise
    except FileNotFoundError:
        raise ImageProblem(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ImageProblem(f"{where}: is a folder, not an image") from None
    except PermissionError:
        raise ImageProblem(f"{where}: cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise ImageProblem(f"{where}: not an image of the formats read here "
                           f"({', '.join(FORMATS)}); remove it or convert it to PNG/JPEG"
                           ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageProblem(f"{where}: a frame or tile of it is over the {_mpx(limit)} limit "
                           f"({str(e).split(',')[0]}); downscale it, or raise "
                           f"--max-image-pixels") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageProblem(f"{where}: damaged or truncated image ({' '.join(str(e).split())});"
                           f" replace the file") from None
    return image


@contextlib.contextmanager
def pillow_guard(limit: int | None):
    """Pillow's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS, which Pillow reads on
    every open, frame and tile) at `limit` for the block, its warning raised as an error;
    None: off. Restored after; one block at a time (it is a module global)."""
    from PIL import Image

    with _PILLOW_GUARD, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _mpx(pixels: int) -> str:
    """64000000 -> '64 Mpx', 81000000 -> '81 Mpx', 1500000 -> '1.5 Mpx', 40000 -> '40,000 px'."""
    if pixels < 10**6:
        return f"{pixels:,} px"
    return f"{pixels / 1e6:,.1f}".removesuffix(".0") + " Mpx"


def too_large(image_size: tuple[int, int], limit: int, where: str,
              nbytes: int | None = None) -> str | None:
    """Why an image whose header says `image_size` (width, height) is refused before it is
    decoded, in one line naming it: no pixels, more than `limit` pixels, or a shape more than
    MAX_ASPECT_RATIO times longer than wide; None when it may be decoded."""
    w, h = image_size
    if min(w, h) < 1:
        return f"{where}: {w}x{h} px: the image has no pixels; replace the file"
    if w * h > limit:
        held = f" in a {nbytes:,}-byte file" if nbytes is not None else ""
        size = w * h * 3 / 2**20  # MB as 8-bit RGB
        size = (f"{size / 1024:,.1f} GB" if size >= 1024 else f"{size:,.0f} MB" if size >= 1
                else f"{max(size * 1024, 1):,.0f} KB")
        return (f"{where}: {w}x{h} px ({_mpx(w * h)}{held}) is over the limit of "
                f"{_mpx(limit)}; decoded, it would take {size} or more; downscale it, or raise "
                f"--max-image-pixels")
    if max(w, h) > MAX_ASPECT_RATIO * min(w, h):
        return (f"{where}: {w}x{h} px: one side is {max(w, h) / min(w, h):,.0f} times the other"
                f" (at most {MAX_ASPECT_RATIO}); squashed into the model's input it keeps "
                f"nothing to classify; crop it")
    return None


def to_rgb(image, where: str):
    """`image` as 8-bit RGB. 16-bit grey (medical and scientific images) is scaled to 8 bits
    (value / 257); 32-bit integer and float pixels have no agreed range and are refused."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("P", "PA") and "transparency" in image.info:
        image = image.convert("RGBA")  # (Pillow warns when a palette with alpha goes to RGB)
    if mode in TO_RGB:
        return image.convert("RGB")
    if mode.startswith("I;16") or mode == "I":
        import numpy as np

        values = np.asarray(image)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ImageProblem(f"{where}: 32-bit integer pixels outside 0..65535; save it as "
                               f"8- or 16-bit")
        from PIL import Image

        grey = np.rint(values.astype(np.float64) / 257).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    raise ImageProblem(f"{where}: pixel mode {mode!r} (e.g. float) has no agreed 8-bit range;"
                       f" save it as 8- or 16-bit greyscale or RGB")


def min_side(size: tuple[int, int]) -> int:
    """The smallest side (pixels) an image may have for a model input of `size` (h, w)."""
    return max(1, math.ceil(max(size) / MAX_UPSCALE))


def too_small(image_size: tuple[int, int], size: tuple[int, int], where: str) -> str | None:
    """Why an image of `image_size` (width, height) is refused for a model input of `size`
    (height, width), in one line naming it; None when it is large enough."""
    if min(image_size) >= min_side(size):
        return None
    return (f"{where}: {image_size[0]}x{image_size[1]} px is too small for this model's "
            f"{size[1]}x{size[0]} input (at least {min_side(size)} px a side, at most "
            f"{MAX_UPSCALE}x enlargement); use a larger image")


def load_rgb(source, size: tuple[int, int] | None, where: str | None = None,
             max_pixels: int | None = None):
    """Open (unless `source` is an opened image), convert to RGB and check one image (path or
    bytes) for a model input of `size` (height, width); None: no size check. `max_pixels`:
    open_image's limit."""
    where = where or str(source)
    opened = source if hasattr(source, "mode") else open_image(source, where, max_pixels)
    image = to_rgb(opened, where)
    problem = too_small(image.size, size, where) if size is not None else None
    if problem:
        raise ImageProblem(problem)
    return image


def pixel_values(np, images: list, spec: dict):
    """A batch of RGB Pillow images as the model's float32 input [n, 3, h, w], as
    input_spec.json's "image" says (size, resample, rescale, mean, std)."""
    h, w = spec["size"]
    resample = RESAMPLE[spec["resample"]] if isinstance(spec["resample"], str) \
        else int(spec["resample"])
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    out = np.empty((len(images), 3, h, w), dtype=np.float32)
    for i, image in enumerate(images):
        x = np.asarray(image.resize((w, h), resample=resample) if image.size != (w, h)
                       else image)
        x = (x.astype(np.float64) * spec["rescale"]).astype(np.float32)
        if spec.get("offset"):
            x = x - np.float32(1)
        if spec.get("normalize", True):
            x = (x - mean) / std
        out[i] = x.transpose(2, 0, 1)
    return out


def list_images(folder: Path) -> list[Path]:
    """Every image under `folder`, sorted (hidden files left out)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in
                                             p.relative_to(folder).parts)
                  and p.suffix.lower() in IMAGE_SUFFIXES)
