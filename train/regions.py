"""Colour per region, as a visitor sees a coloured drawing: the line-art model's metric.

A line drawing splits the image into *regions*: the connected areas of non-line pixels that do
not touch the image's border (the closed shapes; the paper around the drawing is not one). Each
region is eroded by ``ERODE`` px (so anti-aliased edges and line overshoot do not count) and
compared by its mean colour in CIELAB (D65), output against target, with the CIE 1976 colour
difference dE76 (Euclidean distance in L*a*b*; a dE of about 2.3 is just noticeable, 10 is a
clearly different shade, 50+ a different colour).

Also here: the *dominant hue* of a coloured drawing (the named hue with the largest chromatic
region area), the hint-following measures (regions given a dab: their dE to the target; regions
not given one but next to one: how far they moved toward the dab's colour, *leak*) and the
high-frequency energy inside flat regions (checkerboard and blotch textures).

Every function takes numpy arrays: line art and images (H, W, 3) uint8 RGB, 0-255.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

ERODE = 2  # px removed along each region's edge before its mean is taken
CLOSE_GAPS = 3  # px: lines are thickened by this first, closing gaps of up to twice it
MIN_AREA = 30  # px left after erosion: smaller regions are dots of the drawing, not shapes
LINE_LEVEL = 128  # line art pixels darker than this (luminance) are lines
NEUTRAL_CHROMA = 15.0  # CIELAB C* below this is grey / white / black, not a hue
# Named hue bins on the HSV hue of the mean sRGB colour, in degrees: (name, start); each bin runs
# to the next start, and red wraps around 360. Emoji yellows (#FCEA2B, #FFCC4D: 43-55
# degrees) fall in "yellow"; skin, amber (#FFB02E) and orange (#FFA500) below 40 in "orange".
HUES = (
    ("orange", 15.0),
    ("yellow", 40.0),
    ("green", 70.0),
    ("cyan", 165.0),
    ("blue", 195.0),
    ("purple", 255.0),
    ("pink", 305.0),
    ("red", 345.0),
)


@dataclass(frozen=True)
class Regions:
    """Regions of a line drawing: ``labels`` (H, W) int32, 0 outside any region, 1..n inside
    (eroded); ``full`` (H, W) int32, the same regions before erosion; ``count`` n."""

    labels: np.ndarray
    full: np.ndarray
    count: int

    def masks(self) -> list[np.ndarray]:
        """One (H, W) bool mask per region (eroded), in label order."""
        return [self.labels == i for i in range(1, self.count + 1)]


def find_regions(
    line_art: np.ndarray,
    *,
    erode: int = ERODE,
    min_area: int = MIN_AREA,
    close: int = CLOSE_GAPS,
) -> Regions:
    """The closed regions of ``line_art`` ((H, W, 3) or (H, W) uint8; lines dark on light).

    Lines are first thickened by ``close`` px (a disc), so that shapes a drawing leaves open by a
    gap of up to ``2 * close`` px count as closed, as a visitor reads them; then the 4-connected
    components of the remaining pixels that do not touch the border, each eroded by ``erode`` px
    (a disc); components with fewer than ``min_area`` pixels left are dropped.
    """
    grey = line_art if line_art.ndim == 2 else cv2.cvtColor(line_art, cv2.COLOR_RGB2GRAY)
    lines = (grey < LINE_LEVEL).astype(np.uint8)
    if close > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * close + 1, 2 * close + 1))
        lines = cv2.dilate(lines, disc)
    free = 1 - lines
    count, comp = cv2.connectedComponents(free, connectivity=4)
    border = np.unique(np.concatenate([comp[0], comp[-1], comp[:, 0], comp[:, -1]]))
    if erode > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode + 1, 2 * erode + 1))
        kept = cv2.erode(free, disc, borderValue=0).astype(bool)
    else:
        kept = free.astype(bool)
    labels = np.zeros(comp.shape, np.int32)
    full = np.zeros(comp.shape, np.int32)
    n = 0
    for c in range(1, count):
        if c in border:
            continue
        region = comp == c
        inner = region & kept
        if inner.sum() < min_area:
            continue
        n += 1
        labels[inner] = n
        full[region] = n
    return Regions(labels, full, n)


def to_lab(image: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an (H, W, 3) or (N, 3) uint8 sRGB array: float64, L* 0-100."""
    rgb = np.asarray(image, np.float64) / 255.0
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [[0.4124564, 0.2126729, 0.0193339], [0.3575761, 0.7151522, 0.1191920],
         [0.1804375, 0.0721750, 0.9503041]]
    )  # fmt: skip
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def region_means(image: np.ndarray, regions: Regions) -> np.ndarray:
    """Mean CIELAB colour of each region of ``image`` ((H, W, 3) uint8): (n, 3) float64."""
    lab = to_lab(image).reshape(-1, 3)
    flat = regions.labels.reshape(-1)
    sums = np.zeros((regions.count + 1, 3))
    np.add.at(sums, flat, lab)
    counts = np.bincount(flat, minlength=regions.count + 1)[:, None]
    return sums[1:] / np.maximum(counts[1:], 1)


def delta_e(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIE 1976 colour difference between CIELAB colours (broadcasting over leading axes)."""
    return np.linalg.norm(np.asarray(lab1) - np.asarray(lab2), axis=-1)


def hue_name(rgb: np.ndarray) -> str:
    """The named hue (``HUES``) of one mean sRGB colour (3 values, 0-255), or ``"neutral"`` when
    its CIELAB chroma is below ``NEUTRAL_CHROMA`` (white, grey, black)."""
    rgb = np.asarray(rgb, np.float64)
    lab = to_lab(np.clip(rgb, 0, 255)[None])[0]
    if np.hypot(lab[1], lab[2]) < NEUTRAL_CHROMA:
        return "neutral"
    r, g, b = rgb / 255.0
    hue = colorsys.rgb_to_hsv(r, g, b)[0] * 360
    name = "red"  # below the first start: red wraps around
    for hue_bin, start in HUES:
        if hue >= start:
            name = hue_bin
    return name


def region_rgb_means(image: np.ndarray, regions: Regions) -> np.ndarray:
    """Mean sRGB colour of each region of ``image`` ((H, W, 3) uint8): (n, 3) float64, 0-255."""
    flat = regions.labels.reshape(-1)
    sums = np.zeros((regions.count + 1, 3))
    np.add.at(sums, flat, image.reshape(-1, 3).astype(np.float64))
    counts = np.bincount(flat, minlength=regions.count + 1)[:, None]
    return sums[1:] / np.maximum(counts[1:], 1)


def dominant_hue(image: np.ndarray, regions: Regions) -> str:
    """The named hue covering the most region area of ``image`` (neutral regions left out);
    ``"neutral"`` when no region has a hue."""
    means = region_rgb_means(image, regions)
    areas = np.bincount(regions.labels.reshape(-1), minlength=regions.count + 1)[1:]
    totals: dict[str, int] = {}
    for rgb, area in zip(means, areas, strict=True):
        name = hue_name(rgb)
        if name != "neutral":
            totals[name] = totals.get(name, 0) + int(area)
    return max(totals, key=totals.get) if totals else "neutral"


def neighbours(regions: Regions, reach: int = 20) -> list[set[int]]:
    """For each region (0-based), the regions within ``reach`` px of it: across a line (up to
    about 14 px wide at 256 px) and the gap closing around it (``CLOSE_GAPS`` on each side)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    h, w = regions.full.shape
    out = []
    for i, box in enumerate(ndimage.find_objects(regions.full), start=1):
        if box is None:
            out.append(set())
            continue
        # Only the region's bounding box, grown by ``reach``, can hold its neighbours.
        ys = slice(max(box[0].start - reach, 0), min(box[0].stop + reach, h))
        xs = slice(max(box[1].start - reach, 0), min(box[1].stop + reach, w))
        local = regions.full[ys, xs]
        grown = cv2.dilate((local == i).astype(np.uint8), kernel).astype(bool)
        near = set(np.unique(local[grown]).tolist()) - {0, i}
        out.append({j - 1 for j in near})
    return out


def flat_energy(image: np.ndarray, target: np.ndarray, regions: Regions) -> tuple[float, float]:
    """High-frequency energy inside the regions where ``target`` is flat: (image's, target's).

    A region is flat when the target's colour varies there by less than 4 (std of each RGB
    channel, 0-255). The energy is the mean squared difference between a pixel and the mean of its
    3x3 neighbourhood (a high-pass filter), over the three channels, in (0-255)^2 units: a
    checkerboard or blotchy texture raises it; a smooth fill gives about 0. Returns (nan, nan)
    when no region is flat.
    """
    img = image.astype(np.float64)
    tgt = target.astype(np.float64)

    def highpass(x: np.ndarray) -> np.ndarray:
        return (x - cv2.blur(x, (3, 3), borderType=cv2.BORDER_REFLECT)) ** 2

    hi_img, hi_tgt = highpass(img).mean(axis=2), highpass(tgt).mean(axis=2)
    # One more pixel in from the edge: the 3x3 window must stay inside the region.
    inner = cv2.erode((regions.labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    flat = np.zeros(regions.labels.shape, bool)
    for mask in regions.masks():
        if tgt[mask].std(axis=0).max() < 4.0:
            flat |= mask
    flat &= inner
    if not flat.any():
        return float("nan"), float("nan")
    return float(hi_img[flat].mean()), float(hi_tgt[flat].mean())
