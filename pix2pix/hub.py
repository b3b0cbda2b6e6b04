"""Load generators from anywhere people keep them, and save them in our Hub format.

``load_generator(source)`` accepts a Hub repo id (``org/name`` or ``org/name@revision``), a local
folder in our format, a local weight file in the reference or HugGAN format, an ``https://``
URL of a ``.pth`` (downloaded once into a cache), or the name of one of the reference
implementation's official models (``cyclegan:horse2zebra``, ``pix2pix:facades_label2photo``).
Our format is what ``PyTorchModelHubMixin.save_pretrained`` writes: ``config.json`` (architecture,
its arguments and the task metadata), ``model.safetensors`` and a model card (``README.md``).

CycleGAN sources hold two generators, one per direction; ``direction="AtoB"`` (the default) or
``"BtoA"`` picks one: our CycleGAN runs (A -> B in the folder, B -> A in its ``BtoA/``
subfolder), the reference's run folders (``latest_net_G_A.pth`` translates A -> B,
``latest_net_G_B.pth`` B -> A) and the official models that come in both directions
(``cyclegan:horse2zebra`` with ``direction="BtoA"`` is ``cyclegan:zebra2horse``).
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
from pix2pix.files import atomic_write, save_safetensors
from pix2pix.formats import CheckpointError

INPUT_KINDS = ("edges", "labels", "photo")
METHODS = ("pix2pix", "cyclegan")
DIRECTIONS = ("AtoB", "BtoA")
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BTOA_DIR = "BtoA"  # a CycleGAN model's B -> A generator, beside the A -> B one in our format
PAPER_URL = "https://arxiv.org/abs/1611.07004"
CYCLEGAN_PAPER_URL = "https://arxiv.org/abs/1703.10593"
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
    # Colour hints: the input may carry coloured dabs inside shapes (line art only), each asking
    # for its shape's colour (trained with train.hints; ``pix2pix-train --hints``).
    hints: bool = False
    method: str = "pix2pix"  # how it was trained: "pix2pix" (paired) or "cyclegan" (unpaired)
    # Names of the domains A and B (e.g. ["horse", "zebra"]): with ``direction``, what this
    # generator translates from and to.
    domains: list[str] | None = None

    def __post_init__(self) -> None:
        if self.input_kind is not None and self.input_kind not in INPUT_KINDS:
            raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {self.input_kind!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {self.direction!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.domains is not None and (
            len(self.domains) != 2 or not all(isinstance(d, str) and d for d in self.domains)
        ):
            raise ValueError(f"domains must be two names (A, B), got {self.domains!r}")
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

    def translates(self) -> str:
        """``"A -> B"``, or with domain names ``"A -> B (horse -> zebra)"``."""
        source, target = ("A", "B") if self.direction == "AtoB" else ("B", "A")
        text = f"{source} -> {target}"
        if self.domains:
            names = dict(zip("AB", self.domains, strict=True))
            text += f" ({names[source]} -> {names[target]})"
        return text


_CARD = """---
{{ card_data }}
---

# {{ title }}

{{ intro }}

| | |
|---|---|
| architecture | `{{ architecture }}` ({{ network }}) |
| input | {{ input_kind }} |
| colour hints | {{ hints }} |
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
translate(image).save("out.png"){{ usage_other }}
```
"""


_PIX2PIX_INTRO = (
    "A pix2pix generator ([Isola et al., *Image-to-Image Translation with Conditional Adversarial "
    f"Networks*, CVPR 2017]({PAPER_URL})), saved by pix2pix-studio."
)
_CYCLEGAN_INTRO = (
    "A CycleGAN generator ([Zhu et al., *Unpaired Image-to-Image Translation using "
    f"Cycle-Consistent Adversarial Networks*, ICCV 2017]({CYCLEGAN_PAPER_URL})), saved by "
    "pix2pix-studio."
)


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
        """Channels the network reads (an RGB line drawing with hints is 3)."""
        return networks.input_channels(self.net)

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
            "hints": "yes: coloured dabs inside a shape choose its colour" if t.hints else "no",
            "direction": f"{t.direction}: {t.translates()}",
            "train_size": f"{t.train_size} px" if t.train_size else "unknown",
            "patch": f"{t.patch}x{t.patch}" if t.patch else "unknown",
            "dataset": t.dataset or "unknown",
            "source": t.source or "trained with pix2pix-studio",
            "notes": t.notes,
            "metrics": metrics,
            "repo_id": kwargs.pop("repo_id", None) or "path/or/repo-id",
            "intro": _PIX2PIX_INTRO,
            "usage_other": "",
        }
        if t.method == "cyclegan":
            values["intro"] = _CYCLEGAN_INTRO
        if kwargs.pop("pair", False):
            values["intro"] += (
                f"\n\nThis folder holds both directions: this generator, {t.translates()}, "
                f"and the other one in `{BTOA_DIR}/`; `load_generator(source, "
                f'direction="BtoA")` loads that one.'
            )
            values["usage_other"] = (
                f'\nback = Translator(load_generator("{values["repo_id"]}", direction="BtoA"))'
            )
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
        dtype = getattr(self, "_save_dtype", None)
        state = {
            k: (v.to(dtype) if dtype is not None and v.is_floating_point() else v)
            .detach()
            .cpu()
            .contiguous()
            for k, v in self.state_dict().items()
        }
        save_safetensors(state, save_directory / WEIGHTS_NAME, metadata={"format": "pt"})

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
    reverse: Pix2PixGenerator | None = None,
) -> Path:
    """Save in our format (config.json, model.safetensors, README.md); ``dtype`` casts weights.

    ``dtype=torch.float16`` halves the size; loading casts back to float32. ``reverse``: a
    CycleGAN model's B -> A generator, saved the same way into ``directory/BtoA/`` (``model`` is
    then its A -> B one); ``load_generator(directory, direction="BtoA")`` loads it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if reverse is not None:
        if (model.task.direction, reverse.task.direction) != DIRECTIONS:
            raise ValueError(
                "a generator pair is saved as (A -> B, B -> A); got the directions "
                f"{model.task.direction!r} and {reverse.task.direction!r}"
            )
        _save_one(reverse, directory / BTOA_DIR, dtype, {"repo_id": repo_id})
    _save_one(model, directory, dtype, {"repo_id": repo_id, "pair": reverse is not None})
    return directory


def _save_one(
    model: Pix2PixGenerator, directory: Path, dtype: torch.dtype | None, card: dict[str, Any]
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "README.md").unlink(missing_ok=True)  # the mixin never overwrites a card
    model._save_dtype = dtype
    try:
        model.save_pretrained(directory, config=model.config(), model_card_kwargs=card)
    finally:
        del model._save_dtype


def push_generator(
    model: Pix2PixGenerator,
    repo_id: str,
    *,
    dtype: torch.dtype | None = None,
    reverse: Pix2PixGenerator | None = None,
) -> str:
    """Save into a temporary folder and upload it to the Hub as ``repo_id``; returns the URL.

    ``reverse``: a CycleGAN model's B -> A generator, uploaded into ``BtoA/`` as
    :func:`save_generator` writes it.
    """
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as tmp:
        save_generator(model, tmp, dtype=dtype, repo_id=repo_id, reverse=reverse)
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=tmp, commit_message="Upload pix2pix generator"
        )
    return str(getattr(commit, "commit_url", commit))


# --------------------------------------------------------------------------------------------
# The reference implementation's official models
# --------------------------------------------------------------------------------------------

# URLs of scripts/download_cyclegan_model.sh and download_pix2pix_model.sh of
# junyanz/pytorch-CycleGAN-and-pix2pix: one generator (a bare state dict) per file.
OFFICIAL_URLS = {
    "cyclegan": "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/{name}.pth",
    "pix2pix": "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/{name}.pth",
}
_OFFICIAL_NAME = re.compile(r"(?P<method>cyclegan|pix2pix):(?P<name>\w+)")


@dataclass(frozen=True)
class OfficialModel:
    """One of the reference's published generators: which dataset, direction and domains."""

    method: str  # "cyclegan" | "pix2pix"
    name: str  # the download script's name, e.g. "horse2zebra"
    dataset: str  # the dataset it was trained on, e.g. "horse2zebra"
    direction: str  # of that dataset: "AtoB" | "BtoA"
    domains: tuple[str, str]  # names of the dataset's A and B
    other: str | None  # the name of the generator for the other direction, if published

    @property
    def url(self) -> str:
        """Where the reference's download script fetches it."""
        return OFFICIAL_URLS[self.method].format(name=self.name)

    def other_direction(self) -> OfficialModel:
        """The official model of the same dataset for the other direction; ``ValueError`` when
        the reference published none."""
        if self.other is None:
            source, target = self.domains if self.direction == "AtoB" else self.domains[::-1]
            raise ValueError(
                f"{self.method}:{self.name} translates {source} -> {target} ({self.direction} of "
                f"{self.dataset}); the reference published no generator for the other direction. "
                f"Load it with direction={self.direction!r} or None"
            )
        return OFFICIAL_MODELS[f"{self.method}:{self.other}"]

    def describe(self, task: TaskInfo) -> None:
        """Fill ``task`` with what is known of this model (its file holds weights only)."""
        task.method, task.direction, task.domains = self.method, self.direction, [*self.domains]
        task.dataset = self.dataset
        task.input_kind = (
            "labels" if "label2" in self.name else "edges" if "edges2" in self.name else "photo"
        )
        task.train_size, task.patch = 256, 70
        task.license = "BSD (pytorch-CycleGAN-and-pix2pix); data: see the dataset's terms"


def _official_models() -> dict[str, OfficialModel]:
    # (method, dataset, (A, B), A -> B name, B -> A name): each direction is its own file.
    table = [
        ("cyclegan", "apple2orange", ("apple", "orange"), "apple2orange", "orange2apple"),
        ("cyclegan", "summer2winter_yosemite", ("summer", "winter"), "summer2winter_yosemite",
         "winter2summer_yosemite"),
        ("cyclegan", "horse2zebra", ("horse", "zebra"), "horse2zebra", "zebra2horse"),
        ("cyclegan", "monet2photo", ("Monet painting", "photo"), "monet2photo", "style_monet"),
        ("cyclegan", "cezanne2photo", ("Cezanne painting", "photo"), None, "style_cezanne"),
        ("cyclegan", "ukiyoe2photo", ("Ukiyo-e print", "photo"), None, "style_ukiyoe"),
        ("cyclegan", "vangogh2photo", ("Van Gogh painting", "photo"), None, "style_vangogh"),
        ("cyclegan", "maps", ("satellite photo", "map"), "sat2map", "map2sat"),
        ("cyclegan", "cityscapes", ("photo", "label map"), "cityscapes_photo2label",
         "cityscapes_label2photo"),
        ("cyclegan", "facades", ("photo", "label map"), "facades_photo2label",
         "facades_label2photo"),
        ("cyclegan", "iphone2dslr_flower", ("iPhone photo", "DSLR photo"), "iphone2dslr_flower",
         None),
        ("pix2pix", "edges2shoes", ("edges", "shoe photo"), "edges2shoes", None),
        ("pix2pix", "maps", ("satellite photo", "map"), "sat2map", "map2sat"),
        ("pix2pix", "facades", ("photo", "label map"), None, "facades_label2photo"),
        ("pix2pix", "day2night", ("day photo", "night photo"), "day2night", None),
    ]  # fmt: skip
    models = {}
    for method, dataset, domains, a_to_b, b_to_a in table:
        for direction, name, other in (("AtoB", a_to_b, b_to_a), ("BtoA", b_to_a, a_to_b)):
            if name is not None:
                models[f"{method}:{name}"] = OfficialModel(
                    method, name, dataset, direction, domains, other
                )
    return models


OFFICIAL_MODELS: dict[str, OfficialModel] = _official_models()


def official_model(source: str | os.PathLike) -> OfficialModel | None:
    """The official model that ``source`` names (``cyclegan:horse2zebra``) or whose download URL
    it is; None for any other source. An unknown ``cyclegan:`` / ``pix2pix:`` name is a
    ``ValueError`` listing the known ones."""
    if not isinstance(source, str):
        return None
    match = _OFFICIAL_NAME.fullmatch(source)
    if match is not None:
        if source not in OFFICIAL_MODELS:
            known = ", ".join(k for k in OFFICIAL_MODELS if k.startswith(match["method"] + ":"))
            raise ValueError(f"unknown official model {source!r}; known: {known}")
        return OFFICIAL_MODELS[source]
    bare = re.sub(r"^https?://", "", source)
    for model in OFFICIAL_MODELS.values():
        if re.sub(r"^https?://", "", model.url) == bare:
            return model
    return None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def load_generator(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    device: str | torch.device | None = None,
    direction: str | None = None,
) -> Pix2PixGenerator:
    """Load a generator from a Hub repo id, a folder, a weight file, a URL or an official model's
    name (``cyclegan:horse2zebra``, ``pix2pix:facades_label2photo``: :data:`OFFICIAL_MODELS`);
    in eval mode.

    The architecture of reference and HugGAN checkpoints is read off their keys and shapes.
    Pickles are opened with ``torch.load(weights_only=True)``: a file that carries code is refused.

    ``direction`` (``"AtoB"`` or ``"BtoA"``) picks one generator of a CycleGAN source (our
    CycleGAN folders and Hub repos, the reference's run folders: G_A is A -> B, G_B is B -> A;
    an official model's other direction, e.g. ``zebra2horse`` for ``horse2zebra``); ``None``
    gives A -> B of those. Of a source holding one generator, a ``direction`` other than the one
    it records is refused (``CheckpointError``, naming both); an unknown one is a ``ValueError``.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA' (or None), got {direction!r}")
    official = official_model(source)
    if official is not None:
        if direction is not None and direction != official.direction:
            official = official.other_direction()
        source = official.url
        direction = None  # the file holds the one generator asked for; its metadata comes below
    local = resolve_source(source, revision=revision)
    is_url = isinstance(source, str) and source.startswith(("http://", "https://"))
    try:
        model = load_local(local, label=str(source), direction=direction)
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
    if official is not None:
        official.describe(model.task)
    if is_url:
        model.task.source = model.task.source or source
    model.eval()
    if device is not None:
        model.to(device)
    return model


def holds_both_directions(source: str | os.PathLike, *, revision: str | None = None) -> bool:
    """Whether ``source`` offers a generator for each direction (``direction=`` picks one): our
    CycleGAN folders and Hub repos, the reference's run folders with G_A and G_B, and official
    models published in both directions. Remote sources are fetched (once) to look."""
    official = official_model(source)
    if official is not None:
        return official.other is not None
    path = resolve_source(source, revision=revision)
    if not path.is_dir():
        return False
    if (path / CONFIG_NAME).is_file() and (path / BTOA_DIR / CONFIG_NAME).is_file():
        return True
    sides = {m["side"] for e in path.iterdir() if (m := _CYCLE_FILE.fullmatch(e.name))}
    return sides == {"A", "B"}


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


def load_local(
    path: Path, *, label: str | None = None, direction: str | None = None
) -> Pix2PixGenerator:
    """Load a local folder (our format, or one holding a single weight file) or weight file.

    A ``config.json`` that is not ours (huggingface_hub's ``save_pretrained`` of another model
    class writes its own, e.g. ``{"in_channels": 3, "out_channels": 3}`` for a HugGAN
    ``GeneratorUNet``) does not stop loading: the architecture is then read off the weights, and
    an error says what was tried. ``direction``: as in :func:`load_generator`.
    """
    label = label or str(path)
    path, picked = _pick_direction(path, direction, label)
    model = _load_one(path, label)
    if picked is not None:
        if path.is_file():  # a reference CycleGAN run's G_A / G_B file
            model.task.method = "cyclegan"
        model.task.direction = picked
    elif direction is not None and direction != model.task.direction:
        raise CheckpointError(
            f"{label} holds one generator, which translates {model.task.translates()}; "
            f"direction={direction!r} needs a CycleGAN model that holds both: our CycleGAN "
            f"folder or Hub repo (with {BTOA_DIR}/), a reference run folder (*_net_G_A.pth and "
            "*_net_G_B.pth) or an official model's name. Load this one without direction="
        )
    return model


# A reference CycleGAN run's generators: <epoch or "latest">_net_G_A.pth (A -> B) and _G_B (B -> A).
_CYCLE_FILE = re.compile(r"(?P<epoch>.+)_net_G_(?P<side>[AB])\.\w+")
_SIDES = {"AtoB": "A", "BtoA": "B"}


def _pick_direction(path: Path, direction: str | None, label: str) -> tuple[Path, str | None]:
    """The folder or file of ``direction`` in a CycleGAN source, and the direction it is;
    ``(path, None)`` when ``path`` holds one generator of no known direction."""
    if path.is_file():
        match = _CYCLE_FILE.fullmatch(path.name)
        if match is None or path.suffix.lower() not in formats.WEIGHT_SUFFIXES:
            return path, None
        found = {v: k for k, v in _SIDES.items()}[match["side"]]
        if direction is not None and direction != found:
            raise CheckpointError(
                f"{label} is a reference CycleGAN run's G_{match['side']}, which translates "
                f"{found[0]} -> {found[-1]}; for direction={direction!r} load its "
                f"*_net_G_{_SIDES[direction]} file, or the run folder with direction="
                f"{direction!r}"
            )
        return path, found
    if not path.is_dir():
        return path, None
    if (path / CONFIG_NAME).is_file() and (path / BTOA_DIR / CONFIG_NAME).is_file():
        picked = direction or "AtoB"
        return (path / BTOA_DIR if picked == "BtoA" else path), picked
    by_side: dict[str, list[Path]] = {"A": [], "B": []}
    for entry in sorted(path.iterdir()):
        match = _CYCLE_FILE.fullmatch(entry.name)
        if match and entry.is_file() and entry.suffix.lower() in formats.WEIGHT_SUFFIXES:
            by_side[match["side"]].append(entry)
    if not by_side["A"] and not by_side["B"]:
        return path, None
    picked = direction or "AtoB"
    side = _SIDES[picked]
    found = ", ".join(
        f"{p.name} ({'A -> B' if s == 'A' else 'B -> A'})" for s in "AB" for p in by_side[s]
    )
    files = by_side[side]
    latest = [p for p in files if p.name.startswith("latest_")]
    if len(files) == 1 or len(latest) == 1:
        return (latest or files)[0], picked
    what = "no" if not files else "several"
    raise CheckpointError(
        f"{label} is a reference CycleGAN run folder (G_A translates A -> B, G_B B -> A) with "
        f"{what} {picked[0]} -> {picked[-1]} generator{'s' if files else ''} "
        f"(*_net_G_{side}.pth) to pick for direction={picked!r}; found {found}. "
        + (
            "Pass the file you want itself."
            if files
            else f"Ask for the other direction, or add its latest_net_G_{side}.pth."
        )
    )


def _load_one(path: Path, label: str) -> Pix2PixGenerator:
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
    patterns = [CONFIG_NAME, f"{BTOA_DIR}/{CONFIG_NAME}", "*.safetensors", "*.bin", "*.pth", "*.pt"]
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

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_write(target) as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=name, leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
            if total is not None and out.tell() != total:
                raise ConnectionError(f"{url}: got {out.tell()} of {total} bytes")
    except urllib.error.URLError as e:
        raise ConnectionError(f"could not download {url}: {e.reason}") from e
    return target
