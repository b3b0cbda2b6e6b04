"""The per-region colour metric (train/regions.py) on tiny synthetic drawings with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from train import regions as R
from train.report_colour import Scores, dab_regions, score_drawing

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (252, 234, 43)


def _boxes(fills: list[tuple[int, int, int]], side: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Line art with one outlined box per fill (3-px black lines, side by side, 4 px apart) and
    the target with those fills (lines kept black)."""
    art = np.full((side, side, 3), 255, np.uint8)
    target = art.copy()
    width = side // len(fills)
    for k, fill in enumerate(fills):
        x0, x1, y0, y1 = k * width + 2, (k + 1) * width - 2, 10, side - 10
        target[y0:y1, x0:x1] = fill
        for img in (art, target):
            img[y0 : y0 + 3, x0:x1] = 0
            img[y1 - 3 : y1, x0:x1] = 0
            img[y0:y1, x0 : x0 + 3] = 0
            img[y0:y1, x1 - 3 : x1] = 0
    return art, target


def test_closed_shapes_are_regions_and_the_paper_around_them_is_not() -> None:
    art, _ = _boxes([RED, BLUE])
    regions = R.find_regions(art, close=0)
    assert regions.count == 2
    # Eroded by 2 px: a box interior of (w - 6) x (h - 6) loses 2 px on each side.
    width = 96 // 2
    inner = (width - 4 - 6 - 4) * (96 - 20 - 6 - 4)
    assert [int(m.sum()) for m in regions.masks()] == [inner, inner]
    # Closing gaps thickens the lines by 3 px first: 3 px less on each side again.
    closed = (width - 4 - 6 - 4 - 6) * (96 - 20 - 6 - 4 - 6)
    assert [int(m.sum()) for m in R.find_regions(art).masks()] == [closed, closed]
    # A shape open to the border is not a region; a speck below MIN_AREA is dropped.
    art[30:40, 2:5] = 255  # a gap in the left box's left line: its inside joins the paper
    tiny = np.full((96, 96, 3), 255, np.uint8)
    tiny[40:49, 40:49] = 0
    tiny[43:46, 43:46] = 255  # a 3x3 hole: 9 px, 0 after erosion
    assert R.find_regions(art).count == 1
    assert R.find_regions(tiny).count == 0
    # A gap of 5 px, as a quick drawing leaves, still reads as a closed shape.
    small_gap = _boxes([RED, BLUE])[0]
    small_gap[30:35, 2:5] = 255
    assert R.find_regions(small_gap).count == 2
    assert R.find_regions(small_gap, close=0).count == 1


def test_delta_e_of_known_colours() -> None:
    lab = R.to_lab(np.array([RED, GREEN, (255, 255, 255)], np.uint8))
    # sRGB red and green in CIELAB (D65), to 0.1.
    np.testing.assert_allclose(lab[0], [53.24, 80.09, 67.20], atol=0.1)
    np.testing.assert_allclose(lab[1], [87.73, -86.18, 83.18], atol=0.1)
    np.testing.assert_allclose(lab[2], [100.0, 0.0, 0.0], atol=0.05)
    assert R.delta_e(lab[0], lab[1]) == pytest.approx(170.6, abs=0.2)


def test_region_colour_error_is_zero_for_the_target_and_large_for_a_wrong_fill() -> None:
    art, target = _boxes([RED, BLUE])
    regions = R.find_regions(art)
    want = R.region_means(target, regions)
    assert R.delta_e(R.region_means(target, regions), want).max() < 1e-9
    wrong = target.copy()
    wrong[regions.full == 1] = GREEN  # the red box painted green
    de = R.delta_e(R.region_means(wrong, regions), want)
    assert de[0] == pytest.approx(170.6, abs=0.2)
    assert de[1] < 1e-9
    # Erosion keeps a 2-px wrong rim along the lines from counting.
    rim = target.copy()
    rim[(regions.full == 1) & (regions.labels == 0)] = GREEN
    assert R.delta_e(R.region_means(rim, regions), want).max() < 1e-9


def test_named_hues_and_the_dominant_hue() -> None:
    names = [R.hue_name(c) for c in (RED, GREEN, BLUE, YELLOW, (200, 200, 200), (255, 176, 46))]
    assert names == ["red", "green", "blue", "yellow", "neutral", "orange"]
    art, target = _boxes([YELLOW, YELLOW, BLUE])
    regions = R.find_regions(art)
    assert R.dominant_hue(target, regions) == "yellow"  # two boxes of three
    grey = target.copy()
    grey[regions.full > 0] = 128
    assert R.dominant_hue(grey, regions) == "neutral"


def test_flat_energy_tells_a_checkerboard_from_a_smooth_fill() -> None:
    art, target = _boxes([RED, BLUE])
    regions = R.find_regions(art)
    smooth, tgt = R.flat_energy(target, target, regions)
    assert smooth == pytest.approx(0.0, abs=1e-9) and tgt == pytest.approx(0.0, abs=1e-9)
    board = target.astype(np.int16)
    yy, xx = np.mgrid[:96, :96]
    board[((yy + xx) % 2 == 0) & (regions.full > 0)] -= 20
    noisy, _ = R.flat_energy(np.clip(board, 0, 255).astype(np.uint8), target, regions)
    # One channel of each fill alternates by 20 (the others are clipped at 0): about 100 in that
    # channel's squared high-pass, a third of it over three channels.
    assert noisy > 20


def test_hint_scores_follow_the_dabs_and_measure_leak() -> None:
    art, target = _boxes([RED, BLUE])
    regions = R.find_regions(art)
    dabbed_art, dabbed = dab_regions(art, target, regions, np.random.default_rng(0))
    assert dabbed and (dabbed_art != art).any()
    changed = (dabbed_art != art).any(axis=2)
    assert not (changed & (art.min(axis=2) < 128)).any()  # no dab on a line
    colours = R.region_means(target, regions)[dabbed]
    plain = np.full_like(target, 255)
    plain[art.min(axis=2) < 128] = 0
    # A model that follows every dab exactly and leaks its colour into the other box.
    follows = target.copy()
    other = [i for i in range(regions.count) if i not in dabbed]
    for j in other:
        follows[regions.full == j + 1] = target[regions.full == dabbed[0] + 1][0]
    scores = Scores()
    score_drawing((plain, follows), target, regions, dabbed, colours, scores)
    s = scores.summary()
    assert s["hinted_median_de"] < 1e-6 and s["hinted_within_10"] == 1.0
    if other:
        assert s["leak_median"] > 50  # the undabbed box moved all the way to the dab's colour
    # The white, hintless output is far from the target in every region.
    assert s["median_de"] > 50 and s["within_10"] == 0.0
    # Red and blue are colours: every dabbed region counts among the colour dabs.
    assert s["colour_dabs"]["regions"] == len(dabbed) and s["grey_dabs"]["regions"] == 0


def test_dabs_are_split_into_colours_and_greys() -> None:
    from train.report_colour import is_colour

    rgb = np.array([[200, 30, 30], [128, 128, 128], [255, 255, 255], [20, 20, 20], [90, 70, 60]])
    assert is_colour(rgb).tolist() == [True, False, False, False, False]
    art, target = _boxes([RED, (128, 128, 128)])
    regions = R.find_regions(art)
    dabbed = list(range(regions.count))
    scores = Scores()
    colours = R.region_means(target, regions)
    score_drawing((target, target), target, regions, dabbed, colours, scores)
    s = scores.summary()
    assert s["colour_dabs"]["regions"] == 1 and s["grey_dabs"]["regions"] == 1
    assert s["grey_dabs"]["median_de"] < 1e-6 and s["grey_dabs"]["within_10"] == 1.0


def test_soft_dabs_and_rings_are_measured_where_a_visitor_sees_them() -> None:
    from train.report_colour import DAB_RADIUS, RING, dab_points, paint_points, ring_de

    art, target = _boxes([RED, BLUE])
    regions = R.find_regions(art)
    points = dab_points(regions, np.random.default_rng(1))
    hard = paint_points(art, target, points)
    soft = paint_points(art, target, points, soft_edge=3.0)
    for _, y, x in points:  # the same centres, solid in the middle
        assert tuple(hard[y, x]) == tuple(soft[y, x]) == tuple(target[y, x])
    rim = (soft != hard).any(axis=2)
    assert rim.any() and not (rim & (art.min(axis=2) < 128)).any()
    colours = R.region_means(target, regions)[[i for i, _, _ in points]]
    # A model that fills each box with its target: no ring. One that draws a dark ring around
    # each dab's rim (as a model that saw only hard dabs does) is far from the colour there.
    assert max(ring_de(target, regions, points, colours)) < 1e-6
    ringed = target.copy()
    yy, xx = np.mgrid[:96, :96]
    for _, y, x in points:
        d = np.hypot(yy - y, xx - x)
        ringed[(d >= DAB_RADIUS) & (d <= DAB_RADIUS + 2) & (art.min(axis=2) > 128)] = (60, 0, 0)
    assert min(ring_de(ringed, regions, points, colours)) > 10
    scores = Scores()
    dabbed = [i for i, _, _ in points]
    score_drawing((target, target, ringed), target, regions, dabbed, colours, scores, points)
    s = scores.summary()
    assert s["ring_median"] < 1e-6 and s["soft_ring_median"] > 10
    assert s["soft_dabs"]["regions"] == len(points) and s["hinted_median_de"] < 1e-6
    assert RING[0] < DAB_RADIUS < RING[1]


def test_dabs_of_another_colour_score_the_asked_colour_not_the_targets() -> None:
    from train.report_colour import OTHER_DE, dab_points, other_colours, paint_points, recoloured

    art, target = _boxes([RED, BLUE])
    regions = R.find_regions(art)
    points = dab_points(regions, np.random.default_rng(2))
    dabbed = [i for i, _, _ in points]
    wanted = R.region_means(target, regions)[dabbed]
    colours = other_colours(wanted, np.random.default_rng(0))
    assert (R.delta_e(R.to_lab(colours), wanted) >= OTHER_DE).all()
    assert (colours.min(axis=1) <= 236).all() and (colours.max(axis=1) > 102).all()
    asked = recoloured(art, target, points, colours)
    for (i, _, _), rgb in zip(points, colours, strict=True):
        inside = regions.labels == i + 1
        assert (np.abs(asked[inside].astype(int) - rgb).max()) <= 1  # the whole box, recoloured
    assert (asked[art.min(axis=2) < 128] == 0).all()  # lines untouched
    other_art = paint_points(art, asked, points)
    for (_, y, x), rgb in zip(points, colours, strict=True):
        assert np.abs(other_art[y, x].astype(int) - rgb).max() <= 1
    # A model that follows the asked colours scores 0; one that paints the usual colours over
    # them (the target) scores at least OTHER_DE.
    for output, low in ((asked, True), (target, False)):
        scores = Scores()
        score_drawing((target, target), target, regions, dabbed, wanted, scores,
                      other=(output, asked))  # fmt: skip
        d = scores.summary()["other_dabs"]
        assert d["regions"] == len(points)
        assert (d["median_de"] < 1) if low else (d["median_de"] >= OTHER_DE - 1)
