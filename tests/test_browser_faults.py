"""Where onnxruntime-web is fragile, reproduced in Debian's chromium on the static site (no server
to fall back to), cross-origin isolated so that WASM runs threaded:

- iOS Safari cannot start threaded WebAssembly on such a page (``RangeError: Out of memory``,
  onnxruntime #11679 / #22086): here the test serves onnxruntime-web with that failure put in
  where it happens, at the creation of the WASM threads' workers. The page retries in a fresh
  worker on one thread and remembers that for the device.
- A load that never settles (a threaded session that never resolves, a model download nobody
  answers) times out into the same retry, then a message that says why.
- Memory: switching between models keeps the sessions of the shown model and the default only,
  and no downloaded bytes once a session exists (the worker's own counts).

The faults are put in by the tests alone (Playwright routes rewriting what the page is served);
the page's only test hook is ``self.p2pTestLimits``, which shortens the stall timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.chromium import (
    CANVAS,
    assert_no_problems,
    browser_page,
    canvas_stats,
    draw_stroke,
    open_canvas,
    output_state,
    stroke_points,
    wait_for_choice,
    wait_for_output,
)
from bench.serving import serve_folder
from pix2pix.site import build_site
from tests.app_fixtures import write_test_registry

MODELS = ["test-edges", "test-labels-a", "test-labels-b", "test-photo"]
STALL_MS = 8000  # the page's stall timeout in these tests (a minute by default); more than
# the worker takes to start on a busy machine

# What iOS Safari does: the threaded WebAssembly module cannot create its threads' workers
# (emscripten names them "em-pthread"), and onnxruntime-web's start fails with this error.
THREADS_OUT_OF_MEMORY = """
(() => {
  const NativeWorker = self.Worker;
  self.Worker = function (url, options) {
    if (options && options.name === 'em-pthread') throw new RangeError('Out of memory');
    return new NativeWorker(url, options);
  };
})();
"""
# A threaded session that never resolves (the hang reported beside the error).
THREADED_SESSIONS_HANG = """
(() => {
  const create = ort.InferenceSession.create.bind(ort.InferenceSession);
  ort.InferenceSession.create = (...args) => (
    ort.env.wasm.numThreads > 1 ? new Promise(() => {}) : create(...args));
})();
"""


def patch_runtime(page: Any, *, before: str = "", after: str = "") -> None:
    """Serve ``page`` onnxruntime-web's WASM build with ``before`` / ``after`` around it."""

    def handle(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=before + response.text() + after)

    page.route("**/ort.wasm.min.js", handle)


def never_answer(route: Any) -> None:
    """A route handler that leaves the request hanging (a download that never settles)."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = write_test_registry(tmp_path_factory.mktemp("faults-src"))
    out = tmp_path_factory.mktemp("faults-site") / "site"
    build_site(out, MODELS, registry=registry, webgpu=False)
    return out


@pytest.fixture()
def page(site: Path) -> Iterator[tuple[Any, str]]:
    with (
        serve_folder(site, isolation=True) as url,
        browser_page(timeout_ms=120_000) as page,
    ):
        page.add_init_script(f"self.p2pTestLimits = {{ stallMs: {STALL_MS} }};")
        yield page, url


def _engine(page: Any, expression: str) -> Any:
    return page.evaluate(f"(async () => {{ const e = p2pSharedEngine; return {expression}; }})()")


def _draw_in_browser(page: Any, i: int) -> dict:
    _, version = draw_stroke(page, stroke_points(i, 12), step_ms=20)
    wait_for_output(page, version, timeout=60_000)
    state = output_state(page)
    assert state["where"] == "browser", state
    return state


@pytest.mark.parametrize("fault", ["out-of-memory", "hang"])
def test_threaded_webassembly_failing_retries_on_one_thread(page, fault: str) -> None:
    page, url = page
    if fault == "out-of-memory":
        patch_runtime(page, before=THREADS_OUT_OF_MEMORY)
    else:
        patch_runtime(page, after=THREADED_SESSIONS_HANG)
    open_canvas(page, url)
    assert page.evaluate("crossOriginIsolated")
    choice = wait_for_choice(page, "test-edges", timeout=60_000)
    assert choice["where"] == "browser" and choice["threads"] == 1, choice
    assert _engine(page, "e.counts") == {"restarts": 1, "stalls": int(fault == "hang")}
    state = _draw_in_browser(page, 1)
    assert "WASM · 1 thread" in state["label"], state
    # Remembered for this device: the next visit starts on one thread, with no failure first.
    memory = page.evaluate("JSON.parse(localStorage.getItem('pix2pix-threads'))")
    assert memory["threads"] == 1, memory
    expected = "Out of memory" if fault == "out-of-memory" else "no progress"
    assert expected in memory["reason"], memory
    page.reload()
    page.wait_for_selector(f"{CANVAS} canvas.p2p-canvas")
    again = wait_for_choice(page, "test-edges", timeout=60_000)
    assert again["where"] == "browser" and again["threads"] == 1, again
    assert _engine(page, "e.counts") == {"restarts": 0, "stalls": 0}
    assert_no_problems(page)


def test_a_download_that_never_settles_ends_in_a_message(page) -> None:
    page, url = page
    page.route("**/models/**", never_answer)
    open_canvas(page, url)
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' .p2p-status').classList.contains('p2p-error')",
        arg=CANVAS,
        timeout=60_000,
    )
    status = output_state(page)["label"]
    assert status.startswith("This model cannot run in your browser"), status
    assert "no progress" in status and "downloading the model" in status, status
    assert "also in a fresh worker on one thread" in status, status
    assert _engine(page, "e.counts") == {"restarts": 1, "stalls": 2}
    # A network stall says nothing about the device's threads: nothing is remembered.
    assert page.evaluate("localStorage.getItem('pix2pix-threads')") is None
    assert_no_problems(page)


def test_switching_models_keeps_only_the_shown_and_the_default_sessions(page) -> None:
    page, url = page
    open_canvas(page, url)
    sessions_per_model = None
    for i, model in enumerate([*MODELS, "test-labels-a", "test-edges"]):
        page.select_option("#p2p-model", model)
        page.wait_for_function(
            "([sel, m]) => document.querySelector(sel + ' .p2p').dataset.model === m",
            arg=[CANVAS, model],
        )
        assert wait_for_choice(page, model, timeout=60_000)["where"] == "browser"
        _draw_in_browser(page, i)
        memory = _engine(page, "e.memory()")
        kept = {"test-edges", model}
        assert sorted(memory["models"]) == sorted(kept), (model, memory)
        # Each model is its stages here (isolated page): the same count of sessions each.
        live = memory["created"] - memory["released"]
        sessions_per_model = sessions_per_model or live // len(kept)
        assert sessions_per_model > 1 and live == sessions_per_model * len(kept), (model, memory)
        assert memory["heldBytes"] == 0, (model, memory)
    stats = canvas_stats(page)
    assert stats["errors"] == 0 and not stats["engineError"], stats
    assert_no_problems(page)
