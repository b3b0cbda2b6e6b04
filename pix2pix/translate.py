"""Command line: translate image files with any loadable generator.

    python -m pix2pix.translate --model SOURCE INPUT... --out DIR [--seed N] [--edges]

INPUT may be files or folders (their images, not recursively). Results are written as PNG files
named after the inputs. Files are decoded by ``pix2pix.imageio`` (upright per EXIF, transparency
on white, very large images downscaled with a note). A file that cannot be read is reported and
skipped; the exit status is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pix2pix import imageio


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="pix2pix-translate", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    p.add_argument("--model", required=True, help="Hub repo id[@rev], folder, weight file or URL")
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default=None,
        help="which generator of a CycleGAN model (default: A -> B)",
    )
    p.add_argument("--seed", type=int, default=None, help="dropout noise seed (default: off)")
    p.add_argument("--norm", choices=("instance", "running"), default="instance")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto")
    p.add_argument(
        "--edges", action="store_true", help="turn each input photo into an edge map first"
    )
    return p.parse_args(argv)


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Expand folders into their image files (sorted); keep files as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in imageio.SUFFIXES
            )
        else:
            found.append(path)
    return found


def _output_name(path: Path, taken: set[str]) -> str:
    name, n = f"{path.stem}.png", 1
    while name in taken:
        n += 1
        name = f"{path.stem}-{n}.png"
    taken.add(name)
    return name


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pix2pix-translate``; returns the exit status."""
    args = parse_args(argv)
    from tqdm.auto import tqdm

    from pix2pix import edges
    from pix2pix.hub import load_generator
    from pix2pix.inference import Translator

    try:
        model = load_generator(args.model, revision=args.revision, direction=args.direction)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    translate = Translator(
        model, device=args.device, precision=args.precision, norm=args.norm, seed=args.seed
    )
    inputs = collect_inputs(args.inputs)
    if not inputs:
        print("error: no input images found", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    failures, taken = 0, set()
    for path in tqdm(inputs, desc="translating", unit="img", disable=len(inputs) < 2):
        try:
            decoded = imageio.decode_image(path)
        except imageio.ImageReadError as e:
            failures += 1
            tqdm.write(f"skipped {path}: {e}", file=sys.stderr)
            continue
        if decoded.notice:
            tqdm.write(f"note: {decoded.notice}", file=sys.stderr)
        image = decoded.image
        source = edges.edges_to_pil(edges.photo_to_edges(image)) if args.edges else image
        target = args.out / _output_name(path, taken)
        translate(source).save(target)
        tqdm.write(f"{path} -> {target}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
