#!/usr/bin/env python3
"""Pictures of circles, squares and triangles as image folders: the images quickstart's data.

    python recipes/data/make_shapes.py --out models/data/shapes

Writes OUT/train, OUT/validation and OUT/test, one sub-folder per class, the layout
`edgetransfer` reads (and users bring their own in). Every picture is drawn here: a filled
shape of random size, place and colour on a noisy background of another colour, some grey,
some RGB, some with an alpha channel (the forms a folder of real photos mixes). Seeded, so
the same arguments write the same files. The default is 20 training pictures a class, 60 in
all: the small-data case the quickstart's defaults are measured on. Needs numpy and Pillow.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

CLASSES = ("circle", "square", "triangle")
SPLITS = ("train", "validation", "test")
MODES = ("RGB", "L", "RGBA")  # each class and split gets all three in turn


def draw(shape: str, rng, size: int, mode: str):
    """One picture: `shape` filled in one colour over noise around another."""
    import numpy as np
    from PIL import Image, ImageDraw

    dark, light = rng.integers(0, 100, 3), rng.integers(156, 256, 3)
    # every channel at least 56 apart, so the shape shows in grey too
    background, ink = (dark, light) if rng.random() < 0.5 else (light, dark)
    noise = rng.normal(0, 18, (size, size, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8), "RGB")
    r = rng.uniform(0.18, 0.32) * size  # half the shape's width
    cx, cy = rng.uniform(r + 2, size - r - 2, 2)
    pen = ImageDraw.Draw(image)
    fill = tuple(int(v) for v in ink)
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        pen.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    else:
        pen.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image.convert(mode)


def write(out: Path, counts: dict[str, int], size: int, seed: int) -> int:
    import numpy as np

    rng = np.random.default_rng(seed)
    written = 0
    for split in SPLITS:
        for name in CLASSES:
            folder = out / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(counts[split]):
                draw(name, rng, size, MODES[i % len(MODES)]).save(folder / f"{i:03d}.png")
                written += 1
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="Folder to write train/, "
                   "validation/ and test/ into (must not exist yet).")
    p.add_argument("--train", type=int, default=20, help="Training pictures per class.")
    p.add_argument("--validation", type=int, default=10, help="Validation pictures per class.")
    p.add_argument("--test", type=int, default=20, help="Test pictures per class.")
    p.add_argument("--size", type=int, default=64, help="Side of each picture in pixels.")
    p.add_argument("--seed", type=int, default=0, help="Seed of every random choice.")
    args = p.parse_args(argv)
    counts = {"train": args.train, "validation": args.validation, "test": args.test}
    if min(counts.values()) < 1 or not 16 <= args.size <= 1024:
        print("error: give at least 1 picture per class and split, and --size 16..1024",
              file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out}: already exists; remove it or choose another --out",
              file=sys.stderr)
        return 2
    # built under a temporary name and renamed when complete: an interrupted run never
    # leaves a half-written folder under the final name
    tmp = args.out.with_name(f".{args.out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n = write(tmp, counts, args.size, args.seed)
        tmp.rename(args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {args.out}: {n} pictures of {', '.join(CLASSES)} "
          + ", ".join(f"({k} {v} a class)" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
