"""Line art derived from flat colour emoji (Iconify JSON packages), added to a line-art dataset.

The Iconify JSON packages on npm (``@iconify-json/<set>``) hold every icon of an emoji set as an
SVG body in ``package/icons.json``, and the set's name, author and licence in
``package/info.json``. Their colour sets use flat fills; their black versions are silhouettes with
solid black areas, which is not how people draw. So this builder derives the line art from the
colour version itself:

- the icon is rendered twice at ``size`` px: anti-aliased (the target) and with
  ``shape-rendering="crispEdges"`` (one exact colour per pixel, flat fills being flat);
- every boundary between two different colours of the crisp render is a line, thickened to a
  stroke width drawn per icon (2-5 px at 256 px: several pen widths), and so are the icon's dark,
  thin marks (outlines, eyes, mouths; large dark areas give only their outline);
- line art (A) is those lines, black on white, with a few gaps cut as a quick drawing leaves them
  (training split only); the target (B) is the colour render with the same lines painted black,
  as OpenMoji's colour drawings keep their outlines.

Icons are left out when their fills are not flat (gradients), when they are a skin-tone or flag
variant (their colours are not in their outlines), when their line art is nearly empty or nearly
solid, or when it equals an earlier icon's (another colouring of the same drawing: no model can
tell from the lines which colour is meant).

Splits are by *concept*, the icon's name (``cat-face``), shared across sets: a concept that
OpenMoji's manifest in ``--into`` already places (by its annotation) keeps that split in every
set, so a cat face is in the test split everywhere; other names are split by a hash of the name.
Files are named ``<set>__<name>.png``; the manifest (``manifest.json``, shared with OpenMoji)
records each image's set, concept, licence and split.

    python -m train.datasets.iconify --into data/lineart --fetch fluent-emoji-flat twemoji
    python -m train.datasets.iconify --into data/lineart --source iconify-json-noto-1.2.9.tgz
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm.auto import tqdm

from train.datasets import npm
from train.datasets.openmoji import SPLITS, cut_gaps, render

# Icons of these names carry colours their outlines do not tell (or are not drawings).
_SKIPPED_NAMES = re.compile(r"skin-tone|^flag-|^flag$|^regional-indicator|^keycap|^component-")
# Stroke widths of the derived lines, in pixels at 256 px (drawn uniformly per icon).
LINE_WIDTHS = (2.0, 5.0)
# Crisp-render pixels darker than this (0-255 luminance) are the icon's own dark marks.
DARK_LEVEL = 70
# Dark marks thicker than this (pixels at 256 px) are areas, not lines: only their outline is kept.
THIN_MARK = 4
# Line art outside these shares of line pixels is nearly empty or nearly solid: left out.
LINE_SHARE = (0.01, 0.35)


@dataclass(frozen=True)
class IconSet:
    """An Iconify package: its prefix, title, licence (SPDX), author and icons."""

    prefix: str
    title: str
    licence: str
    author: str
    width: int
    height: int
    icons: dict[str, dict]


def read_package(root: Path) -> IconSet:
    """Read an unpacked Iconify JSON package (``package/`` with ``icons.json`` and ``info.json``).

    Raises FileNotFoundError when the folder is not one, ValueError when the licence is missing
    or when ``package.json`` and ``info.json`` disagree on it.
    """
    icons_file, info_file = root / "icons.json", root / "info.json"
    if not icons_file.is_file() or not info_file.is_file():
        raise FileNotFoundError(
            f"{root} is not an unpacked Iconify JSON package (no icons.json and info.json); "
            "pass an @iconify-json/<set> npm tarball or its package/ folder"
        )
    data = json.loads(icons_file.read_text(encoding="utf-8"))
    info = json.loads(info_file.read_text(encoding="utf-8"))
    licence = (info.get("license") or {}).get("spdx")
    if not licence:
        raise ValueError(f"{info_file} names no licence (license.spdx): not used without one")
    package_file = root / "package.json"
    if package_file.is_file():  # npm's own licence field must say the same
        declared = json.loads(package_file.read_text(encoding="utf-8")).get("license")
        if declared and declared != licence:
            raise ValueError(
                f"{package_file} says licence {declared!r} but {info_file} says {licence!r}: "
                "check the package's terms before using it"
            )
    return IconSet(
        prefix=data["prefix"],
        title=info.get("name", data["prefix"]),
        licence=licence,
        author=(info.get("author") or {}).get("name", ""),
        width=int(data.get("width", 16)),
        height=int(data.get("height", 16)),
        icons=data["icons"],
    )


def usable(name: str, body: str) -> bool:
    """Whether an icon can give line art: flat fills, no raster or text, not a colour variant."""
    if _SKIPPED_NAMES.search(name):
        return False
    return not any(tag in body for tag in ("Gradient", "<image", "<text", "<pattern", "filter="))


def wrap(body: str, width: int, height: int, *, crisp: bool = False) -> str:
    """An SVG document of an Iconify body; ``crisp`` turns anti-aliasing off."""
    extra = ' shape-rendering="crispEdges"' if crisp else ""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"{extra}>'
        f"{body}</svg>"
    )


def derive_lines(crisp: np.ndarray, width: float) -> np.ndarray:
    """Line pixels of a crisp (one colour per pixel) render: (H, W) bool.

    Args:
        crisp: (H, W, 3) uint8 render without anti-aliasing, on white.
        width: stroke width in pixels.

    Region boundaries (neighbouring pixels of different colours) and thin dark marks, thickened
    to ``width``.
    """
    label = crisp.astype(np.int32)
    label = (label[..., 0] << 16) | (label[..., 1] << 8) | label[..., 2]
    edge = np.zeros(label.shape, bool)
    edge[:, 1:] |= label[:, 1:] != label[:, :-1]
    edge[1:, :] |= label[1:, :] != label[:-1, :]
    luminance = crisp @ np.array([0.299, 0.587, 0.114])
    dark = luminance < DARK_LEVEL
    side = crisp.shape[1]
    thick = ndimage.binary_opening(dark, structure=_disc(THIN_MARK * side / 256 / 2))
    radius = max(width / 2 - 0.5, 0.0)
    lines = ndimage.binary_dilation(edge, structure=_disc(radius)) if radius > 0 else edge
    return lines | (dark & ~thick)


def _disc(radius: float) -> np.ndarray:
    r = max(int(np.ceil(radius)), 0)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return yy**2 + xx**2 <= radius**2 + 0.25


def pair(
    body: str, width: int, height: int, size: int, rng: np.random.Generator, *, gaps: bool
) -> tuple[Image.Image, Image.Image, bytes] | None:
    """(line art, colour target, a hash of the lines before gaps) for one icon at ``size`` px, or
    None when the lines are unusable (nearly empty or nearly solid)."""
    target = np.asarray(render(wrap(body, width, height), size)).copy()
    crisp = np.asarray(render(wrap(body, width, height, crisp=True), size))
    stroke = rng.uniform(*LINE_WIDTHS) * size / 256
    lines = derive_lines(crisp, stroke)
    share = lines.mean()
    if not LINE_SHARE[0] <= share <= LINE_SHARE[1]:
        return None
    art = np.full_like(target, 255)
    art[lines] = 0
    target[lines] = 0
    key = hashlib.sha256(np.packbits(lines).tobytes()).digest()
    line_art = Image.fromarray(art)
    if gaps:
        line_art = cut_gaps(line_art, rng)
    return line_art, Image.fromarray(target), key


def slug(text: str) -> str:
    """A concept name as Iconify spells it: ``"cat face"`` -> ``"cat-face"``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def concept_split(name: str, known: dict[str, str], *, val: float, test: float) -> str:
    """The split of a concept: OpenMoji's where it has one, else a stable hash of the name."""
    if name in known:
        return known[name]
    u = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2**32
    return "test" if u < test else "val" if u < test + val else "train"


def _job(args: tuple[str, int, int, int, int, bool]) -> tuple[bytes, bytes, bytes] | None:
    body, width, height, size, seed, gaps = args
    made = pair(body, width, height, size, np.random.default_rng(seed), gaps=gaps)
    if made is None:
        return None
    return _png(made[0]), _png(made[1]), made[2]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def add_set(
    icon_set: IconSet,
    into: Path,
    *,
    size: int = 256,
    val: float = 0.08,
    test: float = 0.08,
    limit: int | None = None,
    workers: int = 1,
    seed: int = 0,
) -> list[dict]:
    """Render ``icon_set``'s usable icons into the paired layout under ``into``; return records.

    ``into`` must hold a line-art dataset's ``manifest.json`` (OpenMoji's, from
    ``train.datasets.openmoji``): its concepts fix the splits and the new records are appended to
    it (an earlier run's records of the same set are replaced). Raises FileNotFoundError when
    there is no manifest, ValueError when nothing usable is left.
    """
    manifest_file = into / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(
            f"{manifest_file} not found: build OpenMoji there first "
            "(python -m train.datasets.openmoji --out ...), whose concepts fix the splits"
        )
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    known = {
        slug(r["name"]): r["split"] for r in manifest if r.get("set", "openmoji") == "openmoji"
    }
    for r in manifest:  # an earlier run of this set: remove its files and records
        if r.get("set") == icon_set.prefix:
            for name in r["files"]:
                for side in ("A", "B"):
                    (into / r["split"] / side / name).unlink(missing_ok=True)
    manifest = [r for r in manifest if r.get("set") != icon_set.prefix]

    names = [n for n, icon in sorted(icon_set.icons.items()) if usable(n, icon["body"])]
    if limit is not None:
        names = names[:limit]
    if not names:
        raise ValueError(f"no usable icons in {icon_set.title} (all gradients or variants)")
    splits = {n: concept_split(n, known, val=val, test=test) for n in names}
    jobs = []
    for i, n in enumerate(names):
        icon = icon_set.icons[n]
        w, h = int(icon.get("width", icon_set.width)), int(icon.get("height", icon_set.height))
        jobs.append((icon["body"], w, h, size, seed * 1_000_003 + i, splits[n] == "train"))

    records, seen = [], set()
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        results = pool.map(_job, jobs, chunksize=16) if pool else map(_job, jobs)
        for n, made in tqdm(
            zip(names, results, strict=True), total=len(names), desc=icon_set.prefix
        ):
            if made is None:
                continue
            a, b, key = made
            if key in seen:
                continue  # the same lines as an earlier icon: another colouring of it
            seen.add(key)
            file = f"{icon_set.prefix}__{n}.png"
            for side, png in (("A", a), ("B", b)):
                folder = into / splits[n] / side
                folder.mkdir(parents=True, exist_ok=True)
                (folder / file).write_bytes(png)
            records.append(
                {
                    "code": n,
                    "name": n.replace("-", " "),
                    "group": "",
                    "split": splits[n],
                    "files": [file],
                    "set": icon_set.prefix,
                    "licence": icon_set.licence,
                }
            )
    finally:
        if pool:
            pool.shutdown()
    if not records:
        raise ValueError(f"no icon of {icon_set.title} gave usable line art")
    manifest_file.write_text(
        json.dumps(manifest + records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    _credit(into, icon_set)
    return records


def _credit(into: Path, icon_set: IconSet) -> None:
    """Add the set's credit and licence to ``into/licence.txt`` (once)."""
    path = into / "licence.txt"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    line = (
        f"Data: {icon_set.title} ({icon_set.author}), {icon_set.licence}: images rendered from "
        f"@iconify-json/{icon_set.prefix}; line art derived from the colour fills' boundaries "
        "and dark marks by pix2pix studio (an adaptation; changes were made)."
    )
    if line not in text:
        path.write_text(text.rstrip("\n") + "\n\n" + line + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m train.datasets.iconify``: add Iconify emoji sets to a line-art dataset."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--into", type=Path, required=True, help="a line-art dataset (OpenMoji's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", type=Path, nargs="+", help="Iconify npm tarballs or folders")
    src.add_argument("--fetch", nargs="+", metavar="SET", help="npm pack @iconify-json/SET")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--val", type=float, default=0.08, help="fraction of new concepts for val")
    p.add_argument("--test", type=float, default=0.08, help="fraction of new concepts for test")
    p.add_argument("--limit", type=int, help="only the first N usable icons of each set")
    p.add_argument("--workers", type=int, default=2, help="rendering processes")
    p.add_argument("--seed", type=int, default=0, help="seeds line widths and gaps")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sources = (
            [npm.pack(f"@iconify-json/{s}", Path(tmp)) for s in args.fetch]
            if args.fetch
            else args.source
        )
        for i, source in enumerate(sources):
            if not source.exists():
                p.error(f"--source {source} does not exist")
            try:
                icon_set = read_package(npm.unpack(source, Path(tmp) / str(i), "icons.json"))
                records = add_set(
                    icon_set,
                    args.into,
                    size=args.size,
                    val=args.val,
                    test=args.test,
                    limit=args.limit,
                    workers=args.workers,
                    seed=args.seed,
                )
            except (FileNotFoundError, ValueError) as e:
                p.error(str(e))
            counts = {s: sum(r["split"] == s for r in records) for s in SPLITS}
            print(
                f"{icon_set.title} ({icon_set.licence}): {len(records)} drawings -> {args.into}: "
                + ", ".join(f"{s} {n}" for s, n in counts.items())
            )


if __name__ == "__main__":
    main()
