"""Make the example inputs shipped in examples/ (used by the app and by `make demo`).

    python -m train.examples --out examples

- ``examples/facades/``: label maps drawn by the procedural facades generator with seeds that
  are not in its train/val/test splits (seed 1, sample indices 0..3 of its test stream).
- ``examples/sketch2product/``: edge maps (``pix2pix.edges``, the model's training input) of
  Fashion-MNIST *test* photos, one per class; ``examples/photos/``: those photos themselves, for
  the app's upload-a-photo path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pix2pix import edges
from train.datasets import fashion_mnist, synthetic_facades

COUNT = 4


def facades(out: Path) -> list[Path]:
    """Label maps of unseen procedural facades."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(COUNT):
        labels, _ = synthetic_facades.generate_pair(synthetic_facades.sample_rng(1, "test", i))
        paths.append(out / f"facade-{i}.png")
        labels.save(paths[-1])
    return paths


def sketches(out: Path, photos_out: Path, source: Path) -> list[Path]:
    """Edge maps of one Fashion-MNIST test photo per class (first of each), and the photos."""
    out.mkdir(parents=True, exist_ok=True)
    photos_out.mkdir(parents=True, exist_ok=True)
    images, labels = fashion_mnist.load_split(source, "t10k")
    paths = []
    for name in fashion_mnist.DEFAULT_CLASSES:
        index = int((labels == fashion_mnist.CLASS_NAMES.index(name)).nonzero()[0][0])
        photo = fashion_mnist.to_photo(images[index], 64)
        photo.save(photos_out / f"{name}.png")
        paths.append(out / f"{name}.png")
        edges.edges_to_pil(edges.photo_to_edges(photo)).save(paths[-1])
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("examples"))
    p.add_argument("--fashion-source", type=Path, default=fashion_mnist.DEFAULT_SOURCE)
    args = p.parse_args(argv)
    made = facades(args.out / "facades")
    made += sketches(args.out / "sketch2product", args.out / "photos", args.fashion_source)
    (args.out / "README.md").write_text(
        "# Example inputs\n\nMade by `python -m train.examples --out examples` (see "
        "train/examples.py for what each folder holds and where it comes from).\n"
    )
    print(json.dumps([str(p) for p in made], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
