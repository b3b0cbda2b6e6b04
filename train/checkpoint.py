"""Training checkpoints: written atomically, read back without unpickling code.

Layout, under a run's output folder::

    OUT/checkpoint/step-000001200/
        config.json            the run's options and what they resolved to (JSON)
        generator.safetensors  G's state dict (parameters and BatchNorm buffers)
        discriminator.safetensors  D's, absent for L1-only runs
        training_state.pt      optimizers, LR schedulers, AMP scaler, position, RNG states

A checkpoint is written into a hidden temporary folder beside the others and moved into place with
``os.replace``, which is atomic; only then are older checkpoints deleted. Any ``step-*`` folder is
therefore complete, and the newest one is the latest checkpoint: a run killed during a save leaves
at worst a hidden ``.step-*.part`` folder, removed by the next save. ``training_state.pt`` holds
only tensors, dicts, lists, tuples, strings and numbers, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from pix2pix.files import leftovers, save_safetensors, temporary_folder
from pix2pix.formats import CheckpointError

CHECKPOINT_DIR = "checkpoint"
CONFIG_NAME = "config.json"
STATE_NAME = "training_state.pt"
_STEP_DIR = re.compile(r"step-(\d+)")


@dataclass
class Checkpoint:
    """A checkpoint read back from disk."""

    folder: Path
    config: dict[str, Any]
    weights: dict[str, dict[str, torch.Tensor]]  # "generator" / "discriminator" -> state dict
    state: dict[str, Any]

    @property
    def step(self) -> int:
        """Optimizer steps taken when it was written."""
        return int(self.state["step"])


def save_checkpoint(
    root: str | os.PathLike[str],
    step: int,
    *,
    weights: dict[str, dict[str, torch.Tensor]],
    state: dict[str, Any],
    config: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write ``root/step-<step>/`` atomically, then delete all but the ``keep`` newest ones.

    A checkpoint already present for ``step`` is kept as it is: it is complete, and a run writes
    one state per step.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:09d}"
    if final.is_dir():
        return final
    tmp = temporary_folder(root, final.name)
    try:
        for name, tensors in weights.items():
            path = tmp / f"{name}.safetensors"
            save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, path)
            _fsync(path)
        torch.save(state, tmp / STATE_NAME)
        _fsync(tmp / STATE_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        _fsync(tmp / CONFIG_NAME)
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remove_older(root, keep=keep)
    return final


def find_checkpoint(path: str | os.PathLike[str]) -> Path | None:
    """The latest checkpoint folder for a run folder, its ``checkpoint/`` folder or a step folder.

    Returns None when there is none.
    """
    path = Path(path).expanduser()
    if (path / STATE_NAME).is_file():
        return path
    for root in (path / CHECKPOINT_DIR, path):
        steps = _step_folders(root)
        if steps:
            return steps[-1][1]
    return None


def load_checkpoint(folder: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint folder written by :func:`save_checkpoint` (no pickled code is run)."""
    folder = Path(folder)
    try:
        config = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        weights = {p.stem: load_file(str(p)) for p in sorted(folder.glob("*.safetensors"))}
        state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{folder}: not a readable training checkpoint ({e})") from e
    if "generator" not in weights or not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(
            f"{folder}: incomplete training checkpoint (expected generator.safetensors and a "
            f"{STATE_NAME} with a step count)"
        )
    return Checkpoint(folder, config, weights, state)


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch CPU and (when initialised) CUDA RNG states."""
    version, mt, gauss = random.getstate()
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": {
            "version": version,
            "state": torch.tensor(mt, dtype=torch.int64),
            "gauss": gauss,
        },
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Undo :func:`capture_rng_state`: set every RNG it recorded."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _step_folders(root: Path) -> list[tuple[int, Path]]:
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = _STEP_DIR.fullmatch(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _remove_older(root: Path, *, keep: int) -> None:
    for _, folder in _step_folders(root)[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)
    # Left by runs killed while saving (".tmp-*" by versions before pix2pix.files).
    for entry in [*leftovers(root, "step-*"), *root.glob(".tmp-*")]:
        shutil.rmtree(entry, ignore_errors=True)


def _fsync(path: Path) -> None:
    # Durability against power loss; atomicity against kills comes from os.replace alone.
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    with contextlib.suppress(OSError):  # directories cannot be opened on Windows
        fd = os.open(path, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
