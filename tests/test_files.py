"""Files the project writes for the user are whole or absent, and as readable as the user's umask
allows (not the 0600 / 0700 of mkstemp, mkdtemp and safetensors)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from pix2pix import networks
from pix2pix.files import atomic_write, save_safetensors, temporary_folder
from pix2pix.hub import Pix2PixGenerator
from train import checkpoint as ckpt


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=["umask022", "umask027", "umask077"])
def mask(request: pytest.FixtureRequest):
    before = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_temporary_folder_is_new_hidden_and_as_mkdir_makes_it(mask: int, tmp_path: Path) -> None:
    one, two = (
        temporary_folder(tmp_path / "run", "step-1"),
        temporary_folder(tmp_path / "run", "step-1"),
    )
    assert one != two and one.parent == tmp_path / "run"
    assert one.name.startswith(".step-1.") and one.name.endswith(".part")
    assert _mode(one) == 0o777 & ~mask and not any(one.iterdir())


def test_atomic_write_gives_the_umask_mode_and_replaces_whole(mask: int, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "cache.json"
    with atomic_write(dest, "w", encoding="utf-8") as f:
        f.write("{}")
    assert dest.read_text() == "{}" and _mode(dest) == 0o666 & ~mask
    with atomic_write(dest) as f:
        f.write(b"[1]")
    assert dest.read_bytes() == b"[1]"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["cache.json"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    dest = tmp_path / "image.png"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="encoder failed"), atomic_write(dest) as f:
        f.write(b"half a new fi")
        raise RuntimeError("encoder failed")
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]
    with pytest.raises(ValueError, match="'wb' or 'w'"), atomic_write(dest, "ab"):
        pass


def test_safetensors_files_get_the_umask_mode(mask: int, tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    save_safetensors({"a": torch.arange(3.0)}, path, metadata={"format": "pt"})
    assert _mode(path) == 0o666 & ~mask
    assert torch.equal(load_file(path)["a"], torch.arange(3.0))
    with safe_open(path, "pt") as f:
        assert f.metadata() == {"format": "pt"}
    with pytest.raises(RuntimeError, match="share memory"):  # refused: the file stays as it was
        shared = torch.zeros(4)
        save_safetensors({"a": shared, "b": shared}, path)
    assert torch.equal(load_file(path)["a"], torch.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def test_a_saved_model_and_a_training_checkpoint_are_readable_as_the_umask_allows(
    mask: int, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = Pix2PixGenerator("unet", {"num_downs": 5, "ngf": 4})
    networks.init_weights(model.net)
    model.save_pretrained(tmp_path / "model")
    for name in ("model.safetensors", "config.json"):
        assert _mode(tmp_path / "model" / name) == 0o666 & ~mask, name

    state = {k: v.clone() for k, v in model.state_dict().items()}
    folder = ckpt.save_checkpoint(
        tmp_path / "run", 3, weights={"generator": state}, state={"step": 3}, config={}
    )
    assert _mode(folder) == 0o777 & ~mask
    assert {p.name: _mode(p) for p in folder.iterdir()} == {
        name: 0o666 & ~mask for name in ("generator.safetensors", ckpt.STATE_NAME, ckpt.CONFIG_NAME)
    }
    back = ckpt.load_checkpoint(folder)
    assert back.state["step"] == 3
