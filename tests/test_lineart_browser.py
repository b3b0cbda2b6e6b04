"""The app's default model in a real browser: freehand doodles drawn with the mouse come out in
colour, lines kept. Runs the real models.toml (bundled models only, no network).

Each drawing and the output the page showed are saved to test-artifacts/doodles/ (git-ignored);
``python -m train.report_lineart`` puts them in docs/RESULTS.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.chromium import (
    CANVAS,
    assert_no_problems,
    browser_page,
    decode_png,
    draw_stroke,
    wait_for_output,
)
from bench.serving import Server, serve
from train.doodles import DABS, DOODLES
from train.regions import delta_e, find_regions, region_means, to_lab
from train.report_lineart import doodle_scores

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "test-artifacts" / "doodles"
DEFAULT = "lineart2color"

# The drawing (the canvas's PNG at the model's size, as the page sends it) and the output shown
# (an <img> or a <canvas>), both as PNG data URLs.
_GRAB = """(sel) => {
  const root = document.querySelector(sel + ' .p2p');
  const out = root.querySelector('.p2p-out');
  let result;
  if (out instanceof HTMLCanvasElement) {
    result = out.toDataURL('image/png');
  } else {
    const c = document.createElement('canvas');
    c.width = out.naturalWidth; c.height = out.naturalHeight;
    c.getContext('2d').drawImage(out, 0, 0);
    result = c.toDataURL('image/png');
  }
  return [root.querySelector('.p2p-dl-drawing').href, result];
}"""


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serve(None, remote="skip") as running:
        yield running


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator:
    with browser_page() as page:
        page.goto(server.url)
        page.wait_for_function(
            "([sel, id]) => document.querySelector(sel + ' .p2p')?.dataset.model === id",
            arg=[CANVAS, DEFAULT],
            timeout=60_000,
        )
        yield page
        page.wait_for_timeout(300)


def draw_and_grab(page, strokes: list, *, clear: bool = False) -> tuple:
    """Draw ``strokes`` with the tool in hand (after Clear, when asked), wait for the output of
    that drawing, and return (the drawing as sent, the output shown) as PIL images."""
    if clear:
        page.locator(f"{CANVAS} .p2p-clear").click()
    version = 0
    for stroke in strokes:
        _, version = draw_stroke(page, stroke, step_ms=4)
    wait_for_output(page, version, timeout=60_000)
    page.wait_for_timeout(150)
    drawing, output = (decode_png(u) for u in page.evaluate(_GRAB, CANVAS))
    return drawing, output


def test_default_model_and_pen_width_match_the_training_line_art(page) -> None:
    width = page.locator(f"{CANVAS} input.p2p-size").input_value()
    assert width == "7", f"pen width {width}: the training line art is about 7 px at 256 px"
    assert_no_problems(page)


def test_doodles_drawn_with_the_mouse_come_out_in_colour(page) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name, strokes in DOODLES.items():
        drawing, output = draw_and_grab(page, strokes, clear=True)
        drawing.save(OUT / f"{name}-input.png")
        output.save(OUT / f"{name}-output.png")
        scores[name] = doodle_scores(drawing, output)
    # The README's screenshot: the app with the last doodle and its colour output.
    page.screenshot(path=str(OUT.parent / "lineart-app.png"), full_page=False)
    lines = {n: s["lines_kept"] for n, s in scores.items()}
    colour = {n: s["colourfulness"] for n, s in scores.items()}
    assert min(lines.values()) > 0.7, f"lines lost: {lines}"
    assert np.median(list(colour.values())) > 12, f"outputs nearly grey: {colour}"
    assert_no_problems(page)


def test_a_colour_dab_steers_each_doodles_colour(page) -> None:
    """Each doodle again, then one dab of the colour pen inside its main shape: the shape's
    colour in the output moves toward the dab's (CIELAB dE76, region eroded as in
    train.regions). Drawings and outputs go to test-artifacts/doodles/ for the report."""
    OUT.mkdir(parents=True, exist_ok=True)
    moved = {}
    for name, strokes in DOODLES.items():
        swatch, value, dab = DABS[name]
        page.locator(f"{CANVAS} .p2p-tool[data-tool='pen']").click()
        plain_drawing, plain = draw_and_grab(page, strokes, clear=True)
        pen = page.locator(f"{CANVAS} .p2p-tool[data-tool='dab']")
        assert pen.is_visible(), "the default model should take colour hints (a colour pen)"
        pen.click()
        page.locator(f"{CANVAS} .p2p-dab-swatch[data-color='{value}']").click()
        drawing, output = draw_and_grab(page, [dab])
        drawing.save(OUT / f"{name}-dab-input.png")
        output.save(OUT / f"{name}-dab-output.png")
        lines = np.asarray(plain_drawing.convert("RGB"))
        regions = find_regions(lines)
        side = lines.shape[0]
        label = regions.full[int(dab[0][1] * side), int(dab[0][0] * side)]
        if label == 0:
            continue  # the dab is not inside a closed shape of this drawing
        index = int(label) - 1
        want = to_lab(np.array([[int(value[i : i + 2], 16) for i in (1, 3, 5)]], np.uint8))[0]
        before = region_means(np.asarray(plain.convert("RGB").resize((side, side))), regions)
        after = region_means(np.asarray(output.convert("RGB").resize((side, side))), regions)
        moved[f"{name} ({swatch})"] = float(
            delta_e(before[index], want) - delta_e(after[index], want)
        )
    assert len(moved) >= 8, f"dabs outside closed shapes: {sorted(moved)}"
    steered = [n for n, d in moved.items() if d > 5]
    assert len(steered) >= 0.7 * len(moved), f"dE toward the dab's colour, per doodle: {moved}"
    assert_no_problems(page)
