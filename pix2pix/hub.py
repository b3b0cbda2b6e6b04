"""Load generators from anywhere people keep them, and save them in our Hub format.

``load_generator(source)`` accepts a Hub repo id (``org/name`` or ``org/name@revision``), a local
folder in our format, a local weight file in the reference or HugGAN format, or an ``https://``
URL of a ``.pth`` (downloaded once into a cache). Our format is what
``PyTorchModelHubMixin.save_pretrained`` writes: ``config.json`` (architecture, its arguments and
the task metadata), ``model.safetensors`` and a model card (``README.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, snapshot_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from torch import nn

from pix2pix import formats, networks
from pix2pix.formats import CheckpointError

INPUT_KINDS = ("edges", "labels", "photo")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PAPER_URL = "https://arxiv.org/abs/1611.07004"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass
class TaskInfo:
    """What a generator does, stored beside its weights so that loading needs no flags."""

    input_kind: str | None = None  # "edges" | "labels" | "photo"
    direction: str = "AtoB"
    train_size: int | None = None  # side of the training crops, in pixels
    patch: int | None = None  # receptive field of the discriminator it was trained with
    dataset: str | None = None
    palette: list[list[int]] | None = None  # one RGB colour per label class
    class_names: list[str] | None = None
    license: str | None = None
    source: str | None = None  # where the weights came from, for converted checkpoints
    notes: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.input_kind is not None and self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {self.direction!r}")
        if self.palette and self.class_names and len(self.palette) != len(self.class_names):
            raise ValueError(
                f"palette has {len(self.palette)} colours but class_names has "
                f"{len(self.class_names)} names"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> TaskInfo:
        """Build from a config dict; unknown keys (newer versions) are ignored with a warning."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            warnings.warn(f"ignoring unknown task fields {unknown}", stacklevel=2)
        return cls(**{k: v for k, v in data.items() if k in known})


_CARD = """---
{{ card_data }}
---

# {{ title }}

A pix2pix generator ([Isola et al., *Image-to-Image Translation with Conditional Adversarial
Networks*, CVPR 2017]({{ paper_url }})), saved by pix2pix-studio.

| | |
|---|---|
| architecture | `{{ architecture }}` ({{ network }}) |
| input | {{ input_kind }} |
| direction | {{ direction }} |
| training size | {{ train_size }} |
| discriminator receptive field | {{ patch }} |
| dataset | {{ dataset }} |
| source | {{ source }} |

{{ notes }}

{{ metrics }}

## Use

```python
from pix2pix import Translator, load_generator

translate = Translator(load_generator("{{ repo_id }}"))
translate(image).save("out.png")
```
"""


class Pix2PixGenerator(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pix2pix-studio",
    tags=["pix2pix", "image-to-image", "gan"],
    pipeline_tag="image-to-image",
    paper_url=PAPER_URL,
    model_card_template=_CARD,
):
    """A generator from the registry plus its task metadata; what ``load_generator`` returns.

    ``config.json`` holds exactly the arguments of this constructor, so a saved model rebuilds
    without options.
    """

    def __init__(
        self,
        architecture: str = "unet_256",
        network: dict[str, Any] | None = None,
        task: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.architecture = architecture
        self.network_kwargs = dict(network or {})
        self.task = TaskInfo.from_dict(task)
        self.net = networks.create_generator(architecture, **self.network_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this (the network halves them that many times)."""
        return networks.size_multiple(self.net)

    @property
    def in_channels(self) -> int:
        """Channels the network takes."""
        return next(m for m in self.net.modules() if isinstance(m, nn.Conv2d)).in_channels

    @property
    def out_channels(self) -> int:
        """Channels the network produces."""
        return int(self.network_kwargs.get("out_channels", 3))

    def config(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments (what ``config.json`` holds)."""
        return {
            "architecture": self.architecture,
            "network": self.network_kwargs,
            "task": asdict(self.task),
        }

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """A model card with the architecture, the task metadata and a usage example."""
        t = self.task
        network = ", ".join(f"{k}={v}" for k, v in self.network_kwargs.items()) or "defaults"
        metrics = ""
        if t.metrics:
            rows = "\n".join(f"| {k} | {v:.4g} |" for k, v in t.metrics.items())
            metrics = f"## Metrics\n\n| metric | value |\n|---|---|\n{rows}"
        values = {
            "title": kwargs.pop("title", None) or t.dataset or "pix2pix generator",
            "architecture": self.architecture,
            "network": network,
            "input_kind": t.input_kind or "unspecified",
            "direction": t.direction,
            "train_size": f"{t.train_size} px" if t.train_size else "unknown",
            "patch": f"{t.patch}x{t.patch}" if t.patch else "unknown",
            "dataset": t.dataset or "unknown",
            "source": t.source or "trained with pix2pix-studio",
            "notes": t.notes,
            "metrics": metrics,
            "repo_id": kwargs.pop("repo_id", None) or "path/or/repo-id",
        }
        card_data = self._hub_mixin_info.model_card_data
        if t.license:
            card_data.license = t.license
        return ModelCard.from_template(
            card_data=card_data,
            template_str=self._hub_mixin_info.model_card_template,
            paper_url=PAPER_URL,
            **values,
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_file

        dtype = getattr(self, "_save_dtype", None)
        state = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
            .detach()
            .cpu()
            .contiguous()
            for k, v in self.state_dict().items()
        }
        save_file(state, str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> Pix2PixGenerator:
        # Our loader resolves sources itself and only hands over local folders; loading is strict
        # (the mixin's default, strict=False, would hide mismatched weights).
        folder = Path(model_id)
        weights = folder / WEIGHTS_NAME
        if not folder.is_dir() or not weights.is_file():
            raise CheckpointError(f"{folder}: expected {WEIGHTS_NAME} beside {CONFIG_NAME}")
        init = {k: kwargs[k] for k in ("architecture", "network", "task") if k in kwargs}
        model = cls(**init)
        # read_state_dict strips the "net." prefix of our wrapper, like DataParallel's "module.".
        formats.load_strict(model.net, formats.read_state_dict(weights), str(weights))
        return model


def save_generator(
    model: Pix2PixGenerator,
    directory: str | os.PathLike,
    *,
    dtype: torch.dtype | None = None,
    repo_id: str | None = None,
) -> Path:
    """Save in our format (config.json, model.safetensors, README.md); ``dtype`` casts weights.

    ``dtype=torch.float16`` halves the size; loading casts back to float32.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "README.md").unlink(missing_ok=True)  # the mixin never overwrites a card
    model._save_dtype = dtype
    try:
        model.save_pretrained(
            directory, config=model.config(), model_card_kwargs={"repo_id": repo_id}
        )
    finally:
        del model._save_dtype
    return directory


def push_generator(
    model: Pix2PixGenerator, repo_id: str, *, dtype: torch.dtype | None = None
) -> str:
    """Save into a temporary folder and upload it to the Hub as ``repo_id``; returns the URL."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        save_generator(model, tmp, dtype=dtype, repo_id=repo_id)
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, commit_message="Upload pix2pix generator"
        )
    return str(getattr(commit, "commit_url", commit))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_generator(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
) -> Pix2PixGenerator:
    """Load a generator from a Hub repo id, a folder, a weight file or a URL; in eval mode.

    The architecture of reference and HugGAN checkpoints is read off their keys and shapes.
    Pickles are opened with ``torch.load(weights_only=True)``: a file that carries code is refused.
    """
    local = resolve_source(source, revision=revision)
    is_url = isinstance(source, str) and source.startswith(("http://", "https://"))
    try:
        model = load_local(local, label=str(source))
    except formats.NotACheckpointError as e:
        if not is_url:
            raise
        # What the URL gave is not a checkpoint (an error page, a cut-off file): it must not
        # stay in the cache as if it were one.
        local.unlink(missing_ok=True)
        raise formats.NotACheckpointError(
            f"{source}: the download is not a usable checkpoint and was removed from the cache "
            f"({local}): {e}"
        ) from e
    if is_url:
        model.task.source = model.task.source or source
    model.eval()
    if device is not None:
        model.to(device)
    return model


def resolve_source(source: str | os.PathLike, *, revision: str | None = None) -> Path:
    """Turn a source into a local file or folder, downloading (once) what is remote."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        return path
    if text.startswith(("http://", "https://")):
        return download_url(text)
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        repo_id, _, at = text.partition("@")
        if at and revision and at != revision:
            raise ValueError(f"{text!r} names revision {at!r} but revision={revision!r} was given")
        try:
            return _snapshot(repo_id, at or revision)
        except FileNotFoundError as e:
            # "checkpoints/x" reads as a repo id too: say that both readings were tried.
            raise FileNotFoundError(f"no local file or folder {text!r}, and {e}") from e
    raise FileNotFoundError(
        f"{text!r} is not an existing file or folder, a Hub repo id (org/name[@revision]) or an "
        f"http(s) URL"
    )


def load_local(path: Path, *, label: str | None = None) -> Pix2PixGenerator:
    """Load a local folder (our format, or one holding a single weight file) or weight file.

    A ``config.json`` that is not ours (huggingface_hub's ``save_pretrained`` of another model
    class writes its own, e.g. ``{"in_channels": 3, "out_channels": 3}`` for a HugGAN
    ``GeneratorUNet``) does not stop loading: the architecture is then read off the weights, and
    an error says what was tried.
    """
    label = label or str(path)
    if path.is_dir():
        if (path / CONFIG_NAME).is_file():
            foreign = _foreign_config(path / CONFIG_NAME)
            if foreign is None:
                return _load_ours(path)
            return _load_beside_foreign_config(path, None, foreign, label)
        return _load_file(_pick_weight_file(path), label)
    if (path.parent / CONFIG_NAME).is_file() and path.suffix.lower() in formats.WEIGHT_SUFFIXES:
        foreign = _foreign_config(path.parent / CONFIG_NAME)
        if foreign is None and path.name == WEIGHTS_NAME:
            return _load_ours(path.parent)
        if foreign is not None:
            return _load_beside_foreign_config(path.parent, path, foreign, label)
    return _load_file(path, label)


def _foreign_config(path: Path) -> str | None:
    """None when ``path`` is our config.json; otherwise why it is not (for error messages)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"not a readable JSON file ({e})"
    if not isinstance(config, dict):
        return f"holds a JSON {type(config).__name__}, not an object"
    architecture = config.get("architecture")
    if architecture is None:
        keys = ", ".join(sorted(map(str, config))[:8]) or "none"
        return f"no 'architecture' field (its keys: {keys})"
    if architecture not in networks.GENERATORS or set(config) - {"architecture", "network", "task"}:
        return f"'architecture' {architecture!r} with fields {sorted(config)} is not ours"
    return None


def _load_beside_foreign_config(
    folder: Path, weights: Path | None, why: str, label: str
) -> Pix2PixGenerator:
    """Read the architecture off the weights, since the config.json beside them is not ours."""
    try:
        if weights is None:
            weights = _pick_weight_file(folder)
        model = _load_file(weights, label)
    except CheckpointError as e:
        raise CheckpointError(
            f"{label}: could not load it. Tried (1) {folder / CONFIG_NAME} as a pix2pix-studio "
            f"config: {why}; (2) reading the architecture off the weights"
            f"{f' in {weights.name}' if weights is not None else ''}: {e}"
        ) from e
    if why.startswith("not a readable JSON"):
        # Most likely our own config, damaged: the weights still load, the task metadata is lost.
        warnings.warn(
            f"ignored {folder / CONFIG_NAME} ({why}); the architecture was read off "
            f"{weights.name}, and any task metadata (input kind, palette) is lost",
            stacklevel=3,
        )
    return model


def _load_ours(folder: Path) -> Pix2PixGenerator:
    model = Pix2PixGenerator.from_pretrained(folder, strict=True)
    return model


def _load_file(path: Path, label: str) -> Pix2PixGenerator:
    state = formats.read_state_dict(path)
    architecture, network = formats.infer_architecture(state, label)
    model = Pix2PixGenerator(architecture, network, {"source": label})
    formats.load_strict(model.net, state, label)
    return model


def _pick_weight_file(folder: Path) -> Path:
    candidates = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in formats.WEIGHT_SUFFIXES
    )
    if len(candidates) > 1:
        # Hub repos often hold one model in two formats: take the safetensors one.
        for name in (WEIGHTS_NAME, "pytorch_model.bin"):
            if any(p.name == name for p in candidates):
                candidates = [folder / name]
                break
    if len(candidates) > 1:
        # A reference checkpoints folder holds both nets: latest_net_G.pth and latest_net_D.pth.
        generators = [p for p in candidates if "net_G" in p.name] or candidates
        latest = [p for p in generators if p.name.startswith("latest")]
        candidates = latest or generators
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "no weight files"
        raise CheckpointError(
            f"{folder}: expected {CONFIG_NAME} + {WEIGHTS_NAME} (our format) or a single weight "
            f"file ({', '.join(formats.WEIGHT_SUFFIXES)}); found {found}"
        )
    return candidates[0]


def _snapshot(repo_id: str, revision: str | None) -> Path:
    patterns = [CONFIG_NAME, "*.safetensors", "*.bin", "*.pth", "*.pt"]
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except RepositoryNotFoundError as e:
        raise FileNotFoundError(f"Hub repo {repo_id!r} not found (or it is private)") from e
    except RevisionNotFoundError as e:
        raise FileNotFoundError(f"Hub repo {repo_id!r} has no revision {revision!r}") from e
    except LocalEntryNotFoundError as e:
        raise FileNotFoundError(
            f"Hub repo {repo_id!r}{f' at {revision!r}' if revision else ''} is not in the local "
            f"Hugging Face cache and the Hub cannot be reached (offline, or HF_HUB_OFFLINE=1). "
            f"Download it once with network access, or pass a local path."
        ) from e
    except HfHubHTTPError as e:
        raise ConnectionError(f"could not download {repo_id!r} from the Hub: {e}") from e


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where downloaded URLs are kept: ``$PIX2PIX_CACHE``, else ``~/.cache/pix2pix``."""
    if os.environ.get("PIX2PIX_CACHE"):
        return Path(os.environ["PIX2PIX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pix2pix"


def download_url(url: str, *, timeout: float = 60.0) -> Path:
    """Download ``url`` into the cache once (atomically) and return the cached file."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"expected an http(s) URL, got {url!r}")
    name = re.sub(r"[^\w.-]", "_", Path(parsed.path).name) or "download"
    target = cache_dir() / "urls" / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{name}"
    if target.is_file():
        return target
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise FileNotFoundError(f"{url} is not in the cache ({target}) and HF_HUB_OFFLINE is set")
    target.parent.mkdir(parents=True, exist_ok=True)
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise ConnectionError(f"{url}: got {out.tell()} of {total} bytes")
        os.replace(tmp, target)
    except urllib.error.URLError as e:
        raise ConnectionError(f"could not download {url}: {e.reason}") from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
