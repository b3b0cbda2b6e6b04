"""One way to read an image file, everywhere (pix2pix/imageio.py).

The same odd files (EXIF-rotated JPEG, 16-bit PNGs, transparency in LA / P / RGB+tRNS, CMYK,
32-bit integer and float TIFFs, an animated GIF) go through every entry point: the library
``Translator`` (a path and an opened PIL image), the translate CLI and its ``--edges``, the app's
upload API (a real Gradio server), the training and evaluation loaders, ``pix2pix.edges`` and the
classifier's reader. Each must see exactly what ``pix2pix.imageio.read_image`` decodes, and that
decoding is checked against what the file holds.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from bench.serving import Server, serve
from pix2pix import edges, imageio, load_generator, translate
from pix2pix.app.imaging import open_image
from pix2pix.hub import save_generator
from pix2pix.inference import Translator
from tests.app_fixtures import tiny_model, write_test_registry
from train.classifier import read_image as classifier_read
from train.data import PairedDataset
from train.evaluate import evaluate

UPRIGHT = (80, 120)  # (width, height) of every test picture as it should be seen


def _picture() -> np.ndarray:
    """An (120, 80, 3) uint8 picture with no symmetry: a turn or a flip changes it."""
    y, x = np.mgrid[0:120, 0:80]
    rgb = np.stack([x * 3, y * 2, (x + y) % 256], axis=-1).astype(np.uint8)
    rgb[10:40, 10:30] = (250, 20, 20)  # a red block near the top left
    return rgb


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _write_files(folder: Path) -> dict[str, tuple[Path, np.ndarray, int]]:
    """name -> (file, the 8-bit RGB it holds as seen upright, tolerance for lossy formats)."""
    folder.mkdir(parents=True, exist_ok=True)
    rgb = _picture()
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    files: dict[str, tuple[Path, np.ndarray, int]] = {}

    # A phone photo stored sideways: the sensor's 120x80 frame, EXIF orientation 6 ("rotate
    # 90 degrees clockwise to view").
    stored = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    assert stored.size == (120, 80)
    stored.save(folder / "phone.jpg", quality=95, exif=_exif(6))
    files["phone.jpg"] = (folder / "phone.jpg", rgb, 12)
    # Orientation 3 (upside down) in a PNG's eXIf chunk.
    Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_180).save(
        folder / "turned.png", exif=_exif(3)
    )
    files["turned.png"] = (folder / "turned.png", rgb, 0)

    # 16 bits: a dark one (every value below 256: still 16-bit, so nearly black) and a full one.
    dark = (gray.astype(np.uint16) // 2).astype(np.uint16)
    Image.fromarray(dark).save(folder / "dark16.png")
    files["dark16.png"] = (folder / "dark16.png", _rgb_of(np.round(dark / 257)), 0)
    full = gray.astype(np.uint16) * 257 + 100
    Image.fromarray(full).save(folder / "full16.png")
    files["full16.png"] = (folder / "full16.png", _rgb_of(np.round(full / 65535 * 255)), 0)

    # Transparency: the left half transparent, which must come out white.
    alpha = np.full(gray.shape, 255, np.uint8)
    alpha[:, :40] = 0
    white_left = rgb.copy()
    white_left[:, :40] = 255
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(folder / "gray_alpha.png")
    la_expected = _rgb_of(gray)
    la_expected[:, :40] = 255
    files["gray_alpha.png"] = (folder / "gray_alpha.png", la_expected, 0)
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(folder / "rgba.webp", lossless=True)
    files["rgba.webp"] = (folder / "rgba.webp", white_left, 0)
    palette = Image.fromarray(rgb).quantize(64)
    indices = np.asarray(palette).copy()
    indices[:, :40] = 63
    keyed = Image.fromarray(indices, "P")
    keyed.putpalette(palette.getpalette())
    keyed.save(folder / "palette.png", transparency=63)
    keyed_rgb = np.asarray(keyed.convert("RGB")).copy()
    keyed_rgb[:, :40] = 255
    keyed_rgb[indices == 63] = 255
    files["palette.png"] = (folder / "palette.png", keyed_rgb, 0)
    # An RGB PNG whose pure black is the transparent colour (tRNS).
    black_keyed = rgb.copy()
    black_keyed[60:80, 40:60] = 0
    Image.fromarray(black_keyed).save(folder / "rgb_trns.png", transparency=(0, 0, 0))
    trns_expected = black_keyed.copy()
    trns_expected[(black_keyed == 0).all(-1)] = 255
    files["rgb_trns.png"] = (folder / "rgb_trns.png", trns_expected, 0)

    # Print and scientific formats.
    Image.fromarray(rgb).convert("CMYK").save(folder / "print.jpg", quality=95)
    files["print.jpg"] = (folder / "print.jpg", np.asarray(Image.fromarray(rgb)), 12)
    Image.fromarray(gray.astype(np.int32), "I").save(folder / "int32.tif")
    files["int32.tif"] = (folder / "int32.tif", _rgb_of(gray), 0)
    Image.fromarray(gray.astype(np.float32) / 255, "F").save(folder / "float.tif")
    files["float.tif"] = (folder / "float.tif", _rgb_of(gray), 0)

    # An animation: its first frame.
    frames = [Image.fromarray(rgb).quantize(256), Image.new("P", UPRIGHT, 0)]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=100)
    files["moving.gif"] = (folder / "moving.gif", np.asarray(frames[0].convert("RGB")), 0)
    return files


def _rgb_of(gray: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(gray, dtype=np.uint8)[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, np.ndarray, int]]:
    return _write_files(tmp_path_factory.mktemp("odd"))


@pytest.fixture(scope="module")
def decoded(odd: dict) -> dict[str, Image.Image]:
    return {name: imageio.read_image(path) for name, (path, _, _) in odd.items()}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model") / "photo"
    save_generator(tiny_model("photo", seed=2), folder)
    return folder


@pytest.fixture(scope="module")
def translator(model_dir: Path) -> Translator:
    return Translator(load_generator(model_dir), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(write_test_registry(tmp_path_factory.mktemp("app"))) as running:
        assert running.app.store.wait(60), "background loading did not finish"
        yield running


def _same(a: Image.Image | np.ndarray, b: Image.Image | np.ndarray, what: str) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs {b.shape}"
    diff = np.abs(a.astype(int) - b.astype(int)).max() if a.size else 0
    assert diff == 0, f"{what}: differs by up to {diff}"


def test_the_decoder_reads_what_each_file_holds(odd: dict, decoded: dict) -> None:
    for name, (_, expected, tolerance) in odd.items():
        image = decoded[name]
        assert image.mode == "RGB" and image.size == UPRIGHT, (name, image.mode, image.size)
        diff = np.abs(np.asarray(image).astype(int) - expected.astype(int))
        # Lossy JPEGs: compare the mean error, and that the red block sits top left (upright).
        assert diff.mean() <= max(tolerance / 4, 0.5) and np.percentile(diff, 99) <= 3 * max(
            tolerance, 1
        ), (name, diff.mean(), diff.max())


def test_library_translator_path_and_opened_image(
    odd: dict, decoded: dict, translator: Translator
) -> None:
    for name, (path, _, _) in odd.items():
        expected = translator(decoded[name])
        _same(translator(path), expected, f"Translator(path) of {name}")
        _same(translator(str(path)), expected, f"Translator(str) of {name}")
        with Image.open(path) as opened:
            _same(translator(opened), expected, f"Translator(Image.open) of {name}")


def test_translate_cli_and_its_edges(
    odd: dict, decoded: dict, translator: Translator, model_dir: Path, tmp_path: Path
) -> None:
    paths = [str(path) for path, _, _ in odd.values()]
    common = ["--model", str(model_dir), "--device", "cpu", "--precision", "fp32"]
    assert translate.main([*common, *paths, "--out", str(tmp_path / "plain")]) == 0
    assert translate.main([*common, *paths, "--out", str(tmp_path / "edges"), "--edges"]) == 0
    for name, (path, _, _) in odd.items():
        with Image.open(tmp_path / "plain" / f"{path.stem}.png") as out:
            _same(out, translator(decoded[name]), f"pix2pix-translate of {name}")
        lines = edges.edges_to_pil(edges.photo_to_edges(decoded[name]))
        with Image.open(tmp_path / "edges" / f"{path.stem}.png") as out:
            _same(out, translator(lines), f"pix2pix-translate --edges of {name}")


def test_pix2pix_edges_and_classifier_reader(odd: dict, decoded: dict) -> None:
    for name, (path, _, _) in odd.items():
        expected = edges.photo_to_edges(decoded[name])
        with Image.open(path) as opened:
            _same(edges.photo_to_edges(opened), expected, f"pix2pix.edges of {name}")
        _same(classifier_read(path), decoded[name].convert("L"), f"classifier reader of {name}")


def test_app_upload_and_api(odd: dict, decoded: dict, server: Server) -> None:
    client = Client(server.url, verbose=False)
    for name, (path, _, _) in odd.items():
        _same(open_image(str(path), what="input image"), decoded[name], f"app decode of {name}")
        result = client.predict(handle_file(str(path)), "test-photo", -1, api_name="/translate")
        expected = server.app.store.translate("test-photo", decoded[name])
        with Image.open(result) as out:
            _same(out.convert("RGB"), expected, f"app /translate of {name}")


def _paired(root: Path, images: dict[str, Path | Image.Image]) -> Path:
    """A paired dataset: A/ holds the given files (or images, saved as PNG), B/ white PNGs."""
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir(parents=True)
    for stem, source in images.items():
        if isinstance(source, Path):
            (root / "A" / f"{stem}{source.suffix}").write_bytes(source.read_bytes())
        else:
            source.save(root / "A" / f"{stem}.png")
        Image.new("RGB", UPRIGHT, "white").save(root / "B" / f"{stem}.png")
    return root


def test_training_and_evaluation_loaders(
    odd: dict, decoded: dict, model_dir: Path, tmp_path: Path
) -> None:
    stems = {name: name.replace(".", "_") for name in odd}
    files = _paired(tmp_path / "files", {stems[n]: p for n, (p, _, _) in odd.items()})
    reference = _paired(tmp_path / "reference", {stems[n]: decoded[n] for n in odd})
    options = {"train": False, "load_size": 128, "crop_size": 128, "format": "paired"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no file may be skipped as unreadable
        from_files = PairedDataset(files, **options)
        from_reference = PairedDataset(reference, **options)
    assert len(from_files) == len(odd)
    for i in range(len(odd)):
        got, want = from_files[i], from_reference[i]
        assert got["name"] == want["name"]
        assert torch.equal(got["input"], want["input"]), f"training loader: {got['name']}"

    results = [
        evaluate(model_dir, root, split="train", size=128, progress=False, device="cpu")
        for root in (files, reference)
    ]
    by_name = [{row["name"]: row for row in r["per_image"]} for r in results]
    assert by_name[0].keys() == set(stems.values())
    for stem in by_name[0]:
        assert by_name[0][stem] == by_name[1][stem], f"evaluation loader: {stem}"


# --------------------------------------------------------------------------------------------
# Sizes: large images downscaled with a notice, bombs refused
# --------------------------------------------------------------------------------------------


def test_phone_size_jpeg_decodes_at_reduced_scale(tmp_path: Path) -> None:
    # 12000x9000 (108 MP), stored sideways with EXIF orientation 6.
    big = Image.new("RGB", (12000, 9000), (200, 120, 40))
    path = tmp_path / "phone108.jpg"
    big.save(path, quality=85, exif=_exif(6))
    del big
    result = imageio.decode_image(path)
    assert result.original_size == (9000, 12000)
    assert result.image.size == (4500, 6000)  # libjpeg's 1/2 scale: 27 MP <= 40 MP
    assert "downscaled to 4500x6000" in result.notice
    with pytest.warns(imageio.ImageDownscaledWarning, match="12000 pixels"):
        imageio.read_image(path)
    # The app decodes it too (it used to refuse it as too many pixels to decode safely).
    assert open_image(str(path)).size == (4500, 6000)
    # A caller that resizes anyway (training) lets libjpeg go down to 1/8, and no notice.
    small = imageio.decode_image(path, min_size=(1000, 1000))
    assert small.image.size == (1125, 1500) and small.notice is None


def test_large_png_is_downscaled_to_the_limit_with_a_notice(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("L", (10000, 5000), 90).save(path)
    result = imageio.decode_image(path, max_pixels=10_000_000)
    width, height = result.image.size
    assert width * height <= 10_000_000 and abs(width / height - 2) < 0.01
    assert result.notice and "10000x5000" in result.notice
    assert np.asarray(result.image).min() == 90


def _declaring(fmt: str, width: int, height: int) -> bytes:
    """A small valid file of ``fmt`` whose header is rewritten to declare width x height."""
    buffer = io.BytesIO()
    Image.new("L" if fmt != "BMP" else "RGB", (8, 8), 128).save(buffer, fmt)
    data = bytearray(buffer.getvalue())
    if fmt == "PNG":  # IHDR: width, height (big-endian), then its CRC
        data[16:24] = struct.pack(">II", width, height)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    elif fmt == "GIF":  # logical screen and image descriptor sizes (little-endian uint16)
        data[6:10] = struct.pack("<HH", width, height)
        start = data.index(b",")
        data[start + 5 : start + 9] = struct.pack("<HH", width, height)
    elif fmt == "BMP":
        data[18:26] = struct.pack("<ii", width, height)
    elif fmt == "JPEG":  # the SOF0 frame header: height, then width (big-endian)
        sof = data.index(b"\xff\xc0")
        data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("fmt", ["PNG", "GIF", "BMP", "JPEG"])
def test_decompression_bombs_are_refused(fmt: str) -> None:
    data = _declaring(fmt, 60000, 60000)  # a few hundred bytes declaring 3.6 gigapixels
    assert len(data) < 2000
    with pytest.raises(imageio.ImageReadError, match=r"upload.*decompression bomb"):
        imageio.decode_image(data, what="upload")


def test_bad_files_name_the_file_and_the_problem(tmp_path: Path) -> None:
    cases = {
        "empty.png": (b"", "is empty"),
        "notes.png": (b"<html>not an image</html>", "not an image file this can read"),
        "cut.png": (_png_bytes()[:80], "truncated or corrupt"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(imageio.ImageReadError, match=f"'{name}'.*{message}"):
            imageio.decode_image(tmp_path / name)
    with pytest.raises(imageio.ImageReadError, match="does not exist"):
        imageio.decode_image(tmp_path / "missing.png")
    nan = Image.fromarray(np.full((4, 4), np.nan, np.float32), "F")
    with pytest.raises(imageio.ImageReadError, match="NaN"):
        imageio.to_rgb(nan)


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_picture()).save(buffer, "PNG")
    return buffer.getvalue()


def test_layout_detection_sees_images_upright(tmp_path: Path) -> None:
    # Aligned A|B pairs (2:1 as seen) that a phone stored sideways (1:2, EXIF orientation 6).
    from train.data import find_dataset

    folder = tmp_path / "pairs"
    folder.mkdir()
    for i in range(3):
        pair = Image.fromarray(np.concatenate([_picture(), _picture()[::-1]], axis=1))
        assert pair.size == (160, 120)
        pair = pair.resize((240, 120))
        pair.transpose(Image.Transpose.ROTATE_90).save(folder / f"{i}.jpg", exif=_exif(6))
    assert find_dataset(folder).format == "aligned"
