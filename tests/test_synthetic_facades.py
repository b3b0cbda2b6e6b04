"""The procedural facades generator: files, determinism, labels, photo/label agreement."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.data import find_dataset
from train.datasets import synthetic_facades as sf


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/*.png"))}


def _halves(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    w = arr.shape[1] // 2
    return arr[:, :w], arr[:, w:]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("facades") / "n12"
    assert sf.main(["--out", str(out), "--n", "12", "--seed", "3", "--size", "128"]) == 0
    return out


@pytest.fixture(scope="module")
def samples() -> list[tuple[np.ndarray, np.ndarray]]:
    """20 full-size (class index map, photo) pairs."""
    pairs = []
    for i in range(20):
        labels, photo = sf.generate_pair(sf.sample_rng(0, "train", i))
        pairs.append((sf.labels_to_index(np.asarray(labels)), np.asarray(photo).astype(np.float64)))
    return pairs


def test_cli_writes_splits_aligned_pairs_and_metadata(small_run: Path) -> None:
    counts = {split: len(list((small_run / split).glob("*.png"))) for split in sf.SPLITS}
    assert counts == {"train": 8, "val": 2, "test": 2}
    assert sorted(p.name for p in (small_run / "val").iterdir()) == ["00000.png", "00001.png"]
    for path in small_run.glob("*/*.png"):
        with Image.open(path) as im:
            assert (im.size, im.mode) == ((256, 128), "RGB")
    classes = json.loads((small_run / "classes.json").read_text())
    assert classes == {"names": sf.CLASS_NAMES, "palette": sf.PALETTE}
    readme = (small_run / "README.md").read_text()
    assert f"--out {small_run} --n 12 --seed 3 --size 128" in readme
    spec = find_dataset(small_run, split="train")
    assert (spec.format, len(spec.files)) == ("aligned", 8)


def test_split_counts() -> None:
    assert sf.split_counts() == {"train": 400, "val": 100, "test": 100}
    assert sf.split_counts(60) == {"train": 40, "val": 10, "test": 10}
    assert sf.split_counts(splits=(3, 0, 1)) == {"train": 3, "val": 0, "test": 1}
    assert sf.split_counts(4, (3, 0, 1)) == {"train": 3, "val": 0, "test": 1}
    with pytest.raises(ValueError, match="disagrees"):
        sf.split_counts(5, (3, 0, 1))
    with pytest.raises(ValueError, match="non-negative"):
        sf.split_counts(splits=(3, -1, 1))


def test_same_seed_same_bytes_other_seed_differs(small_run: Path, tmp_path: Path) -> None:
    again = sf.generate(tmp_path / "again", n=12, seed=3, size=128)
    assert _files(again) == _files(small_run)
    other = sf.generate(tmp_path / "other", n=12, seed=4, size=128)
    differing = [k for k, v in _files(other).items() if _files(small_run)[k] != v]
    assert len(differing) == 12


def test_smaller_n_is_a_prefix_of_larger_n(small_run: Path, tmp_path: Path) -> None:
    small = _files(sf.generate(tmp_path / "n6", n=6, seed=3, size=128))
    assert sorted(small) == [
        "test/00000.png",
        "train/00000.png",
        "train/00001.png",
        "train/00002.png",
        "train/00003.png",
        "val/00000.png",
    ]
    large = _files(small_run)
    assert all(large[name] == data for name, data in small.items())


def test_refuses_to_mix_with_leftover_files(tmp_path: Path) -> None:
    out = tmp_path / "reuse"
    sf.generate(out, splits=(2, 1, 1), size=64)
    sf.generate(out, splits=(2, 1, 1), size=64)  # the same run again just overwrites
    with pytest.raises(FileExistsError, match=r"00001\.png"):
        sf.generate(out, splits=(1, 1, 1), size=64)
    assert sf.main(["--out", str(out), "--n", "3", "--size", "64"]) == 2


def test_every_label_pixel_is_a_palette_colour(small_run: Path) -> None:
    for path in small_run.glob("*/*.png"):
        labels, _ = _halves(path)
        index = sf.labels_to_index(labels)  # raises on any other colour
        assert index.dtype == np.int64
        np.testing.assert_array_equal(sf.index_to_labels(index), labels)


def test_labels_to_index_rejects_other_colours() -> None:
    rgb = sf.index_to_labels(np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(sf.labels_to_index(rgb), np.arange(12).reshape(3, 4))
    rgb[1, 2] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"\[1, 2, 3\] at \(x=2, y=1\)"):
        sf.labels_to_index(rgb)
    with pytest.raises(ValueError, match=r"0\.\.11"):
        sf.index_to_labels(np.array([[12]]))


def test_generate_pair_accepts_a_seed_or_a_generator() -> None:
    a1, b1 = sf.generate_pair(7, size=96)
    a2, b2 = sf.generate_pair(np.random.default_rng(7), size=96)
    assert a1.size == b1.size == (96, 96) and a1.mode == b1.mode == "RGB"
    assert a1.tobytes() == a2.tobytes() and b1.tobytes() == b2.tobytes()
    with pytest.raises(ValueError, match="at least 64"):
        sf.generate_pair(7, size=32)


def test_class_coverage(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    seen = np.zeros(len(sf.CLASS_NAMES), dtype=bool)
    for index, _ in samples:
        present = np.bincount(index.ravel(), minlength=len(sf.CLASS_NAMES)) > 0
        assert present[sf.FACADE] and present[sf.WINDOW] and present[sf.DOOR]
        seen |= present
    missing = [name for name, ok in zip(sf.CLASS_NAMES, seen, strict=True) if not ok]
    assert not missing


def test_photo_follows_the_label_geometry(samples: list[tuple[np.ndarray, np.ndarray]]) -> None:
    blue_gap = []
    for index, photo in samples:
        window, facade = photo[index == sf.WINDOW], photo[index == sf.FACADE]
        assert np.linalg.norm(window.mean(0) - facade.mean(0)) > 25
        darker = facade.mean() - window.mean()
        bluer = (window[:, 2] - window[:, 0]).mean() - (facade[:, 2] - facade[:, 0]).mean()
        assert darker > 15 or bluer > 15  # glass: darker than the wall, or bluer
        blue_gap.append(bluer)
    assert np.mean(blue_gap) > 20


def test_photo_is_textured_not_a_recoloured_label_map(
    samples: list[tuple[np.ndarray, np.ndarray]],
) -> None:
    for index, photo in samples:
        grey = photo.mean(axis=2)
        for cls in (sf.FACADE, sf.WINDOW):
            assert grey[index == cls].std() > 5, sf.CLASS_NAMES[cls]
        # Fine detail: neighbouring facade pixels differ (noise, mortar, blocks).
        inner = (index[:, 1:] == sf.FACADE) & (index[:, :-1] == sf.FACADE)
        assert np.abs(np.diff(grey, axis=1))[inner].mean() > 1.0
