"""Photo -> edge map in the style of pix2pix's edges2shoes / edges2cats inputs.

The output convention matches those datasets: thin dark lines (0) on a white background (255).
Only numpy, OpenCV and Pillow are used (PIL images are decoded by ``pix2pix.imageio``, the one
decoding rule of every entry point), so the module can run anywhere the app or the data scripts
run, without torch.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import cv2
import numpy as np
from PIL import Image

from pix2pix import imageio

METHODS = ("canny", "xdog")

# ITU-R 601 luma, the same weights Pillow uses for RGB -> "L".
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

# Automatic Canny thresholds, in gradient units (3x3 Sobel magnitude on a 0..255 image; a sharp
# step of height h peaks at 4h, about 2.6h after the default blur). The floor keeps flat or nearly
# flat images blank instead of tracing sensor noise or JPEG blocks. The 1.33 / 0.66 factors are the
# classic median rule, centred on Otsu's split of the gradient magnitudes instead of the median
# intensity; tried on photos they keep outlines and drop most fur and bark texture.
_AUTO_HIGH_FLOOR = 40.0
_AUTO_HIGH_FACTOR = 1.33
_LOW_HIGH_RATIO = 0.5


def photo_to_edges(
    image: Image.Image | np.ndarray,
    *,
    method: str = "canny",
    low: float | None = None,
    high: float | None = None,
    blur: float = 1.0,
    min_fragment: int = 12,
    line_width: int = 1,
    max_side: int | None = None,
) -> np.ndarray:
    """Turn a photo into a uint8 (H, W) edge map: 0 = line, 255 = background.

    ``image`` is a PIL image of any common mode or an (H, W), (H, W, 1..4) array of uint8, uint16
    or float in [0, 1] (channels are gray, gray+alpha, RGB or RGBA). Transparent pixels are
    composited onto white. PIL images are read by ``pix2pix.imageio.to_rgb``, as everywhere:
    EXIF orientation applied, 8-bit, "I;16" a full 16-bit range, "I" and "F" scaled by the range
    their values use (0..1 for "F", 0..255 as ``convert("I")`` / ``convert("F")`` produce, else
    16-bit).

    ``low``/``high`` are Canny hysteresis thresholds on the 3x3 Sobel gradient magnitude of the
    0..255 image. With both None they are chosen per image: ``high = 1.33 * T`` and
    ``low = high / 2`` (about ``0.66 * T``), where ``T`` is Otsu's threshold of the gradient
    magnitudes, which splits object boundaries from texture and noise; ``high`` is floored at 40 so
    flat images stay blank. With only one given, the other follows the same 1:2 ratio.

    ``method="xdog"`` uses :func:`xdog` with its defaults and takes no thresholds. ``blur`` is a
    Gaussian sigma in working pixels. ``min_fragment`` is counted on the 1-px lines at full
    resolution, so it is roughly a minimum line length. ``max_side`` detects on a downscaled copy
    (faster on large photos, and coarser detail); the lines are redrawn 1 px wide at full size.
    """
    if method not in METHODS:
        raise ValueError(f"unknown edge method {method!r}; expected one of {METHODS}")
    if method != "canny" and (low is not None or high is not None):
        raise ValueError(
            f"low/high are Canny thresholds and do not apply to method={method!r}; "
            f"got low={low!r}, high={high!r}"
        )
    low = _check_optional_real("low", low)
    high = _check_optional_real("high", high)
    if low is not None and high is not None and low > high:
        raise ValueError(f"expected low <= high, got low={low!r} > high={high!r}")
    blur = _check_real("blur", blur)
    min_fragment = _check_int("min_fragment", min_fragment, minimum=0)
    line_width = _check_int("line_width", line_width, minimum=1)
    if max_side is not None:
        max_side = _check_int("max_side", max_side, minimum=1)

    gray = _to_gray(image)  # float32 (H, W) in [0, 1], composited on white
    height, width = gray.shape

    work = gray
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if blur > 0:
        work = cv2.GaussianBlur(work, (0, 0), sigmaX=blur, sigmaY=blur)

    lines = _canny(work, low, high) if method == "canny" else xdog(work) == 0

    lines = thin(lines)
    if lines.shape != (height, width):
        lines = thin(_redraw_at_size(lines, height, width))
    if min_fragment > 0:
        lines = _remove_small_fragments(lines, min_fragment)
    if line_width > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (line_width, line_width))
        lines = cv2.dilate(lines.astype(np.uint8), kernel).astype(bool)
    return np.where(lines, 0, 255).astype(np.uint8)


# A drawing (not a photo): mostly paper, and most of the rest dark lines; a few coloured dabs on top
# are allowed. Product photos on white have much paper too, but their other pixels are mid-tones.
DRAWING_PAPER = 0.55  # share of near-white pixels (every channel >= 225), at least
DRAWING_INK = 0.5  # share of the other pixels that are dark (luma < 100) or vivid dabs, at least


def looks_like_drawing(image: Image.Image | np.ndarray) -> bool:
    """Whether ``image`` already is a line drawing (dark lines on white, optional colour dabs),
    so that turning it into an edge map would only lose what it holds (dab colours, line widths).

    ``image``: a PIL image or an (H, W) / (H, W, 3) uint8 array. True when at least
    ``DRAWING_PAPER`` of the pixels are near-white and at least ``DRAWING_INK`` of the others are
    dark or strongly coloured (HSV saturation >= 0.5 and value >= 0.4: colour-pen dabs), as a
    canvas drawing or a scanned line drawing is; photos, even product shots on white, have
    mid-tones instead.
    """
    rgb = _pil_to_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = rgb[..., :3].astype(np.float32)
    paper = rgb.min(axis=2) >= 225
    if paper.mean() < DRAWING_PAPER or paper.all():
        return False
    rest = rgb[~paper]
    dark = rest @ _LUMA < 100
    high, low = rest.max(axis=1), rest.min(axis=1)
    vivid = (high >= 0.4 * 255) & (high - low >= 0.5 * high)
    return bool((dark | vivid).mean() >= DRAWING_INK)


def edges_to_pil(edges: np.ndarray) -> Image.Image:
    """Convert a uint8 (H, W) edge map to the RGB PIL image the generators take."""
    if not isinstance(edges, np.ndarray):
        raise TypeError(f"expected a numpy array edge map, got {type(edges).__name__}")
    if edges.dtype != np.uint8:
        raise TypeError(f"expected a uint8 edge map, got dtype {edges.dtype}")
    if edges.ndim != 2 or edges.size == 0:
        raise ValueError(f"expected a non-empty (H, W) edge map, got shape {edges.shape}")
    return Image.fromarray(np.ascontiguousarray(edges)).convert("RGB")


def xdog(
    gray: np.ndarray,
    *,
    sigma: float = 0.8,
    k: float = 1.6,
    p: float = 100.0,
    epsilon: float = -0.2,
    phi: float = 100.0,
) -> np.ndarray:
    """Binary eXtended Difference-of-Gaussians lines (Winnemöller et al. 2012): 0 = line, 255 = not.

    ``gray`` is (H, W), uint8 or float in [0, 1]. The sharpened image
    ``S = (1 + p) * G_sigma - p * G_{k*sigma}`` is passed through the soft threshold
    ``T = 1 if S >= epsilon else 1 + tanh(phi * (S - epsilon))`` and pixels with ``T < 0.5`` are
    lines. A negative ``epsilon`` keeps flat regions of any tone white, so only the dark side of
    an edge is drawn (one line per boundary, not filled dark areas); larger ``p`` makes fainter
    edges count, larger ``sigma`` gives coarser lines.
    """
    if not isinstance(gray, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(gray).__name__}")
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty (H, W) grayscale array, got shape {gray.shape}")
    sigma = _check_real("sigma", sigma, positive=True)
    k = _check_real("k", k)
    if k <= 1:
        raise ValueError(f"expected k > 1 (the second Gaussian is the wider one), got k={k!r}")
    p = _check_real("p", p)
    epsilon = _check_real("epsilon", epsilon, nonneg=False)
    phi = _check_real("phi", phi, positive=True)
    if gray.dtype == np.uint8:
        img = gray.astype(np.float32) / 255.0
    elif np.issubdtype(gray.dtype, np.floating):
        img = _check_unit_range(gray.astype(np.float32))
    else:
        raise TypeError(f"expected a uint8 or float grayscale array, got dtype {gray.dtype}")

    g1 = cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, sigmaY=sigma)
    g2 = cv2.GaussianBlur(img, (0, 0), sigmaX=k * sigma, sigmaY=k * sigma)
    sharpened = (1.0 + p) * g1 - p * g2
    soft = np.where(sharpened >= epsilon, 1.0, 1.0 + np.tanh(phi * (sharpened - epsilon)))
    return np.where(soft < 0.5, 0, 255).astype(np.uint8)


def thin(mask: np.ndarray) -> np.ndarray:
    """Thin a boolean (H, W) mask to 1-px, 8-connected lines without splitting or losing parts.

    Guo & Hall's parallel two-subiteration algorithm (unlike Zhang-Suen it does not erase 2x2
    blocks, so small blobs survive as a pixel), then a staircase clean-up.
    """
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    height, width = mask.shape
    padded = np.zeros((height + 2, width + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = mask.astype(bool)
    flat = padded.reshape(-1)  # a view: writes go to `padded`
    stride = width + 2
    # Neighbours P2..P9 clockwise from north, as flat offsets; bit i of a code is P(i + 2).
    offsets = np.array(
        [-stride, -stride + 1, 1, stride + 1, stride, stride - 1, -1, -stride - 1], dtype=np.intp
    )
    weights = (1 << np.arange(8)).astype(np.uint16)

    # Work only on foreground pixel indices: edge maps are sparse, so this is much faster than
    # whole-image array passes, and the one border of zeros makes every neighbour index valid.
    idx = np.flatnonzero(flat)

    def delete_where(table: np.ndarray) -> bool:
        nonlocal idx
        codes = flat[idx[:, None] + offsets] @ weights
        doomed = table[codes]
        if not doomed.any():
            return False
        flat[idx[doomed]] = 0
        idx = idx[~doomed]
        return True

    while True:
        changed = delete_where(_GUO_HALL_FIRST)
        changed = delete_where(_GUO_HALL_SECOND) or changed
        if not changed:
            break
    # Guo-Hall leaves pixels on the inside corner of staircases (4-connected L shapes). One pass
    # per corner orientation removes them: two adjacent pixels can never both qualify in the same
    # pass, so no gap opens.
    for table in _CORNERS:
        delete_where(table)
    return padded[1:-1, 1:-1].astype(bool)


def _build_thinning_tables() -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    codes = np.arange(256)
    bits = [(codes >> i) & 1 for i in range(8)]
    p2, p3, p4, p5, p6, p7, p8, p9 = bits
    count = sum(bits)
    # C(P) in Guo & Hall: the number of 8-connected groups among the neighbours. 1 means deleting
    # the pixel cannot split a line.
    groups = (
        ((1 - p2) & (p3 | p4))
        + ((1 - p4) & (p5 | p6))
        + ((1 - p6) & (p7 | p8))
        + ((1 - p8) & (p9 | p2))
    )
    simple = (groups == 1) & (count >= 2)
    pairs1 = (p9 | p2) + (p3 | p4) + (p5 | p6) + (p7 | p8)
    pairs2 = (p2 | p3) + (p4 | p5) + (p6 | p7) + (p8 | p9)
    pairs = np.minimum(pairs1, pairs2)
    base = (groups == 1) & (pairs >= 2) & (pairs <= 3)
    first = base & (((p6 | p7 | (1 - p9)) & p8) == 0)
    second = base & (((p2 | p3 | (1 - p5)) & p4) == 0)
    corners = tuple(
        simple & (a == 1) & (b == 1) & (diag == 0)
        for a, b, diag in ((p2, p4, p3), (p4, p6, p5), (p6, p8, p7), (p8, p2, p9))
    )
    return first.astype(bool), second.astype(bool), corners


_GUO_HALL_FIRST, _GUO_HALL_SECOND, _CORNERS = _build_thinning_tables()


def _canny(gray: np.ndarray, low: float | None, high: float | None) -> np.ndarray:
    # Gradients from the float image (not an 8-bit copy) keep 16-bit and float inputs' precision.
    scaled = gray * 255.0
    gx = cv2.Sobel(scaled, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(scaled, cv2.CV_32F, 0, 1, ksize=3)
    if low is None or high is None:
        if high is None and low is not None:
            high = low / _LOW_HIGH_RATIO
        elif high is None:
            high = _auto_high_threshold(np.hypot(gx, gy))
        if low is None:
            low = _LOW_HIGH_RATIO * high
    dx = np.rint(gx).astype(np.int16)
    dy = np.rint(gy).astype(np.int16)
    return cv2.Canny(dx, dy, low, high, L2gradient=True) > 0


def _auto_high_threshold(magnitude: np.ndarray) -> float:
    # Otsu over all pixels, flat ones included: on photos it splits boundaries from texture, and on
    # clean graphics (mostly zero gradient) it lands below the weakest real boundary.
    top = float(magnitude.max())
    if top <= _AUTO_HIGH_FLOOR:
        return _AUTO_HIGH_FLOOR
    codes = np.round(magnitude * (255.0 / top)).astype(np.uint8)
    otsu, _ = cv2.threshold(codes, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return max(_AUTO_HIGH_FLOOR, _AUTO_HIGH_FACTOR * float(otsu) * top / 255.0)


def _redraw_at_size(lines: np.ndarray, height: int, width: int) -> np.ndarray:
    # Joining neighbouring pixel centres with 1-px segments at the target size keeps lines thin
    # and connected; resizing the mask instead gives bands as wide as the scale factor, which are
    # slow to thin back and come out blocky.
    small_h, small_w = lines.shape
    padded = np.pad(lines, 1)
    starts, ends = [], []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        linked = lines & padded[1 + dy : 1 + dy + small_h, 1 + dx : 1 + dx + small_w]
        ys, xs = np.nonzero(linked)
        starts.append(np.stack([xs, ys], axis=1))
        ends.append(np.stack([xs + dx, ys + dy], axis=1))
    neighbours = cv2.filter2D(lines.astype(np.uint8), -1, np.ones((3, 3), np.float32)) - 1
    ys, xs = np.nonzero(lines & (neighbours == 0))  # isolated pixels become dots
    starts.append(np.stack([xs, ys], axis=1))
    ends.append(np.stack([xs, ys], axis=1))

    scale = np.array([width / small_w, height / small_h])
    fraction_bits = 4  # cv2 drawing takes fixed-point coordinates via `shift`
    segments = np.stack([np.concatenate(starts), np.concatenate(ends)], axis=1)  # (N, 2, 2) x, y
    points = np.rint(((segments + 0.5) * scale - 0.5) * (1 << fraction_bits)).astype(np.int32)
    canvas = np.zeros((height, width), dtype=np.uint8)
    if len(points):
        cv2.polylines(
            canvas, points, isClosed=False, color=1, lineType=cv2.LINE_8, shift=fraction_bits
        )
    return canvas.astype(bool)


def _remove_small_fragments(lines: np.ndarray, min_pixels: int) -> np.ndarray:
    _, labels, stats, _ = cv2.connectedComponentsWithStats(lines.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False  # label 0 is the background
    return keep[labels]


def _to_gray(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return a float32 (H, W) copy in [0, 1] with transparency composited onto white."""
    if isinstance(image, Image.Image):
        array = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"expected a PIL image or a numpy array, got {type(image).__name__}")

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (2, 3, 4)):
        raise ValueError(
            f"expected an image of shape (H, W) or (H, W, C) with C in 1..4, "
            f"got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"expected a non-empty image, got shape {array.shape}")

    # kind + itemsize rather than dtype equality, so byte-swapped arrays (e.g. ">u2") count too.
    unsigned = array.dtype.kind == "u"
    if unsigned and array.dtype.itemsize == 1:
        values = array.astype(np.float32) / 255.0
    elif unsigned and array.dtype.itemsize == 2:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = _check_unit_range(array.astype(np.float32))
    else:
        raise TypeError(
            f"expected image dtype uint8, uint16 or float in [0, 1], got dtype {array.dtype}"
        )

    if values.ndim == 2:
        return values
    channels = values.shape[2]
    gray = values[:, :, 0] if channels == 2 else values[:, :, :3] @ _LUMA
    if channels in (2, 4):
        alpha = values[:, :, -1]
        gray = alpha * gray + (1.0 - alpha)
    return np.clip(gray, 0.0, 1.0).astype(np.float32)


def _pil_to_array(image: Image.Image) -> np.ndarray:
    # The one decoding rule of every entry point: upright per EXIF, 8-bit RGB, alpha on white.
    return np.asarray(imageio.to_rgb(image))


def _check_unit_range(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    # The slack admits rounding overshoot from blurs and resizes (e.g. 1.0000001) but not 0..255.
    slack = 1e-3
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -slack or hi > 1.0 + slack:
        raise ValueError(f"expected float values in [0, 1], got values in [{lo}, {hi}]")
    return np.clip(values, 0.0, 1.0)


def _check_real(name: str, value: object, *, positive: bool = False, nonneg: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"expected a number for {name}, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite {name}, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"expected {name} > 0, got {value!r}")
    if nonneg and value < 0:
        raise ValueError(f"expected {name} >= 0, got {value!r}")
    return value


def _check_optional_real(name: str, value: object) -> float | None:
    return None if value is None else _check_real(name, value)


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"expected an integer for {name}, got {value!r}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value!r}")
    return int(value)
