"""The OpenMoji line-art -> colour dataset builder, on tiny SVG pairs written by the test."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train import metrics
from train.data import find_dataset
from train.datasets import openmoji as om

pytest.importorskip("resvg_py", reason="the OpenMoji builder renders with resvg-py")

# A square outline with a circle inside; the colour version fills both (the fills are drawn
# first, the outlines on top, as OpenMoji does). The circle's centre moves with ``dx``.
_BLACK = """<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><g id="line">
<rect x="10" y="10" width="52" height="52" fill="none" stroke="#000" stroke-width="2"/>
<circle cx="{cx}" cy="36" r="12" fill="none" stroke="#000" stroke-width="2"/></g></svg>"""
_COLOR = """<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg"><g id="color">
<rect x="10" y="10" width="52" height="52" fill="{fill}"/>
<circle cx="{cx}" cy="36" r="12" fill="#d22f27"/></g><g id="line">
<rect x="10" y="10" width="52" height="52" fill="none" stroke="#000" stroke-width="2"/>
<circle cx="{cx}" cy="36" r="12" fill="none" stroke="#000" stroke-width="2"/></g></svg>"""

# code -> (circle centre, square fill, group). 1F431 is held out (test split). 1F3C3-1F3FB is a
# skin-tone variant of 1F3C3 with the same line art in another colour: ambiguous, dropped. The
# flag is left out by group.
_EMOJI = {
    "1F431": (30, "#f4aa41", "animals-nature"),
    "1F3C3": (36, "#fadcbc", "people-body"),
    "1F3C3-1F3FB": (36, "#a57939", "people-body"),
    "1F1E6-1F1E8": (40, "#1e50a0", "flags"),
    **{f"1F6{i:02X}": (24 + i, "#61b2e4", "travel-places") for i in range(16)},
}


def _package(root: Path) -> Path:
    pkg = root / "package"
    (pkg / "black" / "svg").mkdir(parents=True)
    (pkg / "color" / "svg").mkdir(parents=True)
    (pkg / "data").mkdir()
    catalogue = []
    for order, (code, (cx, fill, group)) in enumerate(_EMOJI.items(), start=1):
        (pkg / "black" / "svg" / f"{code}.svg").write_text(_BLACK.format(cx=cx))
        (pkg / "color" / "svg" / f"{code}.svg").write_text(_COLOR.format(cx=cx, fill=fill))
        catalogue.append(
            {"hexcode": code, "annotation": f"emoji {code}", "group": group, "order": order}
        )
    (pkg / "data" / "openmoji.json").write_text(json.dumps(catalogue))
    return pkg


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[om.Record]]:
    root = tmp_path_factory.mktemp("openmoji")
    pkg = _package(root)
    out = root / "data"
    records = om.build(pkg, out, size=64, widths=(1.0, 0.5, 2.0), val=0.25, test=0.25)
    return out, records


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im).astype(np.int16)


def test_splits_are_made_by_base_emoji_and_holdouts_go_to_test(built) -> None:
    out, records = built
    by_code = {r.code: r for r in records}
    assert by_code["1F431"].split == "test"
    for r in records:
        for name in r.files:
            assert (out / r.split / "A" / name).is_file()
            assert (out / r.split / "B" / name).is_file()
            for other in {"train", "val", "test"} - {r.split}:
                assert not (out / other / "A" / name).exists()
    assert {r.split for r in records} == {"train", "val", "test"}
    for split in ("train", "val", "test"):
        spec = find_dataset(out, split=split)
        assert spec.format == "paired"
        assert len(spec.files) == sum(len(r.files) for r in records if r.split == split)


def test_variants_stay_together_and_ambiguous_line_art_is_dropped(built) -> None:
    _, records = built
    codes = {r.code for r in records}
    assert "1F3C3" in codes  # the first of the set (OpenMoji's order) is kept
    assert "1F3C3-1F3FB" not in codes  # same lines, another colouring
    assert "1F1E6-1F1E8" not in codes  # flags are left out
    base = om.Emoji("1F3C3-1F3FB-200D-2640-FE0F", "", "", 0).base
    assert base == "1F3C3"
    seed = {"val": 0.3, "test": 0.3}
    assert om.split_of(om.Emoji(base, "", "", 0), **seed) == om.split_of(
        om.Emoji("1F3C3-1F3FB-200D-2640-FE0F", "", "", 0), **seed
    )


def test_line_art_and_colour_are_aligned(built) -> None:
    out, records = built
    for r in records:
        name = f"{r.code}.png"
        a, b = _rgb(out / r.split / "A" / name), _rgb(out / r.split / "B" / name)
        assert a.shape == b.shape == (64, 64, 3)
        lines = a.max(axis=2) < 60
        assert lines.sum() > 100
        # Every pixel that is a line in A is a line (dark) in B too, and B has colour elsewhere.
        assert (b.max(axis=2)[lines] < 100).mean() > 0.97
        assert metrics.colourfulness(torch.from_numpy(b).permute(2, 0, 1)[None].float()) > 20
        # A is black on white: no colour at all.
        assert np.abs(a - a.mean(axis=2, keepdims=True)).max() <= 2


def test_training_pairs_get_width_variants_with_gaps_only_in_line_art(built) -> None:
    out, records = built
    train = [r for r in records if r.split == "train"]
    assert train
    for r in train:
        assert r.files == [f"{r.code}.png", f"{r.code}_w0.5.png", f"{r.code}_w2.png"]
        ink = {f: (_rgb(out / "train" / "A" / f).max(axis=2) < 128).sum() for f in r.files}
        assert ink[r.files[1]] < ink[r.files[0]] < ink[r.files[2]]
    for r in records:
        if r.split != "train":
            assert r.files == [f"{r.code}.png"]
    # Gaps: the thick variant's line art has white where its colour image has outline.
    r = train[0]
    a = _rgb(out / "train" / "A" / r.files[2]).max(axis=2)
    b = _rgb(out / "train" / "B" / r.files[2]).max(axis=2)
    assert ((b < 60) & (a > 200)).sum() > 20


def test_licence_and_manifest(built) -> None:
    out, records = built
    licence = (out / "licence.txt").read_text()
    assert "OpenMoji (openmoji.org), CC BY-SA 4.0" in licence
    assert "same licence" in licence
    manifest = json.loads((out / "manifest.json").read_text())
    assert [m["code"] for m in manifest] == [r.code for r in records]
    assert all(m["name"].startswith("emoji ") for m in manifest)
    # Each image's set and licence, as other sets added to the same dataset record theirs.
    assert {(m["set"], m["licence"]) for m in manifest} == {("openmoji", "CC-BY-SA-4.0")}


def test_cli_reads_the_npm_tarball(tmp_path: Path) -> None:
    pkg = _package(tmp_path / "src")
    tgz = tmp_path / "openmoji-17.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(pkg, arcname="package")
    out = tmp_path / "out"
    om.main(["--out", str(out), "--source", str(tgz), "--size", "32", "--workers", "1"])
    assert (out / "licence.txt").is_file()
    assert len(list(out.glob("*/A/*.png"))) == len(list(out.glob("*/B/*.png"))) > 10


def test_not_openmoji_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an unpacked OpenMoji package"):
        om.build(tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="widths"):
        om.build(_package(tmp_path / "p"), tmp_path / "out", widths=(0.0,))


def test_scale_strokes_scales_attributes_and_css() -> None:
    svg = '<path stroke-width="2"/><g style="stroke-width:1.5;fill:none"/>'
    scaled = '<path stroke-width="4"/><g style="stroke-width:3;fill:none"/>'
    assert om.scale_strokes(svg, 2.0) == scaled


def test_colourfulness_matches_its_definition() -> None:
    grey = torch.full((1, 3, 8, 8), 128.0)
    assert metrics.colourfulness(grey).item() == 0.0
    # Half pure red, half pure green: rg = +-255 (std 255, mean 0), yb = 127.5 (std 0).
    img = torch.zeros(1, 3, 8, 8)
    img[0, 0, :, :4] = 255
    img[0, 1, :, 4:] = 255
    expected = 255.0 + 0.3 * 127.5
    assert metrics.colourfulness(img).item() == pytest.approx(expected)
    with pytest.raises(ValueError, match="RGB"):
        metrics.colourfulness(torch.zeros(1, 1, 4, 4))
