"""The command-line tools, run as a user would: ``python -m pix2pix.translate`` / ``.convert``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import convert, load_generator, networks, translate
from pix2pix.hub import Pix2PixGenerator, save_generator

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def reference_pth(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = networks.init_weights(networks.create_generator("unet_128", ngf=4))
    path = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    return path


def _images(folder: Path, n: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (70 + i, 90, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_translate_files_and_folders(tmp_path: Path, reference_pth: Path) -> None:
    inputs = _images(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("not an image")  # ignored when expanding folders
    other = _images(tmp_path / "more", 1)[0]  # same stem as in/img0.png: must not overwrite
    status = translate.main(
        [
            "--model",
            str(reference_pth),
            str(tmp_path / "in"),
            str(other),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["img0-2.png", "img0.png", "img1.png", "img2.png"]
    for p in inputs:
        with Image.open(p) as src, Image.open(tmp_path / "out" / p.name) as out:
            assert out.size == src.size and out.mode == "RGB"


def test_translate_seeds_and_edges(tmp_path: Path, reference_pth: Path) -> None:
    image = _images(tmp_path / "in", 1)[0]
    runs = {}
    for name, extra in {
        "a": ["--seed", "1"],
        "b": ["--seed", "1"],
        "c": ["--seed", "2"],
        "e": ["--edges"],
    }.items():
        assert (
            translate.main(
                ["--model", str(reference_pth), str(image), "--out", str(tmp_path / name), *extra]
            )
            == 0
        )
        runs[name] = np.asarray(Image.open(tmp_path / name / "img0.png"))
    assert np.array_equal(runs["a"], runs["b"])
    assert not np.array_equal(runs["a"], runs["c"])
    assert runs["e"].shape == runs["a"].shape


def test_translate_skips_bad_files_and_reports(tmp_path: Path, reference_pth: Path, capsys) -> None:
    good = _images(tmp_path / "in", 1)[0]
    bad = tmp_path / "in" / "broken.png"
    bad.write_bytes(good.read_bytes()[:40])
    status = translate.main(
        ["--model", str(reference_pth), str(bad), str(good), "--out", str(tmp_path / "out")]
    )
    assert status == 1
    assert (tmp_path / "out" / "img0.png").is_file()
    err = capsys.readouterr().err
    assert "skipped" in err and "broken.png" in err


def test_translate_bad_model_is_a_clear_error(tmp_path: Path, capsys) -> None:
    image = _images(tmp_path / "in", 1)[0]
    (tmp_path / "evil.pth").write_bytes(b"garbage")
    status = translate.main(
        ["--model", str(tmp_path / "evil.pth"), str(image), "--out", str(tmp_path / "o")]
    )
    assert status == 2
    assert "evil.pth" in capsys.readouterr().err


def test_convert_reference_to_our_format(tmp_path: Path, reference_pth: Path) -> None:
    out = tmp_path / "converted"
    status = convert.main(
        [
            str(reference_pth),
            str(out),
            "--fp16",
            "--input-kind",
            "edges",
            "--dataset",
            "edges2shoes",
            "--train-size",
            "256",
        ]
    )
    assert status == 0
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "unet_128"
    assert config["task"]["input_kind"] == "edges" and config["task"]["train_size"] == 256
    assert config["task"]["source"].endswith("latest_net_G.pth")
    model = load_generator(out)
    original = load_generator(reference_pth)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert (model(x) - original(x)).abs().max() < 1e-2
    assert "edges2shoes" in (out / "README.md").read_text()


def test_convert_push_to_hub_uploads_the_saved_folder(
    tmp_path: Path, reference_pth: Path, monkeypatch
) -> None:
    # No Hub here: HfApi's two calls are replaced by recorders that check what would be sent.
    import huggingface_hub

    sent = {}

    def create_repo(self, repo_id, exist_ok=False, **kw):
        sent["repo"] = repo_id

    def upload_folder(self, *, repo_id, folder_path, commit_message, **kw):
        sent["files"] = sorted(os.listdir(folder_path))
        sent["config"] = json.loads((Path(folder_path) / "config.json").read_text())
        return "https://huggingface.co/me/model/commit/1"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert (
        convert.main([str(reference_pth), str(tmp_path / "out"), "--push-to-hub", "me/model"]) == 0
    )
    assert sent["repo"] == "me/model"
    assert sent["files"] == ["README.md", "config.json", "model.safetensors"]
    assert sent["config"]["architecture"] == "unet_128"
    assert "me/model" in (tmp_path / "out" / "README.md").read_text()


def test_module_entry_points_run(tmp_path: Path) -> None:
    model = Pix2PixGenerator("unet_128", {"ngf": 4})
    save_generator(model, tmp_path / "m")
    image = _images(tmp_path / "in", 1)[0]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args in (
        [
            "-m",
            "pix2pix.translate",
            "--model",
            str(tmp_path / "m"),
            str(image),
            "--out",
            str(tmp_path / "o"),
        ],
        ["-m", "pix2pix.convert", str(tmp_path / "m"), str(tmp_path / "c")],
    ):
        done = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "img0.png").is_file()
    assert (tmp_path / "c" / "model.safetensors").is_file()
