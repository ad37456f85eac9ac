#!/usr/bin/env python3
"""Fashion-MNIST (Debian's `dataset-fashion-mnist`) as image folders: one PNG per image,
one sub-folder per class, the layout `edgetransfer` reads (and users bring their own in).

    apt-get install dataset-fashion-mnist
    python recipes/data/fashion_mnist.py --out data/fashion-mnist   # train/ and test/

60,000 train and 10,000 test images (28x28 grey, 10 classes; Zalando Research, MIT
licence). The output is written beside --out under a temporary name and renamed when
complete, so an interrupted run never leaves a half-written folder under the final name.
Needs numpy and Pillow only.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

SOURCE = Path("/usr/share/datasets/fashion-mnist")
FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# The dataset's class ids 0-9, named as its authors name them (folder-safe spelling)
CLASSES = ("t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
           "sneaker", "bag", "ankle-boot")


def read_idx(path: Path, magic: int):
    """An IDX file (the MNIST format): a big-endian header, then uint8 data."""
    import numpy as np

    raw = gzip.open(path).read()
    if int.from_bytes(raw[:4], "big") != magic:
        raise SystemExit(f"error: {path}: not an IDX file of the expected kind")
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)


def write_split(split: str, source: Path, out: Path, limit: int | None) -> int:
    from PIL import Image

    images = read_idx(source / FILES[split][0], 0x803)
    labels = read_idx(source / FILES[split][1], 0x801)
    if len(images) != len(labels):
        raise SystemExit(f"error: {source}: {split} has {len(images)} images but "
                         f"{len(labels)} labels")
    n = len(images) if limit is None else min(limit, len(images))
    for name in CLASSES:
        (out / split / name).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(images[i], "L").save(out / split / CLASSES[labels[i]] / f"{i:05d}.png")
    return n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", type=Path, default=SOURCE,
                   help=f"Folder of the four .gz files [default: {SOURCE}].")
    p.add_argument("--out", type=Path, required=True, help="Folder to write train/ and test/ "
                   "into (must not exist yet).")
    p.add_argument("--limit", type=int, help="At most this many images per split (a quick "
                   "look; the recipe uses all).")
    args = p.parse_args(argv)
    missing = [f for pair in FILES.values() for f in pair if not (args.source / f).is_file()]
    if missing:
        print(f"error: {args.source / missing[0]}: not found; apt-get install "
              f"dataset-fashion-mnist, or pass --source", file=sys.stderr)
        return 2
    if args.out.exists():
        print(f"error: {args.out}: already exists; remove it or choose another --out",
              file=sys.stderr)
        return 2
    tmp = args.out.with_name(f".{args.out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts = {split: write_split(split, args.source, tmp, args.limit) for split in FILES}
        tmp.rename(args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v} images" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
