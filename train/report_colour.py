"""Line art -> colour, measured per region as a visitor sees it: docs/RESULTS.md's table and grid.

    python -m train.report_colour --data data/lineart \\
        --model shipped=path/to/old/lineart2color --model new=checkpoints/lineart2color

For every test drawing of ``--data`` (all sets; OpenMoji's 152 alone as well: the split the old
model was measured on) each model colours the line art with no hint, and again with one dab in
about half of the regions (a 6-px-radius disc of the target's colour at a random interior point of
the region, the same dabs for every model). ``train.regions`` gives the measures:

- no hints: median region dE76 against the target, share of regions within dE 10, the share of
  drawings whose dominant hue is yellow (targets' share beside it), distinct dominant hues;
- with dabs: median dE in the dabbed regions, share within dE 10, also split by the dab's colour:
  a colour, or grey (black and white included: on white paper a grey dab looks like pencil
  shading and a white one is invisible; ``networks.HintPropagation.CHROMA`` draws the line);
  *leak*: how far regions that got no dab but lie next to one moved toward its colour (dE toward
  the dab's colour, no-hint output minus dabbed output, median over such regions; 0: no leak);
- soft rims: the same dabs again with rims that fade into the paper over ``SOFT_RIM`` px, as the
  canvas's anti-aliased brush draws them: median dE in the dabbed regions, and the *ring*: dE76
  between the output's mean colour along the dab's rim (a band from ``DAB_RADIUS`` - 1 to
  ``DAB_RADIUS`` + 3 px from its centre, inside the eroded region) and the dab's colour (median;
  a model that saw only hard-edged dabs draws a dark ring there); the ring of the hard dabs too;
- dabs of another colour: the same dabs in a random colour at least ``OTHER_DE`` from the
  target's (neither near white nor near black), as a visitor asks for a green face or a blue
  tree: median dE between the dabbed region's colour and the asked one (the target with the
  dabbed shapes recoloured, ``train.hints.recolour_shape``), share within dE 10;
- smoothness: high-frequency energy inside flat target regions, output against target.

Writes ``docs/results/colour_grid.jpg`` (line art | each model without hints | the dabs | each
model with them | target; cats and shoes first) and the text between the ``colour`` markers of
docs/RESULTS.md (``--results``); ``--json`` keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from pix2pix.imageio import read_image
from train import regions as R
from train.hints import RECOLOUR_DARK, RECOLOUR_WHITE, paint_dab, recolour_shape
from train.report_lineart import grid

DAB_RADIUS = 6.0
SOFT_RIM = 1.0  # px: the canvas brush's rim at the model's scale (its doodles: about 1 px)
RING = (DAB_RADIUS - 1, DAB_RADIUS + 3)  # the band around a dab's centre where a ring would show
OTHER_DE = 30.0  # a dab of another colour is at least this far (dE76) from the target's
# Concepts shown first in the grid (the product's headline: cats and shoes), then a spread.
GRID_FIRST = ("cat-face", "running-shoe", "high-heeled-shoe", "handbag", "house", "automobile")


@dataclass
class Scores:
    """Per-model lists over the test drawings (and their regions)."""

    de: list[float] = field(default_factory=list)  # every region, no hints
    hinted_de: list[float] = field(default_factory=list)  # dabbed regions
    hinted_colour: list[bool] = field(default_factory=list)  # each dab: a colour, not grey
    leak: list[float] = field(default_factory=list)  # undabbed neighbours of dabbed regions
    soft_de: list[float] = field(default_factory=list)  # dabbed regions, soft-rimmed dabs
    ring: list[float] = field(default_factory=list)  # rim band vs the dab's colour, hard dabs
    soft_ring: list[float] = field(default_factory=list)  # the same, soft-rimmed dabs
    other_de: list[float] = field(default_factory=list)  # dabbed regions, dabs of another colour
    hues: list[str] = field(default_factory=list)  # dominant hue per drawing, no hints
    energy: list[float] = field(default_factory=list)  # flat regions, output (no hints)
    target_energy: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians and shares for the table."""
        de, hinted = np.array(self.de), np.array(self.hinted_de)
        yellow = sum(h == "yellow" for h in self.hues) / max(len(self.hues), 1)
        return {
            "regions": len(de),
            "median_de": float(np.median(de)) if len(de) else float("nan"),
            "within_10": float((de <= 10).mean()) if len(de) else float("nan"),
            "yellow_share": yellow,
            "distinct_hues": len(set(self.hues) - {"neutral"}),
            "hinted_regions": len(hinted),
            "hinted_median_de": float(np.median(hinted)) if len(hinted) else float("nan"),
            "hinted_within_10": float((hinted <= 10).mean()) if len(hinted) else float("nan"),
            **{
                f"{kind}_dabs": _dabbed(hinted[mask])
                for kind, mask in (
                    ("colour", np.array(self.hinted_colour, bool)),
                    ("grey", ~np.array(self.hinted_colour, bool)),
                )
            },
            "soft_dabs": _dabbed(np.array(self.soft_de)),
            "other_dabs": _dabbed(np.array(self.other_de)),
            "ring_median": _median_or_nan(self.ring),
            "soft_ring_median": _median_or_nan(self.soft_ring),
            "leak_median": _median_or_nan(self.leak),
            "leak_mean": float(np.mean(self.leak)) if self.leak else float("nan"),
            "flat_energy": float(np.nanmedian(self.energy)) if self.energy else float("nan"),
            "target_flat_energy": (
                float(np.nanmedian(self.target_energy)) if self.target_energy else float("nan")
            ),
        }


def _median_or_nan(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def _dabbed(de: np.ndarray) -> dict[str, float]:
    """Count, median dE and share within dE 10 of some dabbed regions."""
    if not len(de):
        return {"regions": 0, "median_de": float("nan"), "within_10": float("nan")}
    return {
        "regions": len(de),
        "median_de": float(np.median(de)),
        "within_10": float((de <= 10).mean()),
    }


def is_colour(rgb: np.ndarray) -> np.ndarray:
    """Which (..., 3) uint8-range RGB colours a hint model reads as colour dabs, not grey."""
    from pix2pix.networks import HintPropagation

    rgb = np.asarray(rgb, np.float64)
    return (rgb.max(-1) - rgb.min(-1)) / 255 > HintPropagation.CHROMA


def dab_points(regions: R.Regions, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Where the dabs go: about half of the regions (at least one), each at a random interior
    point: ``(region, y, x)`` with the region 0-based."""
    chosen = [i for i in range(regions.count) if rng.random() < 0.5]
    if not chosen and regions.count:
        chosen = [int(rng.integers(regions.count))]
    flat = regions.labels.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(regions.count + 2))
    points = []
    for i in chosen:
        pixels = order[starts[i + 1] : starts[i + 2]]  # the flat indices of region i + 1
        y, x = divmod(int(pixels[int(rng.integers(len(pixels)))]), regions.labels.shape[1])
        points.append((i, y, x))
    return points


def paint_points(
    line_art: np.ndarray,
    target: np.ndarray,
    points: list[tuple[int, int, int]],
    *,
    soft_edge: float = 0.0,
) -> np.ndarray:
    """The (H, W, 3) uint8 line art with a ``DAB_RADIUS`` disc of the target's colour at each
    of ``points`` (``dab_points``); with ``soft_edge`` its rim fades over that many pixels."""
    inp, tgt = _unit(line_art), _unit(target)
    lines = torch.from_numpy(line_art.min(axis=2) < R.LINE_LEVEL)
    for _, y, x in points:
        paint_dab(inp, tgt, (y, x), DAB_RADIUS, lines=lines, soft_edge=soft_edge)
    return _uint8(inp)


def _unit(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> a new (3, H, W) float tensor in [-1, 1] (train.hints' range)."""
    return torch.from_numpy(image.copy()).permute(2, 0, 1).float() / 127.5 - 1


def _uint8(image: torch.Tensor) -> np.ndarray:
    """``_unit``'s inverse: (3, H, W) in [-1, 1] -> (H, W, 3) uint8, rounded."""
    return ((image + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def other_colours(
    wanted: np.ndarray, rng: np.random.Generator, *, least: float = OTHER_DE
) -> np.ndarray:
    """For each CIELAB colour of ``wanted`` (n, 3), a random sRGB colour (uint8) at least
    ``least`` dE76 from it, neither near white nor near black (``train.hints.random_dab_colour``'s
    limits): (n, 3) uint8."""
    white = (RECOLOUR_WHITE + 1) * 127.5
    dark = (RECOLOUR_DARK + 1) * 127.5
    out = np.zeros((len(wanted), 3), np.uint8)
    for k, lab in enumerate(wanted):
        while True:
            rgb = rng.integers(0, 256, 3).astype(np.uint8)
            visible = rgb.min() <= white and rgb.max() > dark
            if visible and R.delta_e(R.to_lab(rgb[None])[0], lab) >= least:
                break
        out[k] = rgb
    return out


def recoloured(
    line_art: np.ndarray,
    target: np.ndarray,
    points: list[tuple[int, int, int]],
    colours: np.ndarray,
) -> np.ndarray:
    """The (H, W, 3) uint8 target with the shape under each of ``points`` shifted to its colour
    of ``colours`` ((n, 3) uint8), as ``train.hints.recolour_shape`` does in training."""
    tgt = _unit(target)
    lines = torch.from_numpy(line_art.min(axis=2) < R.LINE_LEVEL)
    for (_, y, x), rgb in zip(points, colours, strict=True):
        colour = torch.from_numpy(rgb.astype(np.float32)) / 127.5 - 1
        recolour_shape(tgt, lines, (y, x), colour)
    return _uint8(tgt)


def dab_regions(
    line_art: np.ndarray, target: np.ndarray, regions: R.Regions, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """Line art with a ``DAB_RADIUS`` disc of the target's colour in about half of the regions
    (at least one), at a random interior point of each; returns it and the dabbed regions
    (0-based)."""
    points = dab_points(regions, rng)
    return paint_points(line_art, target, points), [i for i, _, _ in points]


def ring_de(
    output: np.ndarray, regions: R.Regions, points: list[tuple[int, int, int]], colours: np.ndarray
) -> list[float]:
    """For each dab of ``points`` (colours: (n, 3) CIELAB), dE76 between ``output``'s mean colour
    in the ``RING`` band around the dab's centre (inside its eroded region) and the dab's colour;
    dabs whose band holds no pixel of their region are left out."""
    lab = R.to_lab(output)
    yy, xx = np.mgrid[: output.shape[0], : output.shape[1]]
    out = []
    for (i, y, x), colour in zip(points, colours, strict=True):
        d = np.hypot(yy - y, xx - x)
        band = (d >= RING[0]) & (d <= RING[1]) & (regions.labels == i + 1)
        if band.any():
            out.append(float(R.delta_e(lab[band].mean(0), colour)))
    return out


def score_drawing(
    outputs: tuple[np.ndarray, ...],
    target: np.ndarray,
    regions: R.Regions,
    dabbed: list[int],
    dab_colours: np.ndarray,
    scores: Scores,
    points: list[tuple[int, int, int]] | None = None,
    other: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Add one drawing's figures to ``scores``: ``outputs`` is (no hints, with dabs) or (no
    hints, with dabs, with soft-rimmed dabs); the rings need the dabs' ``points``; ``other`` is
    (output, recoloured target) for the dabs of another colour."""
    plain, hinted = outputs[:2]
    want = R.region_means(target, regions)
    got = R.region_means(plain, regions)
    got_h = R.region_means(hinted, regions)
    scores.de += R.delta_e(got, want).tolist()
    scores.hinted_de += R.delta_e(got_h[dabbed], want[dabbed]).tolist()
    scores.hinted_colour += is_colour(R.region_rgb_means(target, regions)[dabbed]).tolist()
    if points is not None:
        scores.ring += ring_de(hinted, regions, points, dab_colours)
    if len(outputs) > 2:
        got_s = R.region_means(outputs[2], regions)
        scores.soft_de += R.delta_e(got_s[dabbed], want[dabbed]).tolist()
        if points is not None:
            scores.soft_ring += ring_de(outputs[2], regions, points, dab_colours)
    if other is not None:
        asked = R.region_means(other[1], regions)[dabbed]
        scores.other_de += R.delta_e(R.region_means(other[0], regions)[dabbed], asked).tolist()
    near = R.neighbours(regions)
    dab_of = dict(zip(dabbed, dab_colours, strict=True))
    for j in range(regions.count):
        if j in dab_of:
            continue
        for i in near[j] & set(dabbed):
            toward = R.delta_e(got[j], dab_of[i]) - R.delta_e(got_h[j], dab_of[i])
            scores.leak.append(float(max(toward, 0.0)))
    scores.hues.append(R.dominant_hue(plain, regions))
    e_out, e_tgt = R.flat_energy(plain, target, regions)
    scores.energy.append(e_out)
    scores.target_energy.append(e_tgt)


def rgb256(img: Image.Image) -> np.ndarray:
    """``img`` as the metric reads it: RGB, resized to 256 x 256 (bicubic), (256, 256, 3) uint8."""
    return np.asarray(img.convert("RGB").resize((256, 256), Image.Resampling.BICUBIC))


def evaluate(
    data: Path, models: dict[str, Path], *, seed: int = 0, limit: int | None = None
) -> tuple[dict[str, dict[str, Scores]], dict[str, list[Image.Image]]]:
    """Score every model on ``data``'s test split; returns scores per subset and model, and the
    grid's rows (keyed by file name)."""
    from pix2pix.hub import load_generator
    from pix2pix.inference import Translator

    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    sets = {
        f: r.get("set", "openmoji") for r in manifest if r["split"] == "test" for f in r["files"]
    }
    files = sorted(sets)[:limit] if limit else sorted(sets)
    translators = {
        name: Translator(load_generator(path, device="cpu"), device="cpu", backend="eager")
        for name, path in models.items()
    }
    subsets = ("all", "openmoji")
    scores = {s: {m: Scores() for m in models} for s in subsets}
    target_hues: list[tuple[str, str]] = []  # (file, the target's dominant hue)
    shown: dict[str, list[Image.Image]] = {}
    for n, name in enumerate(tqdm(files, desc="test drawings")):
        art = rgb256(read_image(data / "test" / "A" / name))
        target = rgb256(read_image(data / "test" / "B" / name))
        regions = R.find_regions(art)
        if regions.count == 0:
            continue
        rng = np.random.default_rng([seed, n])
        points = dab_points(regions, rng)
        dabbed = [i for i, _, _ in points]
        dabbed_art = paint_points(art, target, points)
        soft_art = paint_points(art, target, points, soft_edge=SOFT_RIM)
        dab_colours = R.region_means(target, regions)[dabbed]
        other_rng = np.random.default_rng([seed, n, 1])
        other_target = recoloured(art, target, points, other_colours(dab_colours, other_rng))
        other_art = paint_points(art, other_target, points)
        target_hues.append((name, R.dominant_hue(target, regions)))
        row = [Image.fromarray(art)]
        dabbed_outputs = []
        for model, translate in translators.items():
            outs = tuple(rgb256(translate(Image.fromarray(a))) for a in (art, dabbed_art, soft_art))
            other = (rgb256(translate(Image.fromarray(other_art))), other_target)
            for subset in subsets:
                if subset == "all" or sets[name] == subset:
                    score_drawing(
                        outs,
                        target,
                        regions,
                        dabbed,
                        dab_colours,
                        scores[subset][model],
                        points,
                        other,
                    )
            row.append(Image.fromarray(outs[0]))
            dabbed_outputs.append(Image.fromarray(outs[1]))
        shown[name] = [*row, Image.fromarray(dabbed_art), *dabbed_outputs, Image.fromarray(target)]
    for subset in subsets:
        hues = [h for f, h in target_hues if subset == "all" or sets[f] == subset]
        scores[subset]["target"] = Scores(hues=hues)
    return scores, shown


def _grid_rows(shown: dict[str, list[Image.Image]], count: int = 12) -> list[list[Image.Image]]:
    first = [
        name
        for concept in GRID_FIRST
        for name in sorted(shown)
        if name.removesuffix(".png").split("__")[-1] == concept
    ]
    rest = [n for n in sorted(shown) if n not in first]
    step = max(len(rest) // max(count - len(first), 1), 1)
    return [shown[n] for n in (first + rest[::step])[:count]]


def doodles(folder: Path, figures: Path) -> str:
    """The browser doodles (``tests/test_lineart_browser.py`` saves them): a grid of drawing |
    output | drawing with a dab | output, and a table of how far each dabbed shape moved toward the
    dab's colour (dE76 to it before and after). Empty when the folder holds none."""
    from train.doodles import DABS

    rows, lines = [], []
    for name, (swatch, value, stroke) in DABS.items():
        files = [folder / f"{name}-{k}.png" for k in ("input", "output", "dab-input", "dab-output")]
        if not all(f.is_file() for f in files):
            continue
        images = [read_image(f) for f in files]
        rows.append(images)
        art = rgb256(images[0])
        regions = R.find_regions(art)
        label = regions.full[int(stroke[0][1] * 256), int(stroke[0][0] * 256)]
        if label == 0:
            lines.append(f"| {name} | {swatch} | not in a closed shape | |")
            continue
        want = R.to_lab(np.array([[int(value[i : i + 2], 16) for i in (1, 3, 5)]], np.uint8))[0]
        before = R.region_means(rgb256(images[1]), regions)[label - 1]
        after = R.region_means(rgb256(images[3]), regions)[label - 1]
        lines.append(
            f"| {name} | {swatch} | {R.delta_e(before, want):.1f} | {R.delta_e(after, want):.1f} |"
        )
    if not rows:
        return ""
    header = ["doodle", "output", "with a dab", "output"]
    grid(rows, header, cell=128).save(figures / "colour_doodles.jpg", quality=90)
    return (
        "Freehand doodles drawn with the mouse on the app's canvas in Chromium "
        "(`tests/test_lineart_browser.py`), then one dab of the colour pen inside the main shape; "
        "each output is what the app showed. dE76 between the dabbed shape's mean colour "
        "(eroded) and the dab's colour, without and with the dab:\n\n"
        "| doodle | dab | dE without | dE with |\n|---|---|---|---|\n"
        + "\n".join(lines)
        + "\n\n![doodles without and with a colour dab](results/colour_doodles.jpg)\n"
    )


def table(scores: dict[str, Scores], models: list[str]) -> str:
    """The markdown table of one subset: a row per measure, a column per model."""
    s = {m: scores[m].summary() for m in models}
    t = scores["target"]
    t_yellow = sum(h == "yellow" for h in t.hues) / max(len(t.hues), 1)
    t_hues = len(set(t.hues) - {"neutral"})
    rows = [
        ("regions scored (no hints)", lambda m: f"{s[m]['regions']}"),
        ("median region dE76, no hints", lambda m: f"{s[m]['median_de']:.1f}"),
        ("regions within dE 10, no hints", lambda m: f"{s[m]['within_10']:.0%}"),
        (
            f"dominant hue yellow (targets: {t_yellow:.0%})",
            lambda m: f"{s[m]['yellow_share']:.0%}",
        ),
        (f"distinct dominant hues (targets: {t_hues})", lambda m: f"{s[m]['distinct_hues']}"),
        ("median dE76 in dabbed regions", lambda m: f"{s[m]['hinted_median_de']:.1f}"),
        ("dabbed regions within dE 10", lambda m: f"{s[m]['hinted_within_10']:.0%}"),
        (
            "dabs of a colour: regions, median dE76, within dE 10",
            lambda m: _dab_cell(s[m]["colour_dabs"]),
        ),
        (
            "grey, black or white dabs: regions, median dE76, within dE 10",
            lambda m: _dab_cell(s[m]["grey_dabs"]),
        ),
        (
            f"soft-rimmed dabs ({SOFT_RIM:g} px, as the canvas draws them): median dE76, within "
            "dE 10",
            lambda m: f"{s[m]['soft_dabs']['median_de']:.1f}, {s[m]['soft_dabs']['within_10']:.0%}",
        ),
        (
            f"dabs of another colour (random, at least dE {OTHER_DE:g} from the target's): "
            "median dE76 to the asked colour, within dE 10",
            lambda m: (
                f"{s[m]['other_dabs']['median_de']:.1f}, {s[m]['other_dabs']['within_10']:.0%}"
            ),
        ),
        (
            "ring: dE76 of the output around a dab's rim to its colour, hard / soft rims (median)",
            lambda m: f"{s[m]['ring_median']:.1f} / {s[m]['soft_ring_median']:.1f}",
        ),
        (
            "leak: undabbed neighbours' move toward the dab (median / mean dE)",
            lambda m: f"{s[m]['leak_median']:.1f} / {s[m]['leak_mean']:.1f}",
        ),
        (
            "high-frequency energy in flat regions (targets: "
            f"{s[models[0]]['target_flat_energy']:.2f})",
            lambda m: f"{s[m]['flat_energy']:.2f}",
        ),
    ]
    lines = ["| measure | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    lines += [f"| {label} | " + " | ".join(fn(m) for m in models) + " |" for label, fn in rows]
    return "\n".join(lines)


def _dab_cell(d: dict[str, float]) -> str:
    return f"{d['regions']}, {d['median_de']:.1f}, {d['within_10']:.0%}"


def replace_section(results: Path, text: str, *, name: str = "colour") -> None:
    """Put ``text`` between the ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` markers of
    ``results`` (the section is appended when the markers are not there)."""
    old = results.read_text(encoding="utf-8") if results.is_file() else ""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        new = old[: old.index(begin)] + block + old[old.index(end) + len(end) :]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.report_colour``; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="line-art dataset (test split)")
    p.add_argument(
        "--model", action="append", required=True, metavar="NAME=PATH", help="models to compare"
    )
    p.add_argument("--results", type=Path, default=Path("docs/RESULTS.md"))
    p.add_argument("--figures", type=Path, default=Path("docs/results"))
    p.add_argument("--json", type=Path, help="also write every figure here")
    p.add_argument("--limit", type=int, help="only the first N test drawings (a quick look)")
    p.add_argument("--seed", type=int, default=0, help="seeds where the dabs go")
    p.add_argument("--intro", type=Path, help="markdown put above the tables")
    p.add_argument(
        "--doodles",
        type=Path,
        default=Path("test-artifacts/doodles"),
        help="the browser test's doodles (tests/test_lineart_browser.py)",
    )
    args = p.parse_args(argv)
    models = {}
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--model takes NAME=PATH, got {item!r}")
        models[name] = Path(path)
    if not (args.data / "manifest.json").is_file():
        p.error(f"{args.data} has no manifest.json: build it with train/recipes/lineart.sh data")
    scores, shown = evaluate(args.data, models, seed=args.seed, limit=args.limit)
    names = list(models)
    args.figures.mkdir(parents=True, exist_ok=True)
    header = [
        "line art",
        *(f"{m}" for m in names),
        "dabs",
        *(f"{m} + dabs" for m in names),
        "target",
    ]
    grid(_grid_rows(shown), header, cell=128).save(args.figures / "colour_grid.jpg", quality=90)
    counts = {
        "all": len(scores["all"]["target"].hues),
        "openmoji": len(scores["openmoji"]["target"].hues),
    }
    intro = args.intro.read_text(encoding="utf-8").rstrip() + "\n\n" if args.intro else ""
    text = (
        f"{intro}All test drawings ({counts['all']}: every set):\n\n{table(scores['all'], names)}"
        f"\n\nOpenMoji's test drawings only ({counts['openmoji']}):\n\n"
        f"{table(scores['openmoji'], names)}\n\n"
        "![line art, outputs without and with dabs, target](results/colour_grid.jpg)\n"
    )
    drawn = doodles(args.doodles, args.figures)
    if drawn:
        text += "\n" + drawn
    replace_section(args.results, text)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    s: {m: v.summary() for m, v in d.items() if m != "target"}
                    for s, d in scores.items()
                },
                indent=1,
            )
            + "\n"
        )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
