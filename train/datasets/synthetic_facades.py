"""Procedural label-map/photo pairs in the style of the CMP Facades dataset (pix2pix ``facades``).

Each sample is a rectified building front drawn twice from one random layout:

- A, the label map: flat regions in the 12 CMP classes and their jet-like palette, nearest
  neighbour only, so every pixel is exactly one palette colour (:data:`CLASS_NAMES`,
  :data:`PALETTE`);
- B, a photo-like rendering of the same geometry: plaster, brick or stone walls, glass with sky
  reflections behind white or dark frames, shadows under cornices, sills and balconies, a
  lighting gradient, a pixel of geometric jitter, blur and sensor noise.

Sample ``i`` of a split depends only on ``(seed, split, i)``, so the same seed writes
byte-identical files and a larger ``--n`` keeps the first samples of every split unchanged::

    python -m train.datasets.synthetic_facades --out data/synthetic_facades --seed 0

writes ``train/`` ``val/`` ``test/`` (400/100/100 by default, like CMP) of aligned A|B PNGs,
``classes.json`` and a ``README.md`` holding the command.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from train.data import SPLITS, make_aligned

CLASS_NAMES = [
    "background",
    "facade",
    "window",
    "door",
    "cornice",
    "sill",
    "balcony",
    "blind",
    "deco",
    "molding",
    "pillar",
    "shop",
]
PALETTE = [
    [0, 0, 170],
    [0, 0, 255],
    [0, 85, 255],
    [0, 170, 255],
    [0, 255, 255],
    [85, 255, 170],
    [170, 255, 85],
    [255, 255, 0],
    [255, 170, 0],
    [255, 85, 0],
    [255, 0, 0],
    [170, 0, 0],
]
(BACKGROUND, FACADE, WINDOW, DOOR, CORNICE, SILL, BALCONY, BLIND, DECO, MOLDING, PILLAR, SHOP) = (
    range(12)
)
DEFAULT_SPLITS = (400, 100, 100)  # CMP base: 606 images, pix2pix uses 400 / 100 / 106
MIN_SIZE = 64  # below this, sills and frames shrink to nothing

_PALETTE_U8 = np.asarray(PALETTE, dtype=np.uint8)
_PALETTE_KEYS = (_PALETTE_U8.astype(np.int64) @ np.array([65536, 256, 1])).astype(np.int64)
_KEY_ORDER = np.argsort(_PALETTE_KEYS)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1, half-open pixel coordinates


# ----------------------------------------------------------------------------------------------
# Public API


def generate_pair(
    rng_or_seed: np.random.Generator | int, size: int = 256
) -> tuple[Image.Image, Image.Image]:
    """One random facade: ``(label map, photo)``, both RGB ``size`` x ``size`` PIL images."""
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    rng = (
        rng_or_seed
        if isinstance(rng_or_seed, np.random.Generator)
        else np.random.default_rng(rng_or_seed)
    )
    style = _sample_style(rng)
    layout = _sample_layout(rng, size)
    labels = _paint_labels(layout.parts, size)
    photo = _Painter(rng, size, style, layout).render()
    return Image.fromarray(index_to_labels(labels)), Image.fromarray(photo)


def labels_to_index(label_rgb: np.ndarray) -> np.ndarray:
    """Map an (H, W, 3) label image in :data:`PALETTE` colours to (H, W) int64 class indices."""
    rgb = np.asarray(label_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB label map, got shape {rgb.shape}")
    keys = rgb.astype(np.int64) @ np.array([65536, 256, 1], dtype=np.int64)
    sorted_keys = _PALETTE_KEYS[_KEY_ORDER]
    pos = np.clip(np.searchsorted(sorted_keys, keys), 0, len(sorted_keys) - 1)
    bad = sorted_keys[pos] != keys
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise ValueError(
            f"{int(bad.sum())} label pixels are not palette colours, e.g. {rgb[y, x].tolist()} "
            f"at (x={x}, y={y}); expected one of {PALETTE}"
        )
    return _KEY_ORDER[pos].astype(np.int64)


def index_to_labels(index: np.ndarray) -> np.ndarray:
    """Map (H, W) class indices to an (H, W, 3) uint8 label image in :data:`PALETTE` colours."""
    index = np.asarray(index)
    if index.size and (index.min() < 0 or index.max() >= len(PALETTE)):
        raise ValueError(
            f"class indices must lie in 0..{len(PALETTE) - 1}, got {index.min()}..{index.max()}"
        )
    return _PALETTE_U8[index]


def split_counts(n: int | None = None, splits: tuple[int, ...] | None = None) -> dict[str, int]:
    """Pairs per split: explicit ``splits``, ``n`` in CMP's 4:1:1 proportions, or 400/100/100."""
    if splits is not None:
        splits = tuple(int(c) for c in splits)
        if len(splits) != len(SPLITS) or min(splits) < 0 or sum(splits) == 0:
            raise ValueError(
                f"splits must be {len(SPLITS)} non-negative counts (train, val, test) with a "
                f"positive total, got {splits}"
            )
        if n is not None and n != sum(splits):
            raise ValueError(f"n={n} disagrees with splits={splits} (total {sum(splits)})")
        return dict(zip(SPLITS, splits, strict=True))
    if n is None:
        return dict(zip(SPLITS, DEFAULT_SPLITS, strict=True))
    if n < 1:
        raise ValueError(f"n must be a positive number of pairs, got {n}")
    held_out = round(n / 6)
    return {"train": n - 2 * held_out, "val": held_out, "test": held_out}


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``split``: it depends on nothing else but ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def generate(
    out: str | os.PathLike[str],
    *,
    n: int | None = None,
    splits: tuple[int, ...] | None = None,
    seed: int = 0,
    size: int = 256,
) -> Path:
    """Write the dataset to ``out`` (see the module docstring) and return ``out``.

    Refuses to write into split folders that hold numbered PNGs this run would not overwrite
    (left over from a larger run), since they would silently join the dataset.
    """
    from tqdm.auto import tqdm

    counts = split_counts(n, splits)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    out = Path(out)
    stale = [
        p
        for split in SPLITS
        if (out / split).is_dir()
        for p in sorted((out / split).glob("*.png"))
        if not (p.stem.isdigit() and int(p.stem) < counts[split] and len(p.stem) == 5)
    ]
    if stale:
        shown = ", ".join(str(p) for p in stale[:5])
        raise FileExistsError(
            f"{out} already holds {len(stale)} PNGs this run would not overwrite ({shown}"
            f"{', ...' if len(stale) > 5 else ''}); use an empty folder or delete them"
        )
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
    with tqdm(total=sum(counts.values()), desc="facades", unit="pair") as bar:
        for split in SPLITS:
            for i in range(counts[split]):
                labels, photo = generate_pair(sample_rng(seed, split, i), size)
                make_aligned(labels, photo).save(out / split / f"{i:05d}.png")
                bar.update()
    (out / "classes.json").write_text(
        json.dumps({"names": CLASS_NAMES, "palette": PALETTE}, indent=2) + "\n"
    )
    (out / "README.md").write_text(_readme(out, counts, n, splits, seed, size))
    return out


def _readme(
    out: Path,
    counts: dict[str, int],
    n: int | None,
    splits: tuple[int, ...] | None,
    seed: int,
    size: int,
) -> str:
    command = f"python -m train.datasets.synthetic_facades --out {out}"
    if n is not None:
        command += f" --n {n}"
    if splits is not None:
        command += " --splits " + ",".join(str(c) for c in splits)
    command += f" --seed {seed} --size {size}"
    table = "\n".join(f"| {split} | {count} |" for split, count in counts.items())
    classes = ", ".join(
        f"{i} {name} {tuple(c)}"
        for i, (name, c) in enumerate(zip(CLASS_NAMES, PALETTE, strict=True))
    )
    return f"""# Synthetic facades

{sum(counts.values())} procedurally generated pairs in the style of the CMP Facades dataset (the
pix2pix `facades` task). Each PNG is {2 * size}x{size} in the aligned format: A (left) is a label
map in 12 flat palette colours, B (right) a photo-like rendering of the same building front.
Train labels -> photo with direction AtoB, photo -> labels with BtoA.

| split | pairs |
|---|---|
{table}

Classes (index, name, RGB; also in `classes.json`): {classes}.

Made with

    {command}

The same command writes byte-identical files; sample i of a split depends only on
(seed, split, i), so a larger `--n` keeps these samples and adds new ones.
"""


# ----------------------------------------------------------------------------------------------
# Style: colours and materials of one building

_WALLS = {
    "plaster": [
        (0.86, 0.80, 0.68),  # beige
        (0.93, 0.89, 0.80),  # cream
        (0.85, 0.68, 0.42),  # ochre
        (0.92, 0.82, 0.55),  # yellow
        (0.88, 0.70, 0.62),  # salmon
        (0.92, 0.91, 0.88),  # white
        (0.74, 0.74, 0.72),  # light grey
        (0.76, 0.80, 0.70),  # pale green
        (0.80, 0.55, 0.42),  # terracotta
    ],
    "brick": [
        (0.62, 0.32, 0.24),  # red
        (0.55, 0.36, 0.27),  # brown
        (0.48, 0.22, 0.18),  # dark red
        (0.80, 0.68, 0.48),  # yellow brick
    ],
    "stone": [
        (0.80, 0.71, 0.56),  # sandstone
        (0.64, 0.63, 0.61),  # grey stone
        (0.86, 0.83, 0.76),  # limestone
    ],
}
_FRAMES = [(0.93, 0.93, 0.91), (0.28, 0.19, 0.12), (0.18, 0.18, 0.20), (0.20, 0.33, 0.24)]
_FRAME_P = [0.5, 0.2, 0.2, 0.1]
_SHUTTERS = [
    (0.20, 0.38, 0.25),
    (0.45, 0.50, 0.30),
    (0.45, 0.30, 0.18),
    (0.55, 0.57, 0.58),
    (0.88, 0.88, 0.85),
    (0.40, 0.50, 0.58),
    (0.50, 0.20, 0.20),
]
_ROLLERS = [(0.82, 0.78, 0.68), (0.70, 0.70, 0.70), (0.90, 0.90, 0.88), (0.45, 0.33, 0.24)]
_DOORS = [
    (0.40, 0.25, 0.14),
    (0.25, 0.16, 0.10),
    (0.15, 0.28, 0.20),
    (0.20, 0.20, 0.22),
    (0.50, 0.15, 0.12),
    (0.60, 0.42, 0.25),
    (0.15, 0.20, 0.35),
]
_METALS = [(0.12, 0.12, 0.13), (0.25, 0.25, 0.27), (0.15, 0.25, 0.18), (0.85, 0.85, 0.83)]
_SIGNS = [
    (0.10, 0.30, 0.20),
    (0.45, 0.08, 0.10),
    (0.10, 0.15, 0.40),
    (0.08, 0.08, 0.08),
    (0.90, 0.90, 0.88),
    (0.85, 0.65, 0.10),
    (0.70, 0.20, 0.10),
]
_SKY_TOPS = [(0.36, 0.55, 0.82), (0.55, 0.68, 0.86), (0.72, 0.75, 0.80), (0.62, 0.70, 0.82)]
_ROOFS = [(0.55, 0.25, 0.18), (0.30, 0.30, 0.33), (0.40, 0.36, 0.34), (0.24, 0.26, 0.30)]


def _pick(rng: np.random.Generator, options: list, p: list[float] | None = None) -> np.ndarray:
    return np.asarray(options[rng.choice(len(options), p=p)], dtype=np.float32)


def _tint(rng: np.random.Generator, colour: np.ndarray, amount: float = 0.04) -> np.ndarray:
    return np.clip(colour * (1 + rng.normal(0, amount, 3)), 0, 1).astype(np.float32)


@dataclass
class _Style:
    material: str  # "plaster", "brick" or "stone"
    wall: np.ndarray  # (3,) RGB in 0..1
    trim: np.ndarray  # cornices, sills, moldings, pillars, deco
    frame: np.ndarray
    glass_top: np.ndarray  # reflected sky at the top of a pane
    glass_bottom: np.ndarray
    shutter: np.ndarray
    roller: np.ndarray
    door: np.ndarray
    metal: np.ndarray
    plinth: np.ndarray | None  # ground-floor stone, when the building has one
    light: int  # +1: sun from the left, -1: from the right
    panes: str  # "cross", "split", "grid", "single"
    railing: str  # "bars", "balusters", "solid"


def _sample_style(rng: np.random.Generator) -> _Style:
    material = str(rng.choice(["plaster", "brick", "stone"], p=[0.55, 0.25, 0.2]))
    wall = _tint(rng, _pick(rng, _WALLS[material]))
    trims = [
        (0.91, 0.90, 0.86),
        (0.80, 0.76, 0.67),
        np.clip(wall * 1.15 + 0.05, 0, 1),
        wall * 0.78,
    ]
    trim_p = [0.4, 0.3, 0.2, 0.1] if material != "brick" else [0.55, 0.4, 0.0, 0.05]
    trim_p = [p / sum(trim_p) for p in trim_p]
    trim = _tint(rng, _pick(rng, trims, trim_p), 0.03)
    glass_top = _tint(rng, _pick(rng, [(0.55, 0.66, 0.80), (0.60, 0.64, 0.70), (0.36, 0.46, 0.52)]))
    plinth = None
    if rng.random() < 0.35:
        plinth = _tint(rng, _pick(rng, [(0.60, 0.58, 0.55), (0.75, 0.68, 0.55), wall * 0.8]))
    return _Style(
        material=material,
        wall=wall,
        trim=trim,
        frame=_tint(rng, _pick(rng, _FRAMES, _FRAME_P), 0.03),
        glass_top=glass_top,
        glass_bottom=_tint(rng, np.asarray((0.10, 0.12, 0.16), dtype=np.float32), 0.1),
        shutter=_tint(rng, _pick(rng, _SHUTTERS)),
        roller=_tint(rng, _pick(rng, _ROLLERS)),
        door=_tint(rng, _pick(rng, _DOORS)),
        metal=_pick(rng, _METALS, [0.4, 0.25, 0.2, 0.15]),
        plinth=plinth,
        light=int(rng.choice([-1, 1])),
        panes=str(rng.choice(["cross", "split", "grid", "single"], p=[0.4, 0.3, 0.2, 0.1])),
        railing=str(rng.choice(["bars", "balusters", "solid"], p=[0.55, 0.3, 0.15])),
    )


# ----------------------------------------------------------------------------------------------
# Layout: the geometry both images are drawn from


@dataclass(frozen=True)
class _Part:
    cls: int
    kind: str  # selects the painter method
    box: Box
    shape: str = "rect"  # "rect", "arch" (rounded top `arch` px high) or "tri" (pediment)
    arch: int = 0


@dataclass
class _Layout:
    facade: Box
    ground_top: int  # top of the ground floor
    parts: list[_Part]  # in drawing order: later parts cover earlier ones


def _sample_layout(rng: np.random.Generator, size: int) -> _Layout:
    S = size
    s = S / 256

    def px(v: float) -> int:
        return max(1, round(v * s))

    top = round(S * rng.uniform(0.03, 0.2))
    left = 0 if rng.random() < 0.4 else round(S * rng.uniform(0.02, 0.12))
    right = 0 if rng.random() < 0.4 else round(S * rng.uniform(0.02, 0.12))
    bottom = 0 if rng.random() < 0.65 else round(S * rng.uniform(0.01, 0.05))
    fx0, fy0, fx1, fy1 = left, top, S - right, S - bottom
    fw = fx1 - fx0

    layers: dict[str, list[_Part]] = {
        k: [] for k in ("pillar", "cornice", "molding", "deco", "opening", "blind", "sill", "bal")
    }
    overhang = px(rng.uniform(0, 4))
    roof_h = px(rng.uniform(6, 12))
    layers["cornice"].append(
        _Part(
            CORNICE, "cornice", (max(0, fx0 - overhang), fy0, min(S, fx1 + overhang), fy0 + roof_h)
        )
    )
    y_start = fy0 + roof_h
    if rng.random() < 0.35:
        frieze_h = px(rng.uniform(4, 8))
        layers["deco"].append(_Part(DECO, "frieze", (fx0, y_start, fx1, y_start + frieze_h)))
        y_start += frieze_h

    # Floors, top to bottom; the ground floor is taller.
    n_floors = int(rng.integers(3, 8))
    avail = fy1 - y_start
    while n_floors > 3 and avail / (n_floors + 0.4) < px(20):
        n_floors -= 1
    weights = np.concatenate([1 + rng.normal(0, 0.04, n_floors - 1), [rng.uniform(1.15, 1.5)]])
    edges = y_start + np.round(np.concatenate([[0], np.cumsum(weights)]) / weights.sum() * avail)
    floors = [(int(edges[k]), int(edges[k + 1])) for k in range(n_floors)]
    ground_top, ground_bot = floors[-1]
    upper = floors[:-1]

    # Columns of windows, evenly spaced.
    n_cols = int(rng.integers(2, 7))
    while n_cols > 2 and fw / n_cols < px(24):
        n_cols -= 1
    margin = fw * rng.uniform(0, 0.06)
    pitch = (fw - 2 * margin) / n_cols
    centers = fx0 + margin + (np.arange(n_cols) + 0.5) * pitch
    win_w = pitch * rng.uniform(0.36, 0.6)
    floor_h = (ground_top - y_start) / max(1, len(upper))
    win_h = floor_h * rng.uniform(0.45, 0.66)
    win_h = max(win_h, min(win_w * 1.1, floor_h * 0.7))
    win_off = rng.uniform(0.35, 0.6)  # where windows sit between floor top and bottom
    jitter = rng.uniform(0, 0.05)

    arch_floors = set()
    if rng.random() < 0.35:
        arch_floors = {k for k in range(len(upper)) if rng.random() < 0.6}
    segmental = rng.random() < 0.4
    has_molding = rng.random() < 0.45
    mold_w = px(rng.uniform(2, 4))
    pediment = str(rng.choice(["tri", "arch", "hood"])) if rng.random() < 0.35 else ""
    pediment_floors = {k for k in range(len(upper)) if rng.random() < 0.6} if pediment else set()
    has_sills = rng.random() < 0.75
    has_aprons = rng.random() < 0.2
    string_courses = str(rng.choice(["none", "ground", "all"], p=[0.35, 0.35, 0.3]))
    course_h = px(rng.uniform(3, 6))

    balcony_floors: set[int] = set()
    balcony_mode = ""
    if rng.random() < 0.45 and upper:
        balcony_mode = str(rng.choice(["floor", "window"]))
        pattern = str(rng.choice(["first", "all", "alternate", "random"]))
        last = len(upper) - 1  # the floor just above the ground floor
        balcony_floors = {
            "first": {last},
            "all": set(range(len(upper))),
            "alternate": {k for k in range(len(upper)) if (last - k) % 2 == 0},
            "random": {k for k in range(len(upper)) if rng.random() < 0.5} or {last},
        }[pattern]
    bal_frac = rng.uniform(0.22, 0.32)

    blinds = str(rng.choice(["shutters", "roller"])) if rng.random() < 0.4 else ""
    shutter_w = round(win_w * rng.uniform(0.38, 0.5))
    if blinds == "shutters" and (pitch - win_w * (1 + 2 * jitter) < 2 * shutter_w + px(3)):
        blinds = "roller"
    blind_p = rng.uniform(0.4, 1.0)

    def window(k: int, j: int, y_top: float, y_bot: float, bal_bot: int | None) -> Box | None:
        """A window in floor ``k`` (``-1``: ground) and column ``j`` with its decorations."""
        w = win_w * (1 + rng.normal(0, jitter))
        h = (y_bot - y_top) * (1 + rng.normal(0, jitter))
        x0 = round(centers[j] - w / 2 + rng.normal(0, 0.3))
        x1 = round(centers[j] + w / 2 + rng.normal(0, 0.3))
        y0 = round(y_top + rng.normal(0, 0.3))
        y1 = round(y0 + h) if bal_bot is None else bal_bot
        if x1 - x0 < 3 or y1 - y0 < 4:
            return None
        arch = 0
        if k in arch_floors:
            arch = round((x1 - x0) * (0.22 if segmental else 0.5))
            arch = min(arch, (y1 - y0) // 2)
        shape = "arch" if arch > 0 else "rect"
        mw = mold_w if has_molding else 0
        if mw:
            box = (x0 - mw, y0 - mw, x1 + mw, y1 + (mw if bal_bot is None else 0))
            layers["molding"].append(
                _Part(MOLDING, "molding", box, shape, arch + mw if arch else 0)
            )
        if k in pediment_floors:
            ped_h = {"tri": 0.35, "arch": 0.25, "hood": 0.0}[pediment] * (x1 - x0)
            ped_h = max(ped_h, px(3))
            floor_top = floors[k][0]
            ped_y1 = y0 - mw
            ped_y0 = max(round(ped_y1 - ped_h), floor_top + 1)
            if ped_y1 - ped_y0 >= 2:
                ext = mw + px(2)
                box = (x0 - ext, ped_y0, x1 + ext, ped_y1)
                shape_p = {"tri": "tri", "arch": "arch", "hood": "rect"}[pediment]
                arch_p = ped_y1 - ped_y0 if pediment == "arch" else 0
                layers["deco"].append(_Part(DECO, "pediment", box, shape_p, arch_p))
        layers["opening"].append(_Part(WINDOW, "window", (x0, y0, x1, y1), shape, arch))
        if blinds and rng.random() < blind_p:
            if blinds == "shutters" and rng.random() < 0.12:
                layers["blind"].append(_Part(BLIND, "closed", (x0, y0, x1, y1), shape, arch))
            elif blinds == "shutters" and shape == "rect":
                layers["blind"].append(_Part(BLIND, "shutter", (x0 - shutter_w, y0, x0, y1)))
                layers["blind"].append(_Part(BLIND, "shutter", (x1, y0, x1 + shutter_w, y1)))
            else:
                frac = rng.uniform(0.1, 0.75)
                ry0 = y0 + arch
                ry1 = max(ry0 + 2, round(ry0 + frac * (y1 - ry0)))
                layers["blind"].append(_Part(BLIND, "roller", (x0, ry0, x1, ry1)))
        if bal_bot is None and has_sills:
            over = px(rng.uniform(1, 3)) + mw
            sill = (x0 - over, y1, x1 + over, y1 + px(rng.uniform(2, 4)))
            layers["sill"].append(_Part(SILL, "sill", sill))
            if has_aprons and k >= 0:
                ay0 = sill[3] + px(2)
                ay1 = floors[k][1] - course_h - px(2)
                if ay1 - ay0 >= px(5):
                    layers["deco"].append(_Part(DECO, "apron", (x0, ay0, x1, ay1)))
        return x0, y0, x1, y1

    for k, (ft, fb) in enumerate(upper):
        fh = fb - ft
        wh = win_h * (0.75 if k == 0 and n_floors > 4 and rng.random() < 0.3 else 1)
        y_top = ft + (fh - wh) * win_off
        bal_bot = None
        if k in balcony_floors:
            bal_bot = fb - px(rng.uniform(0, 2))
            bal_top = round(bal_bot - fh * bal_frac)
            if balcony_mode == "floor":
                m = px(rng.uniform(0, 8))
                layers["bal"].append(
                    _Part(BALCONY, "balcony", (fx0 + m, bal_top, fx1 - m, bal_bot))
                )
        for j in range(n_cols):
            opening = window(k, j, y_top, y_top + wh, bal_bot)
            if opening is not None and k in balcony_floors and balcony_mode == "window":
                ext = min(win_w * rng.uniform(0.1, 0.35), (pitch - win_w) / 2 - 1)
                ext = max(0, round(ext))
                box = (opening[0] - ext, bal_top, opening[2] + ext, bal_bot)
                layers["bal"].append(_Part(BALCONY, "balcony", box))
        if string_courses == "all" and k > 0:
            layers["cornice"].append(
                _Part(
                    CORNICE,
                    "cornice",
                    (fx0, ft - course_h // 2, fx1, ft - course_h // 2 + course_h),
                )
            )
    if string_courses in ("ground", "all") and upper:
        y = ground_top - course_h // 2
        layers["cornice"].append(_Part(CORNICE, "cornice", (fx0, y, fx1, y + course_h)))

    # Ground floor: 1-2 doors, the other bays shop fronts or windows.
    gh = ground_bot - ground_top
    n_doors = 1 if n_cols < 3 or rng.random() < 0.7 else 2
    door_slots = set(rng.choice(n_cols, size=n_doors, replace=False).tolist())
    door_w = min(pitch * rng.uniform(0.45, 0.72), pitch - px(4))
    door_h = gh * rng.uniform(0.68, 0.88)
    door_arch = rng.random() < 0.3
    has_shop = rng.random() < 0.4
    split_shops = rng.random() < 0.4
    for j in sorted(door_slots):
        x0, x1 = round(centers[j] - door_w / 2), round(centers[j] + door_w / 2)
        y0 = round(ground_bot - door_h)
        arch = min((x1 - x0) // 2, (ground_bot - y0) // 3) if door_arch else 0
        shape = "arch" if arch else "rect"
        if has_molding:
            box = (x0 - mold_w, y0 - mold_w, x1 + mold_w, ground_bot)
            layers["molding"].append(
                _Part(MOLDING, "molding", box, shape, arch + mold_w if arch else 0)
            )
        layers["opening"].append(_Part(DOOR, "door", (x0, y0, x1, ground_bot), shape, arch))
    others = [j for j in range(n_cols) if j not in door_slots]
    if has_shop and others:
        runs: list[list[int]] = []
        for j in others:
            if runs and runs[-1][-1] == j - 1 and not split_shops:
                runs[-1].append(j)
            else:
                runs.append([j])
        shop_h = gh * rng.uniform(0.7, 0.92)
        for run in runs:
            x0 = centers[run[0]] - pitch / 2 + px(rng.uniform(2, 5))
            x1 = centers[run[-1]] + pitch / 2 - px(rng.uniform(2, 5))
            if run[0] == 0:
                x0 = max(x0, fx0 + px(3))
            if run[-1] == n_cols - 1:
                x1 = min(x1, fx1 - px(3))
            box = (round(x0), round(ground_bot - shop_h), round(x1), ground_bot)
            layers["opening"].append(_Part(SHOP, "shop", box))
    else:
        gw_h = min(win_h * rng.uniform(1.0, 1.3), gh * 0.7)
        y_top = ground_top + (gh - gw_h) * rng.uniform(0.3, 0.5)
        for j in others:
            window(-1, j, y_top, y_top + gw_h, None)

    # Pilasters between the window columns, under everything else.
    if rng.random() < 0.35:
        gap = pitch - win_w * (1 + 2 * jitter) - 2 * (mold_w if has_molding else 0)
        if blinds == "shutters":
            gap -= 2 * shutter_w
        pw = round(gap * rng.uniform(0.3, 0.55))
        if pw >= px(3):
            xs = list(centers[:-1] + pitch / 2)
            if rng.random() < 0.5:
                xs = [fx0 + pw / 2, *xs, fx1 - pw / 2]
            bottom_y = ground_top if (has_shop or rng.random() < 0.5) else fy1
            for x in xs:
                x0 = round(x - pw / 2)
                layers["pillar"].append(_Part(PILLAR, "pillar", (x0, y_start, x0 + pw, bottom_y)))

    parts = [_Part(FACADE, "wall", (fx0, fy0, fx1, fy1))]
    for layer in layers.values():
        parts.extend(layer)
    return _Layout((fx0, fy0, fx1, fy1), ground_top, parts)


def _shape_mask(shape: str, w: int, h: int, arch: int) -> np.ndarray | None:
    """Boolean (h, w) mask of a shape in its box; ``None`` for a full rectangle."""
    if shape == "rect" or (shape == "arch" and arch <= 0):
        return None
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = (np.arange(w, dtype=np.float32)[None, :] + 0.5 - w / 2) / (w / 2)
    if shape == "arch":
        a = min(arch, h)
        dy = np.clip((a - yy) / a, 0, None)
        return xx**2 + dy**2 <= 1.0
    if shape == "tri":
        return np.abs(xx) <= yy / h
    raise ValueError(f"unknown shape {shape!r}")


def _region(
    box: Box, shape: str, arch: int, size: int
) -> tuple[tuple[slice, slice], np.ndarray | None] | None:
    """Slices of ``box`` clipped to the image and the shape's mask cropped alike."""
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if cx1 <= cx0 or cy1 <= cy0:
        return None
    mask = _shape_mask(shape, x1 - x0, y1 - y0, arch)
    if mask is not None:
        mask = mask[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    return (slice(cy0, cy1), slice(cx0, cx1)), mask


def _paint_labels(parts: list[_Part], size: int) -> np.ndarray:
    labels = np.full((size, size), BACKGROUND, dtype=np.uint8)
    for part in parts:
        region = _region(part.box, part.shape, part.arch, size)
        if region is None:
            continue
        sl, mask = region
        if mask is None:
            labels[sl] = part.cls
        else:
            labels[sl][mask] = part.cls
    return labels


# ----------------------------------------------------------------------------------------------
# Photo rendering


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float32 noise with about ``cells`` blobs across, unit standard deviation."""
    small = rng.standard_normal((cells + 1, cells + 1), dtype=np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return big / (big.std() + 1e-6)


_JITTER = np.array([-1, 0, 0, 1])


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of a ``size`` x ``size`` image, float32 (read-only)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


class _Painter:
    """Renders the photo of one layout; methods named after part kinds paint one part each."""

    def __init__(self, rng: np.random.Generator, size: int, style: _Style, layout: _Layout):
        self.rng, self.S, self.style, self.layout = rng, size, style, layout
        self.s = size / 256
        self.img = np.zeros((size, size, 3), dtype=np.float32)
        self.low = _smooth_noise(rng, size, 6)
        self.mid = _smooth_noise(rng, size, 28)
        self.fine = rng.standard_normal((size, size), dtype=np.float32)
        self.yy, self.xx = _grid(size)
        yy, xx = self.yy, self.xx
        # Reflections continue from window to window, as on one glass plane.
        period = size * rng.uniform(0.15, 0.4)
        slope = rng.uniform(0.5, 1.5) * rng.choice([-1, 1])
        phase = (xx + slope * yy) / period + rng.uniform(0, 1)
        self.streaks = ((phase % 1.0) < rng.uniform(0.15, 0.35)).astype(np.float32)

    def px(self, v: float) -> int:
        return max(1, round(v * self.s))

    def texture(
        self, colour: np.ndarray, sl: tuple[slice, slice], rough: float = 1.0
    ) -> np.ndarray:
        """``colour`` with the shared low/mid/fine noise of region ``sl``, (h, w, 3)."""
        n = 0.035 * self.low[sl] + 0.03 * self.mid[sl] + 0.03 * self.fine[sl]
        return colour * (1 + rough * n[..., None])

    def put(self, sl: tuple[slice, slice], mask: np.ndarray | None, pix: np.ndarray) -> None:
        if mask is None:
            self.img[sl] = pix
        else:
            target = self.img[sl]
            target[mask] = np.broadcast_to(pix, target.shape)[mask]

    def shade(self, y0: int, y1: int, x0: int, x1: int, factor) -> None:
        """Multiply a clipped rectangle by ``factor`` (a scalar or a broadcastable array)."""
        cy0, cy1 = max(0, y0), min(self.S, y1)
        cx0, cx1 = max(0, x0), min(self.S, x1)
        if cy1 > cy0 and cx1 > cx0:
            if isinstance(factor, np.ndarray) and factor.shape[0] == y1 - y0:
                factor = factor[cy0 - y0 : cy1 - y0]
            self.img[cy0:cy1, cx0:cx1] *= factor

    def drop_shadow(self, x0: int, x1: int, y: int, depth: int, strength: float) -> None:
        """Soft shadow on the wall below a ledge at row ``y``."""
        ramp = 1 - strength * (1 - (np.arange(depth, dtype=np.float32) + 0.5) / depth)
        self.shade(y, y + depth, x0 + self.style.light, x1 + self.style.light, ramp[:, None, None])

    def jitter(self, box: Box) -> Box:
        x0, y0, x1, y1 = (np.asarray(box) + _JITTER[self.rng.integers(0, 4, size=4)]).tolist()
        return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)

    def render(self) -> np.ndarray:
        rng = self.rng
        self.background()
        for part in self.layout.parts:
            box = self.jitter(part.box)
            region = _region(box, part.shape, part.arch, self.S)
            if region is not None:
                getattr(self, part.kind)(part, box, *region)
        if rng.random() < 0.25:  # a neighbour's shadow across part of the facade
            fx0, fy0, fx1, fy1 = self.layout.facade
            sl = (slice(fy0, fy1), slice(fx0, fx1))
            slope = rng.uniform(-1, 1)
            edge = self.xx[sl] * -self.style.light + slope * self.yy[sl]
            cut = np.quantile(edge, rng.uniform(0.6, 0.9))
            self.img[sl] *= np.where(edge > cut, rng.uniform(0.6, 0.8), 1.0)[..., None].astype(
                np.float32
            )
        # Light falls off across the facade and towards the street; a camera's white balance.
        u = np.linspace(-0.5, 0.5, self.S, dtype=np.float32)
        gain = (
            1 + rng.uniform(-0.25, 0.25) * u[None, :] + rng.uniform(-0.2, 0.05) * u[:, None]
        ) * (1 - 0.15 * (u[None, :] ** 2 + u[:, None] ** 2))
        balance = rng.uniform(0.9, 1.08) * (1 + rng.normal(0, 0.025, 3)).astype(np.float32)
        self.img *= gain[..., None] * balance
        img = cv2.GaussianBlur(self.img, (0, 0), rng.uniform(0.45, 0.9) * max(self.s, 0.5))
        noise = rng.standard_normal(img.shape, dtype=np.float32)
        img += rng.uniform(0.006, 0.018) * noise
        return np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)

    # -- background: sky, neighbouring buildings, roof, street ----------------------------------

    def background(self) -> None:
        rng, S, img = self.rng, self.S, self.img
        top = _pick(rng, _SKY_TOPS)
        horizon = np.clip(top * 0.6 + 0.4 * np.float32(0.92), 0, 1)
        t = (np.arange(S, dtype=np.float32) / S)[:, None, None] ** 0.8
        img[:] = top * (1 - t) + horizon * t
        clouds = np.clip(self.low * 0.6 + rng.uniform(-0.8, 0.4), 0, 1)[..., None]
        img[:] = img * (1 - 0.7 * clouds) + 0.93 * 0.7 * clouds
        fx0, fy0, fx1, fy1 = self.layout.facade
        for x0, x1 in ((0, fx0), (fx1, S)):
            if x1 - x0 < 2 or rng.random() < 0.3:
                continue
            y0 = round(rng.uniform(-0.1, 0.3) * S)
            sl = (slice(max(0, y0), S), slice(x0, x1))
            colour = _tint(rng, _pick(rng, _WALLS[str(rng.choice(list(_WALLS)))]), 0.08) * 0.85
            img[sl] = self.texture(colour, sl, 1.3)
            pitch_y, pitch_x = self.px(rng.uniform(22, 34)), self.px(rng.uniform(18, 28))
            wy = (self.yy[sl] - y0) % pitch_y
            wx = (self.xx[sl] - x0 + rng.integers(0, pitch_x)) % pitch_x
            win = (
                (wy > pitch_y * 0.3)
                & (wy < pitch_y * 0.8)
                & (wx > pitch_x * 0.3)
                & (wx < pitch_x * 0.75)
            )
            img[sl][win] *= 0.4
        if fy1 < S:
            sl = (slice(fy1, S), slice(0, S))
            img[sl] = self.texture(np.float32([0.42, 0.42, 0.43]), sl, 2.0)
        if rng.random() < 0.5 and fy0 > self.px(6):
            roof_h = round(fy0 * rng.uniform(0.4, 0.95))
            inset = round(roof_h * rng.uniform(0.3, 1.5))
            y0 = fy0 - roof_h
            pts = np.array(
                [[fx0, roof_h], [fx1, roof_h], [fx1 - inset, 0], [fx0 + inset, 0]], dtype=np.int32
            )
            mask = np.zeros((roof_h + 1, S), dtype=np.uint8)
            cv2.fillPoly(mask, [pts], 1)
            sl = (slice(y0, fy0 + 1), slice(0, S))
            tiles = np.where(np.arange(y0, fy0 + 1) % self.px(4) == 0, 0.75, 1.0)
            roof = _tint(rng, _pick(rng, _ROOFS), 0.05)
            pix = self.texture(roof, sl, 1.5) * tiles[:, None, None].astype(np.float32)
            self.put(sl, mask > 0, pix)

    # -- wall and wall-like parts -----------------------------------------------------------------

    def wall(self, part: _Part, box: Box, sl, mask) -> None:
        rng, st = self.rng, self.style
        self.img[sl] = self.material(st.material, st.wall, sl)
        if st.plinth is not None:
            gsl = (slice(max(sl[0].start, self.layout.ground_top), sl[0].stop), sl[1])
            self.img[gsl] = self.material("stone", st.plinth, gsl, block=rng.uniform(1.0, 1.5))
        # Grime towards the street.
        grime = np.clip((self.yy[sl] - box[3] + 0.25 * self.S) / (0.25 * self.S), 0, 1)
        self.img[sl] *= 1 - rng.uniform(0, 0.12) * grime[..., None]

    def material(self, kind: str, colour: np.ndarray, sl, block: float = 1.0) -> np.ndarray:
        rng = self.rng
        y, x = self.yy[sl].astype(np.int32), self.xx[sl].astype(np.int32)
        if kind == "plaster":
            return self.texture(colour, sl, rng.uniform(0.8, 1.5))
        if kind == "brick":
            bh = max(3, round(rng.uniform(3.5, 5.0) * self.s))
            bw = round(bh * rng.uniform(2.0, 2.8))
            row = y // bh
            xs = x + (row % 2) * (bw // 2)
            col = xs // bw
            shape = (self.S // bh + 2, self.S // bw + 3)
            var = rng.normal(0, 0.09, (*shape, 1)) + rng.normal(0, 0.025, (*shape, 3))
            pix = colour * (1 + var[row, col].astype(np.float32))
            pix *= 1 + 0.04 * self.fine[sl][..., None]
            mortar = ((y % bh) == 0) | ((xs % bw) == 0)
            mortar_colour = np.float32([0.78, 0.76, 0.72]) * rng.uniform(0.75, 1.05)
            pix[mortar] = mortar_colour * (1 + 0.05 * self.fine[sl][mortar][:, None])
            return pix
        # stone blocks, rows of random offsets, thin dark joints with a lit lower edge
        sh = max(4, round(rng.uniform(8, 13) * self.s * block))
        bw = round(sh * rng.uniform(1.6, 2.6))
        row = y // sh
        offsets = rng.integers(0, bw, self.S // sh + 2)
        xs = x + offsets[row]
        col = xs // bw
        var = rng.normal(0, 0.05, (self.S // sh + 2, self.S // bw + 3))
        pix = self.texture(colour, sl, 0.8) * (1 + var[row, col].astype(np.float32))[..., None]
        pix[((y % sh) == 0) | ((xs % bw) == 0)] *= 0.72
        pix[(y % sh) == 1] *= 1.06
        return pix

    def bevel(self, sl, mask, width: int = 1, amount: float = 0.12) -> None:
        """Lit top and sun-side edges, shadowed bottom and far side, on a raised rectangle."""
        reg = self.img[sl]
        h, w = reg.shape[:2]
        lit, dark = (slice(0, width), slice(w - width, w))
        if self.style.light < 0:
            lit, dark = dark, lit
        factor = np.ones((h, w), dtype=np.float32)
        factor[:width] *= 1 + amount
        factor[:, lit] *= 1 + amount
        factor[:, dark] *= 1 - 1.5 * amount
        factor[h - width :] *= 1 - 2 * amount
        if mask is not None:
            factor[~mask] = 1
        reg *= factor[..., None]

    def pillar(self, part: _Part, box: Box, sl, mask) -> None:
        colour = self.style.trim * 0.97
        self.img[sl] = self.texture(colour, sl, 0.8)
        self.bevel(sl, mask, self.px(1), 0.1)
        cap = self.px(3)
        self.shade(box[1] + cap, box[1] + cap + 1, box[0], box[2], 0.7)
        side = box[2] if self.style.light > 0 else box[0] - self.px(2)
        self.shade(box[1], box[3], side, side + self.px(2), 0.8)

    def cornice(self, part: _Part, box: Box, sl, mask) -> None:
        rng = self.rng
        x0, y0, x1, y1 = box
        h = y1 - y0
        pix = self.texture(self.style.trim, sl, 0.7)
        t = (np.arange(h, dtype=np.float32) + 0.5) / h
        profile = np.where(t < 0.3, 1.12, 1.0)
        profile = np.where((t > 0.38) & (t < 0.5), 0.72, profile)
        profile = np.where(t > 0.75, 0.78, profile).astype(np.float32)
        rows = profile[sl[0].start - y0 : sl[0].stop - y0]
        pix *= rows[:, None, None]
        if h >= self.px(7) and rng.random() < 0.5:  # dentils
            period = self.px(rng.uniform(3, 5))
            band = (t > 0.55) & (t < 0.8)
            gaps = (self.xx[sl] % period) < period / 2.5
            dark = band[sl[0].start - y0 : sl[0].stop - y0][:, None] & gaps
            pix[dark] *= 0.6
        self.img[sl] = pix
        depth = max(1, round(h * rng.uniform(0.5, 1.0)))
        self.drop_shadow(x0, x1, y1, depth, rng.uniform(0.3, 0.5))

    def molding(self, part: _Part, box: Box, sl, mask) -> None:
        self.put(sl, mask, self.texture(self.style.trim, sl, 0.7))
        self.bevel(sl, mask, 1, 0.1)

    def frieze(self, part: _Part, box: Box, sl, mask) -> None:
        rng = self.rng
        x0, y0, _, y1 = box
        pix = self.texture(self.style.trim * rng.uniform(0.85, 1.0), sl, 0.7)
        period = self.px(rng.uniform(6, 12))
        u = (self.xx[sl] - x0) % period / period
        v = (self.yy[sl] - y0 + 0.5) / (y1 - y0)
        if rng.random() < 0.5:  # rosettes
            d = np.hypot((u - 0.5) * period, (v - 0.5) * (y1 - y0))
            r = (y1 - y0) * 0.35
            pat = np.where(d < r, np.where(d < r * 0.5, 1.1, 0.75), 1.0)
        else:  # triglyphs
            pat = np.where(((u > 0.1) & (u < 0.18)) | ((u > 0.28) & (u < 0.36)), 0.7, 1.0)
        pix *= pat[..., None].astype(np.float32)
        pix[(v < 0.15) | (v > 0.85)] *= 0.85
        self.img[sl] = pix

    def pediment(self, part: _Part, box: Box, sl, mask) -> None:
        self.put(sl, mask, self.texture(self.style.trim, sl, 0.7))
        x0, _, x1, y1 = box
        if part.shape == "tri" and mask is not None:
            inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            self.img[sl][inner] *= 0.85
        self.shade(y1 - 1, y1, x0, x1, 0.65)
        self.drop_shadow(x0, x1, y1, self.px(2), 0.4)

    def apron(self, part: _Part, box: Box, sl, mask) -> None:
        x0, y0, x1, y1 = box
        self.img[sl] = self.texture(self.style.trim * 0.95, sl, 0.7)
        i = self.px(2)
        self.shade(y0 + i, y0 + i + 1, x0 + i, x1 - i, 0.7)
        self.shade(y1 - i - 1, y1 - i, x0 + i, x1 - i, 1.15)
        self.shade(y0 + i, y1 - i, x0 + i, x0 + i + 1, 0.8 if self.style.light > 0 else 1.1)
        self.shade(y0 + i, y1 - i, x1 - i - 1, x1 - i, 1.1 if self.style.light > 0 else 0.8)

    def sill(self, part: _Part, box: Box, sl, mask) -> None:
        x0, y0, x1, y1 = box
        self.img[sl] = self.texture(self.style.trim, sl, 0.6)
        self.shade(y0, y0 + 1, x0, x1, 1.12)
        if y1 - y0 > 2:
            self.shade(y1 - 1, y1, x0, x1, 0.75)
        self.drop_shadow(x0, x1, y1, self.px(self.rng.uniform(1.5, 4)), 0.45)

    # -- openings ---------------------------------------------------------------------------------

    def glass(self, sl, h: int, w: int, dark: float = 1.0) -> np.ndarray:
        """Glass reflecting the sky: a vertical gradient, streaks and blotches, (h, w, 3)."""
        rng, st = self.rng, self.style
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] ** rng.uniform(0.6, 1.4)
        bright = rng.uniform(0.7, 1.15) * dark
        pix = (st.glass_top * (1 - t) + st.glass_bottom * t) * bright
        pix = pix * (1 + 0.15 * self.low[sl][..., None]) + 0.02 * self.fine[sl][..., None]
        pix += rng.uniform(0.05, 0.2) * self.streaks[sl][..., None] * (1 - 0.5 * t)
        return np.broadcast_to(pix, (h, w, 3)).copy()

    def window(self, part: _Part, box: Box, sl, mask) -> None:
        rng, st = self.rng, self.style
        y0 = box[1]
        h, w = self.img[sl].shape[:2]
        pix = self.glass(sl, h, w)
        if rng.random() < 0.25:  # curtains at the sides
            u = (np.arange(w, dtype=np.float32) + 0.5) / w
            side = (u < 0.28) | (u > 0.72)
            folds = 0.85 + 0.1 * np.sin(np.arange(w) * 2.1)
            cloth = _pick(rng, [(0.85, 0.83, 0.78), (0.75, 0.62, 0.50), (0.6, 0.62, 0.66)])
            curtain = (cloth * folds[:, None]).astype(np.float32) * rng.uniform(0.6, 0.9)
            pix[:, side] = curtain[side]
        # Frame: a ring, a mullion and transoms depending on the pane style.
        f = self.px(rng.uniform(1.2, 2.2))
        inside = np.ones((h, w), dtype=bool) if mask is None else mask
        inner = cv2.erode(inside.astype(np.uint8), np.ones((2 * f + 1, 2 * f + 1), np.uint8))
        bars = inside & (inner == 0)
        arch_rows = max(0, part.arch - (sl[0].start - y0))
        if st.panes != "single" and w >= 6:
            c = w // 2
            bars[:, c - f // 2 : c - f // 2 + f] = True
        if st.panes in ("cross", "grid") and h - arch_rows >= 8:
            r = arch_rows + round((h - arch_rows) * 0.3)
            bars[r : r + f] = True
        if st.panes == "grid" and h - arch_rows >= 14:
            r = arch_rows + round((h - arch_rows) * 0.65)
            bars[r : r + f] = True
        if arch_rows:
            bars[arch_rows - 1 : arch_rows - 1 + f] = True
        frame = st.frame * (1 + 0.03 * self.fine[sl][..., None])
        pix = np.where(bars[..., None] & inside[..., None], frame, pix)
        # The recess: the lintel and the sun-side reveal throw shadow on frame and glass.
        d = self.px(rng.uniform(1, 3))
        shadow = np.ones((h, w), dtype=np.float32)
        shadow[:d] = 0.55
        if st.light > 0:
            shadow[:, :d] *= 0.7
        else:
            shadow[:, w - d :] *= 0.7
        pix *= shadow[..., None]
        self.put(sl, mask, pix)

    def door(self, part: _Part, box: Box, sl, mask) -> None:
        rng, st = self.rng, self.style
        y0 = box[1]
        h, w = self.img[sl].shape[:2]
        grain = rng.standard_normal((max(2, h // 10), w), dtype=np.float32)
        grain = cv2.resize(grain, (w, h), interpolation=cv2.INTER_LINEAR)
        pix = st.door * (1 + 0.08 * grain[..., None] + 0.03 * self.fine[sl][..., None])
        arch_rows = max(0, part.arch - (sl[0].start - y0))
        if arch_rows:  # fanlight
            pix[:arch_rows] = self.glass(sl, h, w, 0.8)[:arch_rows]
            rays = np.abs((np.arange(w) + 0.5) - w / 2) < 1
            pix[:arch_rows, rays] = st.frame
            pix[arch_rows - 1 : arch_rows + self.px(1)] = st.door * 0.7
        leaves = 2 if w >= self.px(16) and rng.random() < 0.6 else 1
        glazed = rng.random() < 0.35
        body_h = h - arch_rows
        i = self.px(2)
        for leaf in range(leaves):
            lx0, lx1 = leaf * w // leaves, (leaf + 1) * w // leaves
            rows = [(0.06, 0.45), (0.52, 0.94)] if body_h > 20 * self.s else [(0.08, 0.92)]
            for r, (a, b) in enumerate(rows):
                py0, py1 = arch_rows + round(a * body_h), arch_rows + round(b * body_h)
                px0, px1 = lx0 + i, lx1 - i
                if px1 - px0 < 2 or py1 - py0 < 2:
                    continue
                if glazed and r == 0:
                    pix[py0:py1, px0:px1] = self.glass(sl, h, w, 0.7)[py0:py1, px0:px1]
                pix[py0 : py0 + 1, px0:px1] *= 0.7
                pix[py0:py1, px0 : px0 + 1] *= 0.8
                pix[py1 - 1 : py1, px0:px1] *= 1.2
                pix[py0:py1, px1 - 1 : px1] *= 1.1
            if leaves == 2:
                pix[:, lx1 - 1 : lx1] *= 0.55 if leaf == 0 else 1
        pix[:, :1] *= 0.6
        pix[:, -1:] *= 0.6
        d = self.px(rng.uniform(1, 3))
        pix[:d] *= 0.55
        self.put(sl, mask, pix)

    def shop(self, part: _Part, box: Box, sl, mask) -> None:
        rng, st = self.rng, self.style
        h, w = self.img[sl].shape[:2]
        sign_h = max(2, round(h * rng.uniform(0.16, 0.26)))
        sign = _tint(rng, _pick(rng, _SIGNS), 0.05)
        pix = self.glass(sl, h, w, rng.uniform(0.45, 0.75))
        goods = np.stack([self.low[sl], self.mid[sl], -self.low[sl]], axis=-1)
        pix *= 1 + 0.12 * goods
        if rng.random() < 0.4:  # lit interior
            pix += np.float32([0.12, 0.09, 0.04]) * rng.uniform(0.5, 1.5)
        pix[:sign_h] = sign * (1 + 0.03 * self.fine[sl][:sign_h, :, None])
        letter = (
            np.float32([0.95, 0.95, 0.92]) if sign.mean() < 0.5 else np.float32([0.1, 0.1, 0.1])
        )
        text_w = round(w * rng.uniform(0.3, 0.7))
        tx0 = (w - text_w) // 2
        ty0, ty1 = round(sign_h * 0.3), max(round(sign_h * 0.3) + 1, round(sign_h * 0.72))
        u = np.arange(text_w)
        glyphs = (u * 7 // self.px(4)) % 3 != 2
        cols = np.zeros(w, dtype=bool)
        cols[tx0 : tx0 + text_w] = glyphs
        pix[ty0:ty1, cols] = letter
        pix[sign_h - 1 : sign_h] *= 0.5
        metal = st.metal if rng.random() < 0.7 else st.frame
        f = self.px(rng.uniform(1, 2.2))
        panel = self.px(rng.uniform(18, 40))
        n_panels = max(1, round(w / panel))
        for k in range(n_panels + 1):
            c = min(w - f, round(k * w / n_panels - f / 2))
            pix[sign_h:, max(0, c) : max(0, c) + f] = metal
        kick = self.px(rng.uniform(3, 7))
        pix[h - kick :] = metal * (1 + 0.05 * self.fine[sl][h - kick :, :, None])
        pix[sign_h : sign_h + f] = metal
        if rng.random() < 0.3:  # striped awning under the sign
            aw = max(2, round((h - sign_h) * rng.uniform(0.15, 0.25)))
            stripe = (np.arange(w) // self.px(4)) % 2 == 0
            colour = _pick(rng, [(0.6, 0.1, 0.1), (0.1, 0.35, 0.2), (0.15, 0.2, 0.45)])
            pix[sign_h : sign_h + aw] = np.where(stripe[:, None], colour, np.float32(0.9))
            pix[sign_h + aw : sign_h + aw + self.px(3)] *= 0.5
        pix[sign_h:, :] *= np.where(np.arange(h - sign_h) < self.px(3), 0.6, 1.0)[:, None, None]
        self.put(sl, mask, pix)

    # -- things in front of openings --------------------------------------------------------------

    def shutter(self, part: _Part, box: Box, sl, mask) -> None:
        y0 = box[1]
        slats = np.where((self.yy[sl] - y0) % self.px(2.5) < 1, 0.78, 1.0)[..., None]
        pix = self.texture(self.style.shutter, sl, 0.6) * slats
        pix[:, :1] *= 0.7
        pix[:, -1:] *= 0.7
        pix[:1] *= 0.7
        pix[-1:] *= 0.7
        self.put(sl, mask, pix)

    def closed(self, part: _Part, box: Box, sl, mask) -> None:
        self.shutter(part, box, sl, mask)
        mid = (box[0] + box[2]) // 2
        self.shade(box[1], box[3], mid, mid + 1, 0.5)

    def roller(self, part: _Part, box: Box, sl, mask) -> None:
        y0 = box[1]
        lines = np.where((self.yy[sl] - y0) % self.px(3) < 1, 0.8, 1.0)[..., None]
        pix = self.texture(self.style.roller, sl, 0.5) * lines
        pix[-self.px(2) :] = self.style.roller * 0.45
        pix[: self.px(1.5)] *= 0.6
        self.put(sl, mask, pix)

    def balcony(self, part: _Part, box: Box, sl, mask) -> None:
        rng, st = self.rng, self.style
        x0, _, x1, y1 = box
        reg = self.img[sl]
        h = reg.shape[0]
        slab = min(h - 2, self.px(rng.uniform(2, 3.5)))
        rail = self.px(rng.uniform(1, 2))
        u = self.xx[sl][0] - x0
        behind = reg * 0.8
        if st.railing == "bars":
            period = self.px(rng.uniform(3, 4.5))
            bar = (u % period) < max(1, period // 3)
            bar[:rail] = bar[-rail:] = True
            metal = st.metal * (1 + 0.05 * self.fine[sl][..., None])
            pix = np.where(bar[None, :, None], metal, behind)
            pix[:rail] = metal[:rail]
            pix[h - slab - rail : h - slab] = metal[h - slab - rail : h - slab]
        elif st.railing == "balusters":
            period = self.px(rng.uniform(4, 6))
            t = (np.arange(h, dtype=np.float32)[:, None] + 0.5) / h
            width = period * (0.25 + 0.15 * np.sin(np.pi * t * 1.4))
            column = np.abs((u % period) - period / 2)[None, :] < width
            stone = self.texture(st.trim, sl, 0.6)
            pix = np.where(column[..., None], stone, reg * 0.45)
            pix[: rail + 1] = stone[: rail + 1] * 1.08
            pix[rail + 1 : rail + 2] *= 0.6
        else:  # a parapet of panels between posts
            pix = self.texture(st.trim * rng.uniform(0.8, 0.95), sl, 0.7)
            pix[: rail + 1] *= 1.12
            pix[rail + 1 : rail + 2] *= 0.7
            period = self.px(rng.uniform(12, 24))
            post = (u % period) < self.px(2)
            post[:2] = post[-2:] = True
            panel = ~post & ((u % period) > self.px(3)) & ((u % period) < period - 1)
            rows = slice(rail + self.px(2), max(rail + self.px(2), h - slab - self.px(1)))
            pix[rows, panel] *= 0.82
            pix[:, post] *= 1.08
        pix[h - slab :] = self.texture(st.trim, sl, 0.6)[h - slab :]
        pix[h - slab : h - slab + 1] *= 1.1
        pix[h - 1 :] *= 0.7
        self.put(sl, mask, pix)
        self.drop_shadow(x0, x1, y1, self.px(rng.uniform(2, 5)), 0.5)


# ----------------------------------------------------------------------------------------------
# Command line


def _splits_arg(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(c) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TRAIN,VAL,TEST counts, got {text!r}") from None
    if len(counts) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 counts TRAIN,VAL,TEST, got {text!r}")
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="python -m train.datasets.synthetic_facades", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument(
        "--n", type=int, default=None, help="total pairs, split 4:1:1 (default: 400/100/100)"
    )
    p.add_argument("--splits", type=_splits_arg, default=None, help="explicit TRAIN,VAL,TEST")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default: 0)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default: 256)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        out = generate(args.out, n=args.n, splits=args.splits, seed=args.seed, size=args.size)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
