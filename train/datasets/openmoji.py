"""OpenMoji line art paired with its colour version: a line-art -> colour dataset.

OpenMoji (openmoji.org; CC BY-SA 4.0) draws every emoji twice, aligned on a 72x72 viewBox:
``black/svg/<CODE>.svg`` (black outlines on transparent) and ``color/svg/<CODE>.svg`` (the same
outlines over colour fills). This script renders both on white and writes the paired layout the
trainer reads::

    OUT/train/A/*.png  OUT/train/B/*.png     line art (A) and colour (B), same file names
    OUT/val/...        OUT/test/...
    OUT/manifest.json  every emoji: code, name, group, split, files
    OUT/licence.txt    the credit and licence the data (and models trained on it) carry

    python -m train.datasets.openmoji --out data/openmoji --fetch   # npm pack openmoji@17.0.0
    python -m train.datasets.openmoji --out data/openmoji --source openmoji-17.0.0.tgz

What is kept, and why:
- Splits are made by *base emoji* (the first code point of the sequence), so skin-tone and other
  variants of one emoji never sit in two splits. A few well-known drawings (``HOLDOUT``: a cat face,
  shoes, a bag, a house, a fish...) always go to the test split, so the app's examples and the
  report show line art the model never saw.
- Line art that occurs with more than one colouring (skin tones, coloured squares and hearts,
  flags) is ambiguous: no model can tell from the lines which colour is meant, and an L1 loss
  learns their average. Only the first of such a set (OpenMoji's own order: the default skin tone)
  is kept. The ``flags`` and ``component`` groups are left out altogether (a flag's colours are
  not in its outline).
- Training pairs are augmented for freehand drawing (``--widths``): every stroke width in both SVGs
  is scaled by each factor, so thin and thick lines stay exactly aligned with the colour; variants
  other than 1.0 also get small gaps cut into their lines (only in A: people do not close their
  shapes, and the colour should fill them anyway). Mirroring is left to the trainer.

Rendering uses resvg (``resvg-py``, a self-contained wheel): on this project's machine (AMD EPYC)
it rendered a 256-px emoji in about 26 ms, and unlike CairoSVG it needs no system library.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from train.datasets import npm

PACKAGE = "openmoji@17.0.0"
CREDIT = "OpenMoji (openmoji.org), CC BY-SA 4.0"
LICENCE_TEXT = f"""\
Data: {CREDIT}
OpenMoji - the open-source emoji and icon project. License: CC BY-SA 4.0
https://creativecommons.org/licenses/by-sa/4.0/

These images were rendered from the OpenMoji SVG files ({PACKAGE} on the npm registry) by
pix2pix studio's train/datasets/openmoji.py: both versions rendered on white, stroke widths scaled
for augmentation, small gaps cut into some line drawings. They are an adaptation and are shared
under the same licence (CC BY-SA 4.0). Models trained on them are shared under CC BY-SA 4.0 too.
"""
SPLITS = ("train", "val", "test")
EXCLUDED_GROUPS = ("flags", "component")
HOLDOUT = (
    "1F431",  # cat face
    "1F45F",  # running shoe
    "1F45E",  # man's shoe
    "1F460",  # high-heeled shoe
    "1F45C",  # handbag
    "1F3E0",  # house
    "1F41F",  # fish
    "1F34E",  # red apple
    "1F697",  # automobile
    "1F333",  # deciduous tree
)
_STROKE_WIDTH = re.compile(r"(stroke-width\s*[=:]\s*\"?)([0-9]*\.?[0-9]+)")


@dataclass(frozen=True)
class Emoji:
    """One OpenMoji drawing: its code (file stem), name, topic group and base emoji."""

    code: str
    name: str
    group: str
    order: int

    @property
    def base(self) -> str:
        """The first code point: variants of one emoji (skin tones, ZWJ sequences) share it."""
        return self.code.split("-")[0]


@dataclass
class Record:
    """What the manifest says of one emoji."""

    code: str
    name: str
    group: str
    split: str
    files: list[str]
    set: str = "openmoji"
    licence: str = "CC-BY-SA-4.0"


def scale_strokes(svg: str, factor: float) -> str:
    """``svg`` with every ``stroke-width`` (attribute or CSS) multiplied by ``factor``."""
    return _STROKE_WIDTH.sub(lambda m: f"{m.group(1)}{float(m.group(2)) * factor:.4g}", svg)


def render(svg: str, size: int) -> Image.Image:
    """Render SVG markup on white to an RGB image of ``size`` x ``size`` pixels.

    Raises ValueError when resvg cannot parse or render the markup.
    """
    import resvg_py

    png = resvg_py.svg_to_bytes(
        svg_string=svg, width=size, height=size, background="#ffffff", skip_system_fonts=True
    )
    with Image.open(io.BytesIO(png)) as img:
        return img.convert("RGB")


def cut_gaps(line_art: Image.Image, rng: np.random.Generator, *, count: int = 6) -> Image.Image:
    """White discs over ``count`` random line pixels: open shapes like a quick freehand drawing.

    Disc radius is 2-3.5 % of the image side (5-9 px at 256 px), a gap a person leaves.
    """
    arr = np.asarray(line_art).copy()
    dark = np.argwhere(arr.min(axis=2) < 128)
    if len(dark) == 0:
        return line_art
    side = arr.shape[0]
    yy, xx = np.mgrid[: arr.shape[0], : arr.shape[1]]
    for y, x in dark[rng.choice(len(dark), size=min(count, len(dark)), replace=False)]:
        radius = rng.uniform(0.02, 0.035) * side
        arr[(yy - y) ** 2 + (xx - x) ** 2 <= radius**2] = 255
    return Image.fromarray(arr)


def split_of(emoji: Emoji, *, val: float, test: float, holdout: Iterable[str] = HOLDOUT) -> str:
    """The split of ``emoji``, decided by its base emoji only (stable across runs and machines)."""
    if emoji.base in set(holdout):
        return "test"
    u = int(hashlib.sha256(emoji.base.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test else "val" if u < test + val else "train"


def read_catalogue(root: Path) -> list[Emoji]:
    """The emoji whose two SVGs are both present under ``root`` (an unpacked ``package/``).

    Raises FileNotFoundError when ``root`` does not hold OpenMoji's black/ and color/ folders.
    """
    black, color = root / "black" / "svg", root / "color" / "svg"
    if not black.is_dir() or not color.is_dir():
        raise FileNotFoundError(
            f"{root} is not an unpacked OpenMoji package (no black/svg and color/svg folders); "
            f"pass the npm tarball or its package/ folder with --source, or use --fetch"
        )
    meta: dict[str, dict] = {}
    catalogue = root / "data" / "openmoji.json"
    if catalogue.is_file():
        meta = {e["hexcode"]: e for e in json.loads(catalogue.read_text(encoding="utf-8"))}
    emoji = []
    for i, path in enumerate(sorted(black.glob("*.svg"))):
        code = path.stem
        if not (color / path.name).is_file():
            continue
        info = meta.get(code, {})
        order = int(info.get("order") or 0) or 100_000 + i
        emoji.append(Emoji(code, info.get("annotation", code), info.get("group", ""), order))
    return sorted(emoji, key=lambda e: (e.order, e.code))


def _render_pair(job: tuple[str, str, int, Sequence[float], int]) -> list[tuple[str, bytes, bytes]]:
    """Render one emoji's variants: (suffix, line-art PNG, colour PNG) for each width factor."""
    black_svg, color_svg, size, widths, seed = job
    rng = np.random.default_rng(seed)
    out = []
    for factor in widths:
        a = render(scale_strokes(black_svg, factor), size)
        b = render(scale_strokes(color_svg, factor), size)
        if factor != 1.0:
            a = cut_gaps(a, rng)
        out.append((_suffix(factor), _png(a), _png(b)))
    return out


def _suffix(factor: float) -> str:
    return "" if factor == 1.0 else f"_w{factor:g}"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _line_key(png: bytes) -> bytes:
    """A hash of the line art's dark pixels: equal for drawings with the same lines."""
    with Image.open(io.BytesIO(png)) as img:
        dark = np.asarray(img.convert("L")) < 128
    return hashlib.sha256(np.packbits(dark).tobytes()).digest()


def build(
    root: Path,
    out: Path,
    *,
    size: int = 256,
    widths: Sequence[float] = (1.0, 0.6, 1.6),
    val: float = 0.08,
    test: float = 0.08,
    exclude_groups: Sequence[str] = EXCLUDED_GROUPS,
    holdout: Sequence[str] = HOLDOUT,
    limit: int | None = None,
    workers: int = 1,
    seed: int = 0,
) -> list[Record]:
    """Render OpenMoji under ``root`` into the paired layout under ``out``; return the manifest.

    Training emoji get one pair per factor in ``widths``; val and test emoji only the drawing as
    designed (factor 1.0). Images are RGB PNGs of ``size`` x ``size`` on white. ``out`` is
    replaced. Raises FileNotFoundError (not OpenMoji) and ValueError (bad options, nothing left).
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if not widths or any(w <= 0 for w in widths):
        raise ValueError(f"widths must be positive stroke-width factors, got {list(widths)}")
    if 1.0 not in widths:
        widths = (1.0, *widths)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"val and test fractions must be in [0, 1) with sum < 1: {val}, {test}")
    emoji = [e for e in read_catalogue(root) if e.group not in set(exclude_groups)]
    if limit is not None:
        emoji = emoji[:limit]
    if not emoji:
        raise ValueError(f"no OpenMoji drawings left under {root} after excluding {exclude_groups}")

    jobs, kept, same_file = [], [], set()
    for i, e in enumerate(emoji):
        black = (root / "black" / "svg" / f"{e.code}.svg").read_text(encoding="utf-8")
        if black in same_file:
            continue  # byte-identical line art (skin tones): not worth rendering to find out
        same_file.add(black)
        split = split_of(e, val=val, test=test, holdout=holdout)
        color = (root / "color" / "svg" / f"{e.code}.svg").read_text(encoding="utf-8")
        jobs.append((black, color, size, widths if split == "train" else (1.0,), seed + i))
        kept.append(e)

    if out.exists():
        shutil.rmtree(out)
    for split in SPLITS:
        (out / split / "A").mkdir(parents=True)
        (out / split / "B").mkdir(parents=True)

    records: list[Record] = []
    seen: set[bytes] = set()
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        results = pool.map(_render_pair, jobs, chunksize=8) if pool else map(_render_pair, jobs)
        for e, variants in tqdm(zip(kept, results, strict=True), total=len(kept), desc="render"):
            key = _line_key(variants[0][1])
            if key in seen:
                continue  # same lines as an earlier emoji: another colouring of it
            seen.add(key)
            split = split_of(e, val=val, test=test, holdout=holdout)
            files = []
            for suffix, a, b in variants:
                name = f"{e.code}{suffix}.png"
                (out / split / "A" / name).write_bytes(a)
                (out / split / "B" / name).write_bytes(b)
                files.append(name)
            records.append(Record(e.code, e.name, e.group, split, files))
    finally:
        if pool:
            pool.shutdown()

    (out / "manifest.json").write_text(
        json.dumps([asdict(r) for r in records], indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    (out / "licence.txt").write_text(LICENCE_TEXT, encoding="utf-8")
    return records


def main(argv: list[str] | None = None) -> None:
    """``python -m train.datasets.openmoji``: build the line-art -> colour dataset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (replaced)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", type=Path, help="openmoji npm tarball, or its unpacked folder")
    src.add_argument("--fetch", action="store_true", help=f"download with `npm pack {PACKAGE}`")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument(
        "--widths",
        default="1.0,0.6,1.6",
        help="stroke-width factors for training pairs, comma-separated (1.0: as drawn)",
    )
    p.add_argument("--val", type=float, default=0.08, help="fraction of base emoji for val")
    p.add_argument("--test", type=float, default=0.08, help="fraction of base emoji for test")
    p.add_argument("--limit", type=int, help="only the first N drawings (a quick trial)")
    p.add_argument("--workers", type=int, default=2, help="rendering processes")
    p.add_argument("--seed", type=int, default=0, help="seeds the gaps cut into line art")
    args = p.parse_args(argv)
    try:
        widths = [float(w) for w in args.widths.split(",") if w.strip()]
    except ValueError:
        p.error(f"--widths must be numbers separated by commas, got {args.widths!r}")
    with tempfile.TemporaryDirectory() as tmp:
        source = npm.pack(PACKAGE, Path(tmp)) if args.fetch else args.source
        if not source.exists():
            p.error(f"--source {source} does not exist")
        root = npm.unpack(source, Path(tmp), "black")
        records = build(
            root,
            args.out,
            size=args.size,
            widths=widths,
            val=args.val,
            test=args.test,
            limit=args.limit,
            workers=args.workers,
            seed=args.seed,
        )
    counts = {s: sum(r.split == s for r in records) for s in SPLITS}
    pairs = {s: len(list((args.out / s / "A").glob("*.png"))) for s in SPLITS}
    print(
        f"{len(records)} drawings -> {args.out}: "
        + ", ".join(f"{s} {counts[s]} ({pairs[s]} pairs)" for s in SPLITS)
    )


if __name__ == "__main__":
    main()
