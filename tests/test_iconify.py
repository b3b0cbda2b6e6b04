"""Line art derived from flat colour emoji (train/datasets/iconify.py), on tiny Iconify packages
written by the test (no npm)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from train.datasets import iconify as ic

pytest.importorskip("resvg_py", reason="the builders render with resvg-py")

# A yellow face with two dark eyes and an orange nose; a square in two flat colours.
_FACE = (
    '<circle cx="16" cy="16" r="13" fill="#ffcc4d"/><circle cx="11" cy="13" r="2" fill="#202020"/>'
    '<circle cx="21" cy="13" r="2" fill="#202020"/><rect x="13" y="18" width="6" height="4" '
    'fill="#f4900c"/>'
)
_SQUARES = '<rect x="4" y="4" width="12" height="24" fill="#3b88c3"/><rect x="16" y="4" width="12" height="24" fill="#dd2e44"/>'  # noqa: E501
_GRADIENT = (
    '<defs><linearGradient id="g"><stop offset="0" stop-color="#f00"/><stop offset="1" '
    'stop-color="#00f"/></linearGradient></defs><rect width="32" height="32" fill="url(#g)"/>'
)


def _package(root: Path, prefix: str, licence: str | None = "MIT") -> Path:
    """An unpacked @iconify-json/<prefix> package."""
    pkg = root / prefix / "package"
    pkg.mkdir(parents=True)
    icons = {
        "cat-face": {"body": _FACE},
        "blue-and-red": {"body": _SQUARES},
        "waving-hand-medium-skin-tone": {"body": _FACE},
        "flag-france": {"body": _SQUARES},
        "rainbow-gradient": {"body": _GRADIENT},
        "empty": {"body": '<rect x="0" y="0" width="1" height="1" fill="#fefefe"/>'},
        "red-and-blue": {
            "body": _SQUARES.replace("#3b88c3", "#dd2e45").replace("#dd2e44", "#3b88c3")
        },
        **{
            f"thing-{i}": {
                "body": _SQUARES.replace(
                    'width="12" height="24"', f'width="{4 + i / 2:g}" height="24"', 1
                )
            }
            for i in range(12)
        },
    }
    (pkg / "icons.json").write_text(
        json.dumps({"prefix": prefix, "icons": icons, "width": 32, "height": 32})
    )
    info = {"name": f"{prefix} set", "author": {"name": "Someone"}}
    if licence:
        info["license"] = {"title": licence, "spdx": licence}
    (pkg / "info.json").write_text(json.dumps(info))
    return pkg


def _openmoji_manifest(into: Path) -> None:
    """A line-art dataset with OpenMoji's manifest: "cat face" is a test concept there."""
    into.mkdir(parents=True)
    records = [
        {"code": "1F431", "name": "cat face", "group": "animals-nature", "split": "test",
         "files": ["1F431.png"], "set": "openmoji", "licence": "CC-BY-SA-4.0"},
        {"code": "1F7E6", "name": "blue and red", "group": "symbols", "split": "val",
         "files": ["1F7E6.png"]},
    ]  # fmt: skip
    (into / "manifest.json").write_text(json.dumps(records))
    (into / "licence.txt").write_text("Data: OpenMoji (openmoji.org), CC BY-SA 4.0\n")


def test_line_art_is_the_colour_regions_boundaries_and_thin_dark_marks() -> None:
    made = ic.pair(_FACE, 32, 32, 128, np.random.default_rng(0), gaps=False)
    assert made is not None
    art, target = (np.asarray(img) for img in made[:2])
    dark = art.min(axis=2) < 128
    # Black lines on white only; the target is the colour render with the same lines in black.
    assert set(np.unique(art)) <= {0, 255}
    assert (target[dark] == 0).all()
    assert not dark[64, 64]  # the middle of the face is not a line
    assert dark[64, 8:16].any()  # the face's outline (radius 13 of 32 -> x = 12 px)
    # The nose (orange on yellow, y 72-88 px) is outlined: a boundary between two fills.
    assert dark[70:75, 56:72].any()
    # An eye (a dark disc of radius 8 px: an area, not a thin mark) gives only its outline.
    assert dark[52, 34:39].any() and not dark[52, 44]
    # The face is yellow inside, in the target.
    r, g, b = target[64, 64].astype(int)
    assert r > 200 and g > 150 and b < 120
    # The line art is aligned with the target's fills: most non-line target pixels of the face
    # are yellow, and the lines separate the face from the paper.
    outside = ~dark & (target.min(axis=2) > 240)
    assert outside[0, 0] and outside.mean() > 0.2


def test_gaps_only_open_the_line_art() -> None:
    closed = ic.pair(_SQUARES, 32, 32, 128, np.random.default_rng(1), gaps=False)
    opened = ic.pair(_SQUARES, 32, 32, 128, np.random.default_rng(1), gaps=True)
    assert closed is not None and opened is not None
    assert closed[2] == opened[2]  # the lines' hash is taken before the gaps
    a0, a1 = np.asarray(closed[0]), np.asarray(opened[0])
    assert (a1 >= a0).all() and (a1 != a0).any()  # white cut into black only
    np.testing.assert_array_equal(np.asarray(closed[1]), np.asarray(opened[1]))


def test_usable_leaves_out_gradients_variants_and_flags() -> None:
    assert ic.usable("cat-face", _FACE)
    assert not ic.usable("rainbow-gradient", _GRADIENT)
    assert not ic.usable("waving-hand-medium-skin-tone", _FACE)
    assert not ic.usable("flag-france", _SQUARES)


def test_add_set_splits_by_concept_and_records_set_and_licence(tmp_path: Path) -> None:
    into = tmp_path / "lineart"
    _openmoji_manifest(into)
    pkg = _package(tmp_path / "src", "twemoji", "CC-BY-4.0")
    records = ic.add_set(ic.read_package(pkg), into, size=64, val=0.2, test=0.2)
    names = {r["code"]: r for r in records}
    # Left out: gradient, skin tone, flag, empty line art, and red-and-blue: the same lines as
    # blue-and-red in other colours.
    assert set(names) == {"cat-face", "blue-and-red", *(f"thing-{i}" for i in range(12))}
    assert names["cat-face"]["split"] == "test"  # OpenMoji's split for the concept "cat face"
    assert names["blue-and-red"]["split"] == "val"
    for r in records:
        assert r["set"] == "twemoji" and r["licence"] == "CC-BY-4.0"
        (file,) = r["files"]
        assert file == f"twemoji__{r['code']}.png"
        for side in ("A", "B"):
            with Image.open(into / r["split"] / side / file) as img:
                assert img.size == (64, 64) and img.mode == "RGB"
    manifest = json.loads((into / "manifest.json").read_text())
    assert {r.get("set", "openmoji") for r in manifest} == {"openmoji", "twemoji"}
    assert "twemoji set (Someone), CC-BY-4.0" in (into / "licence.txt").read_text()
    # Building the set again replaces its records and files instead of adding a second copy.
    ic.add_set(ic.read_package(pkg), into, size=64, val=0.2, test=0.2)
    again = json.loads((into / "manifest.json").read_text())
    assert len(again) == len(manifest)
    files = {p.name for p in into.glob("*/A/twemoji__*.png")}
    assert len(files) == len(records)


def test_a_concept_split_is_the_same_in_every_set(tmp_path: Path) -> None:
    into = tmp_path / "lineart"
    _openmoji_manifest(into)
    a = ic.add_set(ic.read_package(_package(tmp_path / "a", "noto")), into, size=48)
    b = ic.add_set(ic.read_package(_package(tmp_path / "b", "emojione")), into, size=48)
    assert {r["code"]: r["split"] for r in a} == {r["code"]: r["split"] for r in b}


def test_cli_reads_tarballs_and_refuses_what_it_cannot_use(tmp_path: Path, capsys) -> None:
    into = tmp_path / "lineart"
    _openmoji_manifest(into)
    pkg = _package(tmp_path / "src", "fluent-emoji-flat")
    tarball = tmp_path / "fluent.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(pkg, arcname="package")
    ic.main(["--into", str(into), "--source", str(tarball), "--size", "48", "--workers", "1"])
    made = [
        r
        for r in json.loads((into / "manifest.json").read_text())
        if r.get("set") == "fluent-emoji-flat"
    ]
    assert len(made) > 2  # the twelve things differ at 48 px by half pixels: some coincide
    assert f"fluent-emoji-flat set (MIT): {len(made)} drawings" in capsys.readouterr().out
    # No licence in info.json: refused, naming the file.
    nolicence = _package(tmp_path / "bad", "nolicence", licence=None)
    with pytest.raises(SystemExit):
        ic.main(["--into", str(into), "--source", str(nolicence.parent)])
    assert "names no licence" in capsys.readouterr().err
    # package.json and info.json disagree on the licence: refused.
    (pkg / "package.json").write_text(json.dumps({"license": "CC-BY-NC-4.0"}))
    with pytest.raises(SystemExit):
        ic.main(["--into", str(into), "--source", str(pkg.parent)])
    assert "check the package's terms" in capsys.readouterr().err
    # No OpenMoji manifest to take the splits from: refused with what to do.
    with pytest.raises(SystemExit):
        ic.main(["--into", str(tmp_path / "nothing"), "--source", str(tarball)])
    assert "build OpenMoji there first" in capsys.readouterr().err
