"""Test data for the app tests: tiny models, a registry with every kind of entry, sketches and
label maps. Serving the app and driving chromium live in bench/serving.py and bench/chromium.py
(the benchmarks use them too, and bench/ never imports tests/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator, save_generator

PALETTE = [[255, 255, 255], [200, 30, 30], [30, 30, 200]]
CLASSES = ["background", "wall", "window"]


def tiny_model(kind: str, *, seed: int, patch: int | None = None) -> Pix2PixGenerator:
    """A small unet_128 (ngf 4) with task metadata, randomly initialised."""
    torch.manual_seed(seed)
    task: dict[str, Any] = {"input_kind": kind, "train_size": 128, "dataset": "test data"}
    if kind == "labels":
        task.update(palette=PALETTE, class_names=CLASSES, patch=patch, license="CC0")
    model = Pix2PixGenerator("unet_128", {"ngf": 4}, task)
    networks.init_weights(model.net)
    return model.eval()


def write_test_registry(folder: Path) -> Path:
    """Save tiny models and write a registry with every kind of entry; returns its path.

    Entries: an edges model (with examples), a photo model, a group of three label-map variants,
    a missing folder, a Hub repo that is not in the cache, and a URL that is not cached.
    """
    folder.mkdir(parents=True, exist_ok=True)
    save_generator(tiny_model("edges", seed=1), folder / "models" / "edges")
    save_generator(tiny_model("photo", seed=2), folder / "models" / "photo")
    for i, patch in enumerate((1, 70, None)):
        save_generator(tiny_model("labels", seed=10 + i, patch=patch), folder / "models" / f"l{i}")
    examples = folder / "examples" / "edges"
    examples.mkdir(parents=True, exist_ok=True)
    for i in range(2):
        sketch_image(128, seed=i).save(examples / f"{i}.png")
    (folder / "registry.toml").write_text(
        f"""
[[model]]
id = "test-edges"
name = "Test edges"
path = "models/edges"
task = "edges -> noise"
input = "edges"
examples = ["examples/edges/*.png", "examples/none/*.png"]

[[model]]
id = "test-photo"
name = "Test photo"
path = "models/photo"
task = "photo -> noise"

[[model]]
id = "test-labels-a"
name = "Test labels A"
path = "models/l0"
task = "labels -> noise"
group = "test group"
variant = "1x1 variant"
fill = "background"

[[model]]
id = "test-labels-b"
name = "Test labels B"
path = "models/l1"
task = "labels -> noise"
group = "test group"
variant = "70x70 variant"

[[model]]
id = "test-labels-c"
name = "Test labels C"
path = "models/l2"
task = "labels -> noise"
group = "test group"
variant = "L1 variant"

[[model]]
id = "missing-folder"
name = "Missing folder"
path = "models/not-there"
task = "nothing"
input = "edges"

[[model]]
id = "uncached-hub"
name = "Uncached Hub model"
hub = "nobody-{os.getpid()}/not-in-cache"
revision = "main"
task = "nothing"
input = "photo"

[[model]]
id = "uncached-url"
name = "Uncached URL"
url = "http://127.0.0.1:9/not-there.pth"
task = "nothing"
input = "photo"
""",
        encoding="utf-8",
    )
    return folder / "registry.toml"


def sketch_image(size: int = 128, seed: int = 0) -> Image.Image:
    """A white image with a few black strokes (an edge map)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        points = [tuple(int(v) for v in rng.integers(8, size - 8, 2)) for _ in range(3)]
        draw.line(points, fill="black", width=2)
    return image


def label_image(size: int = 128) -> Image.Image:
    """A label map in the test palette: a wall with two windows."""
    image = Image.new("RGB", (size, size), tuple(PALETTE[0]))
    draw = ImageDraw.Draw(image)
    draw.rectangle([10, 10, size - 10, size - 10], fill=tuple(PALETTE[1]))
    draw.rectangle([24, 24, 50, 60], fill=tuple(PALETTE[2]))
    draw.rectangle([70, 24, 96, 60], fill=tuple(PALETTE[2]))
    return image
