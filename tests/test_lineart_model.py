"""The bundled line-art -> colour model (checkpoints/lineart2color): loads strictly, carries its
licence and every data set's credit, colours a drawing made here (not from its dataset) without
losing the lines, and follows a colour dab inside a shape without leaking it across a line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from pix2pix.hub import load_generator
from pix2pix.inference import Translator
from train import metrics
from train.doodles import DOODLES, draw_doodle

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "checkpoints" / "lineart2color"
CREDIT = "OpenMoji (openmoji.org), CC BY-SA 4.0"
# Every set the model was trained on, as its notes and card credit it (train/recipes/lineart.sh).
CREDITS = (
    CREDIT,
    "Fluent Emoji Flat (Microsoft Corporation), MIT",
    "Twemoji (Twitter), CC BY 4.0",
    "Noto Emoji (Google Inc), Apache 2.0",
    "Emoji One, CC BY 4.0",
)
PEN = 7  # models.toml's pen width for this model, in model pixels


@pytest.fixture(scope="module")
def translate() -> Translator:
    return Translator(load_generator(MODEL))


def test_loads_strictly_with_its_licence_and_credit() -> None:
    config = json.loads((MODEL / "config.json").read_text())
    assert config["architecture"] == "unet_256"
    assert config["task"]["license"] == "cc-by-sa-4.0"
    assert config["task"]["input_kind"] == "edges"
    assert config["task"]["train_size"] == 256
    assert config["task"]["hints"] is True  # the canvas shows its colour pen
    card = (MODEL / "README.md").read_text()
    assert "license: cc-by-sa-4.0" in card
    for credit in CREDITS:
        assert credit in config["task"]["notes"] and credit in card, credit
    assert "same licence" in card
    assert "coloured dabs inside a shape choose its colour" in card
    # Every tensor in the file is used and every parameter is in the file: a strict load.
    from safetensors.torch import load_file

    G = load_generator(MODEL)
    stored = load_file(MODEL / "model.safetensors")
    assert set(stored) == set(G.state_dict())
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 50 * 2**20


@pytest.mark.parametrize(
    "name",
    [
        "cat-face",
        "sneaker",
        # The house was a strict xfail from session 9 to 11 (colourfulness 10.9); session 12's
        # model gives 14.5: still pale walls, just over the bar (docs/RESULTS.md).
        "house",
        "fish",
    ],
)
def test_colours_a_freehand_drawing_and_keeps_its_lines(translate: Translator, name: str) -> None:
    drawing = draw_doodle(DOODLES[name], 256, PEN)
    out = translate(drawing)
    assert out.size == drawing.size and out.mode == "RGB"
    a = np.asarray(drawing).astype(np.float64)
    b = np.asarray(out).astype(np.float64)
    lines = a.max(axis=2) < 60
    # The lines stay dark...
    assert np.median(b.max(axis=2)[lines]) < 110, "the drawing's lines were not kept"
    # ...and the output is in colour, not grey.
    m = metrics.colourfulness(torch.from_numpy(b).permute(2, 0, 1)[None]).item()
    assert m > 12, f"colourfulness {m:.1f}: the output is nearly grey"


def _two_rooms() -> tuple[Image.Image, np.ndarray]:
    """A box split in two by a line, as drawn with the pen (7 px), and its two regions."""
    from train.regions import find_regions

    drawing = Image.new("RGB", (256, 256), "white")
    draw = ImageDraw.Draw(drawing)
    draw.rectangle((40, 60, 216, 196), outline="black", width=PEN)
    draw.line((128, 60, 128, 196), fill="black", width=PEN)
    regions = find_regions(np.asarray(drawing))
    assert regions.count == 2
    return drawing, regions


# Blue and red, the colour pen's first swatches. A green dab (92, 158, 49) moves this room only
# 9 dE toward it with the model shipped in session 8 (docs/RESULTS.md): not asserted here.
@pytest.mark.parametrize("colour", [(30, 80, 160), (210, 47, 39)])
def test_a_dab_colours_its_own_shape_and_not_its_neighbour(
    translate: Translator, colour: tuple[int, int, int]
) -> None:
    from train.regions import delta_e, region_means, to_lab

    drawing, regions = _two_rooms()
    dabbed = drawing.copy()
    ImageDraw.Draw(dabbed).ellipse((74, 118, 94, 138), fill=colour)  # a dot in the left room
    want = to_lab(np.array([colour], np.uint8))[0]
    before = delta_e(region_means(np.asarray(translate(drawing)), regions), want)
    after = delta_e(region_means(np.asarray(translate(dabbed)), regions), want)
    left, right = 0 if regions.full[128, 84] == 1 else 1, 1 if regions.full[128, 84] == 1 else 0
    assert regions.full[128, 84] == left + 1
    moved, leaked = before[left] - after[left], before[right] - after[right]
    assert moved > 15, f"the dabbed room moved {moved:.1f} toward the dab (dE {before} -> {after})"
    assert leaked < moved / 2, f"the other room moved {leaked:.1f}, the dabbed one {moved:.1f}"


def test_upload_keeps_a_drawing_with_dabs_as_it_is(tmp_path: Path) -> None:
    """The Upload tab turns photos into edge maps for line-art models, but a drawing (with
    colour dabs) is the model's input already: its colours and lines are kept."""
    from pix2pix.app import App, create_store, load_registry
    from pix2pix.hub import save_generator
    from tests.app_fixtures import tiny_model

    save_generator(tiny_model("edges", seed=1), tmp_path / "edges")
    (tmp_path / "registry.toml").write_text(
        '[[model]]\nid = "art"\nname = "Art"\npath = "edges"\ntask = "t"\ninput = "edges"\n',
        encoding="utf-8",
    )
    store = create_store(load_registry(tmp_path / "registry.toml"), remote="skip")
    store.wait(60)
    app = App(store)
    drawing, _ = _two_rooms()
    ImageDraw.Draw(drawing).ellipse((74, 118, 94, 138), fill=(30, 80, 160))
    path = tmp_path / "drawing.png"
    drawing.save(path)
    mode = {"model": "art", "edges": True}
    with Image.open(app.edges(str(path), "art", "canny", True, 0, 0, mode)) as kept:
        pixels = np.asarray(kept.convert("RGB").resize((256, 256), Image.Resampling.NEAREST))
    assert tuple(pixels[128, 84]) == (30, 80, 160)  # the dab, as drawn
    assert pixels[128, 128].max() < 60  # the middle line, still black
    photo = tmp_path / "photo.png"
    _photo().save(photo)  # a photo still becomes an edge map: black and white only
    with Image.open(app.edges(str(photo), "art", "canny", True, 0, 0, mode)) as edges:
        assert set(np.unique(np.asarray(edges.convert("L")))) <= {0, 255}


@pytest.mark.xfail(
    strict=True,
    reason="known weakness: a blank page (which the canvas never sends: it shows nothing until "
    "something is drawn) comes out as a blotchy wash from the borders (mean 186 with session "
    "10's model; session 9's 202, just above this bound): an all-white input has no variance "
    "for BatchNorm's per-image statistics, and the training data has no blank page",
)
def test_blank_page_stays_blank(translate: Translator) -> None:
    out = np.asarray(translate(Image.new("RGB", (256, 256), "white"))).astype(np.float64)
    assert out.mean() > 200, "an empty drawing should give a (nearly) empty picture"


def _stroke_width(edge_map: Image.Image) -> float:
    """Median width of the lines of a black-on-white map: twice the distance to the background
    at the lines' centres (local maxima of the distance transform)."""
    import cv2

    lines = (np.asarray(edge_map.convert("L")) < 128).astype(np.uint8)
    dist = cv2.distanceTransform(lines, cv2.DIST_L2, 5)
    ridge = (dist > 0) & (dist >= cv2.dilate(dist, np.ones((3, 3), np.uint8)))
    return float(np.median(2 * dist[ridge]))


def _photo() -> Image.Image:
    """A synthetic 'photo': a shaded disc and a box on a gradient, with some noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:300, :400]
    img = np.stack([120 + 0.2 * x, 140 + 0.1 * y, 160 - 0.1 * x], -1)
    img[(x - 150) ** 2 + (y - 150) ** 2 < 80**2] = [200, 60, 40]
    img[60:240, 260:360] = [40, 90, 190]
    img += rng.normal(0, 4, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def test_upload_edges_are_as_wide_as_the_models_pen(tmp_path: Path) -> None:
    from pix2pix.app import App, create_store, load_registry
    from pix2pix.hub import save_generator
    from tests.app_fixtures import tiny_model

    save_generator(tiny_model("edges", seed=1), tmp_path / "edges")
    (tmp_path / "registry.toml").write_text(
        '[[model]]\nid = "thin"\nname = "Thin"\npath = "edges"\ntask = "t"\ninput = "edges"\n\n'
        '[[model]]\nid = "wide"\nname = "Wide"\npath = "edges"\ntask = "t"\ninput = "edges"\n'
        "pen = 7\n",
        encoding="utf-8",
    )
    store = create_store(load_registry(tmp_path / "registry.toml"), remote="skip")
    store.wait(60)
    app = App(store)
    photo = tmp_path / "photo.png"
    _photo().save(photo)
    widths = {}
    for model in ("thin", "wide"):
        with Image.open(app.edges(str(photo), model, "canny", True, 0, 0)) as edges:
            assert edges.size == (128, 96)  # the tiny model's training size is 128
            widths[model] = _stroke_width(edges)
    assert widths["thin"] <= 2.5 and 5 <= widths["wide"] <= 10, widths


def test_about_credits_every_data_set_and_says_why_the_licence(tmp_path: Path) -> None:
    """The app's About tab names each data set with its licence, and why the weights are
    CC BY-SA 4.0 (OpenMoji's share-alike), as the model card does."""
    from pix2pix.app import App, create_store, load_registry

    (tmp_path / "registry.toml").write_text(
        f'[[model]]\nid = "lineart2color"\nname = "Line art"\npath = "{MODEL.as_posix()}"\n'
        'task = "t"\ninput = "edges"\n',
        encoding="utf-8",
    )
    store = create_store(load_registry(tmp_path / "registry.toml"), remote="skip")
    store.wait(60)
    about = App(store).about()
    credits = about[about.index("### Data credits and licences") :]
    for credit in CREDITS:
        assert credit in credits, credit
    assert "same licence as OpenMoji's data, CC BY-SA 4.0 (share alike)" in credits
