"""How far one colour for every region gets on the line-art model's no-hint metric.

The region metric (``train.regions``) scores a coloured drawing by each closed region's mean
CIELAB colour against the target's (dE76). Without a dab, a model must guess the colour of a
concept it never saw (the splits are by concept), and part of what it scores is how it hedges.
These baselines give the metric a floor to read a model against, measured on the same regions:

- the per-channel median of the training regions' sRGB colours: what an L1 loss on RGB pixels
  converges to where the drawing tells a model nothing (for emoji, whose colours mostly have high
  red and green and low blue, a yellow);
- their mean in sRGB (what an L2 loss converges to);
- the per-channel median in CIELAB;
- their geometric median in CIELAB (the colour with the least mean dE76 to them; Weiszfeld's
  iteration);
- and, as an oracle, the colour with the least median dE76 on the test regions themselves: how
  low the metric's median goes for a model that paints every region one well-chosen colour.

    python -m train.colour_baselines --data data/lineart2 [--step 3]

prints a markdown table: each constant's colour and its median dE76 and share within dE 10 on
the test split's regions (every ``--step``-th training drawing gives the training colours); below
it a baseline that is not one colour, each test drawing coloured like its most similar training
drawing (``retrieval``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from pix2pix.imageio import read_image
from train import regions as R
from train.report_colour import replace_section, rgb256


def geometric_median(points: np.ndarray, *, iterations: int = 200) -> np.ndarray:
    """The point with the least mean Euclidean distance to ``points`` ((N, D) float): (D,).

    Weiszfeld's iteration from the per-coordinate median; a point closer than 1e-9 to the
    estimate is weighted as if at 1e-9 (no division by zero)."""
    points = np.asarray(points, np.float64)
    estimate = np.median(points, axis=0)
    for _ in range(iterations):
        weights = 1.0 / np.linalg.norm(points - estimate, axis=1).clip(1e-9)
        estimate = (points * weights[:, None]).sum(0) / weights.sum()
    return estimate


def region_colours(data: Path, split: str, *, step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every region's mean target colour over ``split``'s drawings (each drawing's first file:
    the line art as drawn; every ``step``-th drawing): CIELAB (N, 3) and sRGB 0-255 (N, 3)."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    names = sorted(r["files"][0] for r in manifest if r["split"] == split)[::step]
    lab, rgb = [], []
    for name in names:
        art = _read(data / split / "A" / name)
        target = _read(data / split / "B" / name)
        regions = R.find_regions(art)
        if regions.count:
            lab.append(R.region_means(target, regions))
            rgb.append(R.region_rgb_means(target, regions))
    if not lab:
        raise ValueError(f"no regions in the {split} split of {data}")
    return np.concatenate(lab), np.concatenate(rgb)


def _read(path: Path) -> np.ndarray:
    return rgb256(read_image(path))


def _lab_of(rgb: np.ndarray) -> np.ndarray:
    return R.to_lab(np.clip(np.round(rgb), 0, 255).astype(np.uint8)[None])[0]


def constants(lab: np.ndarray, rgb: np.ndarray) -> dict[str, np.ndarray]:
    """The baselines' colours (CIELAB, (3,)) from training regions' CIELAB and sRGB colours."""
    return {
        "per-channel median of sRGB (L1 on RGB pixels)": _lab_of(np.median(rgb, axis=0)),
        "mean of sRGB (L2 on RGB pixels)": _lab_of(rgb.mean(axis=0)),
        "per-channel median of CIELAB": np.median(lab, axis=0),
        "geometric median in CIELAB": geometric_median(lab),
    }


def score(colour: np.ndarray, regions_lab: np.ndarray) -> dict[str, float]:
    """One ``colour`` (CIELAB) for every region: median dE76 and share within dE 10."""
    de = R.delta_e(np.broadcast_to(colour, regions_lab.shape), regions_lab)
    return {"median_de": float(np.median(de)), "within_10": float(np.mean(de < 10))}


def table(data: Path, *, step: int = 1) -> str:
    """The markdown table of every baseline on ``data``'s test regions."""
    train_lab, train_rgb = region_colours(data, "train", step=step)
    test_lab, _ = region_colours(data, "test")
    lines = [
        f"One colour for every region: {len(test_lab)} test regions; colours from "
        f"{len(train_lab)} training regions.",
        "",
        "| constant | colour (L*, a*, b*) | hue | median dE76 | within dE 10 |",
        "|---|---|---|---|---|",
    ]
    found = constants(train_lab, train_rgb)
    found["least median dE76 on the test regions themselves (an oracle: hedging's floor)"] = (
        best_constant(test_lab)
    )
    for name, colour in found.items():
        s = score(colour, test_lab)
        hue = R.hue_name(_rgb_of(colour))
        lab = ", ".join(f"{v:.0f}" for v in colour)
        lines.append(f"| {name} | {lab} | {hue} | {s['median_de']:.1f} | {s['within_10']:.0%} |")
    r = retrieval(data)
    lines += [
        "",
        "Not one colour, for comparison: each test drawing coloured like its most similar training "
        f"drawing (`retrieval`): median dE76 {r['median_de']:.1f}, {r['within_10']:.0%} within "
        "dE 10.",
    ]
    return "\n".join(lines)


def best_constant(regions_lab: np.ndarray, levels: int = 18) -> np.ndarray:
    """The sRGB colour, on a grid of ``levels`` per channel, whose CIELAB colour has the least
    median dE76 to ``regions_lab`` ((N, 3)): (3,) CIELAB."""
    grid = _srgb_grid(levels)
    labs = R.to_lab(grid[None])[0]
    medians = [np.median(R.delta_e(lab, regions_lab)) for lab in labs]
    return labs[int(np.argmin(medians))]


def _srgb_grid(levels: int) -> np.ndarray:
    steps = np.linspace(0, 255, levels).round().astype(np.uint8)
    return np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), -1).reshape(-1, 3)


def retrieval(data: Path) -> dict[str, float]:
    """Each test drawing coloured like its most similar training drawing (line art blurred by
    4 px and shrunk to 32x32, nearest by cosine similarity; each region takes the retrieved
    target's mean colour over the region's pixels): median dE76 and share within dE 10 over the
    test regions. A model that commits to a shape's likely colour, as a baseline."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    train = sorted(r["files"][0] for r in manifest if r["split"] == "train")
    if not train:
        raise ValueError(f"no training drawings in {data}")
    features = np.stack([_feature(_read(data / "train" / "A" / name)) for name in train])
    de: list[float] = []
    for name in sorted(r["files"][0] for r in manifest if r["split"] == "test"):
        art = _read(data / "test" / "A" / name)
        regions = R.find_regions(art)
        if not regions.count:
            continue
        nearest = train[int(np.argmax(features @ _feature(art)))]
        source = _read(data / "train" / "B" / nearest)
        target = _read(data / "test" / "B" / name)
        de += R.delta_e(R.region_means(source, regions), R.region_means(target, regions)).tolist()
    found = np.array(de)
    return {"median_de": float(np.median(found)), "within_10": float(np.mean(found < 10))}


def _feature(art: np.ndarray) -> np.ndarray:
    grey = Image.fromarray(art).convert("L").filter(ImageFilter.GaussianBlur(4))
    ink = 255.0 - np.asarray(grey.resize((32, 32), Image.Resampling.BILINEAR), np.float64)
    return ink.ravel() / (np.linalg.norm(ink) + 1e-9)


def _rgb_of(lab: np.ndarray) -> np.ndarray:
    """The sRGB 0-255 colour nearest to CIELAB ``lab`` on a 32-level grid (for its hue name)."""
    grid = _srgb_grid(32)
    labs = R.to_lab(grid[None])[0]
    return grid[np.argmin(np.linalg.norm(labs - lab, axis=1))].astype(np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="line-art dataset (manifest.json)")
    p.add_argument("--step", type=int, default=1, help="every N-th training drawing")
    p.add_argument("--results", type=Path, help="also write the table into this file's "
                   "'colour-baselines' section (docs/RESULTS.md)")  # fmt: skip
    args = p.parse_args(argv)
    if not (args.data / "manifest.json").is_file():
        p.error(f"{args.data} has no manifest.json: build it with train.datasets.openmoji")
    text = table(args.data, step=max(args.step, 1))
    print(text)
    if args.results:
        command = f"python -m train.colour_baselines --data {args.data} --step {args.step}"
        section = f"### One colour for every region: the no-hint metric's floor\n\n`{command}`\n\n"
        replace_section(args.results, section + text, name="colour-baselines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
