"""The app's API, driven through a real server with gradio_client: every endpoint, every model
the registry can load, bad inputs, and the live canvas's server function.

The server is this process's app launched on a free local port, serving a registry the test
writes (tiny models saved with save_generator, a missing folder, an uncached Hub repo and URL).
The real models.toml's bundled checkpoints are tested too, once they exist in checkpoints/.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from bench.serving import Server, free_port, serve
from pix2pix.app.registry import load_registry, registry_path
from tests.app_fixtures import PALETTE, label_image, sketch_image, write_test_registry

ROOT = Path(__file__).resolve().parents[1]
TEST_READY = ["test-edges", "test-photo", "test-labels-a", "test-labels-b", "test-labels-c"]
# The registry the app serves: models.toml, or $PIX2PIX_MODELS when set.
REGISTRY = registry_path()
BUNDLED = [e for e in load_registry(REGISTRY).models if e.is_local]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    registry = write_test_registry(tmp_path_factory.mktemp("app"))
    with serve(registry) as running:
        assert running.app.store.wait(60), "background loading did not finish"
        yield running


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("inputs")
    paths = {
        "edges": folder / "sketch.png",
        "labels": folder / "labels.png",
        "photo": folder / "photo.jpg",
        "corrupt": folder / "corrupt.png",
        "empty": folder / "empty.png",
        "text": folder / "notes.txt",
    }
    sketch_image(200, seed=3).save(paths["edges"])
    label_image(128).resize((256, 192), Image.Resampling.NEAREST).save(paths["labels"])
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)).save(paths["photo"])
    paths["corrupt"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("hello")
    return {k: str(v) for k, v in paths.items()}


def _image(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def _expected_size(source: Image.Image, size: int) -> tuple[int, int]:
    w, h = source.size
    k = size / max(w, h)
    return max(1, round(w * k)), max(1, round(h * k))


# --------------------------------------------------------------------------------------------
# The API's shape
# --------------------------------------------------------------------------------------------


def test_named_endpoints(client: Client) -> None:
    info = client.view_api(return_format="dict", print_info=False)
    named = set(info["named_endpoints"])
    assert {"/translate", "/compare", "/edges", "/models"} <= named
    params = {p["parameter_name"] for p in info["named_endpoints"]["/translate"]["parameters"]}
    assert params == {"image", "model", "seed"}
    assert not info["unnamed_endpoints"]


def test_models_endpoint_lists_status_and_reasons(client: Client) -> None:
    rows = {row["id"]: row for row in client.predict(api_name="/models")}
    assert [i for i, r in rows.items() if r["status"] == "ready"] == TEST_READY
    assert "models/not-there not found" in rows["missing-folder"]["reason"]
    assert "not in the local Hugging Face cache" in rows["uncached-hub"]["reason"]
    assert "not in the cache" in rows["uncached-url"]["reason"]
    assert rows["test-labels-b"]["group"] == "test group"
    assert rows["test-labels-b"]["variant"] == "70x70 variant"


# --------------------------------------------------------------------------------------------
# Every model
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", TEST_READY)
def test_translate_every_model(client: Client, server: Server, files: dict, model: str) -> None:
    served = server.app.store.get(model)
    source = files[served.kind]
    out = client.predict(handle_file(source), model, -1, api_name="/translate")
    result = _image(out)
    assert result.size == _expected_size(_image(source), served.size)
    again = _image(client.predict(handle_file(source), model, None, api_name="/translate"))
    assert np.array_equal(np.asarray(again), np.asarray(result)), "fixed seed must be repeatable"
    seeded = _image(client.predict(handle_file(source), model, 5, api_name="/translate"))
    seeded2 = _image(client.predict(handle_file(source), model, 5, api_name="/translate"))
    assert np.array_equal(np.asarray(seeded), np.asarray(seeded2))
    assert not np.array_equal(np.asarray(seeded), np.asarray(result)), "seed must add noise"


@pytest.fixture(scope="module")
def bundled_server() -> Iterator[Server]:
    if not any(Path(e.source).exists() for e in BUNDLED):
        pytest.skip("no bundled checkpoint in checkpoints/ yet")
    with serve(REGISTRY, remote="skip") as running:
        yield running


@pytest.mark.parametrize("entry", BUNDLED, ids=[e.id for e in BUNDLED])
def test_translate_bundled_models(request: pytest.FixtureRequest, entry, files: dict) -> None:
    if not Path(entry.source).exists():
        pytest.skip(f"bundled checkpoint {entry.source} not added yet")
    server = request.getfixturevalue("bundled_server")
    served = server.app.store.get(entry.id)
    client = Client(server.url, verbose=False)
    if served.kind == "labels":
        palette = served.task.palette
        source = Path(files["labels"]).with_name(f"{entry.id}.png")
        array = np.asarray(label_image(served.size))
        for i, color in enumerate(PALETTE):  # repaint the test label map in this palette
            array = np.where(array == color, palette[i % len(palette)], array)
        Image.fromarray(array.astype(np.uint8)).save(source)
    else:
        source = files["edges" if served.kind == "edges" else "photo"]
    result = _image(client.predict(handle_file(str(source)), entry.id, -1, api_name="/translate"))
    assert result.size == _expected_size(_image(str(source)), served.size)
    assert np.asarray(result).std() > 1, "a trained model should not return a flat image"


# --------------------------------------------------------------------------------------------
# Compare and edges
# --------------------------------------------------------------------------------------------


def test_compare_returns_every_variant_with_captions(client: Client, files: dict) -> None:
    gallery = client.predict(handle_file(files["labels"]), "test group", api_name="/compare")
    captions = [item["caption"] for item in gallery]
    assert captions == [
        "1x1 variant · 1×1 receptive field",
        "70x70 variant · 70×70 receptive field",
        "L1 variant · no patch discriminator",
    ]
    images = [_image(item["image"]) for item in gallery]
    assert all(img.size == (128, 96) for img in images)
    assert not np.array_equal(np.asarray(images[0]), np.asarray(images[1]))


def test_edges_endpoint(client: Client, files: dict) -> None:
    edges = _image(client.predict(handle_file(files["photo"]), "test-edges", api_name="/edges"))
    assert edges.size == (128, 72)  # long side = the model's training size
    values = set(np.unique(np.asarray(edges)))
    assert values <= {0, 255}
    xdog = client.predict(
        handle_file(files["photo"]), "test-edges", "xdog", True, 0, 0, api_name="/edges"
    )
    assert _image(xdog).size == (128, 72)
    manual = client.predict(
        handle_file(files["edges"]), "test-edges", "canny", False, 20, 60, api_name="/edges"
    )
    assert (np.asarray(_image(manual)) == 0).any(), "the strokes must be found"


# --------------------------------------------------------------------------------------------
# Bad inputs get clear errors, and the server keeps working
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("corrupt", "is truncated or corrupt|not an image file this can read"),
        ("empty", "is empty"),
        ("text", "not an image file this can read"),
    ],
)
def test_bad_uploads_are_named(client: Client, files: dict, kind: str, message: str) -> None:
    for api, args in (
        ("/translate", ("test-edges", -1)),
        ("/compare", ("test group",)),
        ("/edges", ("test-edges",)),
    ):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(files[kind]), *args, api_name=api)


def test_bad_names_list_the_valid_ones(client: Client, files: dict) -> None:
    sketch = handle_file(files["edges"])
    with pytest.raises(AppError, match="unknown model 'nope'; valid models: test-edges, "):
        client.predict(sketch, "nope", -1, api_name="/translate")
    with pytest.raises(AppError, match="unknown group 'nope'; valid groups: test group"):
        client.predict(sketch, "nope", api_name="/compare")
    with pytest.raises(AppError, match="unknown model 'nope'; valid models: test-edges, "):
        client.predict(sketch, "nope", api_name="/edges")
    with pytest.raises(AppError, match="unknown edge method 'sobel'; valid: canny, xdog"):
        client.predict(sketch, "test-edges", "sobel", api_name="/edges")
    with pytest.raises(AppError, match=r"unavailable \(models/not-there not found"):
        client.predict(sketch, "missing-folder", -1, api_name="/translate")
    with pytest.raises(AppError, match=r"seed must be -1 \(fixed\) or an integer"):
        client.predict(sketch, "test-edges", -7, api_name="/translate")
    with pytest.raises(AppError, match="seed must be"):
        client.predict(sketch, "test-edges", 2.5, api_name="/translate")
    with pytest.raises(AppError, match="no input image given"):
        client.predict(None, "test-edges", -1, api_name="/translate")
    # ... and the server still answers.
    assert _image(client.predict(sketch, "test-edges", -1, api_name="/translate")).size


def test_handlers_check_names_themselves(server: Server, files: dict) -> None:
    import gradio as gr

    with pytest.raises(gr.Error, match="unknown model 'nope'; valid models: test-edges"):
        server.app.translate(files["edges"], "nope", -1)
    with pytest.raises(gr.Error, match="unknown group 'nope'; valid groups: test group"):
        server.app.compare(files["labels"], "nope")


# --------------------------------------------------------------------------------------------
# The live canvas's server function (what the browser calls while you draw)
# --------------------------------------------------------------------------------------------


def _canvas_call(server: Server, client: Client, payload: object) -> dict:
    canvas = next(
        c for c in client.config["components"] if c["props"].get("elem_id") == "p2p-canvas"
    )
    response = httpx.post(
        server.url + "gradio_api/component_server",
        json={
            "data": payload,
            "component_id": canvas["id"],
            "session_hash": "test-session",
            "fn_name": "translate_drawing",
        },
        timeout=60,
    )
    response.raise_for_status()
    return response.json()


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_canvas_server_function(server: Server, client: Client) -> None:
    drawing = _data_url(sketch_image(128))
    answer = _canvas_call(server, client, {"image": drawing, "model": "test-edges", "seed": None})
    assert answer["label"] == "Test edges" and answer["ms"] > 0
    assert answer["image"].startswith("data:image/")
    data = answer["image"].split(",", 1)[1]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (128, 128)

    # The canvas path and /translate agree pixel for pixel (the download asks for a PNG).
    png = _canvas_call(
        server, client, {"image": drawing, "model": "test-edges", "seed": 4, "format": "png"}
    )
    canvas_result = Image.open(io.BytesIO(base64.b64decode(png["image"].split(",", 1)[1])))
    sketch = Path(server.app.registry.path).parent / "canvas-sketch.png"
    sketch_image(128).save(sketch)
    api_result = _image(
        client.predict(handle_file(str(sketch)), "test-edges", 4, api_name="/translate")
    )
    assert np.array_equal(np.asarray(canvas_result.convert("RGB")), np.asarray(api_result))

    labels = _data_url(label_image(128))
    answer = _canvas_call(server, client, {"image": labels, "model": "test-labels-c", "seed": 3})
    assert "image" in answer

    bad = _canvas_call(
        server, client, {"image": "data:image/png;base64,AAAA", "model": "test-edges"}
    )
    assert "drawing is not an image" in bad["error"]
    unknown = _canvas_call(server, client, {"image": drawing, "model": "nope", "seed": None})
    assert "valid models: test-edges" in unknown["error"]
    seed = _canvas_call(server, client, {"image": drawing, "model": "test-edges", "seed": -3})
    assert "seed must be" in seed["error"]
    assert "expected {image, model, seed}" in _canvas_call(server, client, "x")["error"]


# --------------------------------------------------------------------------------------------
# Start-up
# --------------------------------------------------------------------------------------------


def test_startup_serves_every_local_model_at_once(server: Server) -> None:
    # How long start-up takes is the benchmark's to report (bench.benchmark --app: ready to
    # serve), not a timed test's; here: once it serves, every local model is ready.
    print(f"\nin-process start-up with the test registry: {server.startup_s:.1f} s")
    rows = server.app.models_info()
    assert [r["id"] for r in rows if r["status"] == "ready"] == TEST_READY, rows


def test_app_py_starts_offline_and_serves(tmp_path: Path) -> None:
    """`python app.py` with the real models.toml, offline: it serves, every bundled model ready,
    unreachable models listed as unavailable (start-up time: bench.benchmark --app)."""
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": str(ROOT),
    }
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                with urllib.request.urlopen(url + "gradio_api/info", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.perf_counter() - start > 600:  # a hang, not a speed target
                pytest.fail("app.py did not answer within 600 s")
            time.sleep(0.25)
        seconds = time.perf_counter() - start
        print(f"\napp.py ready to serve after {seconds:.1f} s")
        rows = Client(url, verbose=False).predict(api_name="/models")
        missing = [r for r in rows if r["status"] == "unavailable"]
        assert len(rows) == len(load_registry(REGISTRY).models)
        assert all(r["reason"] for r in missing)
        bundled = [r for r in rows if r["id"] in {e.id for e in BUNDLED}]
        assert len(bundled) == len(BUNDLED) and all(r["status"] == "ready" for r in bundled)
    finally:
        process.terminate()
        process.wait(timeout=30)
