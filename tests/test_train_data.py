"""Tests for train/data.py: layout detection, identical A/B augmentation and bad-data handling."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import pix2pix
from train.data import (
    PairedDataset,
    available_splits,
    convert_mode,
    find_dataset,
    make_aligned,
)

LOAD, CROP = 72, 64
SIZES = {"load_size": LOAD, "crop_size": CROP}
RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def _ramp(size: int = 64) -> Image.Image:
    """R grows left to right and G top to bottom, so flips and crop offsets are measurable."""
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.stack([x * 4, y * 4, (x * 7 + y * 13) % 256], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


def _write_aligned(folder: Path, names: list[str], half: int = 32) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pair = make_aligned(_noise(half, half, i), _noise(half, half, 100 + i))
        pair.save(folder / f"{name}.png")


def _write_paired(a_dir: Path, b_dir: Path, names: list[str], size: int = 32) -> None:
    a_dir.mkdir(parents=True, exist_ok=True)
    b_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        _noise(size, size, i).save(a_dir / f"{name}.jpg")
        _noise(size, size, 100 + i).save(b_dir / f"{name}.png")


def _half_black_photo(width: int = 48, height: int = 32) -> Image.Image:
    photo = np.full((height, width, 3), 255, dtype=np.uint8)
    photo[:, : width // 2] = 0
    return Image.fromarray(photo)


def _write_photos(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _half_black_photo().save(folder / f"{name}.png")


def _truncated(img: Image.Image, fmt: str) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    img.save(buffer, format=fmt)
    data = buffer.getvalue()
    return data[: len(data) // 2]


def _build(*args: object, **kwargs: object) -> tuple[PairedDataset, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = PairedDataset(*args, **{**SIZES, **kwargs})
    return ds, caught


@pytest.fixture
def fake_edges(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Replace pix2pix.edges.photo_to_edges by a threshold; returns the list of calls (sizes)."""
    calls: list[tuple[int, int]] = []

    def photo_to_edges(image: Image.Image) -> np.ndarray:
        calls.append(image.size)
        gray = np.asarray(image.convert("L"))
        return np.where(gray < 128, 0, 255).astype(np.uint8)

    if importlib.util.find_spec("pix2pix.edges") is not None:
        import pix2pix.edges as module
    else:
        module = types.ModuleType("pix2pix.edges")
        monkeypatch.setitem(sys.modules, "pix2pix.edges", module)
        monkeypatch.setattr(pix2pix, "edges", module, raising=False)
    monkeypatch.setattr(module, "photo_to_edges", photo_to_edges, raising=False)
    return calls


# --- formats -----------------------------------------------------------------------------------


def test_aligned_detected_and_loaded(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x", "y", "z"])
    ds, caught = _build(tmp_path)
    assert not caught
    assert ds.spec.format == "aligned" and len(ds) == 3
    assert "aligned" in ds.spec.summary() and "3 images" in ds.spec.summary()
    item = ds[1]
    assert item["name"] == "y"
    for key in ("input", "target"):
        assert item[key].shape == (3, CROP, CROP) and item[key].dtype == torch.float32
        assert item[key].min() >= -1 and item[key].max() <= 1
    assert item["input"].min() < -0.9 and item["input"].max() > 0.9  # the full range is used


def test_paired_detected_and_matched_by_stem(tmp_path: Path) -> None:
    _write_paired(tmp_path / "A", tmp_path / "B", ["one", "two"])
    ds, caught = _build(tmp_path)
    assert not caught
    assert ds.spec.format == "paired"
    assert [(s.name, s.path.name, s.b_path.name) for s in ds.samples] == [
        ("one", "one.jpg", "one.png"),
        ("two", "two.jpg", "two.png"),
    ]
    item = ds[0]
    assert item["input"].shape == item["target"].shape == (3, CROP, CROP)


def test_photos_detected_and_edges_are_the_input(tmp_path: Path, fake_edges: list) -> None:
    _write_photos(tmp_path, ["p"])
    ds, _ = _build(tmp_path, train=False)
    assert ds.spec.format == "photos"
    item = ds[0]
    # Fake edges threshold the photo: black left half -> 0 (line), white right half -> 255.
    assert item["input"][:, :, :20].eq(-1).all() and item["input"][:, :, -20:].eq(1).all()
    assert item["target"][:, :, :20].eq(-1).all()
    swapped = PairedDataset(tmp_path, direction="BtoA", train=False, in_channels=3, **SIZES)[0]
    assert torch.equal(swapped["input"], item["target"])
    assert torch.equal(swapped["target"], item["input"])


def test_auto_detection_threshold(tmp_path: Path) -> None:
    for i in range(9):
        Image.new("RGB", (2 * 16 + i % 2, 16)).save(tmp_path / f"wide{i}.png")  # +-1 px allowed
    Image.new("RGB", (20, 16)).save(tmp_path / "photo0.png")
    assert find_dataset(tmp_path).format == "aligned"  # 9 of 10 is enough
    Image.new("RGB", (20, 16)).save(tmp_path / "photo1.png")
    # 9 of 11: neither an aligned archive nor photos; a wrong guess trains the wrong task.
    with pytest.raises(ValueError, match=r"9 of 11 .*--format aligned"):
        find_dataset(tmp_path)
    for i in range(2, 11):
        Image.new("RGB", (20, 16)).save(tmp_path / f"photo{i}.png")
    spec = find_dataset(tmp_path)
    assert spec.format == "photos" and "9/20" in spec.detection


def test_format_can_be_forced(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x"])
    assert find_dataset(tmp_path, format="photos").format == "photos"
    with pytest.raises(ValueError, match="'pairs'"):
        find_dataset(tmp_path, format="pairs")
    with pytest.raises(FileNotFoundError, match="A/ and B/"):
        find_dataset(tmp_path, format="paired")


def test_direction_swaps_input_and_target(tmp_path: Path) -> None:
    make_aligned(Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)).save(
        tmp_path / "rb.png"
    )
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, CROP, CROP)
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1).expand(3, CROP, CROP)
    forward = PairedDataset(tmp_path, **SIZES)[0]
    assert torch.equal(forward["input"], red) and torch.equal(forward["target"], blue)
    backward = PairedDataset(tmp_path, direction="BtoA", **SIZES)[0]
    assert torch.equal(backward["input"], blue) and torch.equal(backward["target"], red)
    with pytest.raises(ValueError, match="'AtoC'"):
        PairedDataset(tmp_path, direction="AtoC", **SIZES)


def test_channel_counts(tmp_path: Path) -> None:
    make_aligned(Image.new("RGB", (32, 32), RED), Image.new("RGB", (32, 32), BLUE)).save(
        tmp_path / "rb.png"
    )
    item = PairedDataset(tmp_path, in_channels=1, out_channels=3, **SIZES)[0]
    assert item["input"].shape == (1, CROP, CROP) and item["target"].shape == (3, CROP, CROP)
    gray_red = round(0.299 * 255) / 127.5 - 1
    assert torch.allclose(item["input"], torch.full_like(item["input"], gray_red))
    item = PairedDataset(tmp_path, direction="BtoA", in_channels=3, out_channels=1, **SIZES)[0]
    assert item["input"].shape == (3, CROP, CROP) and item["target"].shape == (1, CROP, CROP)
    with pytest.raises(ValueError, match="in_channels must be 1"):
        PairedDataset(tmp_path, in_channels=4, **SIZES)
    with pytest.raises(ValueError, match="load_size=32"):
        PairedDataset(tmp_path, load_size=32, crop_size=64)


# --- augmentation ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["aligned", "paired-copy", "paired-inverted"])
def test_crop_and_flip_identical_for_input_and_target(tmp_path: Path, layout: str) -> None:
    ramp = _ramp()
    if layout == "aligned":
        make_aligned(ramp, ramp).save(tmp_path / "r.png")
    else:
        (tmp_path / "A").mkdir()
        (tmp_path / "B").mkdir()
        ramp.save(tmp_path / "A" / "r.png")
        other = ramp if layout == "paired-copy" else Image.fromarray(255 - np.asarray(ramp))
        other.save(tmp_path / "B" / "r.png")
    ds = PairedDataset(tmp_path, **SIZES)

    flipped, tops = set(), set()
    for seed in range(24):
        torch.manual_seed(seed)
        item = ds[0]
        if layout == "paired-inverted":
            # Bicubic resizing commutes with 255 - x up to uint8 rounding in its two passes.
            assert torch.allclose(item["target"], -item["input"], atol=2.01 / 127.5)
        else:
            assert torch.equal(item["input"], item["target"])
        red = item["input"][0]
        flipped.add(bool(red[CROP // 2, 0] > red[CROP // 2, -1]))
        tops.add(round(float(item["input"][1, 0, CROP // 2]), 3))
    assert flipped == {True, False}, "the mirror should be applied to some samples, not all"
    assert len(tops) > 1, "crop offsets should vary between draws"


def test_flip_can_be_disabled(tmp_path: Path) -> None:
    make_aligned(_ramp(), _ramp()).save(tmp_path / "r.png")
    ds = PairedDataset(tmp_path, flip=False, **SIZES)
    for seed in range(12):
        torch.manual_seed(seed)
        red = ds[0]["input"][0]
        assert red[CROP // 2, 0] < red[CROP // 2, -1]


def test_seeding_torch_reproduces_augmentation(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x"])
    ds = PairedDataset(tmp_path, **SIZES)
    torch.manual_seed(7)
    first = ds[0]
    torch.manual_seed(7)
    again = ds[0]
    assert torch.equal(first["input"], again["input"])


def test_eval_mode_is_deterministic(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x"])
    ds = PairedDataset(tmp_path, train=False, **SIZES)
    torch.manual_seed(0)
    first = ds[0]
    torch.manual_seed(1)
    second = ds[0]
    assert first["input"].shape == (3, CROP, CROP)
    assert torch.equal(first["input"], second["input"])
    assert torch.equal(first["target"], second["target"])


def test_dataloader_batches(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x", "y", "z"])
    batch = next(iter(DataLoader(PairedDataset(tmp_path, **SIZES), batch_size=2)))
    assert batch["input"].shape == (2, 3, CROP, CROP)
    assert batch["name"] == ["x", "y"]


# --- splits ------------------------------------------------------------------------------------


def test_split_folders(tmp_path: Path) -> None:
    _write_aligned(tmp_path / "train", ["a", "b", "c"])
    _write_aligned(tmp_path / "val", ["d"])
    assert available_splits(tmp_path) == ["train", "val"]
    assert len(PairedDataset(tmp_path, **SIZES)) == 3
    val = PairedDataset(tmp_path, split="val", **SIZES)
    assert len(val) == 1 and val[0]["name"] == "d"
    with pytest.raises(ValueError, match=r"'test' not found .*found splits: train, val"):
        find_dataset(tmp_path, split="test")


def test_root_is_the_only_split_without_split_folders(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["a", "b"])
    assert available_splits(tmp_path) == []
    for split in ("train", "test"):
        spec = find_dataset(tmp_path, split=split)
        assert spec.folders == (tmp_path,) and len(spec.files) == 2
        assert "only split" in spec.summary()


@pytest.mark.parametrize("layout", ["train/A", "A/train"])
def test_paired_split_layouts(tmp_path: Path, layout: str) -> None:
    for split, names in (("train", ["a", "b"]), ("val", ["c"])):
        if layout == "train/A":
            a_dir, b_dir = tmp_path / split / "A", tmp_path / split / "B"
        else:
            a_dir, b_dir = tmp_path / "A" / split, tmp_path / "B" / split
        _write_paired(a_dir, b_dir, names)
    assert available_splits(tmp_path) == ["train", "val"]
    train = find_dataset(tmp_path)
    assert train.format == "paired" and [s.name for s in train.files] == ["a", "b"]
    val = PairedDataset(tmp_path, split="val", **SIZES)
    assert len(val) == 1 and val[0]["target"].shape == (3, CROP, CROP)


# --- bad data ----------------------------------------------------------------------------------


def test_unreadable_files_are_skipped_with_one_warning(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["good1", "good2", "good3"])
    wide = _noise(64, 32)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "garbage.jpg").write_bytes(os.urandom(600))
    (tmp_path / "cut.png").write_bytes(_truncated(wide, "PNG"))
    (tmp_path / "cut.jpg").write_bytes(_truncated(wide, "JPEG"))

    ds, caught = _build(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 5 of 8 files" in message
    for name in ("notes.txt", "empty.png", "garbage.jpg", "cut.png", "cut.jpg"):
        assert name in message
    assert ds.spec.format == "aligned"
    assert len(ds) == 3
    assert {Path(p).name for p, _ in ds.skipped} == {
        "notes.txt",
        "empty.png",
        "garbage.jpg",
        "cut.png",
        "cut.jpg",
    }
    assert all(ds[i]["input"].shape == (3, CROP, CROP) for i in range(len(ds)))
    assert "5 unreadable" not in ds.summary()  # 4 unreadable + 1 non-image
    assert "4 unreadable files skipped" in ds.summary()


def test_long_lists_of_bad_files_are_shortened(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["good"])
    for i in range(13):
        (tmp_path / f"junk{i:02d}.png").write_bytes(b"junk")
    _, caught = _build(tmp_path)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 13 of 14" in message and "junk00.png" in message
    assert "and 3 more" in message and "junk12.png" not in message


def test_hidden_files_and_edges_cache_are_ignored(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["x"])
    (tmp_path / ".DS_Store").write_bytes(b"\0\0")
    (tmp_path / "._x.png").write_bytes(b"resource fork")
    (tmp_path / ".edges_cache" / "train").mkdir(parents=True)
    Image.new("L", (32, 32)).save(tmp_path / ".edges_cache" / "train" / "x.png.1-1.72px.png")
    ds, caught = _build(tmp_path)
    assert not caught and len(ds) == 1 and not ds.skipped


def test_file_broken_after_build_falls_back_to_next(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["a", "b", "c"])
    ds, _ = _build(tmp_path)
    (tmp_path / "b.png").write_bytes(b"overwritten while training")
    with pytest.warns(UserWarning, match=r"b\.png"):
        item = ds[1]
    assert item["name"] == "c"
    assert [Path(p).name for p, _ in ds.skipped] == ["b.png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the broken file is remembered: no second warning
        assert ds[1]["name"] == "c"
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "c.png").write_bytes(b"")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="every file"):
        ds[0]


def test_paired_names_that_do_not_match_stop_early(tmp_path: Path) -> None:
    _write_paired(tmp_path / "A", tmp_path / "B", ["a", "b"])
    _noise(8, 8).save(tmp_path / "A" / "only_in_a.png")
    _noise(8, 8).save(tmp_path / "B" / "only_in_b1.png")
    _noise(8, 8).save(tmp_path / "B" / "only_in_b2.jpg")
    with pytest.raises(ValueError) as info:
        find_dataset(tmp_path)
    message = str(info.value)
    assert "1 only in" in message and "2 only in" in message
    for name in ("only_in_a", "only_in_b1", "only_in_b2"):
        assert name in message


def test_paired_duplicate_stems_and_missing_side(tmp_path: Path) -> None:
    _write_paired(tmp_path / "A", tmp_path / "B", ["a"])
    _noise(8, 8).save(tmp_path / "A" / "a.png")  # a.jpg already exists
    with pytest.raises(ValueError, match=r"a\.jpg and a\.png"):
        find_dataset(tmp_path)
    other = tmp_path / "other"
    (other / "A").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no .*B"):
        find_dataset(other)


def test_paired_unreadable_file_drops_its_pair(tmp_path: Path) -> None:
    _write_paired(tmp_path / "A", tmp_path / "B", ["a", "b"])
    (tmp_path / "B" / "a.png").write_bytes(_truncated(_noise(32, 32), "PNG"))
    ds, caught = _build(tmp_path)
    assert len(caught) == 1 and "a.png" in str(caught[0].message)
    assert [s.name for s in ds.samples] == ["b"]


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"(?s)nowhere does not exist.*aligned"):
        find_dataset(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"(?s)no images .*empty; expected one of these layouts"):
        find_dataset(empty)
    (empty / "nested").mkdir()
    (empty / "readme.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"readme\.txt.*subfolders nested"):
        find_dataset(empty)
    (empty / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        find_dataset(empty / "file.png")
    with pytest.raises(ValueError, match="could be opened"):
        find_dataset(empty)
    with pytest.raises(ValueError, match=r"none of the 1 files.*file\.png"):
        _build(empty, format="aligned")


# --- image modes and sizes ---------------------------------------------------------------------


def _mode_image(mode: str) -> Image.Image:
    size = (4, 4)
    if mode == "I;16":
        return Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16))  # 128 * 257
    if mode == "I":
        return Image.fromarray(np.full((4, 4), 32896, dtype=np.int32))
    if mode == "F":
        return Image.fromarray(np.full((4, 4), 128 / 255, dtype=np.float32))
    if mode == "P":
        return Image.new("RGB", size, (128, 128, 128)).convert("P", palette=Image.Palette.ADAPTIVE)
    if mode == "CMYK":
        return Image.new("CMYK", size, (127, 127, 127, 0))
    if mode == "RGBA":
        return Image.new("RGBA", size, (128, 128, 128, 255))
    if mode == "LA":
        return Image.new("LA", size, (128, 255))
    return Image.new(mode, size, 128)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "I", "F", "CMYK"])
@pytest.mark.parametrize("channels", [1, 3])
def test_convert_mode_scales_to_8_bit(mode: str, channels: int) -> None:
    img = _mode_image(mode)
    assert img.mode == mode
    out = convert_mode(img, channels)
    assert out.mode == ("RGB" if channels == 3 else "L")
    assert np.abs(np.asarray(out).astype(int) - 128).max() <= 1


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_composites_onto_white(mode: str) -> None:
    if mode == "P":
        img = Image.new("P", (4, 4), 0)
        img.putpalette([0, 0, 0] * 256)
        img.info["transparency"] = 0
    else:
        img = Image.new(mode, (4, 4), (0, 0, 0, 0) if mode == "RGBA" else (0, 0))
    assert np.asarray(convert_mode(img)).min() == 255
    with pytest.raises(ValueError, match="got 2"):
        convert_mode(img, 2)


def test_sixteen_bit_and_palette_files_load(tmp_path: Path) -> None:
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    sixteen = np.zeros((32, 32), dtype=np.uint16)
    sixteen[:, 16:] = 65535
    Image.fromarray(sixteen).save(tmp_path / "A" / "x.png")
    assert Image.open(tmp_path / "A" / "x.png").mode.startswith("I")
    palette = Image.new("RGB", (32, 32), GREEN).convert("P", palette=Image.Palette.ADAPTIVE)
    palette.save(tmp_path / "B" / "x.png")
    Image.new("CMYK", (32, 32), (255, 0, 0, 0)).save(tmp_path / "A" / "y.tif")
    Image.new("RGBA", (32, 32), (0, 0, 0, 0)).save(tmp_path / "B" / "y.png")

    ds, caught = _build(tmp_path, train=False)
    assert not caught
    x, y = ds[0], ds[1]
    assert x["input"][:, :, :24].eq(-1).all() and x["input"][:, :, 40:].eq(1).all()
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1)
    assert torch.equal(x["target"], green.expand(3, CROP, CROP))
    cyan = torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
    assert torch.equal(y["input"], cyan.expand(3, CROP, CROP))
    assert y["target"].eq(1).all()  # transparent -> white


def test_odd_width_aligned_and_tiny_images(tmp_path: Path) -> None:
    odd = np.zeros((32, 65, 3), dtype=np.uint8)
    odd[:, :32] = RED
    odd[:, 32] = GREEN
    odd[:, 33:] = BLUE
    Image.fromarray(odd).save(tmp_path / "odd.png")
    make_aligned(_noise(8, 8), _noise(8, 8, 1)).save(tmp_path / "tiny.png")
    ds, caught = _build(tmp_path)
    assert not caught and ds.spec.format == "aligned"
    item = ds[0]
    assert item["name"] == "odd"
    red = torch.tensor([1.0, -1.0, -1.0]).view(3, 1, 1).expand(3, CROP, CROP)
    blue = torch.tensor([-1.0, -1.0, 1.0]).view(3, 1, 1).expand(3, CROP, CROP)
    assert torch.equal(item["input"], red) and torch.equal(item["target"], blue)
    assert ds[1]["input"].shape == (3, CROP, CROP)


def test_make_aligned(tmp_path: Path) -> None:
    a = Image.new("L", (8, 6), 0)
    b = Image.new("RGBA", (8, 6), (0, 0, 255, 255))
    both = make_aligned(a, b)
    assert both.size == (16, 6) and both.mode == "RGB"
    assert both.getpixel((0, 0)) == (0, 0, 0) and both.getpixel((15, 5)) == BLUE
    with pytest.raises(ValueError, match=r"\(8, 6\) and B \(9, 6\)"):
        make_aligned(a, Image.new("RGB", (9, 6)))


# --- photos: edge maps and their cache ---------------------------------------------------------


def test_photos_edge_cache_reused_and_refreshed(tmp_path: Path, fake_edges: list) -> None:
    _write_photos(tmp_path, ["p1", "p2"])
    _half_black_photo().save(tmp_path / "p2.jpg")  # same stem, different file: its own entry
    ds, caught = _build(tmp_path)
    assert not caught and len(ds) == 3
    assert sorted(s.name for s in ds.samples) == ["p1", "p2.jpg", "p2.png"]
    for i in range(len(ds)):
        ds[i]
    assert fake_edges == [(LOAD, LOAD)] * 3  # drawn at the size the photo is resized to
    cache = tmp_path / ".edges_cache" / "train"
    assert len(list(cache.glob("*.png"))) == 3

    again, caught = _build(tmp_path)
    assert not caught and len(again) == 3  # the cache is not listed as photos
    for i in range(len(again)):
        again[i]
    assert len(fake_edges) == 3  # all served from the cache

    photo = tmp_path / "p1.png"
    _noise(48, 32).save(photo)
    stat = photo.stat()
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    fresh, _ = _build(tmp_path)
    for i in range(len(fresh)):
        fresh[i]
    assert len(fake_edges) == 4  # only the changed photo was recomputed
    assert len(list(cache.glob("p1.png.*.png"))) == 1  # the stale entry is gone
    assert not list(cache.glob(".*.part"))

    evaluation, _ = _build(tmp_path, train=False)
    evaluation[0]
    assert fake_edges[-1] == (CROP, CROP)  # another resolution: its own entry, beside the first
    assert sorted(p.name.split(".")[-2] for p in cache.glob("p1.png.*.png")) == ["64px", "72px"]


def test_photos_edge_cache_dir_override(tmp_path: Path, fake_edges: list) -> None:
    photos = tmp_path / "photos"
    _write_photos(photos / "val", ["p"])
    cache = tmp_path / "cache"
    ds, _ = _build(photos, split="val", edges_cache_dir=cache)
    ds[0]
    assert len(list((cache / "val").glob("p.png.*.png"))) == 1
    assert not (photos / ".edges_cache").exists()


def test_photos_with_the_real_edge_detector(tmp_path: Path) -> None:
    pytest.importorskip("pix2pix.edges", reason="pix2pix/edges.py is not written yet")
    photo = np.full((48, 48, 3), 255, dtype=np.uint8)
    photo[12:36, 12:36] = (30, 60, 90)
    Image.fromarray(photo).save(tmp_path / "square.png")
    ds, caught = _build(tmp_path, train=False, format="photos")
    assert not caught
    item = ds[0]
    edges = item["input"]
    assert edges.shape == (3, CROP, CROP)
    assert edges.min() < 0 and edges.max() == 1  # dark lines on a white background
    assert (edges > 0.9).float().mean() > 0.5
    assert torch.equal(edges[0], edges[1])  # a gray edge map, repeated to 3 channels


# --- files people really have ------------------------------------------------------------------


def test_paired_names_match_across_unicode_normalisation(tmp_path: Path) -> None:
    # A/ written on Linux (NFC: one code point for "é"), B/ copied from a Mac (NFD: "e" + accent).
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    assert nfc != nfd
    for side, name in (("A", nfc), ("B", nfd)):
        (tmp_path / side).mkdir()
        _noise(32, 32, ord(side)).save(tmp_path / side / f"{name}.png")
    [a_file], [b_file] = (tmp_path / "A").iterdir(), (tmp_path / "B").iterdir()
    if a_file.name == b_file.name:
        pytest.skip("this file system normalises names itself")
    spec = find_dataset(tmp_path)
    assert [s.name for s in spec.files] == [nfc]
    assert spec.files[0].path.name == f"{nfc}.png" and spec.files[0].b_path.name == f"{nfd}.png"
    ds, _ = _build(tmp_path)
    assert ds[0]["input"].shape == (3, CROP, CROP)  # the real paths are the ones read
    # Two files in one folder that read the same are one name twice, and said so.
    _noise(32, 32).save(tmp_path / "A" / f"{nfd}.jpg")
    with pytest.raises(ValueError, match="differ only in Unicode normalisation"):
        find_dataset(tmp_path)


def _dangling(link: Path) -> None:
    """A git-annex file that was never fetched: a symbolic link into a missing object."""
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(Path("..") / ".git" / "annex" / "objects" / link.name)


@pytest.mark.parametrize("layout", ["aligned", "paired"])
def test_links_whose_targets_are_missing_are_named_in_a_warning(
    tmp_path: Path, layout: str
) -> None:
    names = [f"p{i}" for i in range(8)]
    missing = names[3:]  # 5 of 8 not fetched
    if layout == "aligned":
        _write_aligned(tmp_path, names[:3])
        for name in missing:
            _dangling(tmp_path / f"{name}.png")
    else:
        _write_paired(tmp_path / "A", tmp_path / "B", names[:3])
        for name in missing:
            _dangling(tmp_path / "A" / f"{name}.jpg")
            _dangling(tmp_path / "B" / f"{name}.png")
        (tmp_path / "B" / "p3.png").unlink()
        _noise(8, 8).save(tmp_path / "B" / "p3.png")  # fetched on one side only: still no pair
    with pytest.warns(UserWarning) as caught:
        spec = find_dataset(tmp_path)
    assert len(spec.files) == 3
    message = " ".join(str(w.message) for w in caught)
    assert "symbolic links whose targets are missing" in message
    assert "git annex get" in message and "datalad get" in message
    for name in missing:
        assert name in message
    assert f"{5 if layout == 'aligned' else 9} symbolic links" in message  # how many

    # Nothing fetched at all: a clear error, not "no images".
    empty = tmp_path / "unfetched"
    for name in names:
        _dangling(empty / f"{name}.png")
    with pytest.raises(ValueError, match=r"all 8 image files .* symbolic links whose targets"):
        find_dataset(empty)


def test_side_by_side_pairs_of_non_square_images_are_not_taken_for_photos(tmp_path: Path) -> None:
    # 4:3 photos side by side make 8:3 images: detected as photos, they would train edges->photo
    # on the wrong task. Refused, naming the value to pass.
    for i in range(4):
        make_aligned(_noise(40, 30, i), _noise(40, 30, 50 + i)).save(tmp_path / f"p{i}.png")
    with pytest.raises(ValueError, match=r"(?s)80x30.*format aligned.*format photos"):
        find_dataset(tmp_path)
    assert find_dataset(tmp_path, format="aligned").format == "aligned"
    ds, _ = _build(tmp_path, format="aligned")
    assert ds[0]["input"].shape == (3, CROP, CROP)
    # A few panoramas among ordinary photos stay photos.
    for i in range(8):
        _noise(48, 32, i).save(tmp_path / f"photo{i}.png")
    assert find_dataset(tmp_path).format == "photos"


# --- decoded images kept in memory (cache) -----------------------------------------------------


def _same_items(one: object, other: object, keys: list[tuple[int, int]]) -> None:
    """Items of two datasets through the trainer's per-item seeding are equal, key by key."""
    from train.train import SeededItems

    for key in keys:
        a, b = SeededItems(one, seed=0)[key], SeededItems(other, seed=0)[key]
        assert a.keys() == b.keys()
        for name, value in a.items():
            same = torch.equal(value, b[name]) if torch.is_tensor(value) else value == b[name]
            assert same, (key, name)


@pytest.mark.parametrize("layout", ["aligned", "paired", "photos"])
def test_cached_items_are_the_uncached_ones(tmp_path: Path, layout: str, fake_edges: list) -> None:
    from train.hints import DabSpec

    names = ["a", "b", "c"]
    if layout == "aligned":
        _write_aligned(tmp_path, names)
    elif layout == "paired":
        _write_paired(tmp_path / "A", tmp_path / "B", names)  # JPEG A: decoded at reduced scale
    else:
        _write_photos(tmp_path, names)
    options = {"hints": DabSpec(none_share=0.0), **SIZES}  # dabs drawn per item, after the crop
    uncached, _ = _build(tmp_path, **options)
    cached, caught = _build(tmp_path, cache="on", **options)
    assert not caught and cached.cached and not uncached.cached
    assert "kept in memory" in cached.summary() and "cache off" in uncached.summary()
    assert cached._cached[0].dtype == torch.uint8
    assert cached._cached[0].shape == (3, 3, LOAD, LOAD)  # (N, C, load, load)
    keys = [(epoch, i) for epoch in range(3) for i in range(3)]
    _same_items(uncached, cached, keys)
    eval_cached, _ = _build(tmp_path, train=False, cache="on")
    _same_items(_build(tmp_path, train=False)[0], eval_cached, keys[:3])


def test_cached_unpaired_items_are_the_uncached_ones(tmp_path: Path) -> None:
    from train.data import UnpairedDataset

    _write_paired(tmp_path / "A", tmp_path / "B", ["a", "b", "c"])
    (tmp_path / "B" / "c.png").unlink()  # 3 A images, 2 B images
    uncached = UnpairedDataset(tmp_path / "A", tmp_path / "B", b_channels=1, **SIZES)
    cached = UnpairedDataset(tmp_path / "A", tmp_path / "B", b_channels=1, cache="on", **SIZES)
    assert [c.shape for c in cached._cached] == [(3, 3, LOAD, LOAD), (2, 1, LOAD, LOAD)]
    _same_items(uncached, cached, [(epoch, i) for epoch in range(2) for i in range(3)])


def test_cached_batches_in_loader_workers_are_the_uncached_ones(tmp_path: Path) -> None:
    # The trainer's loader: the arrays filled in this process are read by forked workers.
    from torch.utils.data import BatchSampler

    from train.train import EpochShuffle, SeededItems

    _write_aligned(tmp_path, [f"x{i}" for i in range(6)])

    def batches(dataset: PairedDataset, workers: int) -> list[dict]:
        sampler = EpochShuffle(len(dataset), seed=0)
        loader = DataLoader(
            SeededItems(dataset, seed=0),
            batch_sampler=BatchSampler(sampler, 4, drop_last=False),
            num_workers=workers,
        )
        found = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            found.extend(loader)
        return found

    plain = batches(PairedDataset(tmp_path, **SIZES), 0)
    cached = batches(PairedDataset(tmp_path, cache="on", **SIZES), 2)
    assert len(plain) == len(cached) == 4
    for a, b in zip(plain, cached, strict=True):
        assert a["name"] == b["name"]
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["target"], b["target"])


def test_cache_auto_falls_back_over_budget_with_a_message(tmp_path: Path) -> None:
    _write_aligned(tmp_path, ["a", "b"])
    needed = 2 * 2 * 3 * LOAD * LOAD  # 2 pairs, A and B, 3 channels, load_size squared
    fits, _ = _build(tmp_path, cache="auto", cache_budget=needed)
    assert fits.cached and f"of a {needed / 1000:.1f} kB budget" in fits.summary()
    over, caught = _build(tmp_path, cache="auto", cache_budget=needed - 1)
    assert not over.cached and not caught
    assert "decoded per item" in over.summary() and "over the budget" in over.summary()
    assert f"{needed / 1000:.1f} kB" in over.summary()
    forced, _ = _build(tmp_path, cache="on", cache_budget=1)  # "on" keeps them whatever it takes
    assert forced.cached
    torch.manual_seed(0)
    a = over[1]
    torch.manual_seed(0)
    assert torch.equal(a["input"], fits[1]["input"])
    with pytest.raises(ValueError, match="unknown cache mode 'yes'"):
        _build(tmp_path, cache="yes")


def test_cache_auto_without_a_known_memory_size_decodes_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train.data

    _write_aligned(tmp_path, ["a"])
    monkeypatch.setattr(train.data, "available_memory", lambda: None)
    ds, _ = _build(tmp_path, cache="auto")
    assert not ds.cached and "memory available is unknown" in ds.summary()
    monkeypatch.setattr(train.data, "available_memory", lambda: 10**9)
    assert _build(tmp_path, cache="auto")[0].cached  # a half of 1 GB: enough


def test_available_memory_is_a_plausible_size() -> None:
    from train.data import available_memory

    found = available_memory()
    assert found is None or 0 <= found < 2**50


def test_a_file_that_fails_while_caching_is_skipped_for_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import train.data

    _write_aligned(tmp_path, ["a", "b", "c"])
    real = train.data._read_rgb

    def flaky(path: Path, min_size: tuple[int, int]) -> Image.Image:
        if path.stem == "b":
            raise train.data._UnreadableError(path, "OSError: gone")
        return real(path, min_size)

    monkeypatch.setattr(train.data, "_read_rgb", flaky)
    ds, caught = _build(tmp_path, cache="on")
    assert [str(w.message) for w in caught if "could not read" in str(w.message)]
    assert ds.cached and ds._failed == {1}
    assert ds[1]["name"] == "c"  # the next good example takes its place, as without the cache
