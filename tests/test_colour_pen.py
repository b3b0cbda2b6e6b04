"""The canvas's colour pen for models that take colour hints, in Debian's chromium with the mouse.

First with tiny models (the app, models on the server): the colour pen is there only for a model
whose task says ``hints``; its swatches are big enough to tap; a swatch or the colour picker
chooses its colour, the size slider its own dab size; a dab lands in the drawing in that colour,
never over a line; undo and the eraser take it away; the PNG the server gets keeps the colour.

Then with the app's default model, the bundled ``lineart2color`` (as the registry,
``$PIX2PIX_MODELS`` or ``models.toml``, names it), in the app with the model on the server and in
the static site (the browser's worker, no server): a closed square drawn with the pen, then a blue
dab inside it, then a red one: the output's mean colour inside the square (away from the dab) comes
closer to the dab's colour (CIELAB) than without a dab.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.chromium import (
    CANVAS,
    assert_no_problems,
    canvas_page,
    draw_stroke,
    output_state,
    png_pixels,
    select_model,
    wait_for_choice,
    wait_for_output,
    wait_settled,
)
from bench.serving import Server, serve, serve_folder
from pix2pix.app.imaging import open_image
from pix2pix.app.registry import load_registry, registry_path
from pix2pix.hub import save_generator
from tests.app_fixtures import tiny_model
from train.regions import delta_e, to_lab

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
PAGE_TIMEOUT = 180_000  # ms: the static site's first session of a 256-px model on a busy CPU
DEFAULT = "lineart2color"
BLUE, RED = "#1e50a0", "#d22f27"  # the canvas's "blue" and "red" swatches
Point = tuple[float, float]  # a place on the canvas, in fractions of its side
SQUARE = [(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.25), (0.5, 0.25)]


def rgb(value: str) -> np.ndarray:
    return np.array([int(value[i : i + 2], 16) for i in (1, 3, 5)])


def tool(page: Any, name: str) -> Any:
    """A tool's button: ``pen``, ``dab`` (the colour pen), ``eraser``."""
    return page.locator(f"{CANVAS} .p2p-tool[data-tool='{name}']")


def set_value(locator: Any, value: str) -> None:
    """Set an input's value (the slider, the colour picker) with the input event a person's
    change fires."""
    locator.evaluate(
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); }",
        value,
    )


def swatch(page: Any, name: str) -> Any:
    return page.locator(f"{CANVAS} .p2p-dab-swatch[aria-label='{name}']")


def canvas_pixels(page: Any) -> np.ndarray:
    url = page.evaluate(
        "(sel) => document.querySelector(sel + ' canvas.p2p-canvas').toDataURL('image/png')",
        CANVAS,
    )
    return png_pixels(url)


def committed(page: Any) -> str:
    """The drawing as the page sends it (a PNG data URL at the model's size)."""
    return page.locator(f"{CANVAS} .p2p-dl-drawing").get_attribute("href")


def at(pixels: np.ndarray, p: Point) -> np.ndarray:
    h, w = pixels.shape[:2]
    return pixels[int(p[1] * h), int(p[0] * w)]


def near(a: np.ndarray, b: np.ndarray, tolerance: int = 6) -> bool:
    return bool(np.abs(np.asarray(a, int) - np.asarray(b, int)).max() <= tolerance)


def draw_square(page: Any) -> int:
    """A closed square outline with the pen; returns the drawing's version."""
    tool(page, "pen").first.click()
    page.locator(f"{CANVAS} .p2p-clear").click()
    return draw_stroke(page, SQUARE, step_ms=10)[1]


def dab(page: Any, colour: str | None = None, points: list[Point] | None = None) -> int:
    """A short colour-pen stroke (default: across the middle of ``SQUARE``), in ``colour`` (a
    swatch's value) when given; returns the drawing's version."""
    if colour is not None:
        page.locator(f"{CANVAS} .p2p-dab-swatch[data-color='{colour}']").click()
    assert tool(page, "dab").get_attribute("aria-pressed") == "true"
    return draw_stroke(page, points or [(0.45, 0.5), (0.55, 0.5)], step_ms=10)[1]


# --- the colour pen's controls, with tiny models ----------------------------------------------


@pytest.fixture
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    """The app serving a tiny model that takes hints and one that does not, and its page (closed
    after the test: one Playwright at a time, and the line-art pages below start their own)."""
    folder = tmp_path_factory.mktemp("hints")
    hints = tiny_model("edges", seed=1)
    hints.task.hints = True
    save_generator(hints, folder / "hints")
    save_generator(tiny_model("edges", seed=2), folder / "plain")
    (folder / "registry.toml").write_text(
        '[[model]]\nid = "test-hints"\nname = "Test hints"\npath = "hints"\n\n'
        '[[model]]\nid = "test-plain"\nname = "Test plain"\npath = "plain"\n',
        encoding="utf-8",
    )
    with (
        serve(folder / "registry.toml", browser_mode=False) as server,
        canvas_page(server.url, timeout_ms=PAGE_TIMEOUT) as page,
    ):
        page.wait_for_function(
            "(sel) => document.querySelector(sel + ' .p2p').dataset.model === 'test-hints'",
            arg=CANVAS,
        )
        yield server, page


def test_the_colour_pen_and_its_controls(tiny) -> None:
    server, page = tiny
    tools = page.locator(f"{CANVAS} .p2p-tool").all_inner_texts()
    assert tools == ["Pen", "Colour pen", "Eraser"], tools
    swatches = page.locator(f"{CANVAS} .p2p-dab-swatch")
    assert swatches.count() >= 8
    for i in range(swatches.count()):
        box = swatches.nth(i).bounding_box()
        assert box["width"] >= 36 and box["height"] >= 36, ("too small to tap", i, box)
    assert page.locator(f"{CANVAS} input.p2p-color").is_visible()
    size = page.locator(f"{CANVAS} input.p2p-size")
    pen_width = size.input_value()

    # A swatch picks the colour pen; its size is its own (the pen keeps its width).
    swatch(page, "blue").click()
    assert swatch(page, "blue").get_attribute("aria-checked") == "true"
    assert tool(page, "dab").get_attribute("aria-pressed") == "true"
    # Dabs 6 to 24 px wide at 256 px (radius 3 to 12, as the model learnt): 3 to 12 at 128 px.
    assert (size.get_attribute("min"), size.get_attribute("max")) == ("3", "12")
    set_value(size, "10")
    palette = page.locator(f"{CANVAS} .p2p-palette")
    assert palette.get_attribute("data-resting") == "false"
    tool(page, "pen").click()
    assert size.input_value() == pen_width
    # With the pen in hand the colour pen's swatch stays chosen but does not look active.
    assert palette.get_attribute("data-resting") == "true"
    chosen = swatch(page, "blue")
    assert chosen.get_attribute("aria-checked") == "true"
    assert chosen.evaluate("b => getComputedStyle(b).outlineStyle") == "dashed"
    assert float(chosen.evaluate("b => getComputedStyle(b).opacity")) < 1
    tool(page, "dab").click()
    assert size.input_value() == "10"
    assert chosen.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"

    # A dab lands in the drawing in its colour, and is sent that way.
    draw_square(page)
    version = dab(page, BLUE)
    wait_settled(page, version)
    centre = (0.5, 0.5)
    assert near(at(canvas_pixels(page), centre), rgb(BLUE)), at(canvas_pixels(page), centre)
    sent = open_image(committed(page))
    prepared = server.app.store.get("test-hints").prepare(sent)
    assert near(at(np.asarray(prepared), centre), rgb(BLUE), 12), "the server gets the colour"

    # A dab across the square's side leaves the line black.
    side = (0.25, 0.5)
    dab(page, None, [(0.2, 0.5), (0.3, 0.5)])
    pixels = canvas_pixels(page)
    assert at(pixels, side).max() < 64, ("a dab covered a line", at(pixels, side))
    assert near(at(pixels, (0.28, 0.5)), rgb(BLUE)) and near(at(pixels, (0.22, 0.5)), rgb(BLUE))

    # Undo takes the dabs back.
    page.locator(f"{CANVAS} .p2p-undo").click()
    page.locator(f"{CANVAS} .p2p-undo").click()
    assert (at(canvas_pixels(page), centre) == 255).all()

    # The colour picker: any colour (no swatch is checked then); the eraser takes a dab away.
    set_value(page.locator(f"{CANVAS} input.p2p-color"), "#10c0a0")
    assert page.locator(f"{CANVAS} .p2p-dab-swatch[aria-checked='true']").count() == 0
    dab(page)
    assert near(at(canvas_pixels(page), centre), rgb("#10c0a0"))
    tool(page, "eraser").click()
    set_value(size, "8")
    draw_stroke(page, [(0.4, 0.5), (0.6, 0.5)], step_ms=10)
    assert (at(canvas_pixels(page), centre) == 255).all(), "the eraser erases a dab"

    # A model without hints has no colour pen; back on the hints model it is there again.
    select_model(page, "Test plain", "test-plain")
    assert page.locator(f"{CANVAS} .p2p-tool").all_inner_texts() == ["Pen", "Eraser"]
    assert page.locator(f"{CANVAS} .p2p-dab-swatch").count() == 0
    assert not page.locator(f"{CANVAS} input.p2p-color").is_visible()
    select_model(page, "Test hints", "test-hints")
    assert tool(page, "dab").count() == 1
    assert_no_problems(page)


# --- dabs choose the colour: the bundled line-art model -------------------------------------


@pytest.fixture(scope="module")
def bundled() -> Any:
    """The registry's ``lineart2color`` entry; fails when its model does not take hints."""
    from pix2pix.hub import load_generator

    entry = load_registry(registry_path()).get(DEFAULT)
    if not load_generator(entry.source).task.hints:
        pytest.fail(
            f"{entry.source} does not take colour hints (its config's task.hints is false): "
            "export the model trained with hints (bash train/recipes/lineart.sh export)"
        )
    return entry


@pytest.fixture(scope="module", params=["server", "browser"])
def lineart(request, bundled, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A page drawing for ``lineart2color``: the app with the model on the server, or the static
    site (the model in the browser's worker)."""
    if request.param == "server":
        folder = tmp_path_factory.mktemp("lineart-app")
        (folder / "registry.toml").write_text(
            f'[[model]]\nid = "{DEFAULT}"\nname = "Line art"\npath = "{bundled.source}"\n'
            f"pen = {bundled.pen or 7}\n",
            encoding="utf-8",
        )
        with (
            serve(folder / "registry.toml", browser_mode=False) as server,
            canvas_page(server.url, timeout_ms=PAGE_TIMEOUT) as page,
        ):
            yield page
        return
    from pix2pix.site import build_site

    out = tmp_path_factory.mktemp("lineart-site") / "site"
    build_site(out, [DEFAULT], registry=registry_path())
    with (
        serve_folder(out, isolation=True) as url,
        canvas_page(url, timeout_ms=PAGE_TIMEOUT) as page,
    ):
        assert wait_for_choice(page, DEFAULT)["where"] == "browser"
        yield page


def inside_colour(page: Any, version: int) -> np.ndarray:
    """The output's mean CIELAB colour inside ``SQUARE`` (eroded), away from the dab."""
    wait_for_output(page, version, timeout=PAGE_TIMEOUT)
    pixels = png_pixels(output_state(page)["png"]).astype(np.uint8)
    n = pixels.shape[0]
    inside = np.zeros((n, n), bool)
    inside[int(0.32 * n) : int(0.68 * n), int(0.32 * n) : int(0.68 * n)] = True
    inside[int(0.42 * n) : int(0.58 * n), int(0.38 * n) : int(0.62 * n)] = False  # the dab
    return to_lab(pixels[inside]).mean(axis=0)


def test_a_dab_chooses_its_shapes_colour(lineart) -> None:
    page = lineart
    page.wait_for_function(
        "([sel, id]) => document.querySelector(sel + ' .p2p').dataset.model === id",
        arg=[CANVAS, DEFAULT],
    )
    assert page.locator(f"{CANVAS} .p2p").get_attribute("data-hints") == "true"
    plain = inside_colour(page, draw_square(page))
    distances = {}
    for name, colour in (("blue", BLUE), ("red", RED)):
        target = to_lab(rgb(colour)[None].astype(np.uint8))[0]
        dabbed = inside_colour(page, dab(page, colour))
        distances[name] = (float(delta_e(plain, target)), float(delta_e(dabbed, target)))
        page.screenshot(path=ARTIFACTS / f"colour-pen-{name}-{output_state(page)['where']}.png")
        page.locator(f"{CANVAS} .p2p-undo").click()
    for name, (without, with_dab) in distances.items():  # a visible change: 5 or more (CIE76)
        assert with_dab < without - 5, (
            f"a {name} dab did not bring the shape closer to {name}: {distances}"
        )
    assert_no_problems(page)
