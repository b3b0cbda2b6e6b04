"""The static site (``python -m pix2pix.site``): its files, and the page served by a plain local
HTTP server on 127.0.0.1, with and without the cross-origin isolation headers, in Debian's chromium:
it draws and translates in the browser, asks nothing of any other origin, and logs no error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.chromium import (
    CANVAS,
    assert_no_problems,
    browser_page,
    canvas_stats,
    draw_stroke,
    open_canvas,
    output_state,
    png_pixels,
    stroke_points,
    wait_for_choice,
    wait_for_output,
    wait_settled,
)
from bench.serving import serve_folder
from pix2pix.export import read_metadata
from pix2pix.inference import Translator
from pix2pix.site import main
from tests.app_fixtures import PALETTE, tiny_model, write_test_registry

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site-src")
    registry = write_test_registry(folder)
    out = tmp_path_factory.mktemp("site") / "out"
    status = main(
        [str(out), "--registry", str(registry), "--model", "test-edges", "--model", "test-labels-a"]
    )
    assert status == 0
    return out


def test_site_files(site: Path) -> None:
    for name in ("index.html", "README.md", "LICENSES.md", "_headers", "static/canvas.js"):
        assert (site / name).is_file(), name
    for name in ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"):
        assert (site / "ort" / name).is_file(), name
    readme = (site / "README.md").read_text()
    front = readme.split("---")[1]
    assert "\nsdk: static\n" in front and "app_file: index.html" in front
    assert "cross-origin-embedder-policy: require-corp" in front
    assert "cross-origin-resource-policy: cross-origin" in (site / "_headers").read_text()
    licences = (site / "LICENSES.md").read_text()
    assert "onnxruntime-web 1.30.0" in licences and "Microsoft" in licences
    assert "CC0" in licences, "the label model's licence (from its config) must be listed"
    assert "not stated" in licences, "a model without a licence says so"
    # Example inputs are copied (test-edges has two), so their credits come along.
    assert "## The example inputs" in licences and "OpenMoji (openmoji.org)" in licences
    for model in ("test-edges", "test-labels-a"):
        meta = read_metadata(site / "models" / f"{model}.onnx")
        assert meta["weights"] == "fp16", meta
    assert len(list((site / "examples" / "test-edges").iterdir())) == 2
    html = (site / "index.html").read_text()
    assert 'src="http' not in html and 'href="http' not in html.replace('href="https://arxiv', "")
    assert '<script src="static/canvas.js"></script>' in html
    # canvas.js takes its runtime from engine.js, loaded first
    assert html.index('src="static/engine.js"') < html.index('src="static/canvas.js"')
    assert (site / "static" / "engine.js").is_file()


def test_static_space_front_matter_sets_hugging_faces_isolation_headers(tmp_path: Path) -> None:
    """The static Space's `custom_headers` are the set Hugging Face's own examples use: COOP and
    COEP, and CORP `cross-origin`, which lets the Space's isolated page on huggingface.co embed
    the site's frame."""
    from huggingface_hub import metadata_load

    from pix2pix.site import _readme

    (tmp_path / "README.md").write_text(_readme([], "A site", True), encoding="utf-8")
    front = metadata_load(tmp_path / "README.md")
    assert front["sdk"] == "static" and front["app_file"] == "index.html"
    assert front["custom_headers"] == {
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-resource-policy": "cross-origin",
    }


def test_readme_site_command_with_a_bundled_model(tmp_path: Path) -> None:
    """The README's `python -m pix2pix.site` line, as written, on the bundled sketch2product."""
    text = (ROOT / "README.md").read_text()
    line = next(x for x in text.splitlines() if x.strip().startswith("python -m pix2pix.site"))
    args = line.split("#")[0].split()[3:]
    assert args[0] == "out/site"
    args[0] = str(tmp_path / "site")
    assert main(args) == 0
    meta = read_metadata(tmp_path / "site" / "models" / "sketch2product.onnx")
    assert meta["weights"] == "fp32" and meta["input_kind"] == "edges"
    html = (tmp_path / "site" / "index.html").read_text()
    assert '"model": "sketch2product"' in html


def test_refuses_to_write_over_a_site_and_reports_bad_sources(site: Path, capsys) -> None:
    assert main([str(site), "--model", str(site / "nothing-here")]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_model_without_input_kind_is_refused(tmp_path: Path, capsys) -> None:
    from pix2pix.hub import save_generator

    model = tiny_model("edges", seed=3)
    model.task.input_kind = None
    save_generator(model, tmp_path / "plain")
    assert main([str(tmp_path / "out"), "--model", str(tmp_path / "plain")]) == 2
    assert "no input kind" in capsys.readouterr().err


@pytest.mark.parametrize("isolation", [True, False], ids=["coop-coep", "plain"])
def test_site_draws_and_translates_in_the_browser(site: Path, isolation: bool) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with serve_folder(site, isolation=isolation) as url, browser_page(timeout_ms=120_000) as page:
        open_canvas(page, url)
        assert page.evaluate("crossOriginIsolated") is isolation
        wait_settled(page)
        assert not output_state(page)["shown"], "nothing drawn: the placeholder shows"
        assert "server" not in output_state(page)["why"], "a static site has no server"
        choice = wait_for_choice(page, "test-edges")
        state = output_state(page)
        threads = f"{choice['threads']} thread" + ("s" if choice["threads"] > 1 else "")
        assert state["label"].startswith(
            f"Ready · draw to translate in your browser · WASM · {threads}"
        ), state
        assert (
            state["why"] == "Why here: this page has no server: the model runs in your browser."
        ), state

        _, version = draw_stroke(page, stroke_points(1, 12), step_ms=20)
        wait_for_output(page, version)
        state = output_state(page)
        assert state["where"] == "browser" and state["label"].startswith("in your browser · WASM")
        choice = canvas_stats(page)["choice"]["test-edges"]
        assert choice["where"] == "browser" and choice["threads"] >= 1
        if not isolation:
            assert choice["threads"] == 1, "without isolation WASM runs on one thread"

        # The browser's result against PyTorch on the same drawing (fp16 weights in the site).
        drawing = png_pixels(page.locator(f"{CANVAS} .p2p-dl-drawing").get_attribute("href"))
        reference = Translator(tiny_model("edges", seed=1), device="cpu", precision="fp32")
        expected = np.asarray(reference(Image.fromarray(drawing.astype(np.uint8))), np.int16)
        diff = np.abs(png_pixels(state["png"]) - expected)
        assert diff.mean() < 1.0 and diff.max() <= 8, (diff.mean(), diff.max())

        # The label model, from the picker: exact palette colours, translated in the browser.
        page.select_option("#p2p-model", "test-labels-a")
        page.wait_for_function(
            "(sel) => document.querySelector(sel + ' .p2p').dataset.model === 'test-labels-a'",
            arg=CANVAS,
        )
        assert page.locator(f"{CANVAS} .p2p-swatch").count() == len(PALETTE)
        _, version = draw_stroke(page, stroke_points(2, 12), step_ms=20)
        wait_for_output(page, version)
        assert output_state(page)["where"] == "browser"

        # An example from the thumbnails loads into the canvas and is translated.
        page.select_option("#p2p-model", "test-edges")
        page.locator(".p2p-example").first.click()
        page.wait_for_function(
            "(sel) => { const r = document.querySelector(sel + ' .p2p');"
            " return Number(r.dataset.shown) === Number(r.dataset.version); }",
            arg=CANVAS,
        )
        page.screenshot(path=ARTIFACTS / f"site-{'isolated' if isolation else 'plain'}.png")
        page.wait_for_timeout(300)
        foreign = [r for r in page.requests if not r.startswith(url) and not r.startswith("data:")]
        foreign = [r for r in foreign if not r.startswith("blob:")]
        assert foreign == [], f"requests beyond the site's origin: {foreign}"
        assert_no_problems(page)


def test_a_registry_models_folder_gets_its_registry_settings(tmp_path: Path) -> None:
    # Built from the folder a registry entry points at, the site uses that entry (name, pen,
    # examples) as it would for the id: a line-art model keeps its wide pen.
    registry = write_test_registry(tmp_path / "src")
    out = tmp_path / "out"
    folder = tmp_path / "src" / "models" / "edges"
    assert main([str(out), "--registry", str(registry), "--model", str(folder)]) == 0
    html = (out / "index.html").read_text()
    assert '"model": "test-edges"' in html and '"name": "Test edges"' in html
    assert len(list((out / "examples" / "test-edges").iterdir())) == 2
    from pix2pix.site import _registry_entry

    assert _registry_entry(str(ROOT / "checkpoints" / "lineart2color"), None).pen == 7
