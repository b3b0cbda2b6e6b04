"""Bit-level compatibility with checkpoints that exist in the wild (see tests/golden/README.md).

Each network is loaded through ``load_generator`` from a weight file the test writes, exactly as a
user would load the reference project's ``latest_net_G.pth`` or a HugGAN ``pytorch_model.bin``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import Translator, load_generator, networks


@pytest.fixture(scope="module")
def reference(golden_dir: Path) -> dict:
    return torch.load(golden_dir / "unet256_ngf8_batch.pt", weights_only=True)


@pytest.fixture(scope="module")
def huggan(golden_dir: Path) -> dict:
    data = torch.load(golden_dir / "huggan_generator_unet.pt", weights_only=True)
    g = torch.Generator().manual_seed(0)
    data["state_dict"] = {k: torch.randn(tuple(s), generator=g) * 0.02 for k, s in data["keys"]}
    return data


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    return ((t[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def test_reference_unet_eval_mode(reference: dict, tmp_path: Path) -> None:
    torch.save(reference["state_dict"], tmp_path / "latest_net_G.pth")
    model = load_generator(tmp_path / "latest_net_G.pth")
    assert model.architecture == "unet_256"
    assert model.network_kwargs == {
        "in_channels": 3,
        "out_channels": 3,
        "ngf": 8,
        "norm": "batch",
        "dropout": True,
    }
    assert not model.training
    with torch.no_grad():
        out = model(reference["input"])
    assert (out - reference["out_eval"]).abs().max() < 1e-4


def test_reference_unet_instance_statistics_mode(reference: dict, tmp_path: Path) -> None:
    torch.save(reference["state_dict"], tmp_path / "facades_label2photo.pth")
    model = load_generator(tmp_path / "facades_label2photo.pth")
    stored = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad(), networks.eval_mode(model, input_stats=True, noise=None):
        out = model(reference["input"])
    assert (out - reference["out_batchstats_nodropout"]).abs().max() < 1e-4
    assert (out - reference["out_eval"]).abs().max() > 0.05  # the two modes really differ
    assert all(torch.equal(stored[k], v) for k, v in model.state_dict().items())


def test_translator_reproduces_both_reference_modes(reference: dict, tmp_path: Path) -> None:
    torch.save(reference["state_dict"], tmp_path / "net.pth")
    model = load_generator(tmp_path / "net.pth")
    for norm, key in (("instance", "out_batchstats_nodropout"), ("running", "out_eval")):
        translate = Translator(model, device="cpu", precision="fp32", norm=norm)
        image = translate.run(reference["input"], seed=None)[0]
        # One level of uint8 rounding is the only difference allowed.
        assert np.abs(np.asarray(image, dtype=int) - _to_uint8(reference[key])).max() <= 1


def test_huggan_generator(huggan: dict, tmp_path: Path) -> None:
    torch.save(huggan["state_dict"], tmp_path / "pytorch_model.bin")
    model = load_generator(tmp_path / "pytorch_model.bin")
    assert model.architecture == "huggan_unet"
    assert sum(p.numel() for p in model.parameters()) == huggan["meta"]["num_params"]
    with torch.no_grad():
        out = model(huggan["input"])
    assert (out - huggan["out_eval"]).abs().max() < 1e-4


def test_huggan_snapshot_folder_loads_by_folder(huggan: dict, tmp_path: Path) -> None:
    # A HugGAN repo holds only pytorch_model.bin: the folder itself is a valid source.
    torch.save(huggan["state_dict"], tmp_path / "pytorch_model.bin")
    model = load_generator(tmp_path)
    with torch.no_grad():
        assert (model(huggan["input"]) - huggan["out_eval"]).abs().max() < 1e-4
