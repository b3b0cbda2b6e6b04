"""The model registry: which models the app serves, read from a TOML file (``models.toml``).

Each ``[[model]]`` entry names one generator and where it comes from: exactly one of ``path`` (a
folder or file relative to the registry file), ``hub`` (a Hub repo id, with an optional
``revision``) or ``url`` (a reference ``.pth``). Task metadata (input kind, palette, class names,
training size, ...) normally comes from the model's own config; keys given here override it, which
is how checkpoints without metadata (the reference and HugGAN ones) get theirs. Label palettes can
be shared through ``[palette.NAME]`` tables. A malformed registry raises an error naming the entry
and the key; a model that cannot be loaded later is only marked unavailable.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pix2pix.hub import INPUT_KINDS

REGISTRY_ENV = "PIX2PIX_MODELS"
DEFAULT_REGISTRY = Path(__file__).resolve().parents[2] / "models.toml"
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

_SOURCE_KEYS = ("path", "hub", "url")
_OPTIONAL_KEYS = {
    "revision": str,
    "task": str,
    "input": str,
    "direction": str,
    "group": str,
    "variant": str,
    "train_size": int,
    "patch": int,
    "palette": (str, list),
    "class_names": list,
    "fill": str,
    "dataset": str,
    "license": str,
    "notes": str,
    "examples": list,
    "norm": str,
    "pen": (int, float),
    "hints": bool,
}
_REQUIRED_KEYS = {"id": str, "name": str}


class RegistryError(ValueError):
    """The registry file is missing, not TOML, or holds an invalid entry."""


@dataclass(frozen=True)
class ModelEntry:
    """One model as the registry describes it (before loading)."""

    id: str  # the API's model name
    name: str  # display name
    source: str  # local path (absolute), Hub repo id or URL
    source_kind: str  # "path" | "hub" | "url"
    revision: str | None = None
    task: str = ""
    group: str | None = None
    variant: str | None = None
    norm: str = "instance"
    examples: tuple[Path, ...] = ()
    fill: str | None = None  # class name the label canvas starts filled with
    pen: float | None = None  # default pen width on the canvas, in model pixels
    overrides: dict[str, Any] = field(default_factory=dict)  # TaskInfo fields set in the registry

    @property
    def is_local(self) -> bool:
        """Whether the weights come from this machine (bundled) rather than the network."""
        return self.source_kind == "path"

    @property
    def label(self) -> str:
        """The caption of this model inside its group (its variant), else its name."""
        return self.variant or self.name


@dataclass(frozen=True)
class Registry:
    """All entries, in file order, plus the file they came from."""

    path: Path
    models: tuple[ModelEntry, ...]

    def get(self, model_id: str) -> ModelEntry:
        """The entry called ``model_id``; raises KeyError listing the valid ids."""
        for entry in self.models:
            if entry.id == model_id:
                return entry
        raise KeyError(f"unknown model {model_id!r}; valid models: {', '.join(self.ids)}")

    @property
    def ids(self) -> list[str]:
        """Model ids in registry order."""
        return [m.id for m in self.models]

    @property
    def groups(self) -> dict[str, list[ModelEntry]]:
        """Group name -> its entries, in registry order."""
        groups: dict[str, list[ModelEntry]] = {}
        for entry in self.models:
            if entry.group:
                groups.setdefault(entry.group, []).append(entry)
        return groups

    def group_examples(self, name: str | None) -> list[Path]:
        """The example inputs of group ``name`` (its models' examples, each file once, in
        registry order); empty for an unknown group."""
        files: list[Path] = []
        for entry in self.groups.get(name or "", []):
            files.extend(p for p in entry.examples if p not in files)
        return files


def registry_path() -> Path:
    """``$PIX2PIX_MODELS`` if set, else ``models.toml`` at the repository root."""
    env = os.environ.get(REGISTRY_ENV)
    return Path(env).expanduser().resolve() if env else DEFAULT_REGISTRY


def load_registry(path: str | os.PathLike | None = None) -> Registry:
    """Read and validate a registry file (default: :func:`registry_path`)."""
    path = Path(path).expanduser().resolve() if path is not None else registry_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise RegistryError(f"model registry {path} not found (set ${REGISTRY_ENV})") from e
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise RegistryError(f"model registry {path} is not a readable TOML file: {e}") from e
    unknown = sorted(set(data) - {"model", "palette"})
    if unknown:
        raise RegistryError(f"{path}: unknown top-level keys {unknown}; valid: model, palette")
    palettes = _palettes(data.get("palette", {}), path)
    raw = data.get("model", [])
    if not isinstance(raw, list) or not raw:
        raise RegistryError(f"{path}: no [[model]] entries")
    entries = [_entry(item, i, path, palettes) for i, item in enumerate(raw)]
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise RegistryError(f"{path}: model id {entry.id!r} is used twice")
        seen.add(entry.id)
    for group, members in Registry(path, tuple(entries)).groups.items():
        labels = [m.variant for m in members]
        if len(set(labels)) != len(labels):
            raise RegistryError(f"{path}: group {group!r} has repeated variant labels {labels}")
    return Registry(path, tuple(entries))


def _palettes(raw: Any, path: Path) -> dict[str, tuple[list[list[int]], list[str]]]:
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: [palette] must be a table of named palettes")
    palettes = {}
    for name, table in raw.items():
        where = f"{path}: palette {name!r}"
        if not isinstance(table, dict) or set(table) != {"colors", "class_names"}:
            raise RegistryError(f"{where} needs exactly the keys 'colors' and 'class_names'")
        colors = _colors(table["colors"], where)
        names = table["class_names"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RegistryError(f"{where}: class_names must be a list of strings")
        if len(names) != len(colors):
            raise RegistryError(f"{where}: {len(colors)} colours but {len(names)} class names")
        palettes[name] = (colors, names)
    return palettes


def _colors(raw: Any, where: str) -> list[list[int]]:
    ok = (
        isinstance(raw, list)
        and raw
        and all(
            isinstance(c, list)
            and len(c) == 3
            and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
            for c in raw
        )
    )
    if not ok:
        raise RegistryError(f"{where}: colours must be a list of [r, g, b] integers in 0..255")
    if len({tuple(c) for c in raw}) != len(raw):
        raise RegistryError(f"{where}: colours must be distinct")
    return [list(c) for c in raw]


def _entry(
    item: Any, index: int, path: Path, palettes: dict[str, tuple[list[list[int]], list[str]]]
) -> ModelEntry:
    where = f"{path}: model #{index + 1}"
    if not isinstance(item, dict):
        raise RegistryError(f"{where} is not a table")
    if isinstance(item.get("id"), str):
        where = f"{path}: model {item['id']!r}"
    allowed = set(_REQUIRED_KEYS) | set(_OPTIONAL_KEYS) | set(_SOURCE_KEYS)
    unknown = sorted(set(item) - allowed)
    if unknown:
        raise RegistryError(f"{where}: unknown keys {unknown}; valid keys: {sorted(allowed)}")
    for key, kind in _REQUIRED_KEYS.items():
        if not isinstance(item.get(key), kind) or not item[key].strip():
            raise RegistryError(f"{where}: {key!r} is required and must be a non-empty string")
    for key, kind in _OPTIONAL_KEYS.items():
        if key in item and not isinstance(item[key], kind):
            raise RegistryError(f"{where}: {key!r} has the wrong type ({type(item[key]).__name__})")
    if not _ID.match(item["id"]):
        raise RegistryError(f"{where}: id must match {_ID.pattern} (used as the API model name)")

    sources = [k for k in _SOURCE_KEYS if k in item]
    if len(sources) != 1:
        raise RegistryError(f"{where}: give exactly one of 'path', 'hub' or 'url', got {sources}")
    kind = sources[0]
    source = item[kind]
    if not isinstance(source, str) or not source.strip():
        raise RegistryError(f"{where}: {kind!r} must be a non-empty string")
    if kind == "path":
        source = str((path.parent / source).resolve())
    elif kind == "url" and not source.startswith(("http://", "https://")):
        raise RegistryError(f"{where}: url must start with http:// or https://, got {source!r}")
    elif kind == "hub" and ("@" in source or source.count("/") != 1):
        raise RegistryError(f"{where}: hub must be 'org/name' (put the revision in 'revision')")
    if "revision" in item and kind != "hub":
        raise RegistryError(f"{where}: 'revision' only applies to 'hub' sources")

    overrides: dict[str, Any] = {}
    if "input" in item:
        if item["input"] not in INPUT_KINDS:
            raise RegistryError(
                f"{where}: input must be one of {INPUT_KINDS}, got {item['input']!r}"
            )
        overrides["input_kind"] = item["input"]
    if "direction" in item:
        if item["direction"] not in ("AtoB", "BtoA"):
            raise RegistryError(f"{where}: direction must be 'AtoB' or 'BtoA'")
        overrides["direction"] = item["direction"]
    for key in ("train_size", "patch"):
        if key in item:
            if item[key] < 1:
                raise RegistryError(f"{where}: {key} must be positive, got {item[key]}")
            overrides[key] = item[key]
    for key in ("dataset", "license", "notes", "hints"):
        if key in item:
            overrides[key] = item[key]
    if "palette" in item:
        if isinstance(item["palette"], str):
            if item["palette"] not in palettes:
                raise RegistryError(
                    f"{where}: unknown palette {item['palette']!r}; defined: {sorted(palettes)}"
                )
            colors, names = palettes[item["palette"]]
        else:
            colors, names = _colors(item["palette"], where), item.get("class_names")
        overrides["palette"] = colors
        if names is not None:
            overrides["class_names"] = list(names)
    elif "class_names" in item:
        overrides["class_names"] = list(item["class_names"])
    if "class_names" in overrides:
        names = overrides["class_names"]
        if not all(isinstance(n, str) for n in names):
            raise RegistryError(f"{where}: class_names must be a list of strings")
        if "palette" in overrides and len(names) != len(overrides["palette"]):
            raise RegistryError(f"{where}: palette and class_names differ in length")

    group, variant = item.get("group"), item.get("variant")
    if variant is not None and group is None:
        raise RegistryError(f"{where}: 'variant' needs a 'group'")
    if group is not None and not variant:
        raise RegistryError(f"{where}: a model in group {group!r} needs a 'variant' label")
    if item.get("norm", "instance") not in ("instance", "running"):
        raise RegistryError(f"{where}: norm must be 'instance' or 'running'")
    pen = item.get("pen")
    if pen is not None and not 0 < pen <= 64:
        raise RegistryError(f"{where}: pen must be a width in 0..64 model pixels, got {pen}")
    examples = item.get("examples", [])
    if not all(isinstance(e, str) for e in examples):
        raise RegistryError(f"{where}: examples must be a list of file patterns")

    return ModelEntry(
        id=item["id"],
        name=item["name"].strip(),
        source=source,
        source_kind=kind,
        revision=item.get("revision"),
        task=item.get("task", ""),
        group=group,
        variant=variant,
        norm=item.get("norm", "instance"),
        examples=tuple(_expand(examples, path.parent)),
        fill=item.get("fill"),
        pen=pen,
        overrides=overrides,
    )


def _expand(patterns: list[str], root: Path) -> list[Path]:
    # Example files are made by a separate recipe; patterns that match nothing are not an error.
    files: list[Path] = []
    for pattern in patterns:
        base = Path(pattern)
        matches = base.parent.glob(base.name) if base.is_absolute() else root.glob(pattern)
        files.extend(p for p in sorted(matches) if p.is_file() and p not in files)
    return files
