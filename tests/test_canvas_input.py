"""Touch and pen on the live canvas (Pointer Events), driven with real input in Debian's chromium:
pen strokes through CDP's ``Input.dispatchMouseEvent`` with ``pointerType: "pen"``, fingers through
``Input.dispatchTouchEvent``.

Checked: one pointer draws at a time; a palm on the glass never takes over or adds to a pen's
stroke (while the pen is down and shortly after it was seen); a second finger draws nothing, and a
two-finger gesture leaves no stroke behind; a cancelled pointer takes its stroke back (drawing and
undo stack as before it, the output settled on that drawing); the pen's eraser end erases.

CDP cannot press a pen's eraser end: its ``buttons`` is recomputed from ``button``, which has no
eraser value (checked with chromium 150: ``buttons: 32`` arrives as 1). That test dispatches
``PointerEvent``s with ``button: 5, buttons: 32`` on the canvas itself, using the pointer id of a
real (CDP) pen hovering over it.

The models run on the server here: where they run has nothing to do with who may draw.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from bench.chromium import (
    CANVAS,
    assert_no_problems,
    canvas_box,
    canvas_page,
    png_pixels,
    wait_settled,
)
from bench.serving import Server, serve
from tests.app_fixtures import write_test_registry

PAGE_TIMEOUT = 120_000  # ms
PALM_MS = 500  # canvas.js: touches this soon after a pen was seen draw nothing
Point = tuple[float, float]  # a place on the canvas, in fractions of its width and height


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    registry = write_test_registry(tmp_path_factory.mktemp("app"))
    with serve(registry, browser_mode=False) as running:
        yield running


@pytest.fixture(scope="module")
def page(server: Server) -> Iterator:
    with canvas_page(server.url, timeout_ms=PAGE_TIMEOUT) as page:
        page.wait_for_function(
            "(sel) => document.querySelector(sel + ' .p2p').dataset.model === 'test-edges'",
            arg=CANVAS,
        )
        yield page


class Hand:
    """Real pen and finger input on the drawing canvas, through the page's CDP session."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        page.locator(f"{CANVAS} canvas.p2p-canvas").scroll_into_view_if_needed()
        self.box = canvas_box(page)
        # The id of the last pen the page saw (for the eraser end's synthesized events).
        page.evaluate(
            """() => {
                if (window.p2pPenWatched) return;
                window.p2pPenWatched = true;
                document.addEventListener('pointermove', (e) => {
                    if (e.pointerType === 'pen') window.p2pPenId = e.pointerId;
                }, true);
            }"""
        )

    def _xy(self, p: Point) -> dict[str, float]:
        box = self.box
        return {"x": box["x"] + p[0] * box["width"], "y": box["y"] + p[1] * box["height"]}

    def pen(self, kind: str, p: Point) -> None:
        """``kind``: down, move (the tip on the glass), hover (the tip above it), up."""
        pressed = kind in ("down", "move")
        self.cdp.send(
            "Input.dispatchMouseEvent",
            {
                "type": {"down": "mousePressed", "up": "mouseReleased"}.get(kind, "mouseMoved"),
                **self._xy(p),
                "pointerType": "pen",
                "button": "none" if kind == "hover" else "left",
                "buttons": 1 if pressed else 0,
                "clickCount": 1 if kind in ("down", "up") else 0,
                "force": 0.5 if pressed else 0,
            },
        )

    def pen_stroke(self, points: list[Point]) -> None:
        self.pen("down", points[0])
        for p in points[1:]:
            self.pen("move", p)
        self.pen("up", points[-1])

    def touch(self, kind: str, fingers: dict[int, Point] | None = None) -> None:
        """``kind``: touchStart (a finger lands: list every finger that is down), touchMove,
        touchEnd (every finger lifts), touchCancel (the system takes every finger)."""
        points = [{**self._xy(p), "id": i} for i, p in (fingers or {}).items()]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def finger_stroke(self, points: list[Point], *, end: str = "touchEnd") -> None:
        self.touch("touchStart", {1: points[0]})
        for p in points[1:]:
            self.touch("touchMove", {1: p})
        self.touch(end)

    def eraser_end(self, points: list[Point]) -> None:
        """A stroke with the pen's eraser end (button 5 at pointerdown, buttons 32), as
        ``PointerEvent``s dispatched on the canvas with the hovering pen's id."""
        self.pen("hover", points[0])
        self.page.evaluate(
            """([sel, points]) => {
                const c = document.querySelector(sel + ' canvas.p2p-canvas');
                const r = c.getBoundingClientRect();
                const fire = (type, p, button, buttons) => c.dispatchEvent(new PointerEvent(type, {
                    bubbles: true, cancelable: true, composed: true, pointerId: window.p2pPenId,
                    pointerType: 'pen', isPrimary: true, button, buttons, pressure: 0.5,
                    clientX: r.left + p[0] * r.width, clientY: r.top + p[1] * r.height }));
                fire('pointerdown', points[0], 5, 32);
                for (const p of points.slice(1)) fire('pointermove', p, -1, 32);
                fire('pointerup', points[points.length - 1], 5, 0);
            }""",
            [CANVAS, [list(p) for p in points]],
        )


def line(a: Point, b: Point, n: int = 8) -> list[Point]:
    """``n + 1`` points from ``a`` to ``b``."""
    return [(a[0] + (b[0] - a[0]) * k / n, a[1] + (b[1] - a[1]) * k / n) for k in range(n + 1)]


def drawing(page: Any) -> np.ndarray:
    """The canvas as it is now (not the committed PNG: a stroke taken back commits nothing)."""
    url = page.evaluate(
        "(sel) => document.querySelector(sel + ' canvas.p2p-canvas').toDataURL('image/png')",
        CANVAS,
    )
    return png_pixels(url)


def ink(pixels: np.ndarray, p: Point, r: float = 0.02) -> int:
    """How many dark pixels lie within ``r`` (a fraction of the side) of ``p``."""
    h, w = pixels.shape[:2]
    x, y, d = int(p[0] * w), int(p[1] * h), max(1, int(r * w))
    patch = pixels[max(0, y - d) : y + d + 1, max(0, x - d) : x + d + 1]
    return int((patch.max(axis=2) < 128).sum())


def gaps(pixels: np.ndarray, points: list[Point]) -> list[Point]:
    """The points of a stroke with no ink near them."""
    return [p for p in points if ink(pixels, p) == 0]


def inked(pixels: np.ndarray, points: list[Point]) -> list[Point]:
    """The points with ink near them."""
    return [p for p in points if ink(pixels, p) > 0]


def blank(pixels: np.ndarray) -> bool:
    return bool((pixels == 255).all())


def output_shown(page: Any) -> bool:
    return not page.locator(f"{CANVAS} .p2p-out").is_hidden()


def fresh_start(page: Any) -> None:
    """A blank, settled canvas, and no pen seen lately (touches may draw)."""
    page.locator(f"{CANVAS} .p2p-clear").click()
    wait_settled(page)
    page.wait_for_timeout(PALM_MS + 100)


def test_the_page_neither_scrolls_nor_zooms_under_a_finger(page) -> None:
    style = page.evaluate(
        "(sel) => getComputedStyle(document.querySelector(sel + ' canvas.p2p-canvas')).touchAction",
        CANVAS,
    )
    assert style == "none"


def test_a_pen_draws_and_its_eraser_end_erases(page) -> None:
    hand = Hand(page)
    fresh_start(page)
    stroke = line((0.2, 0.4), (0.8, 0.4))
    hand.pen_stroke(stroke)
    assert not gaps(drawing(page), stroke), "the pen's tip draws"
    hand.eraser_end(line((0.4, 0.4), (0.6, 0.4)))
    pixels = drawing(page)
    assert ink(pixels, (0.5, 0.4)) == 0, "the eraser end erases"
    assert ink(pixels, (0.25, 0.4)) > 0 and ink(pixels, (0.75, 0.4)) > 0, "only where it went"
    assert_no_problems(page)


def test_a_palm_never_draws_nor_takes_over_a_pen_stroke(page) -> None:
    hand = Hand(page)
    fresh_start(page)
    pen = line((0.1, 0.3), (0.9, 0.3), 16)
    # The palm lands while the pen writes, and drags.
    hand.pen("down", pen[0])
    for p in pen[1:6]:
        hand.pen("move", p)
    palm = line((0.6, 0.8), (0.8, 0.9))
    hand.touch("touchStart", {1: palm[0]})
    for i, p in enumerate(pen[6:]):
        hand.pen("move", p)
        hand.touch("touchMove", {1: palm[min(i + 1, len(palm) - 1)]})
    hand.pen("up", pen[-1])
    hand.touch("touchEnd")
    # Just after the pen lifted, the palm lands again.
    hand.finger_stroke(line((0.2, 0.6), (0.5, 0.6)))
    pixels = drawing(page)
    assert not gaps(pixels, pen), "the pen's stroke goes on to its end"
    assert not inked(pixels, palm), "the palm drew while the pen was down"
    assert ink(pixels, (0.35, 0.6)) == 0, "the palm drew just after the pen lifted"

    # The palm came down first (a while after the pen was last seen) and drew; the pen lands:
    # the palm's stroke is taken back, the pen draws.
    page.wait_for_timeout(PALM_MS + 100)
    hand.touch("touchStart", {1: (0.6, 0.7)})
    hand.touch("touchMove", {1: (0.7, 0.75)})
    hand.touch("touchMove", {1: (0.8, 0.8)})
    pen2 = line((0.1, 0.5), (0.5, 0.5))
    hand.pen("down", pen2[0])
    hand.touch("touchMove", {1: (0.85, 0.85)})
    for p in pen2[1:]:
        hand.pen("move", p)
    hand.pen("up", pen2[-1])
    hand.touch("touchEnd")
    pixels = drawing(page)
    assert not gaps(pixels, pen2)
    assert not inked(pixels, [(0.6, 0.7), (0.7, 0.75), (0.8, 0.8)]), "palm kept"
    # After the pen has gone a while, a finger draws.
    page.wait_for_timeout(PALM_MS + 100)
    finger = line((0.2, 0.9), (0.6, 0.9))
    hand.finger_stroke(finger)
    assert not gaps(drawing(page), finger)
    assert_no_problems(page)


def test_a_second_finger_draws_nothing_and_a_pinch_leaves_no_stroke(page) -> None:
    hand = Hand(page)
    fresh_start(page)
    # One finger draws; well into its stroke a second finger lands and moves: it draws nothing
    # and the first finger's stroke goes on.
    first = line((0.1, 0.3), (0.9, 0.3), 16)
    hand.touch("touchStart", {1: first[0]})
    for p in first[1:8]:
        hand.touch("touchMove", {1: p})
    page.wait_for_timeout(400)
    second = line((0.5, 0.7), (0.8, 0.8))
    hand.touch("touchStart", {1: first[8], 2: second[0]})
    for p, q in zip(first[9:], second[1:], strict=False):
        hand.touch("touchMove", {1: p, 2: q})
    hand.touch("touchEnd")
    pixels = drawing(page)
    assert not gaps(pixels, first[:-1])
    assert not inked(pixels, second), "the second finger drew"

    # A pinch: two fingers land together and spread: no stroke is left behind, and the undo
    # stack is as before.
    fresh_start(page)
    assert not page.locator(f"{CANVAS} .p2p-undo").is_disabled()  # the clear
    left, right = line((0.45, 0.5), (0.2, 0.3)), line((0.55, 0.5), (0.8, 0.7))
    hand.touch("touchStart", {1: left[0]})
    hand.touch("touchMove", {1: left[1]})
    hand.touch("touchStart", {1: left[1], 2: right[0]})
    for p, q in zip(left[2:], right[1:], strict=False):
        hand.touch("touchMove", {1: p, 2: q})
    hand.touch("touchEnd")
    assert blank(drawing(page)), "a pinch drew"
    wait_settled(page)
    assert not output_shown(page), "the output must follow the drawing back to blank"
    # Undo takes back the clear, not a stroke of the pinch.
    page.locator(f"{CANVAS} .p2p-undo").click()
    pixels = drawing(page)
    assert not gaps(pixels, first[:-1]), "undo should bring back the drawing before the clear"
    # After the gesture, one finger draws again.
    fresh_start(page)
    again = line((0.2, 0.6), (0.7, 0.6))
    hand.finger_stroke(again)
    assert not gaps(drawing(page), again)
    assert_no_problems(page)


def test_a_cancelled_pointer_takes_its_stroke_back(page) -> None:
    hand = Hand(page)
    fresh_start(page)
    kept = line((0.1, 0.3), (0.9, 0.3))
    hand.finger_stroke(kept)
    cancelled = line((0.1, 0.7), (0.9, 0.7))
    hand.finger_stroke(cancelled, end="touchCancel")
    pixels = drawing(page)
    assert not gaps(pixels, kept)
    assert not inked(pixels, cancelled), "a cancelled stroke stays"
    # The output is translated again, for the drawing as it is now, and that is what Compare
    # reads: the drawing as committed at the end of the last whole stroke.
    version = wait_settled(page)
    assert version == int(page.locator(f"{CANVAS} .p2p").get_attribute("data-version"))
    committed = png_pixels(page.locator(f"{CANVAS} .p2p-dl-drawing").get_attribute("href"))
    assert not gaps(committed, kept)
    assert not inked(committed, cancelled)
    # One undo takes back the first stroke: the cancelled one left nothing on the undo stack.
    page.locator(f"{CANVAS} .p2p-undo").click()
    assert blank(drawing(page))
    assert_no_problems(page)
