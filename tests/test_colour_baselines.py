"""The one-colour baselines of the line-art metric: known answers on synthetic colours and on a
tiny dataset written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from train import colour_baselines as B
from train import regions as R


def test_geometric_median_has_known_answers() -> None:
    square = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [2, 2, 0]], float)
    assert np.allclose(B.geometric_median(square), [1, 1, 0], atol=1e-6)
    # three points on a line: the middle one, not the mean
    line = np.array([[0, 0, 0], [1, 0, 0], [10, 0, 0]], float)
    assert np.allclose(B.geometric_median(line), [1, 0, 0], atol=1e-4)
    assert B.geometric_median(line)[0] < line.mean(0)[0]


def test_the_per_channel_rgb_median_of_emoji_colours_is_a_yellow() -> None:
    # red, green, yellow, orange, white: high red and green, low blue
    rgb = np.array([[220, 40, 40], [60, 180, 60], [250, 210, 40], [245, 150, 30], [255, 255, 255]])
    lab = R.to_lab(rgb.astype(np.uint8)[None])[0]
    colours = B.constants(lab, rgb.astype(float))
    median = colours["per-channel median of sRGB (L1 on RGB pixels)"]
    assert R.hue_name(B._rgb_of(median)) in ("yellow", "orange")
    assert np.allclose(median, R.to_lab(np.array([[[245, 180, 40]]], np.uint8))[0, 0])


def test_score_and_the_best_constant() -> None:
    regions = R.to_lab(np.array([[[255, 0, 0], [255, 0, 0], [0, 0, 255]]], np.uint8))[0]
    red = regions[0]
    s = B.score(red, regions)
    assert s["median_de"] == 0.0 and s["within_10"] == pytest.approx(2 / 3)
    assert np.allclose(B.best_constant(regions), red)  # pure red lies on the grid


def _drawing(folder: Path, name: str, fill: tuple[int, int, int], shape: str = "square") -> None:
    """A black outline on white (A) and the same shape filled with ``fill`` (B)."""
    for side, inside in (("A", "white"), ("B", fill)):
        img = Image.new("RGB", (256, 256), "white")
        draw = ImageDraw.Draw(img)
        if shape == "square":
            draw.rectangle((60, 60, 196, 196), fill=inside, outline="black", width=4)
        elif shape == "circle":
            draw.ellipse((40, 40, 216, 216), fill=inside, outline="black", width=4)
        else:
            draw.polygon([(128, 30), (30, 220), (226, 220)], fill=inside, outline="black", width=4)
        (folder / side).mkdir(parents=True, exist_ok=True)
        img.save(folder / side / name)


def test_the_table_on_a_tiny_dataset(tmp_path: Path) -> None:
    colours = {"a.png": (220, 40, 40), "b.png": (250, 210, 40), "c.png": (60, 180, 60)}
    shapes = {"a.png": "square", "b.png": "circle", "c.png": "triangle"}
    manifest = []
    for name, fill in colours.items():
        _drawing(tmp_path / "train", name, fill, shapes[name])
        manifest.append({"split": "train", "files": [name]})
    _drawing(tmp_path / "test", "t.png", (250, 210, 40))
    manifest.append({"split": "test", "files": ["t.png"]})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    lab, rgb = B.region_colours(tmp_path, "train")
    assert len(lab) == 3 and np.allclose(sorted(rgb[:, 0]), [60, 220, 250], atol=2)
    text = B.table(tmp_path)
    assert "1 test regions; colours from 3 training regions" in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[4:9]}
    assert len(rows) == 5
    # the oracle paints the one test region in its own colour, up to the grid's step
    oracle = next(v for k, v in rows.items() if k.startswith("least median"))
    assert float(oracle.split(" | ")[3]) < 5
    # the yellow test square is coloured like the training square, red
    r = B.retrieval(tmp_path)
    red = R.to_lab(np.array([[[220, 40, 40]]], np.uint8))[0, 0]
    yellow = R.to_lab(np.array([[[250, 210, 40]]], np.uint8))[0, 0]
    assert r["median_de"] == pytest.approx(float(R.delta_e(red, yellow)), abs=2)
    assert r["within_10"] == 0.0 and "`retrieval`): median dE76" in text


def test_the_command_names_a_missing_dataset(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        B.main(["--data", str(tmp_path)])
    assert "has no manifest.json" in capsys.readouterr().err
