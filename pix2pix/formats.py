"""Weight files people already have: read them safely and recognise their architecture.

Reads ``.pth`` / ``.pt`` / ``.bin`` (``torch.load(weights_only=True)``: tensors and plain
containers only, never arbitrary objects) and ``.safetensors``, then infers which network a bare
state dict belongs to from its keys and shapes:

- the reference implementation's U-Net (``model.model.0.weight``, nested ``.model.1`` / ``.model.3``
  levels), its encoder-decoder variant, and its ResNet generator (``model.N.conv_block...``), which
  is also what its official CycleGAN models are;
- ResNet generators of other CycleGAN codebases that keep the reference's layer indices but name
  the residual blocks' layers ``block`` (``model.N.block.M...``), with or without an affine
  InstanceNorm (e.g. the ``G_A2B`` of the ``vintagify`` package);
- the HugGAN ``GeneratorUNet`` (``down1`` ... ``down8``, ``up1`` ... ``up7``, ``final``).

Only ``hub.py`` uses this module.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
WEIGHT_SUFFIXES = (*TORCH_SUFFIXES, SAFETENSORS_SUFFIX)

# Containers some training scripts wrap the generator's state dict in.
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "generator", "netG", "net_G", "G", "model")
# Prefixes added by DataParallel / DDP, torch.compile and our own wrapper.
_PREFIXES = ("module.", "_orig_mod.", "net.")
_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")

LAYOUTS = (
    "reference U-Net / encoder-decoder (model.model.0.weight, model.model.1.model...)",
    "reference ResNet (model.1.weight, model.<i>.conv_block...; or model.<i>.block...)",
    "HugGAN GeneratorUNet (down1..down8, up1..up7, final.2)",
)


class CheckpointError(ValueError):
    """A weight file could not be read or does not fit a known network."""


class NotACheckpointError(CheckpointError):
    """The file is not a checkpoint at all (a web page, JSON, an empty, cut or other file)."""


_AGAIN = "Download it again (or save it again) and check that the URL points at the file itself."


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weight file into a flat ``{name: tensor}`` dict, refusing pickled code.

    The format is read off the file's content (safetensors, PyTorch zip or legacy pickle), so a
    safetensors file named ``.pth`` loads too. A file that is none of these raises
    ``NotACheckpointError`` naming what it is (HTML or JSON text, empty, a zip or gzip archive of
    something else, unknown bytes) and saying to download it again.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise CheckpointError(
            f"{path}: unsupported weight file type {suffix!r}; expected one of {WEIGHT_SUFFIXES}"
        )
    kind = sniff(path)
    if kind == "safetensors":
        raw = _read_safetensors(path)
    elif kind in ("torch-zip", "pickle"):
        raw = _read_torch(path)
    else:
        raise NotACheckpointError(f"{path} is not a checkpoint: it is {kind}. {_AGAIN}")
    return _flatten(raw, path)


def sniff(path: Path) -> str:
    """What a weight file holds, from its first bytes: ``"safetensors"``, ``"torch-zip"``,
    ``"pickle"``, or a phrase saying what else it is ("an HTML page", "an empty file", ...)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise CheckpointError(f"could not read {path}: {e.strerror or e}") from e
    if size == 0:
        return "an empty file (0 bytes)"
    # safetensors: a little-endian u64 header length, then the JSON header. A length beyond the
    # file still counts (a cut-off file), and the reader says so.
    if head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _sniff_zip(path)
    if head.startswith(b"\x1f\x8b"):
        return "a gzip-compressed file, not a checkpoint (if it holds one, decompress it first)"
    if head[:1] == b"\x80" or head[:1] in (b"(", b"}", b"]"):
        return "pickle"  # protocol 2+ (torch's legacy format), or protocol 0/1 containers
    return _describe_text(head, size)


def _sniff_zip(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        # torch.save's format is a zip, and a cut-off one has no central directory: torch.load
        # then says it is truncated or corrupt.
        return "torch-zip"
    if any(n.endswith("data.pkl") for n in names):
        return "torch-zip"
    shown = ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")
    return f"a zip archive of other files ({shown or 'empty'}), not a PyTorch checkpoint"


def _describe_text(head: bytes, size: int) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    printable = sum(c.isprintable() or c in "\t\r\n" for c in text) / max(len(text), 1)
    preview = " ".join(text[:80].split())
    lower = text[:1000].lower()
    if lower.startswith(("<!doctype html", "<html", "<head", "<body")) or "<html" in lower:
        return f"an HTML page ({size} bytes: {preview!r}...), e.g. a server's error or login page"
    if lower.startswith("<?xml") or lower.startswith("<"):
        return f"XML or HTML text ({size} bytes: {preview!r}...)"
    if text.startswith(("{", "[")) and printable > 0.95:
        return f"JSON text ({size} bytes: {preview!r}...), e.g. a server's error response"
    if printable > 0.95:
        return f"a text file ({size} bytes: {preview!r}...)"
    return f"an unknown binary file ({size} bytes, starting {head[:8].hex(' ')})"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise NotACheckpointError(
            f"could not read {path}: not a valid safetensors file, perhaps truncated or corrupt "
            f"({e}). Download or save it again."
        ) from e


def _read_torch(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        # torch words this differently across versions ("Unsupported global: GLOBAL x",
        # "unsupported GLOBAL x whose module x is blocked"). Only a GLOBAL is code; an
        # "Unsupported operand" is a byte that is no pickle opcode: a damaged file.
        if re.search(r"GLOBAL|not an allowed global|is blocked", message):
            found = re.search(r"GLOBAL ([\w.]+)", message)
            what = f" (it references {found.group(1)})" if found else ""
            raise CheckpointError(
                f"refused to load {path}: it is a pickle that holds Python objects other than "
                f"tensors{what}, and unpickling it could run arbitrary code. Only plain state "
                f"dicts of tensors are accepted; if you trust the file, load it yourself and save "
                f"its state_dict() or convert it to safetensors."
            ) from e
        raise _corrupt(path, e) from e
    except Exception as e:  # garbage makes the unpickler raise almost anything
        # (IndexError, TypeError, struct.error, OverflowError...); each means the same to a user.
        raise _corrupt(path, e) from e


def _corrupt(path: Path, error: Exception) -> CheckpointError:
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return NotACheckpointError(
        f"could not read {path}: the file is truncated or corrupt, or not a PyTorch checkpoint "
        f"({type(error).__name__}: {detail}). {_AGAIN}"
    )


def _flatten(raw: object, path: Path) -> dict[str, torch.Tensor]:
    """Unwrap common containers and prefixes; insist on a mapping of names to tensors."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, found a {type(raw).__name__}")
    if not _all_tensors(raw):
        for key in _CONTAINER_KEYS:
            inner = raw.get(key)
            if isinstance(inner, Mapping) and inner and _all_tensors(inner):
                raw = inner
                break
        else:
            kinds = sorted({f"{k!r}: {type(v).__name__}" for k, v in list(raw.items())[:8]})
            raise CheckpointError(
                f"{path}: expected a state dict of tensors (or one under "
                f"{', '.join(_CONTAINER_KEYS)}); found entries {', '.join(kinds)}"
            )
    state = {str(k): v for k, v in raw.items()}
    stripped = True
    while stripped and state:
        stripped = False
        for prefix in _PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                stripped = True
    return _rename_resnet_blocks(state)


_BLOCK = re.compile(r"^model\.(\d+)\.block\.")


def _rename_resnet_blocks(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``model.N.block.M...`` -> the reference's ``model.N.conv_block.M...``.

    CycleGAN generators written after the reference (e.g. vintagify's ``G_A2B``) keep its layer
    indices but call the residual blocks' ``nn.Sequential`` ``block``; nothing else differs.
    """
    if any(".conv_block." in k for k in state) or not any(_BLOCK.match(k) for k in state):
        return state
    return {_BLOCK.sub(r"model.\1.conv_block.", k): v for k, v in state.items()}


def _all_tensors(mapping: Mapping) -> bool:
    return bool(mapping) and all(isinstance(v, torch.Tensor) for v in mapping.values())


# --------------------------------------------------------------------------------------------
# Architecture inference
# --------------------------------------------------------------------------------------------


def infer_architecture(state: Mapping[str, torch.Tensor], source: str) -> tuple[str, dict]:
    """Return ``(registry name, keyword arguments)`` of the generator that ``state`` belongs to."""
    if "down1.model.0.weight" in state and "final.2.weight" in state:
        return "huggan_unet", {
            "in_channels": state["down1.model.0.weight"].shape[1],
            "out_channels": state["final.2.weight"].shape[0],
        }
    if "model.model.0.weight" in state and "model.model.3.weight" in state:
        return _infer_unet(state)
    if "model.1.weight" in state and any(".conv_block." in k for k in state):
        return _infer_resnet(state)
    listing = "\n  ".join(f"{k}: {tuple(v.shape)}" for k, v in list(state.items())[:12])
    more = f"\n  ... and {len(state) - 12} more" if len(state) > 12 else ""
    raise CheckpointError(
        f"{source}: unknown checkpoint layout ({len(state)} tensors). Found:\n  {listing}{more}\n"
        f"Recognised layouts: {'; '.join(LAYOUTS)}."
    )


def _norm_of(state: Mapping[str, torch.Tensor], conv: str, norm: str) -> str:
    # InstanceNorm layers (affine=False) have no parameters; the reference gives their
    # convolutions a bias. BatchNorm has weights and no conv bias. "none" has neither. A conv
    # bias and norm weights together: an affine InstanceNorm (other CycleGAN codebases).
    if f"{conv}.bias" in state:
        return "instance_affine" if f"{norm}.weight" in state else "instance"
    if f"{norm}.weight" in state:
        return "batch"
    return "none"


def _infer_unet(state: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    first = state["model.model.0.weight"]  # (ngf, in, 4, 4)
    last = state["model.model.3.weight"]  # (2*ngf or ngf, out, 4, 4), a transposed conv
    ngf = first.shape[0]
    num_downs, prefix = 1, "model.model.1.model"
    while f"{prefix}.1.weight" in state:
        num_downs += 1
        prefix += ".3.model"
    skip = last.shape[0] == 2 * ngf
    kwargs = {
        "in_channels": first.shape[1],
        "out_channels": last.shape[1],
        "ngf": ngf,
        "norm": _norm_of(state, "model.model.1.model.1", "model.model.1.model.2"),
        # Dropout has no parameters, so it cannot be read off; pix2pix models use it.
        "dropout": True,
    }
    names = {(8, True): "unet_256", (7, True): "unet_128", (8, False): "encoder_decoder"}
    names[(7, False)] = "encoder_decoder_128"
    name = names.get((num_downs, skip))
    if name is None:
        name = "unet" if skip else "encoder_decoder_n"
        kwargs["num_downs"] = num_downs
    return name, kwargs


def _infer_resnet(state: Mapping[str, torch.Tensor]) -> tuple[str, dict]:
    first = state["model.1.weight"]  # (ngf, in, 7, 7)
    blocks = sorted({int(k.split(".")[1]) for k in state if ".conv_block." in k})
    prefix = f"model.{blocks[0]}.conv_block."
    first_conv, *_, second_conv = sorted(
        int(k[len(prefix) :].split(".")[0])
        for k in state
        if k.startswith(prefix) and k.endswith(".weight") and state[k].ndim == 4
    )
    padding = "reflect" if first_conv == 1 else "zero"
    # Without dropout the second conv sits 4 layers after the first (pad/conv/norm/relu, pad).
    gap_plain = 4 if padding == "reflect" else 3
    last = max(
        int(k.split(".")[1])
        for k in state
        if k.startswith("model.") and k.endswith(".weight") and state[k].ndim == 4
    )
    kwargs = {
        "in_channels": first.shape[1],
        "out_channels": state[f"model.{last}.weight"].shape[0],
        "ngf": first.shape[0],
        "norm": _norm_of(state, "model.1", "model.2"),
        "dropout": second_conv - first_conv > gap_plain,
        "padding": padding,
    }
    name = {6: "resnet_6blocks", 9: "resnet_9blocks"}.get(len(blocks))
    if name is None:
        name = "resnet"
        kwargs["n_blocks"] = len(blocks)
    return name, kwargs


# --------------------------------------------------------------------------------------------
# Strict loading
# --------------------------------------------------------------------------------------------


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``module`` with every key and shape checked; errors name them.

    Tolerates two quirks of old reference checkpoints: InstanceNorm running statistics saved
    before PyTorch 0.4 (dropped) and BatchNorm ``num_batches_tracked`` missing (set to 0).
    """
    expected = module.state_dict()
    state = dict(state)
    for key in [k for k in state if k not in expected and k.endswith(_STAT_SUFFIXES)]:
        if isinstance(_owner(module, key), nn.InstanceNorm2d):
            del state[key]
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for title, items in (("missing keys", missing), ("unexpected keys", unexpected)):
            if items:
                parts.append(f"{len(items)} {title}: {', '.join(items[:10])}")
        if wrong:
            parts.append(f"{len(wrong)} shape mismatches: {'; '.join(wrong[:10])}")
        raise CheckpointError(
            f"{source} does not fit the {type(module).__name__} it describes: {'. '.join(parts)}"
        )
    module.load_state_dict(state, strict=True)


def _owner(module: nn.Module, key: str) -> nn.Module | None:
    try:
        return module.get_submodule(key.rsplit(".", 1)[0])
    except AttributeError:
        return None
