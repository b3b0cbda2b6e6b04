"""Export Fashion-MNIST product photos as a photos-only training folder (edges -> product).

Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence) holds 28x28 greyscale photos of Zalando
products, stored inverted (product bright on black). Debian's ``dataset-fashion-mnist`` package
installs it under ``/usr/share/datasets/fashion-mnist``. This script turns the chosen classes back
into product-on-white photos, upsamples them (bicubic) and writes::

    OUT/train/*.png  OUT/val/*.png  OUT/test/*.png   photos; the training script computes edges
    OUT/labels.json                                  class of every file, for the classifier

    python -m train.datasets.fashion_mnist --out data/fashion --size 64
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip
DEFAULT_CLASSES = ("sandal", "sneaker", "bag", "ankle-boot")  # shoes and bags, as edges2shoes/bags


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file of unsigned bytes into an array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_split(source: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) and labels (N,) of the ``train`` or ``t10k`` split."""
    images = read_idx(source / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(source / f"{split}-labels-idx1-ubyte.gz")
    return images, labels


def to_photo(image: np.ndarray, size: int) -> Image.Image:
    """A stored 28x28 image as a product-on-white photo of ``size`` pixels."""
    photo = Image.fromarray(255 - image, "L").resize((size, size), Image.Resampling.BICUBIC)
    return photo.convert("RGB")


def export(
    out: Path,
    *,
    source: Path = DEFAULT_SOURCE,
    classes: tuple[str, ...] = DEFAULT_CLASSES,
    size: int = 64,
    val: int = 500,
    limit: int | None = None,
) -> Path:
    """Write the photos-only folder; ``val`` training images are held out as the val split."""
    unknown = [c for c in classes if c not in CLASS_NAMES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; valid: {', '.join(CLASS_NAMES)}")
    if not (source / "train-images-idx3-ubyte.gz").is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {source}; install Debian's dataset-fashion-mnist package "
            f"or pass --source"
        )
    wanted = [CLASS_NAMES.index(c) for c in classes]
    labels_out: dict[str, str] = {}
    for stored, splits in (("train", ("val", "train")), ("t10k", ("test",))):
        images, labels = load_split(source, stored)
        keep = np.flatnonzero(np.isin(labels, wanted))
        if limit is not None:
            keep = keep[: limit + (val if stored == "train" else 0)]
        parts = {"test": keep} if stored == "t10k" else {"val": keep[:val], "train": keep[val:]}
        for split in splits:
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            for i in tqdm(parts[split], desc=split, unit="img"):
                name = f"{split}/{stored}-{i:05d}.png"
                to_photo(images[i], size).save(out / name)
                labels_out[name] = CLASS_NAMES[labels[i]]
    (out / "labels.json").write_text(
        json.dumps({"classes": list(classes), "labels": labels_out}, indent=1)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    p.add_argument("--classes", default=",".join(DEFAULT_CLASSES))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--val", type=int, default=500, help="training images held out for val")
    p.add_argument("--limit", type=int, default=None, help="at most this many per split")
    args = p.parse_args(argv)
    export(
        args.out,
        source=args.source,
        classes=tuple(args.classes.split(",")),
        size=args.size,
        val=args.val,
        limit=args.limit,
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
