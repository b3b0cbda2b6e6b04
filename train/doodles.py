"""Freehand doodles: strokes a person might draw with the mouse (browser tests, the report).

Each doodle is a list of strokes; a stroke is a list of (x, y) points in fractions of the canvas.
They are not from any dataset: circles are wobbly, shapes are left open where a quick drawing
leaves them open, proportions are a person's, not a designer's.
"""

from __future__ import annotations

import itertools
import math

from PIL import Image, ImageDraw

Point = tuple[float, float]
Stroke = list[Point]


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, *, start: float = 0.0, end: float = 360.0,
    n: int = 28, wobble: float = 0.012, seed: int = 0,
) -> Stroke:  # fmt: skip
    """An arc of an ellipse (degrees, clockwise on screen) with a hand's wobble."""
    pts = []
    for k in range(n + 1):
        t = math.radians(start + (end - start) * k / n)
        w = wobble * math.sin(3.1 * t + seed) + 0.6 * wobble * math.sin(7.3 * t + 2 * seed)
        pts.append((cx + (rx + w) * math.cos(t), cy + (ry + w) * math.sin(t)))
    return pts


def _line(*points: Point, n: int = 6) -> Stroke:
    """A polyline through ``points``, each segment split in ``n`` mouse moves."""
    pts = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        pts += [(x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n) for k in range(1, n + 1)]
    return pts


DOODLES: dict[str, list[Stroke]] = {
    "cat-face": [
        _ellipse(0.5, 0.56, 0.3, 0.26, seed=1),
        _line((0.26, 0.42), (0.24, 0.14), (0.42, 0.32)),
        _line((0.58, 0.32), (0.76, 0.14), (0.74, 0.42)),
        _ellipse(0.4, 0.52, 0.03, 0.045, n=10, wobble=0.002),
        _ellipse(0.6, 0.52, 0.03, 0.045, n=10, wobble=0.002),
        _line((0.47, 0.63), (0.5, 0.66), (0.53, 0.63)),
        _line((0.5, 0.66), (0.5, 0.7), (0.44, 0.73)),
        _line((0.5, 0.7), (0.56, 0.73)),
        _line((0.3, 0.62), (0.1, 0.58)),
        _line((0.7, 0.62), (0.9, 0.58)),
    ],
    "sneaker": [
        _line(
            (0.1, 0.7),
            (0.12, 0.45),
            (0.3, 0.44),
            (0.45, 0.3),
            (0.55, 0.32),
            (0.6, 0.5),
            (0.85, 0.58),
            (0.9, 0.7),
            (0.1, 0.7),
        ),
        _line((0.1, 0.7), (0.1, 0.78), (0.9, 0.78), (0.9, 0.7)),
        _line((0.44, 0.38), (0.52, 0.42)),
        _line((0.41, 0.43), (0.5, 0.47)),
        _line((0.22, 0.6), (0.6, 0.62), (0.8, 0.66)),
    ],
    "house": [
        _line((0.2, 0.45), (0.2, 0.85), (0.8, 0.85), (0.8, 0.45)),
        _line((0.12, 0.5), (0.5, 0.15), (0.88, 0.5)),
        _line((0.42, 0.85), (0.42, 0.62), (0.58, 0.62), (0.58, 0.85)),
        _line((0.27, 0.52), (0.37, 0.52), (0.37, 0.62), (0.27, 0.62), (0.27, 0.52)),
        _line((0.63, 0.52), (0.73, 0.52), (0.73, 0.62), (0.63, 0.62), (0.63, 0.52)),
    ],
    "fish": [
        _ellipse(0.45, 0.5, 0.28, 0.17, seed=2),
        _line((0.72, 0.5), (0.9, 0.32), (0.9, 0.68), (0.72, 0.5)),
        _ellipse(0.3, 0.46, 0.025, 0.025, n=8, wobble=0.002),
        _ellipse(0.44, 0.5, 0.08, 0.12, start=-70, end=70, n=10, seed=3),
        _line((0.4, 0.34), (0.5, 0.24), (0.58, 0.35)),
    ],
    "sun": [
        _ellipse(0.5, 0.5, 0.18, 0.18, seed=4),
        *[
            _line(
                (0.5 + 0.25 * math.cos(a), 0.5 + 0.25 * math.sin(a)),
                (0.5 + 0.38 * math.cos(a), 0.5 + 0.38 * math.sin(a)),
                n=3,
            )
            for a in [k * math.pi / 4 for k in range(8)]
        ],
    ],
    "tree": [
        _ellipse(0.5, 0.38, 0.26, 0.24, seed=5),
        _line((0.44, 0.6), (0.43, 0.88), (0.57, 0.88), (0.56, 0.6)),
    ],
    "car": [
        _line(
            (0.08, 0.68),
            (0.08, 0.5),
            (0.25, 0.47),
            (0.35, 0.3),
            (0.65, 0.3),
            (0.75, 0.47),
            (0.92, 0.5),
            (0.92, 0.68),
            (0.08, 0.68),
        ),
        _ellipse(0.27, 0.7, 0.08, 0.08, wobble=0.004, seed=6),
        _ellipse(0.73, 0.7, 0.08, 0.08, wobble=0.004, seed=7),
        _line((0.38, 0.34), (0.33, 0.46), (0.66, 0.46), (0.62, 0.34), (0.38, 0.34)),
    ],
    "flower": [
        _ellipse(0.5, 0.35, 0.06, 0.06, wobble=0.004, seed=8),
        *[
            _ellipse(
                0.5 + 0.13 * math.cos(a),
                0.35 + 0.13 * math.sin(a),
                0.06,
                0.06,
                wobble=0.004,
                seed=9 + k,
            )
            for k, a in enumerate([k * 2 * math.pi / 5 - math.pi / 2 for k in range(5)])
        ],
        _line((0.5, 0.5), (0.5, 0.9)),
        _line((0.5, 0.72), (0.36, 0.64), (0.5, 0.68)),
    ],
    "apple": [
        _ellipse(0.5, 0.57, 0.28, 0.27, start=-80, end=260, seed=10),
        _line((0.5, 0.32), (0.52, 0.16)),
        _line((0.52, 0.24), (0.64, 0.14), (0.72, 0.2), (0.56, 0.26)),
    ],
    "heart": [
        _ellipse(0.38, 0.38, 0.13, 0.13, start=150, end=360, n=16, seed=11)
        + _line((0.51, 0.38), (0.5, 0.4), n=1)[1:]
        + _ellipse(0.62, 0.38, 0.13, 0.13, start=180, end=390, n=16, seed=12)
        + _line((0.74, 0.44), (0.5, 0.8), (0.26, 0.44), n=8)[1:],
    ],
}


# One colour dab per doodle, as a visitor steers a colour: (the colour pen's swatch name, its
# value, a short stroke inside the doodle's main shape).
DABS: dict[str, tuple[str, str, Stroke]] = {
    "cat-face": ("grey", "#9b9b9a", [(0.28, 0.68), (0.33, 0.7)]),
    "sneaker": ("blue", "#1e50a0", [(0.18, 0.5), (0.24, 0.52)]),
    "house": ("light blue", "#61b2e4", [(0.28, 0.72), (0.3, 0.78)]),
    "fish": ("orange", "#f4aa41", [(0.55, 0.55), (0.6, 0.56)]),
    "sun": ("yellow", "#fcea2b", [(0.47, 0.5), (0.53, 0.5)]),
    "tree": ("green", "#5c9e31", [(0.45, 0.3), (0.55, 0.32)]),
    "car": ("red", "#d22f27", [(0.2, 0.6), (0.26, 0.6)]),
    "flower": ("pink", "#e67a94", [(0.49, 0.35), (0.51, 0.35)]),
    "apple": ("red", "#d22f27", [(0.45, 0.62), (0.52, 0.64)]),
    "heart": ("pink", "#e67a94", [(0.45, 0.5), (0.52, 0.52)]),
}


def draw_doodle(strokes: list[Stroke], size: int = 256, width: int = 7) -> Image.Image:
    """``strokes`` as black lines ``width`` px wide on a white ``size`` x ``size`` RGB image."""
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line(
            [(x * size, y * size) for x, y in stroke], fill="black", width=width, joint="curve"
        )
    return img
