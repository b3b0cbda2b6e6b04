"""Make the example inputs shipped in examples/ (used by the app and by `make demo`).

    python -m train.examples --out examples

- ``examples/facades/``: label maps drawn by the procedural facades generator with seeds that
  are not in its train/val/test splits (seed 1, sample indices 0..3 of its test stream);
  ``examples/facade-photos/``: the photos of the same facades, for the photo -> labels models.
- ``examples/lineart/``: OpenMoji line art from the *test* split of ``train/datasets/openmoji.py``
  (its ``HOLDOUT`` drawings: never trained on), for the line-art -> colour model. OpenMoji
  (openmoji.org), CC BY-SA 4.0.
- ``examples/sketch2product/``: edge maps (``pix2pix.edges``, the model's training input) of
  Fashion-MNIST *test* photos, one per class; ``examples/photos/``: those photos themselves, for
  the app's upload-a-photo path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pix2pix import edges
from train.datasets import fashion_mnist, openmoji, synthetic_facades

COUNT = 4
LINE_ART = {
    "1F431": "cat-face",
    "1F45F": "running-shoe",
    "1F460": "high-heel",
    "1F45E": "leather-shoe",
    "1F45C": "handbag",
    "1F3E0": "house",
    "1F41F": "fish",
    "1F34E": "apple",
    "1F697": "car",
    "1F333": "tree",
}
README = f"""\
# Example inputs

Made by `python -m train.examples --out examples` (see train/examples.py for what each folder
holds and where it comes from).

`lineart/`: drawings from OpenMoji, the open-source emoji and icon project: {openmoji.CREDIT}
(https://creativecommons.org/licenses/by-sa/4.0/). They are the black line-art versions of held-out
emoji (the test split of train/datasets/openmoji.py), rendered at 256 px on white; shared under
the same licence.
"""


def facades(out: Path, photos_out: Path) -> list[Path]:
    """Label maps of unseen procedural facades, and their photos."""
    out.mkdir(parents=True, exist_ok=True)
    photos_out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(COUNT):
        labels, photo = synthetic_facades.generate_pair(synthetic_facades.sample_rng(1, "test", i))
        paths += [out / f"facade-{i}.png", photos_out / f"facade-{i}.png"]
        labels.save(paths[-2])
        photo.save(paths[-1])
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


def line_art(out: Path, data: Path) -> list[Path]:
    """Copy the held-out OpenMoji line art (``LINE_ART``) from a built dataset's test split.

    Raises FileNotFoundError naming the drawing when ``data`` lacks one (build it first with
    ``python -m train.datasets.openmoji``).
    """
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for code, name in LINE_ART.items():
        source = data / "test" / "A" / f"{code}.png"
        if not source.is_file():
            raise FileNotFoundError(f"{source} not found: build the OpenMoji dataset into {data}")
        paths.append(out / f"{name}.png")
        paths[-1].write_bytes(source.read_bytes())
    return paths


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("examples"))
    p.add_argument("--fashion-source", type=Path, default=fashion_mnist.DEFAULT_SOURCE)
    p.add_argument("--openmoji", type=Path, default=Path("data/openmoji"), help="built dataset")
    args = p.parse_args(argv)
    made = line_art(args.out / "lineart", args.openmoji)
    made += facades(args.out / "facades", args.out / "facade-photos")
    made += sketches(args.out / "sketch2product", args.out / "photos", args.fashion_source)
    (args.out / "README.md").write_text(README)
    print(json.dumps([str(p) for p in made], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
