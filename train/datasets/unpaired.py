"""Break a paired dataset's training pairs: the CycleGAN reference layout, with a paired test split.

The CycleGAN paper (Zhu et al. 2017, section 5.1) scores unpaired training on datasets that do have
pairs (Cityscapes labels <-> photos, maps <-> aerial photos, facades), with pix2pix trained on the
pairs as the upper bound. This writes such a dataset from any folder that
:func:`train.data.find_dataset` reads (aligned A|B images or ``A/`` ``B/`` folders)::

    python -m train.datasets.unpaired --data data/facades --out data/facades-unpaired

    OUT/trainA/*.png  OUT/trainB/*.png   the train split's A and B sides under unrelated names
    OUT/testA/*.png   OUT/testB/*.png    the test (and val) split, pairs kept: same names
    OUT/README.md                        the command, the counts and what was broken
    OUT/classes.json                     copied when the source has one (a label palette)

Training side: each side's files are renamed by its own seeded permutation, so no A name matches
a B name and the trainer's random B per A (``train.data.UnpairedDataset``) is all that relates
them, as in the paper. ``--disjoint`` goes further: A comes from one half of the pairs and B from
the other, so no image of one domain has its counterpart in the other at all (half the data per
domain). Val and test stay paired, so that ``train.evaluate --data`` on the source dataset, or on
``OUT`` with ``--format paired``, compares each output with its target.
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

from pix2pix import imageio
from train.data import Sample, available_splits, find_dataset


def sides(sample: Sample, fmt: str) -> tuple[Image.Image, Image.Image]:
    """The A and B images of one paired example (aligned: A left half, B right half)."""
    if fmt == "aligned":
        both = imageio.read_image(sample.path)
        width, height = both.size
        half = width // 2
        # The same rule as PairedDataset: B from the right edge, so an odd width drops the
        # middle column rather than shifting B against A.
        return both.crop((0, 0, half, height)), both.crop((width - half, 0, width, height))
    if fmt == "paired" and sample.b_path is not None:
        return imageio.read_image(sample.path), imageio.read_image(sample.b_path)
    raise ValueError(f"{sample.path}: a {fmt!r} dataset has no B side to unpair; it needs pairs")


def write_split(
    samples: list[Sample],
    fmt: str,
    out_a: Path,
    out_b: Path,
    *,
    shuffle: random.Random | None,
    disjoint: bool = False,
) -> tuple[int, int]:
    """Write the A and B sides of ``samples``; returns the (A, B) counts written.

    With ``shuffle`` each side is renamed by its own permutation (names ``a00000`` / ``b00000``);
    without, both keep the example's name and stay paired. ``disjoint`` keeps A of the first half
    and B of the second half only.
    """
    out_a.mkdir(parents=True, exist_ok=True)
    out_b.mkdir(parents=True, exist_ok=True)
    n = len(samples)
    keep_a = range(n // 2) if disjoint else range(n)
    keep_b = range(n // 2, n) if disjoint else range(n)
    names_a = {i: samples[i].name for i in keep_a}
    names_b = {i: samples[i].name for i in keep_b}
    if shuffle is not None:
        for names, prefix in ((names_a, "a"), (names_b, "b")):
            order = list(names)
            shuffle.shuffle(order)
            names.update({i: f"{prefix}{rank:05d}" for rank, i in enumerate(order)})
    for i, sample in enumerate(tqdm(samples, desc=out_a.name[:-1], unit="pair", leave=False)):
        if i not in names_a and i not in names_b:
            continue
        a, b = sides(sample, fmt)
        if i in names_a:
            a.save(out_a / f"{names_a[i]}.png")
        if i in names_b:
            b.save(out_b / f"{names_b[i]}.png")
    return len(names_a), len(names_b)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a paired dataset (aligned or A/ B/)")
    p.add_argument("--out", type=Path, required=True, help="the reference layout (created)")
    p.add_argument("--format", choices=("aligned", "paired"), help="default: detected")
    p.add_argument("--disjoint", action="store_true", help="A and B from different halves")
    p.add_argument("--seed", type=int, default=0, help="seeds the renaming (default: 0)")
    given = list(argv) if argv is not None else sys.argv[1:]
    args = p.parse_args(given)

    splits = available_splits(args.data)
    if "train" not in splits:
        p.error(f"{args.data} has no train split (found: {splits or 'none'}); nothing to unpair")
    if args.out.exists() and any(args.out.iterdir()):
        p.error(f"{args.out} exists and is not empty; choose a new folder")
    rng = random.Random(args.seed)
    lines = []
    for split in splits:
        spec = find_dataset(args.data, split=split, format=args.format)
        if spec.format == "photos":
            p.error(f"{spec.folders[0]} holds plain photos, not pairs: {spec.detection}")
        train = split == "train"
        name = "test" if split == "test" else split
        count = write_split(
            spec.files,
            spec.format,
            args.out / f"{name}A",
            args.out / f"{name}B",
            shuffle=rng if train else None,
            disjoint=train and args.disjoint,
        )
        how = "unpaired, renamed" + (", A and B from disjoint halves" if args.disjoint else "")
        lines.append(f"- {split}: {count[0]} A, {count[1]} B ({how if train else 'paired'})")
        print(lines[-1][2:])
    if (args.data / "classes.json").is_file():
        shutil.copyfile(args.data / "classes.json", args.out / "classes.json")
    command = shlex.join(["python", "-m", "train.datasets.unpaired", *given])
    (args.out / "README.md").write_text(
        f"# {args.data.name}, training pairs broken for unpaired (CycleGAN) training\n\n"
        f"Written by `{command}` from `{args.data}`.\n\n" + "\n".join(lines) + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
