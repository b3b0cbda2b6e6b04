"""The canvas's model runner (pix2pix/app/static/runner.js) on onnxruntime-web's WebGPU build.

A visitor with a real GPU adapter gets the WebGPU build, and then whichever of its WebGPU and
WASM sessions is faster; so the WebGPU kernels must compute what the WASM ones and the server do.
This machine has no GPU: Chromium's software WebGPU adapter (SwiftShader, switched on with
``--enable-unsafe-webgpu``) runs the same WebGPU kernels, slowly, which is enough to check their
results. The runner takes a software adapter only when asked (``webgpu: 'software'``); the default
rule, real adapters only, is checked too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.chromium import assert_no_problems, browser_page
from bench.serving import serve_folder
from pix2pix import Translator, load_generator
from pix2pix.site import build_site
from tests.app_fixtures import write_test_registry

SIZE = 128  # the tiny test model's training size

# Runs in the page: start a runner worker, initialise it, load the model once per backend it
# offers (or the ones named), run each on the same drawing, and return what came back.
RUN_EACH_BACKEND = """
async ({runner, ort, model, size, webgpu, rgba}) => {
  const worker = new Worker(runner);
  const waiting = new Map();
  let seq = 0;
  worker.onmessage = (e) => {
    if (e.data.progress) return;  // a load's progress report; its answer follows
    waiting.get(e.data.id)(e.data);
    waiting.delete(e.data.id);
  };
  const call = (msg) => new Promise((done) => {
    const id = ++seq;
    waiting.set(id, done);
    worker.postMessage(Object.assign({ id }, msg));
  });
  const out = { init: await call({ type: 'init', ort, webgpu }), runs: {} };
  for (const backend of out.init.backends || []) {
    const name = 'model-' + backend;
    const load = await call({ type: 'load', model: name, url: model, size, backend });
    const run = load.error ? load : await call(
      { type: 'run', model: name, width: size, height: size, rgba: new Uint8ClampedArray(rgba) });
    out.runs[backend] = {
      loaded: load.backend || null, error: run.error || null, backend: run.backend || null,
      ms: run.ms || null, pixels: run.pixels ? Array.from(run.pixels) : null,
    };
  }
  const wrong = await call({ type: 'load', model: 'x', url: model, size, backend: 'nope' });
  out.wrongBackend = wrong.error || null;
  worker.terminate();
  return out;
}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A static site with the tiny edges model (WebGPU build included), and the model's folder."""
    folder = tmp_path_factory.mktemp("webgpu-src")
    registry = write_test_registry(folder)
    out = tmp_path_factory.mktemp("webgpu-site") / "site"
    build_site(out, ["test-edges"], registry=registry, fp16=False)
    if not (out / "ort" / "ort.webgpu.min.js").is_file():
        pytest.fail("the site has no WebGPU build of onnxruntime-web (node_modules incomplete?)")
    return out, folder / "models" / "edges"


def _drawing() -> np.ndarray:
    """A (SIZE, SIZE, 4) uint8 RGBA drawing: black lines on white, opaque."""
    y, x = np.mgrid[:SIZE, :SIZE]
    ink = ((x * 7 + y * 3) % 64 < 6) | ((x - 64) ** 2 + (y - 64) ** 2 < 30**2) & (
        (x - 64) ** 2 + (y - 64) ** 2 > 27**2
    )
    rgb = np.where(ink, 0, 255).astype(np.uint8)
    return np.dstack([rgb, rgb, rgb, np.full_like(rgb, 255)])


def _run(site: Path, webgpu: object) -> dict:
    rgba = _drawing()
    with (
        serve_folder(site, isolation=False) as url,
        browser_page(extra_args=["--enable-unsafe-webgpu"], timeout_ms=120_000) as page,
    ):
        page.goto(url)
        result = page.evaluate(
            RUN_EACH_BACKEND,
            {"runner": url + "static/runner.js", "ort": url + "ort/",
             "model": url + "models/test-edges.onnx", "size": SIZE, "webgpu": webgpu,
             "rgba": rgba.reshape(-1).tolist()},
        )  # fmt: skip
        assert_no_problems(page)
    return result


def _pixels(run: dict) -> np.ndarray:
    assert run["error"] is None, run["error"]
    return np.array(run["pixels"], np.uint8).reshape(SIZE, SIZE, 4)[..., :3]


def test_webgpu_kernels_match_wasm_and_the_server(site: tuple[Path, Path]) -> None:
    folder, model_dir = site
    result = _run(folder, "software")
    assert result["init"].get("backends") == ["webgpu", "wasm"], result["init"]
    runs = result["runs"]
    assert runs["webgpu"]["loaded"] == "webgpu" and runs["webgpu"]["backend"] == "webgpu"
    assert runs["wasm"]["loaded"] == "wasm" and runs["wasm"]["backend"] == "wasm"
    on_gpu, on_wasm = _pixels(runs["webgpu"]), _pixels(runs["wasm"])

    drawing = Image.fromarray(_drawing()[..., :3])
    server = Translator(load_generator(model_dir), device="cpu", backend="eager", precision="fp32")
    server = np.asarray(server(drawing), np.uint8)  # fp32 on every CPU, as the browser runs
    assert server.std() > 1, "the test model's output is flat: a poor check"
    for name, got in (("webgpu", on_gpu), ("wasm", on_wasm)):
        diff = np.abs(got.astype(int) - server.astype(int))
        assert diff.max() <= 2, f"{name} differs from the server by up to {diff.max()}/255"
    assert "nope" in (result["wrongBackend"] or "")


def test_a_software_adapter_is_not_taken_for_a_gpu(site: tuple[Path, Path]) -> None:
    result = _run(site[0], True)  # what the canvas asks for: a real GPU adapter only
    assert result["init"].get("backends") == ["wasm"], result["init"]
    assert _pixels(result["runs"]["wasm"]).std() > 1


# Runs in a cross-origin isolated page: load the model once, letting the runner compare WebGPU
# with WASM (no `backend`), with the model's stages offered as an isolated page's canvas does.
LOAD_BOTH = """
async ({runner, ort, model, stages, size}) => {
  const worker = new Worker(runner);
  const waiting = new Map();
  let seq = 0;
  worker.onmessage = (e) => {
    if (e.data.progress) return;
    waiting.get(e.data.id)(e.data);
    waiting.delete(e.data.id);
  };
  const call = (msg) => new Promise((done) => {
    const id = ++seq;
    waiting.set(id, done);
    worker.postMessage(Object.assign({ id }, msg));
  });
  const cancel = new SharedArrayBuffer(4);
  const init = await call({ type: 'init', ort, webgpu: 'software', cancel });
  const load = await call({ type: 'load', model: 'm', url: model, stages, size });
  const stats = await call({ type: 'stats' });
  worker.terminate();
  return { init, load, stats };
}
"""


def test_comparing_webgpu_with_wasm_downloads_the_model_once(site: tuple[Path, Path]) -> None:
    # Measuring WebGPU against WASM, both sessions are made from the whole graph's bytes: one
    # download, not the whole graph for WebGPU and the stages again for WASM; and the bytes are
    # not kept once the session exists.
    folder = site[0]
    with (
        serve_folder(folder, isolation=True) as url,
        browser_page(extra_args=["--enable-unsafe-webgpu"], timeout_ms=120_000) as page,
    ):
        # A page of the site's origin without its canvas (which would load the model itself).
        isolated = {"Cross-Origin-Opener-Policy": "same-origin",
                    "Cross-Origin-Embedder-Policy": "require-corp"}  # fmt: skip
        blank = '<!doctype html><link rel="icon" href="data:,">'
        page.route(url + "blank.html", lambda r: r.fulfill(body=blank, headers=isolated,
                                                           content_type="text/html"))  # fmt: skip
        page.goto(url + "blank.html")
        assert page.evaluate("crossOriginIsolated")
        stages = sorted(folder.glob("models/test-edges.stage*.onnx"))
        assert len(stages) > 1
        result = page.evaluate(
            LOAD_BOTH,
            {"runner": url + "static/runner.js", "ort": url + "ort/",
             "model": url + "models/test-edges.onnx", "size": SIZE,
             "stages": [url + p.relative_to(folder).as_posix() for p in stages]},
        )  # fmt: skip
        model_requests = [u for u in page.requests if "/models/" in u]
        assert_no_problems(page)
    assert result["init"]["backends"] == ["webgpu", "wasm"], result["init"]
    assert result["load"].get("backend") in ("webgpu", "wasm"), result["load"]
    assert model_requests == [url + "models/test-edges.onnx"], model_requests
    stats = result["stats"]
    # the warm-up session, then one per backend: the slower released
    assert stats["created"] - stats["released"] == 1 and stats["models"] == ["m"], stats
    assert stats["heldBytes"] == 0, stats
