"""Colour hints for line-art models: dabs of the target's colour drawn onto the input.

A model that takes hints reads one RGB image, as any other: black lines on white, plus optional
coloured dabs (dots or short strokes) inside shapes. A dab's colour is the colour its shape should
get; with no dab the model colours as it learnt. This is the paper's conditional GAN with a richer
input; the idea of sampling user hints from the ground truth during training comes from Zhang et
al., "Real-Time User-Guided Image Colorization with Learned Deep Priors" (SIGGRAPH 2017), which
sampled points and small patches of the target's colour at random.

Here, during training, each example gets 0 dabs with probability ``none_share`` (so the no-hint
default stays good) and otherwise 1 to ``max_dabs``; a dab is a disc (a dot) or a short stroke (a
capsule) of radius ``radius`` pixels at 256 px (scaled with the crop side), centred on a random
pixel that is neither a line of the drawing nor white in the target, and painted with the
target's colour at that pixel. It covers only pixels that are not lines and whose target colour is
close to that colour, so it never crosses a line into a neighbouring shape, as a person dabbing
inside a shape would not. With ``soft_edge`` its rim fades into what lies under it over up to
that many pixels, as a brush on the canvas draws it (anti-aliased, then downscaled), so that a
model sees the faded rims visitors draw (docs/RESULTS.md: what training with them changed).

With ``recolour`` a share of the dabs get a random colour instead (``recolour_grey`` of them a
grey), and the target's shape under the dab (its connected pixels of the centre's colour, up to
the lines; with ``recolour_region`` the whole closed shape of the line drawing, flat) is
recoloured to match. The colour a visitor asks for often disagrees with what the concept usually
has (a green face, a red tree), and a model that only ever saw dabs agreeing with its prior
learns to trust the prior over the dab (docs/RESULTS.md, session 12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

# Pixels darker than this (in [-1, 1]; 0 is mid-grey) in every channel's minimum are lines.
LINE_LEVEL = 0.0
# Target pixels brighter than this in every channel are white (background, paper): no dab there.
WHITE_LEVEL = 0.85
# A dab covers pixels whose target colour is within this of the dab's colour (max over channels,
# in [-1, 1]; 0.12 is about 15 of 255).
SAME_COLOUR = 0.12


@dataclass(frozen=True)
class DabSpec:
    """How many dabs, how large and of what shape (radii in pixels at a 256-px crop)."""

    none_share: float = 0.5
    max_dabs: int = 8
    radius: tuple[float, float] = (3.0, 10.0)
    stroke_share: float = 0.5
    stroke_length: tuple[float, float] = (8.0, 40.0)
    soft_edge: float = 0.0  # each dab's rim fades over U(0, soft_edge) pixels (0: hard edges)
    recolour: float = 0.0  # the share of dabs (and their shapes in the target) given a new colour
    recolour_grey: float = 0.0  # the share of those new colours that are greys
    recolour_region: bool = False  # recolour the dab's whole closed shape flat (else its colour)

    def __post_init__(self) -> None:
        if not 0 <= self.none_share <= 1:
            raise ValueError(f"none_share must be in [0, 1], got {self.none_share}")
        if self.max_dabs < 1:
            raise ValueError(f"max_dabs must be at least 1, got {self.max_dabs}")
        if not 0 < self.radius[0] <= self.radius[1]:
            raise ValueError(f"radius must be (low, high) with 0 < low <= high: {self.radius}")
        if not 0 <= self.stroke_share <= 1:
            raise ValueError(f"stroke_share must be in [0, 1], got {self.stroke_share}")
        if self.soft_edge < 0:
            raise ValueError(f"soft_edge must be 0 or more pixels, got {self.soft_edge}")
        if not 0 <= self.recolour <= 1:
            raise ValueError(f"recolour must be in [0, 1], got {self.recolour}")
        if not 0 <= self.recolour_grey <= 1:
            raise ValueError(f"recolour_grey must be in [0, 1], got {self.recolour_grey}")


def line_mask(inp: torch.Tensor) -> torch.Tensor:
    """Pixels of a (3, H, W) line drawing in [-1, 1] that are lines: (H, W) bool."""
    return inp.amin(0) < LINE_LEVEL


def capsule_distance(
    shape: tuple[int, int], centre: tuple[float, float], end: tuple[float, float]
) -> torch.Tensor:
    """Each pixel's distance (pixels) to the segment from ``centre`` to ``end`` (y, x): (H, W)
    float32; to the point ``centre`` when ``end == centre``."""
    h, w = shape
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    (y0, x0), (y1, x1) = centre, end
    dy, dx = y1 - y0, x1 - x0
    length2 = dy * dy + dx * dx
    if length2 == 0:
        t = torch.zeros(())
    else:  # the nearest point of the segment to each pixel
        t = (((yy - y0) * dy + (xx - x0) * dx) / length2).clamp(0, 1)
    return ((yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2).sqrt()


def paint_dab(
    inp: torch.Tensor,
    target: torch.Tensor,
    centre: tuple[int, int],
    radius: float,
    end: tuple[float, float] | None = None,
    *,
    lines: torch.Tensor | None = None,
    soft_edge: float = 0.0,
) -> torch.Tensor:
    """Paint one dab of the target's colour at ``centre`` (y, x) onto ``inp``, in place.

    Covers the capsule's pixels that are not lines of ``inp`` and whose target colour is within
    ``SAME_COLOUR`` of the centre's. With ``soft_edge`` > 0 (pixels) the dab's opacity falls
    linearly from 1 to 0 across a rim that wide centred on ``radius``, blending the colour with
    what is under it. Returns the (H, W) bool mask of painted pixels (any opacity).
    """
    if lines is None:
        lines = line_mask(inp)
    h, w = int(inp.shape[1]), int(inp.shape[2])
    y, x = centre
    end = end if end is not None else (float(y), float(x))
    colour = target[:, y, x].clone()
    # Work in the capsule's bounding box only (a dab is small beside the image).
    reach = radius + soft_edge / 2
    top = max(int(min(y, end[0]) - reach) - 1, 0)
    left = max(int(min(x, end[1]) - reach) - 1, 0)
    bottom = min(int(max(y, end[0]) + reach) + 2, h)
    right = min(int(max(x, end[1]) + reach) + 2, w)
    painted = torch.zeros((h, w), dtype=torch.bool)
    if bottom <= top or right <= left:
        return painted
    box = (slice(top, bottom), slice(left, right))
    distance = capsule_distance(
        (bottom - top, right - left),
        (float(y - top), float(x - left)),
        (end[0] - top, end[1] - left),
    )
    if soft_edge > 0:
        opacity = ((reach - distance) / soft_edge).clamp(0, 1)
    else:
        opacity = (distance <= radius).float()
    same = (target[:, box[0], box[1]] - colour[:, None, None]).abs().amax(0) <= SAME_COLOUR
    local = (opacity > 0) & same & ~lines[box]
    painted[box] = local
    under = inp[:, box[0], box[1]]
    alpha = opacity[local].to(inp.dtype)
    under[:, local] = alpha * colour[:, None].to(inp.dtype) + (1 - alpha) * under[:, local]
    return painted


# A recoloured dab's colour: each channel uniform in [-1, 1], redrawn while it is near white
# (invisible on paper) or near black (it would read as a filled part of the drawing).
RECOLOUR_WHITE = WHITE_LEVEL
RECOLOUR_DARK = -0.2  # the brightest channel must be above this
# A grey recoloured dab's level, in [-1, 1]: between a line and the paper, as
# networks.HintPropagation reads a grey dab (LINE 0.6 and PAPER 0.9 in [0, 1]).
RECOLOUR_GREY = (0.2, 0.8)


def random_dab_colour(grey: float = 0.0) -> torch.Tensor:
    """A (3,) colour in [-1, 1] for a recoloured dab: with probability ``grey`` a grey of a
    level uniform in ``RECOLOUR_GREY``, else a colour neither near white nor near black."""
    if grey and torch.rand(()) < grey:
        lo, hi = RECOLOUR_GREY
        return torch.full((3,), float(lo + (hi - lo) * torch.rand(())))
    while True:
        colour = torch.rand(3) * 2 - 1
        if colour.amin() <= RECOLOUR_WHITE and colour.amax() > RECOLOUR_DARK:
            return colour


# Gaps in a drawing's lines up to twice this (px) close a shape for recolour_region, as
# train.regions reads a drawing.
CLOSE_GAPS = 3


_DISC = ndimage.iterate_structure(ndimage.generate_binary_structure(2, 1), CLOSE_GAPS)


def closed_areas(lines: torch.Tensor) -> np.ndarray:
    """The 4-connected areas a line drawing's ``lines`` ((H, W) bool) enclose once thickened by
    ``CLOSE_GAPS`` px: (H, W) int labels, 0 on the thickened lines (``closed_shape``'s input)."""
    labels, _ = ndimage.label(~ndimage.binary_dilation(lines.numpy(), structure=_DISC))
    return labels


def closed_shape(
    lines: torch.Tensor, centre: tuple[int, int], areas: np.ndarray | None = None
) -> torch.Tensor | None:
    """The closed shape of a line drawing around ``centre`` (y, x): (H, W) bool.

    The pixels that are not ``lines`` in the area around ``centre`` of ``closed_areas`` (computed
    here unless given), grown back to the lines by the same disc (so a sharp corner keeps a few
    pixels out); None where that area touches the border (an open shape, or the paper) or the
    centre lies within ``CLOSE_GAPS`` of a line.
    """
    labels = closed_areas(lines) if areas is None else areas
    label = labels[centre]
    if label == 0:
        return None
    area = labels == label
    if area[0].any() or area[-1].any() or area[:, 0].any() or area[:, -1].any():
        return None
    return torch.from_numpy(ndimage.binary_dilation(area, structure=_DISC) & ~lines.numpy())


def recolour_shape(
    target: torch.Tensor,
    lines: torch.Tensor,
    centre: tuple[int, int],
    colour: torch.Tensor,
    *,
    region: bool = False,
    areas: np.ndarray | None = None,
) -> torch.Tensor:
    """Shift the target's shape under ``centre`` (y, x) to ``colour``, in place.

    The shape is the 4-connected set of pixels that are not ``lines`` and whose target colour is
    within ``SAME_COLOUR`` of the centre's (a flat fill up to its outlines); its pixels move by
    ``colour`` minus the centre's colour (keeping any shading), clamped to [-1, 1]. With
    ``region`` it is the drawing's whole closed shape there (``closed_shape``), filled flat with
    ``colour``, as a visitor's dab asks (``areas``: ``closed_areas(lines)``, when already
    computed); where that shape is open, the colour's shape as above. Returns the (H, W) bool mask
    of the shape.
    """
    y, x = centre
    if region:
        shape = closed_shape(lines, centre, areas)
        if shape is not None:
            target[:, shape] = colour.to(target.dtype)[:, None]
            return shape
    old = target[:, y, x].clone()
    same = ((target - old[:, None, None]).abs().amax(0) <= SAME_COLOUR) & ~lines
    labels, _ = ndimage.label(same.numpy())
    shape = torch.from_numpy(labels == labels[y, x])
    shift = (colour.to(target.dtype) - old)[:, None]
    target[:, shape] = (target[:, shape] + shift).clamp(-1, 1)
    return shape


def sample_dabs(
    inp: torch.Tensor, target: torch.Tensor, spec: DabSpec = DabSpec()
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Draw random dabs of ``target``'s colours onto a copy of the line drawing ``inp``.

    Args:
        inp: (3, H, W) float line drawing in [-1, 1] (black lines on white).
        target: (3, H, W) float colour image in [-1, 1], aligned with ``inp``.
        spec: how many dabs and how large; radii are for a 256-px side and scale with ``W``.

    Returns:
        The input with dabs (a new tensor); the target, a new tensor with the recoloured shapes
        where ``spec.recolour`` gave any dab a new colour, else ``target`` itself; and the number
        of dabs painted (0 when the draw says none, or when the target has no pixel that is
        neither a line nor white).

    Randomness comes from torch's default generator, so the trainer's per-example seeding makes
    the dabs reproducible; with ``recolour`` 0 the draws are those of earlier versions, so runs
    made before it resume exactly.
    """
    if inp.shape != target.shape or inp.dim() != 3 or inp.shape[0] != 3:
        raise ValueError(
            f"inp and target must both be (3, H, W), got {tuple(inp.shape)}, {tuple(target.shape)}"
        )
    out = inp.clone()
    if torch.rand(()) < spec.none_share:
        return out, target, 0
    lines = line_mask(inp)
    white = target.amin(0) > WHITE_LEVEL
    candidates = torch.nonzero(~lines & ~white)
    if len(candidates) == 0:
        return out, target, 0
    scale = inp.shape[2] / 256
    count = int(torch.randint(1, spec.max_dabs + 1, ()))
    dabs = []
    for _ in range(count):
        y, x = candidates[int(torch.randint(len(candidates), ()))].tolist()
        lo, hi = spec.radius
        radius = float(lo + (hi - lo) * torch.rand(())) * scale
        end = None
        if torch.rand(()) < spec.stroke_share:
            a, b = spec.stroke_length
            length = float(a + (b - a) * torch.rand(())) * scale
            angle = float(torch.rand(())) * 2 * math.pi
            end = (y + length * math.sin(angle), x + length * math.cos(angle))
        edge = float(spec.soft_edge * torch.rand(())) * scale if spec.soft_edge else 0.0
        colour = None
        if spec.recolour and torch.rand(()) < spec.recolour:
            colour = random_dab_colour(spec.recolour_grey)
        dabs.append(((y, x), radius, end, edge, colour))
    # Recolour (a copy of the target) first, then paint every dab from the final target, so a dab
    # in a shape that a later dab recolours takes the new colour too.
    if any(colour is not None for *_, colour in dabs):
        target = target.clone()
        areas = closed_areas(lines) if spec.recolour_region else None  # once for every dab
        for centre, _, _, _, colour in dabs:
            if colour is not None:
                recolour_shape(
                    target, lines, centre, colour, region=spec.recolour_region, areas=areas
                )
    painted = 0
    for centre, radius, end, edge, _ in dabs:
        if paint_dab(out, target, centre, radius, end, lines=lines, soft_edge=edge).any():
            painted += 1
    return out, target, painted
