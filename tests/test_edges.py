"""Tests for pix2pix.edges: photo -> edge map."""

from __future__ import annotations

import itertools
import re
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from pix2pix import edges
from pix2pix.edges import METHODS, edges_to_pil, photo_to_edges, thin, xdog
from pix2pix.imageio import read_image

HEIGHT, WIDTH = 192, 256
# XDoG draws on the dark side of an edge, so its lines sit about 2 px inside the boundary.
TOLERANCE = {"canny": 2.0, "xdog": 3.0}


def _scene(noise: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """An RGB uint8 scene (dark rectangle, blue disc on light grey) and its true boundary mask."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.rectangle(labels, (30, 40), (110, 150), 1, -1)
    cv2.circle(labels, (180, 100), 50, 2, -1)
    palette = np.array([[215, 210, 205], [40, 40, 45], [80, 110, 200]], np.float64)
    rgb = palette[labels] + np.random.default_rng(0).normal(0.0, noise, (HEIGHT, WIDTH, 3))
    boundary = cv2.morphologyEx(labels, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), boundary


def _distance_to(mask: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)


def _precision_recall(edges: np.ndarray, boundary: np.ndarray, tol: float = 2.0):
    """Share of line pixels near the boundary, and share of the boundary near a line."""
    lines = edges == 0
    assert lines.any(), "no lines at all"
    precision = float(np.mean(_distance_to(boundary)[lines] <= tol))
    recall = float(np.mean(_distance_to(lines)[boundary] <= tol))
    return precision, recall


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _textured(size: int = 256, seed: int = 1) -> np.ndarray:
    """A photo-like grey image: smooth random texture of many contrasts plus a few shapes."""
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.normal(size=(size, size)).astype(np.float32), (0, 0), 2.5)
    field = (field - field.min()) / (field.max() - field.min())
    img = (40 + 170 * field).astype(np.uint8)
    cv2.rectangle(img, (size // 8, size // 8), (size // 2, size // 2), 20, -1)
    cv2.circle(img, (3 * size // 4, 2 * size // 3), size // 6, 235, -1)
    return img


@pytest.mark.parametrize("method", METHODS)
def test_lines_follow_shape_boundaries(method):
    rgb, boundary = _scene()
    edges = photo_to_edges(rgb, method=method)
    assert edges.shape == (HEIGHT, WIDTH)
    assert edges.dtype == np.uint8
    assert set(np.unique(edges)) <= {0, 255}
    precision, recall = _precision_recall(edges, boundary, TOLERANCE[method])
    assert precision >= 0.97, precision
    assert recall >= 0.9, recall
    # Background more than a few pixels from any boundary stays white.
    assert (edges[_distance_to(boundary) > 4] == 255).all()


@pytest.mark.parametrize("method", METHODS)
def test_flat_and_faintly_noisy_images_give_no_lines(method):
    flat = np.full((64, 80, 3), 128, np.uint8)
    assert (photo_to_edges(flat, method=method) == 255).all()
    # Sensor-level noise must not be traced, even with fragment clean-up off.
    noisy = np.random.default_rng(0).normal(128, 2.0, (128, 128)).round().astype(np.uint8)
    assert (photo_to_edges(noisy, method=method, min_fragment=0) == 255).all()


def _pil_inputs(rgb: np.ndarray) -> dict[str, Image.Image]:
    gray = _gray(rgb)
    rgba = np.dstack([rgb, np.full(gray.shape, 255, np.uint8)])
    return {
        "L": Image.fromarray(gray),
        "LA": Image.fromarray(gray).convert("LA"),
        "RGB": Image.fromarray(rgb),
        "RGBA": Image.fromarray(rgba),
        "P": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=32),
        "I;16": Image.fromarray(gray.astype(np.uint16) * 257),
        "I": Image.fromarray(gray.astype(np.int32)),
        "F": Image.fromarray(gray.astype(np.float32)),
    }


def _array_inputs(rgb: np.ndarray) -> dict[str, np.ndarray]:
    gray = _gray(rgb)
    return {
        "HW uint8": gray,
        "HW1 uint8": gray[:, :, None],
        "HW3 uint8": rgb,
        "HW4 uint8": np.dstack([rgb, np.full(gray.shape, 255, np.uint8)]),
        "HW uint16": gray.astype(np.uint16) * 257,
        "HW3 float32": rgb.astype(np.float32) / 255,
        "HW float64": gray / 255.0,
        "HW3 big-endian uint16": (rgb.astype(np.uint16) * 257).astype(">u2"),
    }


@pytest.mark.parametrize("kind", [*_pil_inputs(_scene()[0]), *_array_inputs(_scene()[0])])
def test_every_input_mode_gives_the_same_kind_of_edge_map(kind):
    rgb, boundary = _scene()
    image = {**_pil_inputs(rgb), **_array_inputs(rgb)}[kind]
    edges = photo_to_edges(image)
    assert edges.shape == (HEIGHT, WIDTH)
    assert edges.dtype == np.uint8
    precision, recall = _precision_recall(edges, boundary)
    assert precision >= 0.95 and recall >= 0.85, (kind, precision, recall)


def test_transparent_pixels_are_composited_onto_white():
    rgb = np.full((96, 96, 3), 255, np.uint8)
    rgb[20:70, 20:70] = 0
    alpha = np.full((96, 96), 255, np.uint8)
    alpha[20:70, 20:70] = 0  # the black square is fully transparent: white on white
    assert (photo_to_edges(rgb) == 0).any()
    assert (photo_to_edges(np.dstack([rgb, alpha])) == 255).all()
    la = Image.fromarray(np.dstack([rgb[:, :, 0], alpha]), mode="LA")
    assert (photo_to_edges(la) == 255).all()
    # Half-transparent black over white is mid grey, so the square's outline is still drawn.
    alpha[20:70, 20:70] = 128
    assert (photo_to_edges(np.dstack([rgb, alpha])) == 0).any()


@pytest.mark.parametrize("method", METHODS)
def test_min_fragment_removes_speckles_but_zero_keeps_them(method):
    img = np.full((120, 160), 220, np.uint8)
    cv2.rectangle(img, (60, 30), (140, 100), 30, -1)
    for x, y in [(15, 15), (15, 60), (15, 105), (40, 110)]:
        cv2.circle(img, (x, y), 1, 30, -1)
    speckles = np.zeros(img.shape, bool)
    speckles[:, :50] = True
    cleaned = photo_to_edges(img, method=method)
    kept = photo_to_edges(img, method=method, min_fragment=0)
    assert (cleaned[speckles] == 255).all()
    assert (kept[speckles] == 0).sum() >= 4
    # The rectangle's outline is long enough to survive either way.
    assert (cleaned[:, 55:] == 0).sum() == (kept[:, 55:] == 0).sum() > 200


def test_line_width_thickens_lines():
    rgb, _ = _scene()
    thin_lines = photo_to_edges(rgb) == 0
    thick_lines = photo_to_edges(rgb, line_width=3) == 0
    ratio = thick_lines.sum() / thin_lines.sum()
    assert 2.2 <= ratio <= 3.8, ratio
    assert (thick_lines | ~thin_lines).all()  # thick lines cover the thin ones

    # Default lines are 1 px: no 2x2 block is all line, while width 3 has many.
    def blocks(m):
        return int((m[:-1, :-1] & m[1:, :-1] & m[:-1, 1:] & m[1:, 1:]).sum())

    assert blocks(thin_lines) == 0
    assert blocks(thick_lines) > thin_lines.sum() // 2
    # The widest line is about 3 px: twice the inscribed radius.
    assert 2.5 <= 2 * _distance_to(~thick_lines).max() <= 5


def test_thin_keeps_every_blob_connected_and_one_pixel_wide():
    rng = np.random.default_rng(3)
    for _ in range(20):
        noise = cv2.GaussianBlur(rng.random((80, 80)).astype(np.float32), (0, 0), 3)
        mask = noise > np.quantile(noise, 0.6)
        out = thin(mask)
        assert not (out & ~mask).any()
        count_in = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0]
        count_out = cv2.connectedComponents(out.astype(np.uint8), connectivity=8)[0]
        assert count_in == count_out
        assert not (out[:-1, :-1] & out[1:, :-1] & out[:-1, 1:] & out[1:, 1:]).any()
    # A filled square shrinks to (nearly) a point, a 2x2 block survives as a pixel.
    square = np.zeros((40, 40), bool)
    square[5:35, 5:35] = True
    assert 1 <= thin(square).sum() <= 3
    block = np.zeros((6, 6), bool)
    block[2:4, 2:4] = True
    assert thin(block).sum() >= 1
    # A diagonal branch off a straight line: only the pixel that merely thickens the junction goes.
    branch = np.zeros((24, 24), bool)
    branch[10, 2:21] = True
    for i in range(1, 10):
        branch[10 + i, 10 + i] = True
    assert np.argwhere(branch & ~thin(branch)).tolist() == [[10, 11]]


@pytest.mark.parametrize("method", METHODS)
def test_max_side_returns_original_size(method):
    rgb, boundary = _scene()
    big = cv2.resize(rgb, (WIDTH * 3, HEIGHT * 3), interpolation=cv2.INTER_LINEAR)
    big_boundary = cv2.resize(boundary.astype(np.uint8), (WIDTH * 3, HEIGHT * 3)) > 0
    edges = photo_to_edges(big, method=method, max_side=WIDTH)
    assert edges.shape == big.shape[:2]
    # Detection ran at 1/3 scale, so offsets from the boundary scale up too (Canny's ~1 px
    # quantisation becomes 3 px).
    precision, recall = _precision_recall(edges, big_boundary, 3 * TOLERANCE[method])
    assert precision >= 0.95 and recall >= 0.85, (precision, recall)
    lines = edges == 0
    assert not (lines[:-1, :-1] & lines[1:, :-1] & lines[:-1, 1:] & lines[1:, 1:]).any()


def test_max_side_larger_than_image_changes_nothing():
    rgb, _ = _scene()
    np.testing.assert_array_equal(photo_to_edges(rgb, max_side=1000), photo_to_edges(rgb))


def test_higher_thresholds_give_fewer_lines():
    img = _textured()
    counts = [
        int((photo_to_edges(img, low=lo, high=2 * lo, min_fragment=0) == 0).sum())
        for lo in (10, 25, 50, 100, 200)
    ]
    assert all(a > b for a, b in itertools.pairwise(counts)), counts
    assert counts[-1] > 0


def test_one_threshold_sets_the_other_at_a_one_to_two_ratio():
    img = _textured()
    both = photo_to_edges(img, low=40, high=80)
    np.testing.assert_array_equal(photo_to_edges(img, low=40), both)
    np.testing.assert_array_equal(photo_to_edges(img, high=80), both)


def test_input_is_not_modified():
    rgb, _ = _scene()
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    floats = rgba.astype(np.float32) / 255
    for image in (rgba, floats):
        before = image.copy()
        image.flags.writeable = False  # any in-place write would raise
        photo_to_edges(image, max_side=100)
        photo_to_edges(image, method="xdog")
        np.testing.assert_array_equal(image, before)


def test_xdog_accepts_uint8_or_unit_float_and_draws_dark_side_lines():
    gray = _gray(_scene(noise=0.0)[0])
    from_uint8 = xdog(gray)
    from_float = xdog(gray / 255.0)
    np.testing.assert_array_equal(from_uint8, from_float)
    assert from_uint8.dtype == np.uint8 and set(np.unique(from_uint8)) == {0, 255}
    assert (xdog(np.full((32, 32), 0.3)) == 255).all()  # flat areas of any tone stay white
    # Larger p makes fainter edges count.
    assert (xdog(gray, p=200) == 0).sum() >= (xdog(gray, p=20) == 0).sum()


def test_edges_to_pil_gives_rgb_copy():
    edges = photo_to_edges(_scene()[0])
    pil = edges_to_pil(edges)
    assert pil.mode == "RGB" and pil.size == (WIDTH, HEIGHT)
    out = np.asarray(pil)
    for channel in range(3):
        np.testing.assert_array_equal(out[:, :, channel], edges)


def test_512px_image_is_fast():
    img = _textured(512)
    for method in METHODS:
        photo_to_edges(img, method=method)  # warm-up (imports, allocator)
        start = time.perf_counter()
        photo_to_edges(img, method=method)
        assert time.perf_counter() - start < 1.0


GOOD = np.full((8, 8), 128, np.uint8)


@pytest.mark.parametrize(
    ("image", "kwargs", "error", "names"),
    [
        (np.zeros(8, np.uint8), {}, ValueError, "(8,)"),
        (np.zeros((8, 8, 5), np.uint8), {}, ValueError, "(8, 8, 5)"),
        (np.zeros((2, 8, 8, 3), np.uint8), {}, ValueError, "(2, 8, 8, 3)"),
        (np.zeros((0, 8), np.uint8), {}, ValueError, "(0, 8)"),
        (np.zeros((8, 0, 3), np.uint8), {}, ValueError, "(8, 0, 3)"),
        (np.zeros((8, 8), np.complex64), {}, TypeError, "complex64"),
        (np.zeros((8, 8), object), {}, TypeError, "object"),
        (np.zeros((8, 8), np.int64), {}, TypeError, "int64"),
        (np.full((8, 8), 200.0), {}, ValueError, "200.0"),
        (np.full((8, 8), np.nan), {}, ValueError, "nan"),
        ([[0, 1], [1, 0]], {}, TypeError, "list"),
        (GOOD, {"method": "sobel"}, ValueError, "'sobel'"),
        (GOOD, {"line_width": -2}, ValueError, "-2"),
        (GOOD, {"line_width": 0}, ValueError, "line_width >= 1"),
        (GOOD, {"line_width": 1.5}, TypeError, "1.5"),
        (GOOD, {"min_fragment": -1}, ValueError, "-1"),
        (GOOD, {"blur": -0.5}, ValueError, "-0.5"),
        (GOOD, {"low": 90, "high": 30}, ValueError, "low=90"),
        (GOOD, {"high": float("inf")}, ValueError, "inf"),
        (GOOD, {"method": "xdog", "low": 10}, ValueError, "low=10"),
        (GOOD, {"max_side": 0}, ValueError, "max_side >= 1"),
    ],
)
def test_bad_input_raises_and_names_the_value(image, kwargs, error, names):
    with pytest.raises(error, match=re.escape(names)):
        photo_to_edges(image, **kwargs)


@pytest.mark.parametrize(
    ("call", "error", "names"),
    [
        (lambda: xdog(np.zeros((8, 8, 3))), ValueError, "(8, 8, 3)"),
        (lambda: xdog(GOOD, k=1.0), ValueError, "k=1.0"),
        (lambda: xdog(GOOD, sigma=0), ValueError, "sigma > 0"),
        (lambda: xdog(GOOD.astype(np.uint16)), TypeError, "uint16"),
        (lambda: edges_to_pil(GOOD.astype(np.float32)), TypeError, "float32"),
        (lambda: edges_to_pil(np.zeros((8, 8, 3), np.uint8)), ValueError, "(8, 8, 3)"),
    ],
)
def test_helpers_reject_bad_input(call, error, names):
    with pytest.raises(error, match=re.escape(names)):
        call()


def test_drawings_are_told_from_photos():
    """Line drawings (with or without colour-pen dabs) are kept as they are on Upload; photos,
    even a product shot on white, are not."""
    root = Path(__file__).resolve().parents[1] / "examples"
    for path in sorted((root / "lineart").glob("*.png")) + sorted(
        (root / "sketch2product").glob("*.png")
    ):
        assert edges.looks_like_drawing(read_image(path)), path.name
    for path in sorted((root / "photos").glob("*.png")) + sorted((root / "facades").glob("*.png")):
        assert not edges.looks_like_drawing(read_image(path)), path.name
    # A drawing with colour dabs, as the canvas's colour pen makes it.
    drawing = np.full((256, 256, 3), 255, np.uint8)
    cv2.circle(drawing, (128, 128), 80, (0, 0, 0), 7)
    cv2.circle(drawing, (110, 120), 8, (30, 80, 160), -1)
    cv2.line(drawing, (140, 140), (160, 150), (210, 47, 39), 12)
    assert edges.looks_like_drawing(drawing)
    assert edges.looks_like_drawing(Image.fromarray(drawing).convert("L"))
    # A product shot on white: a shaded object, mid-tones, over 60 % paper.
    yy, xx = np.mgrid[:256, :256]
    shoe = ((xx - 128) / 90) ** 2 + ((yy - 150) / 50) ** 2 <= 1
    photo = np.full((256, 256, 3), 255, np.uint8)
    shade = (120 + 60 * np.sin(xx / 20.0) + 0.2 * yy).clip(0, 255).astype(np.uint8)
    photo[shoe] = np.stack([shade, shade * 0.8, shade * 0.6], axis=-1).astype(np.uint8)[shoe]
    assert (photo.min(axis=2) >= 225).mean() > 0.6
    assert not edges.looks_like_drawing(photo)
    assert not edges.looks_like_drawing(np.full((64, 64, 3), 255, np.uint8))  # a blank page
