"""Fashion-MNIST export (from IDX files the test writes) and the product classifier."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train import classifier
from train.datasets import fashion_mnist


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_source(tmp_path: Path) -> Path:
    """A Fashion-MNIST-shaped source: bright bars (class 7, 'sneaker') or discs (class 8, 'bag')."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for split, n in (("train", 60), ("t10k", 20)):
        labels = rng.choice([0, 7, 8], size=n)
        images = np.zeros((n, 28, 28), np.uint8)
        yy, xx = np.mgrid[:28, :28]
        for i, label in enumerate(labels):
            if label == 7:
                images[i, 16:24, 3:25] = 220
            elif label == 8:
                images[i][(yy - 14) ** 2 + (xx - 14) ** 2 < 64] = 200
            else:
                images[i, 4:24, 10:18] = 180
        _write_idx(src / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(src / f"{split}-labels-idx1-ubyte.gz", labels)
    return src


def test_export_writes_products_on_white_with_labels(fake_source: Path, tmp_path: Path) -> None:
    out = fashion_mnist.export(
        tmp_path / "out", source=fake_source, classes=("sneaker", "bag"), size=64, val=5
    )
    meta = json.loads((out / "labels.json").read_text())
    assert meta["classes"] == ["sneaker", "bag"]
    assert set(meta["labels"].values()) == {"sneaker", "bag"}  # t-shirts were left out
    counts = {split: len(list((out / split).glob("*.png"))) for split in ("train", "val", "test")}
    assert counts["val"] == 5 and counts["train"] > 0 and counts["test"] > 0
    name = next(iter(meta["labels"]))
    with Image.open(out / name) as image:
        assert image.size == (64, 64)
        pixels = np.asarray(image.convert("L"))
    assert pixels[0, 0] == 255 and pixels.min() < 100  # white background, dark product


def test_export_errors(fake_source: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown classes \\['boots'\\]"):
        fashion_mnist.export(tmp_path / "o", source=fake_source, classes=("boots",))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        fashion_mnist.export(tmp_path / "o", source=tmp_path / "nowhere")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="not an IDX file"):
        fashion_mnist.read_idx(tmp_path / "bad.gz")


def test_classifier_learns_and_round_trips(fake_source: Path, tmp_path: Path) -> None:
    data = fashion_mnist.export(
        tmp_path / "data", source=fake_source, classes=("sneaker", "bag"), size=32, val=2
    )
    config = classifier.train(
        data, tmp_path / "clf", steps=60, batch_size=16, width=8, size=32, seed=0
    )
    assert config["test_accuracy_real"] > 0.9  # bars vs discs: easy, and chance is 0.5
    model, loaded = classifier.load_classifier(tmp_path / "clf")
    assert loaded["classes"] == ["sneaker", "bag"]
    paths, _, labels = classifier.load_labelled(data, "test")
    predicted = classifier.predict(model, [classifier.read_image(p) for p in paths], 32)
    assert (predicted.numpy() == np.array(labels)).mean() == pytest.approx(
        config["test_accuracy_real"]
    )


def test_evaluate_reports_classifier_accuracy(fake_source: Path, tmp_path: Path) -> None:
    from pix2pix.hub import Pix2PixGenerator, save_generator
    from train.evaluate import evaluate

    data = fashion_mnist.export(
        tmp_path / "data", source=fake_source, classes=("sneaker", "bag"), size=32, val=2
    )
    config = classifier.train(
        data, tmp_path / "clf", steps=60, batch_size=16, width=8, size=32, seed=0
    )
    save_generator(
        Pix2PixGenerator("unet", {"ngf": 4, "num_downs": 5}, {"input_kind": "edges"}),
        tmp_path / "g",
    )
    results = evaluate(
        tmp_path / "g", data, split="test", size=32, classifier=tmp_path / "clf", progress=False
    )
    cls = results["classification"]
    assert cls["classes"] == ["sneaker", "bag"]
    # The real photos go through the same decoding and resizing as in the classifier's own test.
    assert cls["real_accuracy"] == pytest.approx(config["test_accuracy_real"])
    assert 0.0 <= cls["generated_accuracy"] <= 1.0
