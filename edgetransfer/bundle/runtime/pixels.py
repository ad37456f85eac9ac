"""Images into model input with Pillow and numpy only: the bundle's runtime and edgetransfer's
readers both use this file, so an image is opened, converted and checked the same way in
training, in verify and on the device.

`pixel_values` must give what the checkpoint's transformers image processor gives (resize
with Pillow, rescale in float64 then float32, normalise in float32, channels first): a test
(tests/bundle/test_pixels.py) holds the two within 1e-6. transformers itself is not used
here: the bundle runs without it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

# Image columns tried, in order, when none is named (datasets' and common names); the
# bundle's predict.py and edgetransfer's readers both take them from here
IMAGE_COLUMNS = ("image", "img", "image_path", "path", "file", "filename")
# Files an image folder may hold (Pillow reads them all); anything else in a class folder is
# named as an error, never skipped in silence.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Pillow's resampling filters by the names (and numbers) transformers' processors store
RESAMPLE = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
# An image is refused when the model would have to enlarge it more than this many times:
# past it there is no detail left to classify (28 px Fashion-MNIST at 224 px is exactly 8x).
MAX_UPSCALE = 8
# Modes Pillow converts to RGB without losing meaning (grey replicated, palette looked up,
# alpha dropped, CMYK and YCbCr by Pillow's own formulas).
TO_RGB = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "La", "RGBa")


class ImageProblem(ValueError):
    """An image that cannot be used, said in one line that names it."""


def open_image(source, where: str | None = None):
    """A decoded Pillow image from a path or bytes (decoded now, so a truncated file fails
    here, naming it, and not mid-training), turned upright as its EXIF orientation says:
    datasets' Image feature does the same when training reads it, so a phone photo is seen
    the same way in training, in verify and on the device."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    where = where or str(source)
    try:
        image = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray))
                           else source)
        image.load()
        image = ImageOps.exif_transpose(image)
    except FileNotFoundError:
        raise ImageProblem(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ImageProblem(f"{where}: is a folder, not an image") from None
    except PermissionError:
        raise ImageProblem(f"{where}: cannot be read (permission denied)") from None
    except UnidentifiedImageError:
        raise ImageProblem(f"{where}: not an image Pillow can read; remove it or convert it "
                           f"to PNG/JPEG") from None
    except Image.DecompressionBombError as e:
        raise ImageProblem(f"{where}: {e}") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageProblem(f"{where}: damaged or truncated image ({' '.join(str(e).split())});"
                           f" replace the file") from None
    return image


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


def load_rgb(source, size: tuple[int, int] | None, where: str | None = None):
    """Open (unless `source` is an opened image), convert to RGB and check one image (path or
    bytes) for a model input of `size` (height, width); None: no size check."""
    where = where or str(source)
    opened = source if hasattr(source, "mode") else open_image(source, where)
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
