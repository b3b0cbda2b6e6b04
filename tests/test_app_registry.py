"""The app's pieces without a server: the model registry, image decoding, seeds, the store."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pix2pix.app.imaging import (
    ImageInputError,
    OutputFiles,
    fit_long_side,
    open_image,
    snap_to_palette,
    to_data_url,
)
from pix2pix.app.registry import DEFAULT_REGISTRY, RegistryError, load_registry
from pix2pix.app.service import LOADING, READY, UNAVAILABLE, ModelError, ModelStore
from pix2pix.app.ui import parse_seed
from tests.app_fixtures import PALETTE, label_image, sketch_image, write_test_registry

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_the_real_registry_is_valid_and_lists_bundled_models_first() -> None:
    registry = load_registry(DEFAULT_REGISTRY)
    ids = registry.ids
    assert ids[:11] == [
        "lineart2color",  # the app's default: first
        "sketch2product",
        "facades-patch1",
        "facades-patch16",
        "facades-patch70",
        "facades-patch286",
        "facades-l1",
        "facades-cyclegan",  # the CycleGAN pair, each direction beside pix2pix
        "facades128-pix2pix",
        "facades-cyclegan-back",
        "facades128-pix2pix-back",
    ]
    assert registry.get("lineart2color").pen == 7  # the training line art's width at 256 px
    assert all(e.is_local for e in registry.models[:11])
    assert not any(e.is_local for e in registry.models[11:])
    cycle = [registry.get(i) for i in ("facades-cyclegan", "facades-cyclegan-back")]
    assert cycle[0].source == cycle[1].source  # one folder, both generators
    assert [e.overrides["direction"] for e in cycle] == ["AtoB", "BtoA"]
    for group in ("labels → facade", "facade → labels"):
        members = registry.groups[f"CycleGAN vs pix2pix: {group} (128 px)"]
        assert [e.variant for e in members] == ["CycleGAN (unpaired)", "pix2pix (paired)"]
    study = registry.groups["facades patch-size study"]
    assert [e.variant for e in study] == [
        "1×1 PixelGAN",
        "16×16 PatchGAN",
        "70×70 PatchGAN",
        "286×286 ImageGAN",
        "L1 only",
    ]
    hub = {e.source for e in registry.models if e.source_kind == "hub"}
    assert hub == {"huggan/pix2pix-edge2shoes", "huggan/pix2pix-maps", "huggan/pix2pix-night2day"}
    urls = {e.source.rsplit("/", 1)[1] for e in registry.models if e.source_kind == "url"}
    names = {"edges2shoes", "facades_label2photo", "day2night", "map2sat", "sat2map"}
    names |= {"horse2zebra", "zebra2horse", "style_monet"}  # the reference's CycleGAN models
    assert urls == {f"{n}.pth" for n in names}
    facades = registry.get("ref-facades").overrides
    assert len(facades["palette"]) == len(facades["class_names"]) == 12
    assert registry.get("sketch2product").source == str(ROOT / "checkpoints" / "sketch2product")


def test_registry_env_var_points_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, '[[model]]\nid = "a"\nname = "A"\npath = "m"\n')
    monkeypatch.setenv("PIX2PIX_MODELS", str(path))
    registry = load_registry()
    assert registry.path == path and registry.ids == ["a"]
    assert registry.get("a").source == str(tmp_path / "m")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[model]\n", "not a readable TOML"),
        ("[other]\n", "unknown top-level keys"),
        ("", "no [[model]] entries"),
        ('[[model]]\nid = "a"\npath = "m"\n', "'name' is required"),
        ('[[model]]\nid = "A b"\nname = "x"\npath = "m"\n', "id must match"),
        ('[[model]]\nid = "a"\nname = "A"\n', "exactly one of 'path', 'hub' or 'url'"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\nhub = "o/n"\n', "exactly one of"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\ncolour = 1\n', "unknown keys ['colour']"),
        ('[[model]]\nid = "a"\nname = "A"\nurl = "ftp://x/y.pth"\n', "url must start with"),
        ('[[model]]\nid = "a"\nname = "A"\nhub = "o/n@v1"\n', "put the revision in"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\nrevision = "v"\n', "only applies to"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\ninput = "sketch"\n', "input must be one"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\npalette = "nope"\n', "unknown palette"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\npalette = [[0, 0]]\n', "colours must be"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\nvariant = "v"\n', "'variant' needs a"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\ngroup = "g"\n', "needs a 'variant'"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\ntrain_size = "x"\n', "wrong type"),
        ('[[model]]\nid = "a"\nname = "A"\npath = "m"\nhints = "yes"\n', "wrong type"),
        (
            '[[model]]\nid = "a"\nname = "A"\npath = "m"\n[[model]]\nid = "a"\nname = "B"\n'
            'path = "n"\n',
            "used twice",
        ),
        (
            '[[model]]\nid = "a"\nname = "A"\npath = "m"\npalette = [[0, 0, 0], [1, 1, 1]]\n'
            'class_names = ["x"]\n',
            "differ in length",
        ),
    ],
)
def test_registry_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_registry(_write(tmp_path, text))


def test_missing_registry_says_how_to_point_elsewhere(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="PIX2PIX_MODELS"):
        load_registry(tmp_path / "nope.toml")


def test_palette_tables_and_examples(tmp_path: Path) -> None:
    (tmp_path / "ex").mkdir()
    sketch_image(32).save(tmp_path / "ex" / "b.png")
    sketch_image(32).save(tmp_path / "ex" / "a.png")
    path = _write(
        tmp_path,
        '[palette.p]\ncolors = [[0, 0, 0], [255, 0, 0]]\nclass_names = ["bg", "red"]\n'
        '[[model]]\nid = "a"\nname = "A"\npath = "m"\ninput = "labels"\npalette = "p"\n'
        'examples = ["ex/*.png", "missing/*.png"]\n',
    )
    entry = load_registry(path).get("a")
    assert entry.overrides["palette"] == [[0, 0, 0], [255, 0, 0]]
    assert entry.overrides["class_names"] == ["bg", "red"]
    assert [p.name for p in entry.examples] == ["a.png", "b.png"]


def test_hints_override_the_models_task(tmp_path: Path) -> None:
    # A checkpoint trained with colour hints but converted without the flag gets them here.
    path = _write(tmp_path, '[[model]]\nid = "a"\nname = "A"\npath = "m"\nhints = true\n')
    assert load_registry(path).get("a").overrides["hints"] is True


# --------------------------------------------------------------------------------------------
# Images and seeds
# --------------------------------------------------------------------------------------------


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_open_image_accepts_paths_data_urls_and_bytes(tmp_path: Path) -> None:
    image = Image.new("RGBA", (5, 4), (255, 0, 0, 0))  # fully transparent red -> white
    data = _png_bytes(image)
    (tmp_path / "x.png").write_bytes(data)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    for source in (tmp_path / "x.png", str(tmp_path / "x.png"), url, data):
        decoded = open_image(source)
        assert decoded.mode == "RGB" and decoded.size == (5, 4)
        assert decoded.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"this is not an image", "not an image file this can read"),
        (_png_bytes(Image.new("RGB", (64, 64)))[:60], "truncated or corrupt"),
    ],
)
def test_open_image_errors_say_what_is_wrong(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(ImageInputError, match=message):
        open_image(path, what="input image")


def test_open_image_refuses_nothing_huge_and_bad_data_urls(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="no image given"):
        open_image(None)
    with pytest.raises(ImageInputError, match="not a base64 data:image URL"):
        open_image("data:text/plain,hello")
    with pytest.raises(ImageInputError, match="invalid base64"):
        open_image("data:image/png;base64,@@@")
    # Larger than the pixel limit: downscaled, not refused (bombs: tests/test_image_decoding.py).
    big = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(big)
    assert open_image(big).size == (7302, 5477)


def test_fit_long_side_and_palette_snapping() -> None:
    wide = Image.new("RGB", (512, 128))
    assert fit_long_side(wide, 256).size == (256, 64)
    assert fit_long_side(Image.new("RGB", (32, 64)), 128).size == (64, 128)
    labels = label_image(64)
    noisy = np.asarray(labels).astype(int) + np.random.default_rng(0).integers(-30, 30, (64, 64, 3))
    snapped = snap_to_palette(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)), PALETTE)
    assert np.array_equal(np.asarray(snapped), np.asarray(labels))
    small = fit_long_side(labels, 32, nearest=True)
    assert {tuple(c) for c in np.asarray(small).reshape(-1, 3)} <= {tuple(c) for c in PALETTE}


def test_data_urls_round_trip() -> None:
    image = sketch_image(40)
    assert np.array_equal(np.asarray(open_image(to_data_url(image, "png"))), np.asarray(image))
    assert to_data_url(image, "jpeg").startswith("data:image/jpeg;base64,")
    with pytest.raises(ValueError, match="unknown data URL format"):
        to_data_url(image, "gif")


@pytest.mark.parametrize(
    ("value", "seed"), [(None, None), ("", None), (-1, None), (-1.0, None), (0, 0), (7.0, 7)]
)
def test_parse_seed(value: object, seed: int | None) -> None:
    assert parse_seed(value) == seed


@pytest.mark.parametrize("value", [-2, 1.5, "x", float("nan"), 2**64])
def test_parse_seed_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="seed must be"):
        parse_seed(value)


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


def test_store_loads_what_it_can_and_says_why_not(tmp_path: Path) -> None:
    registry = load_registry(write_test_registry(tmp_path))
    store = ModelStore(registry, device="cpu")
    store.load(remote="skip")
    ready = ["test-edges", "test-photo", "test-labels-a", "test-labels-b", "test-labels-c"]
    assert store.ready_ids() == ready
    assert store.status("missing-folder").state == UNAVAILABLE
    assert "models/not-there not found" in store.status("missing-folder").reason
    assert store.status("uncached-hub").reason == "remote models are switched off"
    with pytest.raises(ModelError, match="unknown model 'nope'; valid models: test-edges, "):
        store.get("nope")
    with pytest.raises(ModelError, match=r"unavailable .*not found"):
        store.get("missing-folder")
    with pytest.raises(ModelError, match="unknown group 'nope'; valid groups: test group"):
        store.group("nope")

    served = store.get("test-labels-a")
    assert served.kind == "labels" and served.size == 128
    out = store.translate("test-labels-a", label_image(300).resize((300, 150)))
    assert out.size == (128, 64)  # long side scaled to the training size, aspect kept
    results, skipped = store.compare("test group", label_image(128))
    assert [s.entry.variant for s, _, _ in results] == [
        "1x1 variant",
        "70x70 variant",
        "L1 variant",
    ]
    assert skipped == []


def test_store_background_loading_reports_progress(tmp_path: Path) -> None:
    registry = load_registry(write_test_registry(tmp_path))
    store = ModelStore(registry, device="cpu")
    assert store.status("uncached-hub").state == LOADING
    store.load(remote="background")
    assert store.status("test-edges").state == READY  # local models are ready before serving
    assert store.wait(60)
    assert "not in the local Hugging Face cache" in store.status("uncached-hub").reason
    assert "HF_HUB_OFFLINE" in store.status("uncached-url").reason


def test_unreachable_remote_models_say_so_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline (HF_HUB_OFFLINE=1, set for the whole suite), a Hub or URL model that is not cached
    fails to load in milliseconds: its status says so at once, not after the bundled models'
    backend measurement (held here until the checks are done, then skipped)."""
    import threading

    gate = threading.Event()
    monkeypatch.setattr(ModelStore, "_measure_one", lambda self, model_id: gate.wait(60))
    store = ModelStore(load_registry(write_test_registry(tmp_path)), device="cpu")
    assert store.defers_measuring
    store.load(remote="background")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(
            store.status(m).state == LOADING for m in ("uncached-hub", "uncached-url")
        ):
            time.sleep(0.02)
        hub, url = store.status("uncached-hub"), store.status("uncached-url")
        assert hub.state == UNAVAILABLE, hub  # before the fix: still "loading" (measurement)
        assert "not in the local Hugging Face cache" in hub.reason
        assert url.state == UNAVAILABLE and "HF_HUB_OFFLINE" in url.reason, url
        assert not store.wait(0.1)  # the measurement is still held
    finally:
        gate.set()
    assert store.wait(60)


def test_output_files_are_written_once_and_pruned(tmp_path: Path) -> None:
    files = OutputFiles(tmp_path, max_age=60)
    first = files.save(sketch_image(32, seed=1))
    mtime = Path(first).stat().st_mtime_ns
    assert files.save(sketch_image(32, seed=1)) == first  # same image, same file
    assert Path(first).stat().st_mtime_ns >= mtime
    other = files.save(sketch_image(32, seed=2))
    assert other != first and not list(tmp_path.glob("*.part"))
    assert np.array_equal(np.asarray(Image.open(first).convert("RGB")), sketch_image(32, seed=1))
    old = time.time() - 120
    os.utime(first, (old, old))
    files.prune()
    assert not Path(first).exists() and Path(other).exists()


def test_models_serve_at_once_and_take_their_measured_backend_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On the CPU a model serves on PyTorch's rule-of-thumb path as soon as it is loaded; its
    # fastest path is measured in the background on a copy and then swapped in.
    import threading

    gate, measure = threading.Event(), ModelStore._measure_one

    def held(self: ModelStore, model_id: str) -> None:
        gate.wait(60)  # the background measurement waits until the checks below are done
        measure(self, model_id)

    monkeypatch.setattr(ModelStore, "_measure_one", held)
    registry = load_registry(write_test_registry(tmp_path))
    store = ModelStore(registry, device="cpu")
    assert store.defers_measuring
    store.load(remote="skip")
    first = store.get("test-edges").translator
    assert first.choice is None and first.backend in ("onednn", "eager")  # not measured yet
    drawing = sketch_image(128)
    before = store.translate("test-edges", drawing)  # served before any measuring
    assert not store.wait(0.1)  # the measurement is still to come
    gate.set()
    assert store.wait(300)
    for model_id in store.ready_ids():
        translator = store.get(model_id).translator
        assert translator.choice is not None, model_id  # measured (or read from the cache)
        assert translator.backend == translator.choice.name
    after = store.translate("test-edges", drawing)
    diff = np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16))
    assert diff.max() <= 1  # the same images on either path
    assert not ModelStore(registry, device="cpu", precision="fp16").defers_measuring
