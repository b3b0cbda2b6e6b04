"""Command line: convert any loadable generator to our Hub format, optionally uploading it.

    python -m pix2pix.convert SRC OUT_DIR [--fp16] [--input-kind edges] [--push-to-hub ORG/NAME]

SRC is anything ``load_generator`` accepts (a reference ``.pth``, a HugGAN ``pytorch_model.bin``,
a Hub repo id, a URL, a folder). The converted model is loaded back and checked against the
source on a random input before the command reports success.

A CycleGAN source that holds both generators (our CycleGAN folders, a reference run folder) is
converted as a pair, both directions in one folder, unless ``--direction`` picks one; the metadata
options then apply to both, except ``--input-kind`` (the A -> B generator's input, domain A) and
``--input-kind-b`` (the B -> A generator's input, domain B).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(prog="pix2pix-convert", description=__doc__.split("\n\n")[0])
    p.add_argument("source", help="Hub repo id[@rev], folder, weight file or URL")
    p.add_argument("out", type=Path, help="output folder (our format)")
    p.add_argument("--revision", default=None, help="Hub revision of SRC")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--push-to-hub", metavar="REPO", default=None, help="also upload as REPO")
    p.add_argument("--input-kind", choices=("edges", "labels", "photo"), default=None)
    p.add_argument(
        "--input-kind-b",
        choices=("edges", "labels", "photo"),
        default=None,
        help="a CycleGAN pair: the B -> A generator's input kind (--input-kind is A -> B's)",
    )
    p.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default=None,
        help="a CycleGAN model's one generator to convert (default: both, as a pair); for a "
        "single generator, the direction it was trained in (recorded in its config)",
    )
    p.add_argument("--train-size", type=int, default=None, help="side of the training crops")
    p.add_argument("--patch", type=int, choices=(1, 16, 70, 286), default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--license", default=None)
    p.add_argument("--notes", default=None)
    p.add_argument(
        "--hints",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="record that the model takes colour-hint dabs (trained with pix2pix-train --hints)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pix2pix-convert``; returns the exit status."""
    args = parse_args(argv)
    from pix2pix.hub import holds_both_directions, load_generator, push_generator, save_generator

    try:
        pair = holds_both_directions(args.source, revision=args.revision)
        pick = args.direction if pair else None
        model = load_generator(args.source, revision=args.revision, device="cpu", direction=pick)
        reverse = None
        if pair and args.direction is None:
            reverse = load_generator(
                args.source, revision=args.revision, device="cpu", direction="BtoA"
            )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    fields = ("train_size", "patch", "dataset", "license", "notes", "hints")
    if reverse is None:
        fields += ("input_kind", "direction")
    for field in fields:
        value = getattr(args, field)
        if value is not None:
            for generator in (model, reverse):
                if generator is not None:
                    setattr(generator.task, field, value)
    if reverse is not None:
        for generator, kind in ((model, args.input_kind), (reverse, args.input_kind_b)):
            if kind is not None:
                generator.task.input_kind = kind
    dtype = torch.float16 if args.fp16 else None
    save_generator(model, args.out, dtype=dtype, repo_id=args.push_to_hub, reverse=reverse)
    error = _verify(model, args.out)
    if reverse is not None:
        error = max(error, _verify(reverse, args.out, direction="BtoA"))
    count = sum(p.numel() for g in (model, reverse) if g is not None for p in g.parameters())
    what = f"{model.architecture}, a CycleGAN pair" if reverse is not None else model.architecture
    print(
        f"wrote {args.out} ({what}, {count:,} parameters); reloaded output differs from the "
        f"source by at most {error:.2e}"
    )
    if args.push_to_hub:
        url = push_generator(model, args.push_to_hub, dtype=dtype, reverse=reverse)
        print(f"uploaded to {url}")
    return 0


def _verify(model: torch.nn.Module, folder: Path, direction: str | None = None) -> float:
    from pix2pix import networks
    from pix2pix.hub import load_generator

    reloaded = load_generator(folder, device="cpu", direction=direction)
    side = max(networks.size_multiple(model.net), 64)
    x = torch.rand(1, model.in_channels, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (model(x * 2 - 1) - reloaded(x * 2 - 1)).abs().max().item()
    if diff > 0.05:
        raise RuntimeError(f"converted model in {folder} differs from the source by {diff:.3g}")
    return diff


if __name__ == "__main__":
    sys.exit(main())
