"""Helpers for the app tests and for benchmarks: tiny models and a registry, a live server, and
the browser measurement of the live canvas (pointer-up -> new output shown).

Benchmark use (from the repository root; Playwright and Debian's chromium needed)::

    python -m tests.app_fixtures --model sketch2product --model facades-patch70 \
        --screenshot test-artifacts/app.png

or from Python::

    from tests.app_fixtures import browser_page, measure_canvas, serve
    with serve(remote="skip") as server, browser_page() as page:   # models.toml, local models
        page.goto(server.url)
        name = server.app.registry.get("sketch2product").name
        print(measure_canvas(page, model=(name, "sketch2product")))  # p50/p95 ms, updates/s
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator, save_generator

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PALETTE = [[255, 255, 255], [200, 30, 30], [30, 30, 200]]
CLASSES = ["background", "wall", "window"]
CANVAS = "#p2p-canvas"


def tiny_model(kind: str, *, seed: int, patch: int | None = None) -> Pix2PixGenerator:
    """A small unet_128 (ngf 4) with task metadata, randomly initialised."""
    torch.manual_seed(seed)
    task: dict[str, Any] = {"input_kind": kind, "train_size": 128, "dataset": "test data"}
    if kind == "labels":
        task.update(palette=PALETTE, class_names=CLASSES, patch=patch, license="CC0")
    model = Pix2PixGenerator("unet_128", {"ngf": 4}, task)
    networks.init_weights(model.net)
    return model.eval()


def write_test_registry(folder: Path) -> Path:
    """Save tiny models and write a registry with every kind of entry; returns its path.

    Entries: an edges model (with examples), a photo model, a group of three label-map variants,
    a missing folder, a Hub repo that is not in the cache, and a URL that is not cached.
    """
    folder.mkdir(parents=True, exist_ok=True)
    save_generator(tiny_model("edges", seed=1), folder / "models" / "edges")
    save_generator(tiny_model("photo", seed=2), folder / "models" / "photo")
    for i, patch in enumerate((1, 70, None)):
        save_generator(tiny_model("labels", seed=10 + i, patch=patch), folder / "models" / f"l{i}")
    examples = folder / "examples" / "edges"
    examples.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        sketch_image(128, seed=i).save(examples / f"{i}.png")
    (folder / "registry.toml").write_text(
        f"""
[[model]]
id = "test-edges"
name = "Test edges"
path = "models/edges"
task = "edges -> noise"
input = "edges"
examples = ["examples/edges/*.png", "examples/none/*.png"]

[[model]]
id = "test-photo"
name = "Test photo"
path = "models/photo"
task = "photo -> noise"

[[model]]
id = "test-labels-a"
name = "Test labels A"
path = "models/l0"
task = "labels -> noise"
group = "test group"
variant = "1x1 variant"
fill = "background"

[[model]]
id = "test-labels-b"
name = "Test labels B"
path = "models/l1"
task = "labels -> noise"
group = "test group"
variant = "70x70 variant"

[[model]]
id = "test-labels-c"
name = "Test labels C"
path = "models/l2"
task = "labels -> noise"
group = "test group"
variant = "L1 variant"

[[model]]
id = "missing-folder"
name = "Missing folder"
path = "models/not-there"
task = "nothing"
input = "edges"

[[model]]
id = "uncached-hub"
name = "Uncached Hub model"
hub = "nobody-{os.getpid()}/not-in-cache"
revision = "main"
task = "nothing"
input = "photo"

[[model]]
id = "uncached-url"
name = "Uncached URL"
url = "http://127.0.0.1:9/not-there.pth"
task = "nothing"
input = "photo"
""",
        encoding="utf-8",
    )
    return folder / "registry.toml"


def sketch_image(size: int = 128, seed: int = 0) -> Image.Image:
    """A white image with a few black strokes (an edge map)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        points = [tuple(int(v) for v in rng.integers(8, size - 8, 2)) for _ in range(3)]
        draw.line(points, fill="black", width=2)
    return image


def label_image(size: int = 128) -> Image.Image:
    """A label map in the test palette: a wall with two windows."""
    image = Image.new("RGB", (size, size), tuple(PALETTE[0]))
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 10, size - 10, size - 10], fill=tuple(PALETTE[1]))
    draw.rectangle([24, 24, 50, 60], fill=tuple(PALETTE[2]))
    draw.rectangle([70, 24, 96, 60], fill=tuple(PALETTE[2]))
    return image


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running app: its URL, its App (handlers, store) and how long start-up took."""

    url: str
    app: Any
    startup_s: float


@contextlib.contextmanager
def serve(
    registry: Path | None = None, *, remote: str = "background", browser_mode: bool | None = None
) -> Iterator[Server]:
    """Build and launch the app on a free local port (the real models.toml by default).

    ``browser_mode``: True lets the canvas run models in the browser, False keeps every model on
    the server (the canvas loads no runtime), None leaves it to ``$PIX2PIX_BROWSER``."""
    from pix2pix.app import App, create_store, launch_options, load_registry

    start = time.perf_counter()
    store = create_store(load_registry(registry), remote=remote)
    app = App(store, browser_mode=browser_mode)
    options = launch_options(app.blocks)
    _, url, _ = app.blocks.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        theme=options["theme"],
        app_kwargs=options["app_kwargs"],
    )
    try:
        yield Server(url.rstrip("/") + "/", app, time.perf_counter() - start)
    finally:
        app.blocks.close()


# --------------------------------------------------------------------------------------------
# Browser
# --------------------------------------------------------------------------------------------


def require_chromium() -> None:
    """Fail (never skip) with the fix when Debian's chromium is missing."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium. Install it with "
            f"`apt-get install -y chromium` (do not run `playwright install`)."
        )


@contextlib.contextmanager
def browser_page(width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A Playwright page in headless Debian chromium."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def canvas_box(page: Any) -> dict[str, float]:
    """The drawing canvas's bounding box on the page."""
    box = page.locator(f"{CANVAS} canvas.p2p-canvas").bounding_box()
    if box is None:
        raise AssertionError("the drawing canvas is not visible")
    return box


def canvas_stats(page: Any) -> dict[str, Any]:
    """The canvas's own record: latencies (ms), shown updates, server times, errors."""
    return page.evaluate(
        "(sel) => { const s = document.querySelector(sel + ' .p2p').p2pStats;"
        " return JSON.parse(JSON.stringify(s)); }",
        CANVAS,
    )


def wait_for_output(page: Any, version: int | None = None, timeout: float = 30_000) -> int:
    """Wait until the output shows the drawing of ``version`` or later (default: the current
    one); returns the version shown."""
    return page.wait_for_function(
        """([sel, v]) => {
            const root = document.querySelector(sel + ' .p2p');
            const out = document.querySelector(sel + ' .p2p-out');
            const want = v === null ? Number(root.dataset.version || 0) : v;
            const shown = Number(root.dataset.shown ?? -1);
            return shown >= want && !out.hidden ? shown : false;
        }""",
        arg=[CANVAS, version],
        timeout=timeout,
    ).json_value()


def wait_settled(page: Any, version: int | None = None, timeout: float = 30_000) -> int:
    """Wait until the output pane reflects the drawing of ``version`` or later (default: the
    current one), as a translation or, for a blank drawing, the placeholder; returns that version.
    """
    return page.wait_for_function(
        """([sel, v]) => {
            const root = document.querySelector(sel + ' .p2p');
            const want = v === null ? Number(root.dataset.version || 0) : v;
            const settled = Number(root.dataset.settled ?? -1);
            return settled >= want ? settled : false;
        }""",
        arg=[CANVAS, version],
        timeout=timeout,
    ).json_value()


def output_state(page: Any) -> dict[str, Any]:
    """What the output pane shows: {shown: bool, placeholder: bool, png: data URL or None,
    where: 'browser' | 'server' | None, label: the text under it}."""
    return page.evaluate(
        """(sel) => {
            const root = document.querySelector(sel + ' .p2p');
            const out = root.querySelector('.p2p-out');
            const ph = root.querySelector('.p2p-placeholder');
            return { shown: !out.hidden, placeholder: !ph.hidden,
                     png: out.hidden ? null : out.toDataURL('image/png'),
                     where: out.hidden ? null : (root.dataset.result || null),
                     label: root.querySelector('.p2p-status').textContent };
        }""",
        CANVAS,
    )


def draw_stroke(
    page: Any, points: list[tuple[float, float]], *, step_ms: float = 16
) -> tuple[int, int]:
    """Draw one stroke through ``points`` (fractions of the canvas) with the mouse.

    Returns (shown updates while the stroke was in progress, canvas version at pointer-up).
    """
    box = canvas_box(page)

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    before = len(canvas_stats(page)["shown"])
    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for i, p in enumerate(points[1:]):
        if i and step_ms:
            page.wait_for_timeout(step_ms)
        page.mouse.move(*at(p), steps=2)
    page.mouse.up()
    version = int(page.locator(f"{CANVAS} .p2p").get_attribute("data-version"))
    during = sum(1 for s in canvas_stats(page)["shown"][before:] if s["during"])
    return during, version


def stroke_points(i: int, n: int = 12) -> list[tuple[float, float]]:
    """A wavy line across the canvas, different for each ``i``."""
    y0 = 0.15 + 0.7 * ((i * 0.37) % 1)
    return [(0.1 + 0.8 * k / (n - 1), y0 + 0.05 * np.sin(k + i)) for k in range(n)]


def measure_canvas(
    page: Any, *, strokes: int = 10, model: tuple[str, str] | None = None, stroke_ms: float = 600
) -> dict[str, float]:
    """Draw ``strokes`` strokes; returns pointer-up -> new output shown latency (p50, p95 in
    ms, measured in the page), output updates per second while a stroke is in progress, and the
    median time the server spent per request (decode, model, encode) or the browser per model run,
    and how many requests the canvas sent to the server meanwhile.

    ``model`` (display name, id) is selected in the picker first when given. Each stroke lasts about
    ``stroke_ms``; the next starts once the previous one's output is shown.
    """
    if model is not None:
        select_model(page, *model)
    wait_settled(page)
    start_stats = canvas_stats(page)
    first_latency = len(start_stats["latencies"])
    first_server = len(start_stats["serverMs"])
    first_browser = len(start_stats["browserMs"])
    updates, drawing_s = 0, 0.0
    n = 12
    for i in range(strokes):
        t0 = time.perf_counter()
        during, version = draw_stroke(page, stroke_points(i, n), step_ms=stroke_ms / n)
        drawing_s += time.perf_counter() - t0
        updates += during
        wait_for_output(page, version)
    stats = canvas_stats(page)
    latencies = stats["latencies"][first_latency:]
    server_ms = stats["serverMs"][first_server:] or [float("nan")]
    browser_ms = stats["browserMs"][first_browser:] or [float("nan")]
    return {
        "strokes": strokes,
        "p50_ms": statistics.median(latencies),
        "p95_ms": float(np.percentile(latencies, 95)),
        "max_ms": max(latencies),
        "updates_per_s_while_drawing": updates / drawing_s,
        "server_ms_p50": statistics.median(server_ms),
        "browser_run_ms_p50": statistics.median(browser_ms),
        "server_calls": stats["serverCalls"] - start_stats["serverCalls"],
    }


def select_model(page: Any, name: str, model_id: str) -> None:
    """Choose a model in the picker by its display name; wait until the canvas uses it."""
    page.get_by_label("Model", exact=True).first.click()
    page.get_by_role("option", name=name).first.click()
    page.wait_for_function(
        "([sel, id]) => document.querySelector(sel + ' .p2p').dataset.model === id",
        arg=[CANVAS, model_id],
    )


def main(argv: list[str] | None = None) -> int:
    """Measure the live canvas in headless chromium for some models of a registry."""
    import argparse
    import json

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--registry", type=Path, help="registry file (default: models.toml)")
    p.add_argument("--model", action="append", help="model id (repeatable; default: the first)")
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--screenshot", type=Path, help="save a full-page screenshot here at the end")
    args = p.parse_args(argv)
    with serve(args.registry, remote="skip") as server, browser_page() as page:
        page.goto(server.url)
        page.wait_for_selector(f"{CANVAS} canvas.p2p-canvas")
        print(f"start-up (load, warm up, launch): {server.startup_s:.1f} s")
        for model_id in args.model or [server.app.default_model()]:
            name = server.app.registry.get(model_id).name
            result = measure_canvas(page, strokes=args.strokes, model=(name, model_id))
            print(model_id, json.dumps({k: round(v, 1) for k, v in result.items()}))
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
