"""Measurements behind the line-art section of docs/RESULTS.md: doodle scores and val curves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from pix2pix.hub import Pix2PixGenerator
from pix2pix.networks import init_weights
from train.curves import curve, snapshots
from train.doodles import DOODLES, draw_doodle
from train.report_lineart import doodle_scores


def _circle(fill: str | None, outside: str = "white") -> Image.Image:
    img = Image.new("RGB", (128, 128), outside)
    ImageDraw.Draw(img).ellipse((24, 24, 104, 104), fill=fill, outline="black", width=5)
    return img


def test_doodle_scores_tell_filled_from_empty_and_leaking() -> None:
    drawing = _circle(None)
    filled = doodle_scores(drawing, _circle("#e53935"))
    assert filled["fill"] > 0.95 and filled["leak"] < 0.01 and filled["lines_kept"] > 0.95
    assert filled["colourfulness"] > 20
    empty = doodle_scores(drawing, drawing)
    assert empty["fill"] < 0.01 and empty["colourfulness"] == pytest.approx(0, abs=1e-6)
    leaking = doodle_scores(drawing, _circle("#e53935", outside="#e53935"))
    assert leaking["leak"] > 0.95
    lost = doodle_scores(drawing, Image.new("RGB", (128, 128), "#e53935"))
    assert lost["lines_kept"] < 0.05


def test_every_doodle_draws_inside_the_canvas() -> None:
    for name, strokes in DOODLES.items():
        pts = np.array([p for s in strokes for p in s])
        assert pts.min() >= 0.02 and pts.max() <= 0.98, name
        ink = (np.asarray(draw_doodle(strokes, 256, 7).convert("L")) < 128).mean()
        assert 0.02 < ink < 0.25, (name, ink)


def _tiny_dataset(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for side in ("A", "B"):
            (root / split / side).mkdir(parents=True)
        for i in range(3):
            a = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(a).save(root / split / "A" / f"{i}.png")
            Image.fromarray(255 - a).save(root / split / "B" / f"{i}.png")


def test_curves_evaluate_every_kept_snapshot_once(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    _tiny_dataset(data)
    (run / "snapshots").mkdir(parents=True)
    for step in (500, 1000, 2000):
        G = Pix2PixGenerator("unet_128", {"ngf": 4, "num_downs": 5})
        init_weights(G.net)
        save_file(G.state_dict(), run / "snapshots" / f"step-{step:09d}.safetensors")
    assert [s for s, _ in snapshots(run)] == [500, 1000, 2000]
    entries = curve(run, data, every=1000)
    assert [e["step"] for e in entries] == [1000, 2000]
    assert all(0 < e["l1"] < 2 and "colourfulness_median" in e for e in entries)
    saved = json.loads((run / "curve-val.json").read_text())
    assert saved == json.loads(json.dumps(entries))
    # A second call reuses what was computed: the file is not rewritten with other values.
    (run / "snapshots" / "step-000001000.safetensors").unlink()
    again = curve(run, data, every=1000)
    assert [e["step"] for e in again] == [2000]
    assert again[0] == entries[1]
    with pytest.raises(FileNotFoundError, match="no step"):
        curve(tmp_path / "nothing", data)
