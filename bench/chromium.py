"""Debian's chromium (headless, through Playwright) on the app's live canvas: launch a page that
records every console error, draw strokes with the mouse, read what the output pane shows, and
measure pointer-up -> new output shown.

Shared by the benchmarks (bench/browser.py, bench/benchmark.py) and the browser tests; it lives in
bench/ because bench/ never imports tests/ (ARCHITECTURE.md). Never downloads a browser.

From the repository root (Playwright and Debian's chromium needed)::

    python -m bench.chromium --model sketch2product --model facades-patch70 \
        --screenshot test-artifacts/app.png

or from Python::

    from bench.chromium import browser_page, measure_canvas, open_canvas
    from bench.serving import serve
    with serve(remote="skip") as server, browser_page() as page:   # models.toml, local models
        open_canvas(page, server.url)
        name = server.app.registry.get("sketch2product").name
        print(measure_canvas(page, model=(name, "sketch2product")))  # p50/p95 ms, updates/s
"""

from __future__ import annotations

import base64
import contextlib
import io
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

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
CANVAS = "#p2p-canvas"


def require_chromium() -> None:
    """Fail (never skip) with the fix when Debian's chromium is missing."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} not found: the browser tests need Debian's chromium. Install it with "
            f"`apt-get install -y chromium` (do not run `playwright install`)."
        )


def watch(page: Any, *, failed_requests: bool = False) -> Any:
    """Record on ``page`` what it reports; returns the page.

    ``page.problems`` (list of str) collects console errors and page errors (uncaught
    exceptions) and, with ``failed_requests``, requests that failed other than by being aborted
    (aborts are normal: event streams closing, superseded fetches); a test fails on any of them
    with :func:`assert_no_problems`. ``page.requests`` lists every URL the page asked for.
    """
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    if failed_requests:
        page.on(
            "requestfailed",
            lambda r: (
                None
                if r.failure == "net::ERR_ABORTED"
                else problems.append(f"request failed: {r.url[:120]} ({r.failure})")
            ),
        )
    page.problems = problems
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    return page


def assert_no_problems(page: Any) -> None:
    """Raise AssertionError listing what :func:`watch` recorded, if anything."""
    if page.problems:
        raise AssertionError("\n".join(page.problems))


# What Gradio's page logs when a navigation tears it down while its event streams are open.
UNLOAD_NOISE = ("BodyStreamBuffer was aborted", "Connection errored out")


def reload(page: Any) -> None:
    """Reload ``page`` (watched); the console errors of Gradio's page being torn down (its open
    event streams aborted by the navigation, ``UNLOAD_NOISE``) are not counted as problems."""
    before = len(page.problems)
    page.reload()
    kept = [p for p in page.problems[before:] if not any(n in p for n in UNLOAD_NOISE)]
    page.problems[before:] = kept


@contextlib.contextmanager
def browser_page(
    width: int = 1280,
    height: int = 1000,
    *,
    failed_requests: bool = False,
    timeout_ms: float | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[Any]:
    """A Playwright page in headless Debian chromium, watched (see :func:`watch`).

    ``timeout_ms`` replaces Playwright's default of 30 s for every wait on the page;
    ``extra_args``: more command-line switches for chromium (e.g. ``--enable-unsafe-webgpu``)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = [*CHROMIUM_ARGS, *extra_args]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            if timeout_ms is not None:
                page.set_default_timeout(timeout_ms)
            yield watch(page, failed_requests=failed_requests)
        finally:
            browser.close()


def open_canvas(page: Any, url: str, *, timeout: float | None = None) -> None:
    """Load ``url`` (the app or the static site) and wait until its drawing canvas is there
    (``timeout`` in ms; default: the page's)."""
    page.goto(url)
    page.wait_for_selector(f"{CANVAS} canvas.p2p-canvas", timeout=timeout)


@contextlib.contextmanager
def canvas_page(
    url: str, *, failed_requests: bool = False, timeout_ms: float | None = None
) -> Iterator[Any]:
    """A :func:`browser_page` opened at ``url`` with its canvas ready; on leaving, waits 300 ms so
    that the last requests finish before the page closes."""
    with browser_page(failed_requests=failed_requests, timeout_ms=timeout_ms) as page:
        open_canvas(page, url)
        yield page
        page.wait_for_timeout(300)


def decode_png(data_url: str) -> Image.Image:
    """The RGB image in a ``data:image/png;base64,`` URL (as the page's canvases give them)."""
    if not data_url.startswith("data:image/png;base64,"):
        raise ValueError(f"not a PNG data URL: {data_url[:60]!r}")
    return Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).convert("RGB")


def png_pixels(data_url: str) -> np.ndarray:
    """:func:`decode_png` as an (H, W, 3) int16 array (0..255), so differences do not wrap."""
    return np.asarray(decode_png(data_url), dtype=np.int16)


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
    where: 'browser' | 'server' | None, label: the text under it, why: its tooltip}."""
    return page.evaluate(
        """(sel) => {
            const root = document.querySelector(sel + ' .p2p');
            const out = root.querySelector('.p2p-out');
            const ph = root.querySelector('.p2p-placeholder');
            return { shown: !out.hidden, placeholder: !ph.hidden,
                     png: out.hidden ? null : out.toDataURL('image/png'),
                     where: out.hidden ? null : (root.dataset.result || null),
                     label: root.querySelector('.p2p-status').textContent,
                     why: root.querySelector('.p2p-status').title };
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


# One stroke generated inside the page: pointer events dispatched from a requestAnimationFrame
# loop at the times a mouse-driven stroke (draw_stroke) would have them, so the driver (Python,
# Playwright's node process, one CDP message per mouse step) does no work while it is drawn.
_STROKE_IN_PAGE = """async ([sel, points, stepMs]) => {
    const root = document.querySelector(sel + ' .p2p');
    const canvas = root.querySelector('canvas.p2p-canvas');
    const box = canvas.getBoundingClientRect();
    const at = ([x, y]) => [box.left + x * box.width, box.top + y * box.height];
    // draw_stroke's mouse.move(steps=2): two moves per point, the second on the point
    const moves = [];
    for (let i = 1; i < points.length; i++) {
        const [ax, ay] = at(points[i - 1]), [bx, by] = at(points[i]);
        const t = Math.max(0, i - 1) * stepMs;
        moves.push([t, (ax + bx) / 2, (ay + by) / 2], [t, bx, by]);
    }
    const fire = (type, x, y, buttons) => canvas.dispatchEvent(new PointerEvent(type, {
        bubbles: true, cancelable: true, composed: true, pointerId: 1, pointerType: 'mouse',
        isPrimary: true, clientX: x, clientY: y, button: type === 'pointermove' ? -1 : 0,
        buttons }));
    const before = root.p2pStats.shown.length;
    const [x0, y0] = at(points[0]);
    fire('pointerdown', x0, y0, 1);
    const t0 = performance.now();
    let next = 0;
    await new Promise((done) => {
        const frame = () => {
            const now = performance.now() - t0;
            while (next < moves.length && moves[next][0] <= now) {
                fire('pointermove', moves[next][1], moves[next][2], 1);
                next += 1;
            }
            if (next < moves.length) requestAnimationFrame(frame); else done();
        };
        requestAnimationFrame(frame);
    });
    const last = moves[moves.length - 1];
    fire('pointerup', last[1], last[2], 0);
    const during = root.p2pStats.shown.slice(before).filter((s) => s.during).length;
    return [during, Number(root.dataset.version)];
}"""


def draw_stroke_in_page(
    page: Any, points: list[tuple[float, float]], *, step_ms: float = 16
) -> tuple[int, int]:
    """:func:`draw_stroke` with the pointer events generated by the page itself (see
    ``_STROKE_IN_PAGE``); same return value."""
    during, version = page.evaluate(_STROKE_IN_PAGE, [CANVAS, [list(p) for p in points], step_ms])
    return int(during), int(version)


def stroke_points(i: int, n: int = 12) -> list[tuple[float, float]]:
    """A wavy line across the canvas, different for each ``i``."""
    y0 = 0.15 + 0.7 * ((i * 0.37) % 1)
    return [(0.1 + 0.8 * k / (n - 1), y0 + 0.05 * np.sin(k + i)) for k in range(n)]


def process_cpu_seconds() -> dict[str, float]:
    """CPU time (user + system, s) so far of this process and its descendants, by role: ``python``
    (this process: the driver and, in the benchmarks, the app's server threads), ``driver``
    (Playwright's node process), ``renderer`` (chromium's page processes, where the canvas and its
    worker run), ``chromium-other`` (browser, GPU, utility processes). From /proc (Linux)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, str]] = {}  # pid -> (parent, cpu seconds, command line)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
    me = os.getpid()
    totals = {"python": 0.0, "driver": 0.0, "renderer": 0.0, "chromium-other": 0.0}
    for pid, (_, cpu, cmd) in stats.items():
        up, seen = pid, 0
        while up in stats and up != me and seen < 64:
            up, seen = stats[up][0], seen + 1
        if up != me:
            continue
        if pid == me:
            role = "python"
        elif "chromium" in cmd or "chrome" in cmd:
            role = "renderer" if "--type=renderer" in cmd else "chromium-other"
        else:
            role = "driver"
        totals[role] += cpu
    return totals


def measure_canvas(
    page: Any,
    *,
    strokes: int = 10,
    model: tuple[str, str] | None = None,
    stroke_ms: float = 600,
    in_page: bool = False,
) -> dict[str, float]:
    """Draw ``strokes`` strokes; returns pointer-up -> new output shown latency (p50, p95 in
    ms, measured in the page), output updates per second while a stroke is in progress, and the
    median time the server spent per request (decode, model, encode) or the browser per model run,
    and how many requests the canvas sent to the server meanwhile.

    ``model`` (display name, id) is selected in the picker first when given. Each stroke lasts about
    ``stroke_ms``; the next starts once the previous one's output is shown. ``in_page``: the page
    generates the strokes (:func:`draw_stroke_in_page`) instead of Playwright's mouse. Also returns
    the CPU seconds per wall-clock second of each process role (:func:`process_cpu_seconds`,
    keys ``cpu_<role>``) while the strokes were drawn and answered.
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
    draw = draw_stroke_in_page if in_page else draw_stroke
    cpu0, wall0 = process_cpu_seconds(), time.perf_counter()
    for i in range(strokes):
        t0 = time.perf_counter()
        during, version = draw(page, stroke_points(i, n), step_ms=stroke_ms / n)
        drawing_s += time.perf_counter() - t0
        updates += during
        wait_for_output(page, version)
    cpu1, wall = process_cpu_seconds(), time.perf_counter() - wall0
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
        # pointer-ups that dropped a browser run of an older drawing (between two stages)
        "supersedes": stats.get("supersedes", 0) - start_stats.get("supersedes", 0),
        **{f"cpu_{role}": (cpu1[role] - cpu0[role]) / wall for role in cpu1},
    }


def select_model(page: Any, name: str, model_id: str) -> None:
    """Choose a model in the picker by its display name; wait until the canvas uses it."""
    page.get_by_label("Model", exact=True).first.click()
    page.get_by_role("option", name=name).first.click()
    page.wait_for_function(
        "([sel, id]) => document.querySelector(sel + ' .p2p').dataset.model === id",
        arg=[CANVAS, model_id],
    )


def start_up_phases(page: Any) -> dict[str, float]:
    """When each phase of the page's start-up ended, in ms since navigation started.

    The navigation (``response``: the HTML received; ``dom``: DOMContentLoaded; ``load``: the load
    event), the canvas's own marks (``canvas``: its script ran, ``worker``, ``runtime``:
    onnxruntime-web loaded in the worker, ``session``: model downloaded and its session created,
    ``warmup``, ``timed``, ``roundtrip``: the server's timed round trip, ``choice``, ``output``:
    the first translation shown) and, for onnxruntime-web's files and the ONNX model (``onnx``),
    when their download started and ended (``<name>_start`` / ``<name>_end``)."""
    return page.evaluate(
        """(sel) => {
            const r = {};
            const nav = performance.getEntriesByType('navigation')[0];
            if (nav) Object.assign(r, { response: nav.responseEnd,
                dom: nav.domContentLoadedEventEnd, load: nav.loadEventEnd });
            const stats = document.querySelector(sel + ' .p2p').p2pStats;
            Object.assign(r, stats.marks);
            for (const e of performance.getEntriesByType('resource')) {
                const name = e.name.endsWith('.wasm') ? 'wasm'
                    : e.name.includes('.onnx') ? 'onnx' : null;
                if (name && !((name + '_start') in r)) {
                    r[name + '_start'] = e.startTime; r[name + '_end'] = e.responseEnd;
                }
            }
            // The worker's own downloads (runner.js reports them on the epoch clock).
            for (const c of Object.values(stats.choice)) {
                for (const [file, start, end] of (c && c.downloads) || []) {
                    const name = file.endsWith('.onnx') ? 'onnx' : file;
                    if (!((name + '_start') in r)) {
                        r[name + '_start'] = start - performance.timeOrigin;
                        r[name + '_end'] = end - performance.timeOrigin;
                    }
                }
            }
            for (const k of Object.keys(r)) r[k] = Math.round(r[k]);
            return r;
        }""",
        CANVAS,
    )


def wait_for_choice(page: Any, model: str, timeout: float | None = None) -> dict[str, Any]:
    """Wait until the canvas has decided where ``model`` runs (browser or server; it exports,
    downloads and times the model first); returns its record of that choice. ``timeout`` in ms."""
    page.wait_for_function(
        """([sel, m]) => { const c = document.querySelector(sel + ' .p2p').p2pStats.choice[m];
                          return c && c.where !== 'pending'; }""",
        arg=[CANVAS, model],
        timeout=timeout,
    )
    return canvas_stats(page)["choice"][model]


def main(argv: list[str] | None = None) -> int:
    """Measure the live canvas in headless chromium for some models of a registry."""
    import argparse
    import json

    from bench.serving import serve

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--registry", type=Path, help="registry file (default: models.toml)")
    p.add_argument("--model", action="append", help="model id (repeatable; default: the first)")
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--screenshot", type=Path, help="save a full-page screenshot here at the end")
    args = p.parse_args(argv)
    with serve(args.registry, remote="skip") as server, browser_page() as page:
        open_canvas(page, server.url)
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
