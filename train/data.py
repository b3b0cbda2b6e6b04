"""Training data from a user's own folders: find the layout, check the files, load the pairs.

Three layouts are understood (``format=None`` detects them; pass ``format=`` to force one):

- ``"aligned"``: each image holds A on its left half and B on its right half, as in the public
  facades / edges2shoes / maps archives. Images sit directly in the split folder.
- ``"paired"``: ``A/`` and ``B/`` subfolders whose files match by name *without extension*, so
  ``A/cat.jpg`` pairs with ``B/cat.png``.
- ``"photos"``: plain photos. B is the photo and A its edge map from
  :func:`pix2pix.edges.photo_to_edges`, computed once and cached as PNG files.

Split folders ``train/``, ``val/``, ``test/`` are used when present (``ROOT/train/A`` or, as the
reference implementation's combine script writes them, ``ROOT/A/train``); without them the root
itself is the only split and serves whichever split is asked for.

Unpaired images (CycleGAN) are two folders of any sizes whose names need not match
(:class:`UnpairedDataset`): the reference's ``ROOT/trainA`` + ``ROOT/trainB`` (and ``testA`` /
``testB``), ``ROOT/train/A`` + ``ROOT/train/B``, ``ROOT/A`` + ``ROOT/B``, or two folders given
separately (:func:`unpaired_folders`).

Both datasets can keep their images in memory (``cache="auto"`` or ``"on"``): each file is decoded
once, when the dataset is built, and kept as uint8 at the size the transform first resizes to
(``load_size``); the random crop, mirror and colour hints are still drawn per item, so an item is
the same with and without the cache. Built before the DataLoader starts its workers, the arrays
are shared with them (fork: copy-on-write pages that are only read).
"""

from __future__ import annotations

import contextlib
import os
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from pix2pix import imageio
from pix2pix.files import atomic_write
from train.hints import DabSpec, sample_dabs

IMAGE_EXTENSIONS = imageio.SUFFIXES  # the same files as every entry point reads
SPLITS = ("train", "val", "test")
FORMATS = ("aligned", "paired", "photos")
DIRECTIONS = ("AtoB", "BtoA")
CACHE_CHOICES = ("auto", "on", "off")
# cache="auto" keeps the images in memory when they take at most this share of the memory
# available (what psutil or sysconf report, capped by a container's cgroup limit).
CACHE_SHARE = 0.5
EDGES_CACHE_NAME = ".edges_cache"

# Auto-detection calls a folder aligned when at least this share of its images is 2:1 (+-1 px);
# a stray photo or two in an aligned archive must not flip the whole folder to "photos".
ALIGNED_SHARE = 0.9
# At least this share of images twice as wide as high (or wider), but not aligned: refused.
PAIRLIKE_SHARE = 0.5

_LAYOUTS = """expected one of these layouts (split folders train/ val/ test/ are optional):
  aligned: ROOT/train/*.jpg, each image A|B side by side (width = 2 x height)
  paired:  ROOT/train/A/*.png and ROOT/train/B/*.png with matching names
           (or ROOT/A/train and ROOT/B/train)
  photos:  ROOT/train/*.jpg, plain photos; A is computed as their edge map"""

_WARN_LIMIT = 10  # file names listed in a skipped-files warning
_MISMATCH_LIMIT = 20  # names listed per side when A and B do not match
_IO_THREADS = min(16, os.cpu_count() or 1)

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Sample:
    """One training example on disk."""

    name: str  # file name without extension, unique within the dataset
    path: Path  # aligned: the A|B image; paired: the A image; photos: the photo (B)
    b_path: Path | None = None  # paired only: the B image


@dataclass
class DataSpec:
    """What :func:`find_dataset` found: the layout, the split and the files to load."""

    root: Path
    format: str
    split: str
    files: list[Sample]
    folders: tuple[Path, ...]  # the folder(s) the files were listed from: (split,) or (A, B)
    detection: str  # how the format was chosen, for logs
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): non-images
    unfetched: list[Path] = field(default_factory=list)  # image links whose targets are missing

    def summary(self) -> str:
        """One line for logs: format, split, file count, folders and how the format was chosen."""
        unit = "pairs" if self.format == "paired" else "images"
        where = " + ".join(str(f) for f in self.folders)
        text = f"{self.format} dataset, split {self.split!r}: {len(self.files)} {unit} in {where}"
        text += f" ({self.detection})"
        if self.skipped:
            text += f"; {len(self.skipped)} non-image files ignored"
        if self.unfetched:
            text += f"; {len(self.unfetched)} links whose targets are missing skipped"
        return text


def available_splits(root: str | os.PathLike[str]) -> list[str]:
    """Split folders (train/val/test) present under ``root``; empty when the root is the split."""
    root = Path(root)
    found = [s for s in SPLITS if (root / s).is_dir()]
    if found:
        return found
    return [s for s in SPLITS if (root / "A" / s).is_dir() and (root / "B" / s).is_dir()]


def find_dataset(
    root: str | os.PathLike[str], *, split: str = "train", format: str | None = None
) -> DataSpec:
    """Detect the layout under ``root``, list the files of ``split`` and check A/B names match.

    Only image headers are read (to tell aligned from photos); whether the files decode is checked
    by :class:`PairedDataset`. File names are matched in Unicode NFC, so ``A/café.png`` written on
    Linux pairs with ``B/café.png`` copied from a Mac (NFD); the files are read by their real
    paths. Image names that are symbolic links to missing files (git-annex / DataLad files not
    fetched) are skipped with a warning that names them.

    Raises ``FileNotFoundError`` / ``NotADirectoryError`` for a missing root or half a paired
    layout, and ``ValueError`` for an unknown ``format``, A/B names that do not match, no images
    (or only links whose targets are missing), or a layout that cannot be told apart (pass
    ``format=``).
    """
    if format is not None and format not in FORMATS:
        raise ValueError(f"unknown dataset format {format!r}; expected one of {FORMATS} or None")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset folder {root} does not exist; {_LAYOUTS}")
    if not root.is_dir():
        raise NotADirectoryError(f"dataset root {root} is a file, not a folder; {_LAYOUTS}")

    folder, ab_dirs, split_note = _resolve_split(root, split)
    if format == "paired" or (format is None and ab_dirs is not None):
        if ab_dirs is None:
            raise FileNotFoundError(
                f"format='paired' needs A/ and B/ subfolders in {folder} (or {root}/A/{split} and "
                f"{root}/B/{split}); {_LAYOUTS}"
            )
        files, skipped, unfetched = _pair_files(*ab_dirs)
        note = "forced with format='paired'" if format else "found A/ and B/ folders"
        spec = DataSpec(root, "paired", split, files, ab_dirs, note + split_note, skipped)
        spec.unfetched = unfetched
        return spec

    images, skipped, unfetched = _list_folder(folder)
    if not images and unfetched:
        raise _unfetched_error(unfetched, len(unfetched), folder)
    if not images:
        raise _empty_folder_error(folder, skipped)
    if unfetched:
        _warn_unfetched(unfetched, len(images) + len(unfetched), folder)
    if format is None:
        format, note = _detect_aligned_or_photos(images, folder)
    else:
        note = f"forced with format={format!r}"
    files = [Sample(name, path) for name, path in zip(_unique_names(images), images, strict=True)]
    return DataSpec(root, format, split, files, (folder,), note + split_note, skipped, unfetched)


def convert_mode(img: Image.Image, channels: int = 3) -> Image.Image:
    """Convert an image of any mode to 8-bit RGB (``channels=3``) or L (``channels=1``).

    The rule of every entry point (``pix2pix.imageio.to_rgb``): upright per EXIF, transparency
    composited onto white, 16-bit images (``I;16*``) scaled from 0..65535, ``I`` and ``F`` by the
    range their values use.
    """
    return imageio.to_mode(img, channels)


def make_aligned(a: Image.Image, b: Image.Image) -> Image.Image:
    """Put A and B side by side (A left, B right) as one RGB image in the aligned format."""
    if a.size != b.size:
        raise ValueError(
            f"A and B must have the same size to be stored side by side, got A {a.size} and "
            f"B {b.size}; resize one of them first"
        )
    width, height = a.size
    out = Image.new("RGB", (2 * width, height))
    out.paste(convert_mode(a, 3), (0, 0))
    out.paste(convert_mode(b, 3), (width, 0))
    return out


class PairedDataset(Dataset):
    """(input, target) pairs from a user's folder, preprocessed as in the pix2pix paper.

    With ``train=True`` both images are resized to ``load_size`` (bicubic), then one random
    ``crop_size`` crop and one random horizontal mirror are applied identically to both; with
    ``train=False`` they are resized straight to ``crop_size``. Randomness comes from torch's RNG,
    so ``torch.manual_seed`` reproduces it and DataLoader workers draw different crops.

    Files that do not decode are skipped with one warning and listed in ``skipped`` as
    ``(path, reason)``; a file that breaks later, during training, is replaced by the next good
    example (each DataLoader worker keeps its own ``skipped`` list). For ``format="photos"``
    the edge maps are cached in ``root/.edges_cache/<split>/``; ``edges_cache_dir`` replaces
    ``root/.edges_cache`` (the split name is still appended). Edge maps are drawn at the size the
    photo is resized to (``load_size``, or ``crop_size`` when ``train=False``) so that their 1-px
    lines survive; a cached map is reused while the photo's relative path, mtime and size and that
    resolution are unchanged.

    With ``hints`` (line art to colour), random dabs of the target's colours are drawn onto each
    input after the crop and mirror (``train.hints.sample_dabs``: 0 dabs for a share of examples;
    with ``DabSpec.recolour`` some dabs get a new colour and so does their shape in the target).

    ``cache``: ``"on"`` decodes every example once, here, and keeps A and B resized (uint8,
    ``(N, C, S, S)`` with S the first resize's side) in memory; ``"auto"`` does so when that takes
    at most ``cache_budget`` bytes (default: :data:`CACHE_SHARE` of :func:`available_memory`) and
    otherwise decodes per item, as ``"off"`` does; ``summary()`` says which and why. Items are
    identical either way for the same torch RNG state. Raises ``ValueError`` for an unknown
    ``cache``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str = "train",
        direction: str = "AtoB",
        format: str | None = None,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        in_channels: int = 3,
        out_channels: int = 3,
        edges_cache_dir: str | os.PathLike[str] | None = None,
        hints: DabSpec | None = None,
        cache: str = "off",
        cache_budget: int | None = None,
    ) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected 'AtoB' or 'BtoA'")
        _check_options(
            {"in_channels": in_channels, "out_channels": out_channels},
            load_size,
            crop_size,
            train=train,
            paper="the paper",
        )

        self.spec = find_dataset(root, split=split, format=format)
        self.direction = direction
        self.train = train
        self.skipped: list[tuple[str, str]] = list(self.spec.skipped)
        self.samples = self._drop_unreadable(self.spec.files)
        if not self.samples:
            raise ValueError(
                f"none of the {len(self.spec.files)} files in "
                f"{' + '.join(map(str, self.spec.folders))} could be read as an image: "
                f"{_preview_skipped(self.skipped, self.spec.root)}"
            )

        # A and B channel counts: the input is A unless the direction is swapped.
        if direction == "AtoB":
            self._channels = (in_channels, out_channels)
        else:
            self._channels = (out_channels, in_channels)
        # The first resize's size: JPEGs are decoded at a reduced scale down to it (several times
        # faster) and edge maps are drawn at it.
        self._decode_size = load_size if train else crop_size
        self._resize, self._augment = _build_transform(load_size, crop_size, flip=flip, train=train)
        cache_root = Path(edges_cache_dir) if edges_cache_dir else self.spec.root / EDGES_CACHE_NAME
        self.edges_cache_dir = cache_root / split
        self._failed: set[int] = set()
        self._cache_write_warned = False
        self.hints = hints
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None
        side = self._decode_size
        needed = len(self.samples) * sum(self._channels) * side * side
        keep, self.cache_note = _cache_decision(cache, needed, cache_budget)
        if keep:
            self._cached = _decode_all(
                len(self.samples),
                [(c, side, side) for c in self._channels],
                self._resized,
                lambda i, e: _skip_for_the_run(self, i, e, "example", stacklevel=4),
            )

    def __len__(self) -> int:
        """Number of readable examples."""
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        """Return ``input`` and ``target`` float tensors (C, crop, crop) in [-1, 1] and ``name``."""
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} examples")
        for step in range(n):
            i = (index + step) % n
            if i in self._failed:
                continue
            try:
                a_t, b_t = self._resized(i)
            except _UnreadableError as e:
                _skip_for_the_run(self, i, e, "example", stacklevel=2)
                continue
            if self._augment is not None:
                a_t, b_t = self._augment(a_t, b_t)
            a_t, b_t = _to_unit_range(a_t), _to_unit_range(b_t)
            if self.direction == "BtoA":
                a_t, b_t = b_t, a_t
            if self.hints is not None:
                a_t, b_t, _ = sample_dabs(a_t, b_t, self.hints)
            return {"input": a_t, "target": b_t, "name": self.samples[i].name}
        raise RuntimeError(
            f"every file of the dataset failed to load; problems found: "
            f"{_preview_skipped(self.skipped, self.spec.root)}"
        )

    def summary(self) -> str:
        """One line for logs: the dataset spec plus how many files were skipped."""
        text = f"{self.spec.summary()}, direction {self.direction}"
        unreadable = len(self.skipped) - len(self.spec.skipped)
        if unreadable:
            text += f"; {unreadable} unreadable files skipped"
        return f"{text}; {self.cache_note}"

    @property
    def cached(self) -> bool:
        """Whether the decoded images are held in memory (see ``cache``)."""
        return self._cached is not None

    def _resized(self, i: int) -> tuple[tv_tensors.Image, tv_tensors.Image]:
        """Example ``i``'s A and B, uint8 (C, S, S) at the first resize's side S: from memory
        when cached, else decoded and resized. Raises ``_UnreadableError``."""
        if self._cached is not None:
            return tv_tensors.Image(self._cached[0][i]), tv_tensors.Image(self._cached[1][i])
        a, b = self._load(self.samples[i])
        return self._resize(_to_tensor(a), _to_tensor(b))

    def _drop_unreadable(self, files: list[Sample]) -> list[Sample]:
        paths = [p for s in files for p in (s.path, s.b_path) if p is not None]
        problems = dict(zip(paths, _parallel_map(_decode_problem, paths), strict=True))
        bad = [(str(p), reason) for p, reason in problems.items() if reason is not None]
        self.skipped.extend(bad)
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} of {len(paths) + len(self.spec.skipped)} files "
                f"that are not readable images: {_preview_skipped(self.skipped, self.spec.root)}. "
                "They were left on disk untouched; fix or remove them to train on them.",
                stacklevel=3,
            )
        return [s for s in files if problems[s.path] is None and problems.get(s.b_path) is None]

    def _load(self, sample: Sample) -> tuple[Image.Image, Image.Image]:
        a_channels, b_channels = self._channels
        size = self._decode_size
        if self.spec.format == "aligned":
            both = _read_rgb(sample.path, (2 * size, size))
            width, height = both.size
            half = width // 2
            # B is taken from the right edge so that an odd width drops the middle column
            # instead of shifting B by one pixel against A.
            a = both.crop((0, 0, half, height))
            b = both.crop((width - half, 0, width, height))
        elif self.spec.format == "paired":
            assert sample.b_path is not None
            a = _read_rgb(sample.path, (size, size))
            b = _read_rgb(sample.b_path, (size, size))
        else:
            b = _read_rgb(sample.path, (size, size))
            a = self._edges(sample.path, b)
        return _with_channels(a, a_channels), _with_channels(b, b_channels)

    def _edges(self, photo: Path, decoded: Image.Image) -> Image.Image:
        try:
            stat = photo.stat()
        except OSError as e:
            raise _UnreadableError(photo, f"{type(e).__name__}: {e}") from e
        size = self._decode_size
        relative = photo.relative_to(self.spec.folders[0])
        version = f"{stat.st_mtime_ns}-{stat.st_size}"
        cached = self.edges_cache_dir / relative.parent / f"{relative.name}.{version}.{size}px.png"
        if cached.is_file():
            # A damaged cache entry is not worth a warning: it is recomputed and overwritten.
            with contextlib.suppress(Exception), Image.open(cached) as img:
                return img.convert("L")

        from pix2pix import edges  # imported here: only the photos format needs OpenCV edges

        # Lines drawn on a large photo and then shrunk to load_size fade to gray or vanish, so the
        # edges are found on the photo at the size the transform resizes it to anyway.
        resized = decoded.resize((size, size), Image.Resampling.BICUBIC)
        lines = np.asarray(edges.photo_to_edges(resized))
        if lines.dtype != np.uint8 or lines.ndim != 2:
            raise ValueError(
                f"pix2pix.edges.photo_to_edges returned an array of dtype {lines.dtype} and shape "
                f"{lines.shape} for {photo}; expected uint8 (H, W)"
            )
        edge_img = Image.fromarray(lines)  # uint8 (H, W) -> mode "L"
        try:
            _save_png_atomic(edge_img, cached)
            _remove_stale_edges(cached.parent, relative.name, version)
        except OSError as e:
            if not self._cache_write_warned:
                self._cache_write_warned = True
                warnings.warn(
                    f"could not write the edge-map cache in {self.edges_cache_dir} ({e}); edge "
                    "maps will be recomputed every epoch. Pass edges_cache_dir= a writable folder.",
                    stacklevel=4,
                )
        return edge_img


_UNPAIRED_LAYOUTS = """expected unpaired images (names need not match, counts may differ) as:
  ROOT/trainA/*.jpg and ROOT/trainB/*.jpg (+ testA/ testB/: the CycleGAN reference's layout)
  ROOT/train/A and ROOT/train/B (+ test/A, test/B), or ROOT/A and ROOT/B
  or two folders given separately (pix2pix-train --data-a DIR --data-b DIR)"""


def unpaired_folders(root: str | os.PathLike[str], split: str = "train") -> tuple[Path, Path]:
    """The (A, B) folders of ``split`` under ``root`` in one of the unpaired layouts.

    ``ROOT/<split>A`` + ``ROOT/<split>B`` (the CycleGAN reference's datasets), ``ROOT/<split>/A``
    + ``ROOT/<split>/B``, or, for any split when the root has no split folders, ``ROOT/A`` +
    ``ROOT/B``. Raises ``FileNotFoundError`` naming the layouts when none is there.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist; {_UNPAIRED_LAYOUTS}")
    candidates = _split_candidates(root, split)
    if not any((root / f"{s}A").is_dir() or (root / s).is_dir() for s in SPLITS):
        candidates.append((root / "A", root / "B"))
    for a_dir, b_dir in candidates:
        if a_dir.is_dir() and b_dir.is_dir():
            return a_dir, b_dir
        if a_dir.is_dir() != b_dir.is_dir():
            present, missing = (a_dir, b_dir) if a_dir.is_dir() else (b_dir, a_dir)
            raise FileNotFoundError(f"found {present} but no {missing}; {_UNPAIRED_LAYOUTS}")
    raise FileNotFoundError(f"no {split!r} A and B folders in {root}; {_UNPAIRED_LAYOUTS}")


def unpaired_splits(root: str | os.PathLike[str]) -> list[str]:
    """Splits with their own A and B folders under ``root`` (``trainA``, ``test/A``, ...)."""
    root = Path(root).expanduser()
    return [
        s for s in SPLITS if any(a.is_dir() and b.is_dir() for a, b in _split_candidates(root, s))
    ]


def _split_candidates(root: Path, split: str) -> list[tuple[Path, Path]]:
    return [(root / f"{split}A", root / f"{split}B"), (root / split / "A", root / split / "B")]


class UnpairedDataset(Dataset):
    """Images of two domains A and B, unpaired, preprocessed as in the CycleGAN reference.

    Its length is the larger folder's count. Item ``i`` is the ``i % len(A)``-th A image and, with
    ``train=True``, a B image drawn at random from torch's RNG (``serial_batches`` off in the
    reference's ``unaligned_dataset.py``; seeded per item by the trainer, so runs reproduce), else
    the ``i % len(B)``-th. Each image is resized to ``load_size``, randomly cropped to
    ``crop_size`` and mirrored, A and B independently (``train=False``: resized straight to
    ``crop_size``). Files are read by the one decoder (:mod:`pix2pix.imageio`); non-images are
    ignored and unreadable images skipped, with a warning naming them, as in
    :class:`PairedDataset`. ``cache`` and ``cache_budget`` keep both folders' images decoded in
    memory, as for :class:`PairedDataset`. Raises ``FileNotFoundError`` for a missing folder and
    ``ValueError`` for a folder without readable images or an unknown ``cache``.
    """

    def __init__(
        self,
        a_dir: str | os.PathLike[str],
        b_dir: str | os.PathLike[str],
        *,
        load_size: int = 286,
        crop_size: int = 256,
        flip: bool = True,
        train: bool = True,
        a_channels: int = 3,
        b_channels: int = 3,
        cache: str = "off",
        cache_budget: int | None = None,
    ) -> None:
        _check_options(
            {"a_channels": a_channels, "b_channels": b_channels},
            load_size,
            crop_size,
            train=train,
            paper="CycleGAN",
        )
        self.folders = (Path(a_dir).expanduser(), Path(b_dir).expanduser())
        self.train = train
        self.skipped: list[tuple[str, str]] = []
        self.files = (self._readable(self.folders[0]), self._readable(self.folders[1]))
        self._channels = (a_channels, b_channels)
        self._decode_size = load_size if train else crop_size
        self._resize, self._augment = _build_transform(load_size, crop_size, flip=flip, train=train)
        self._failed: set[tuple[int, int]] = set()
        self._cached: tuple[torch.Tensor, torch.Tensor] | None = None
        side = self._decode_size
        counts = [len(f) for f in self.files]
        needed = sum(n * c for n, c in zip(counts, self._channels, strict=True)) * side * side
        keep, self.cache_note = _cache_decision(cache, needed, cache_budget)
        if keep:
            a, b = (
                _decode_all(
                    counts[s],
                    [(self._channels[s], side, side)],
                    lambda i, s=s: (self._resized(s, i),),
                    lambda i, e, s=s: _skip_for_the_run(self, (s, i), e, "image", stacklevel=4),
                )[0]
                for s in (0, 1)
            )
            self._cached = (a, b)

    def __len__(self) -> int:
        """The larger folder's number of readable images."""
        return max(len(self.files[0]), len(self.files[1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        """``A`` and ``B`` float tensors (C, crop, crop) in [-1, 1], ``A_name`` and ``B_name``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} examples")
        count_b = len(self.files[1])
        b_index = int(torch.randint(count_b, ())) if self.train else index % count_b
        item: dict[str, torch.Tensor | str] = {}
        for side, start in ((0, index % len(self.files[0])), (1, b_index)):
            name, image = self._load(side, start)
            item["AB"[side]], item[f"{'AB'[side]}_name"] = image, name
        return item

    def summary(self) -> str:
        """One line for logs: both folders, their counts and what was skipped."""
        text = (
            f"unpaired dataset: {len(self.files[0])} A images in {self.folders[0]}, "
            f"{len(self.files[1])} B images in {self.folders[1]} ({len(self)} per epoch)"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} files skipped"
        return f"{text}; {self.cache_note}"

    @property
    def cached(self) -> bool:
        """Whether the decoded images are held in memory (see ``cache``)."""
        return self._cached is not None

    def _readable(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            raise FileNotFoundError(f"image folder {folder} does not exist; {_UNPAIRED_LAYOUTS}")
        images, others, unfetched = _list_folder(folder)
        if unfetched and images:
            _warn_unfetched(unfetched, len(images) + len(unfetched), folder)
        elif unfetched:
            raise _unfetched_error(unfetched, len(unfetched), folder)
        problems = _parallel_map(_decode_problem, images)
        bad = [(str(p), why) for p, why in zip(images, problems, strict=True) if why is not None]
        if others or bad:
            skipped = others + bad
            self.skipped.extend(skipped)
            warnings.warn(
                f"skipped {len(skipped)} files in {folder} that are not readable images: "
                f"{_preview_skipped(skipped, folder)}. They were left on disk untouched.",
                stacklevel=3,
            )
        good = [p for p, why in zip(images, problems, strict=True) if why is None]
        if not good:
            raise ValueError(
                f"no readable images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}; "
                f"{_UNPAIRED_LAYOUTS}"
            )
        return good

    def _load(self, side: int, start: int) -> tuple[str, torch.Tensor]:
        files = self.files[side]
        for step in range(len(files)):
            i = (start + step) % len(files)
            if (side, i) in self._failed:
                continue
            try:
                img = self._resized(side, i)
            except _UnreadableError as e:
                _skip_for_the_run(self, (side, i), e, "image", stacklevel=3)
                continue
            if self._augment is not None:
                img = self._augment(img)
            return files[i].stem, _to_unit_range(img)
        raise RuntimeError(
            f"every image in {self.folders[side]} failed to load: "
            f"{_preview_skipped(self.skipped, self.folders[side])}"
        )

    def _resized(self, side: int, i: int) -> tv_tensors.Image:
        """Image ``i`` of ``side`` (0: A, 1: B), uint8 (C, S, S) at the first resize's side S:
        from memory when cached, else decoded and resized. Raises ``_UnreadableError``."""
        if self._cached is not None:
            return tv_tensors.Image(self._cached[side][i])
        img = _read_rgb(self.files[side][i], (self._decode_size, self._decode_size))
        return self._resize(_to_tensor(_with_channels(img, self._channels[side])))


class _UnreadableError(Exception):
    """A file that failed to decode while loading an example."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _resolve_split(root: Path, split: str) -> tuple[Path, tuple[Path, Path] | None, str]:
    """Return the split folder, its (A, B) folders if paired, and a note for the summary."""
    splits = available_splits(root)
    if not splits:
        folder, note = root, "; no train/val/test folders, so the root is the only split"
        inner_ab = (root / "A", root / "B")
    elif split not in splits:
        raise ValueError(
            f"split {split!r} not found in {root}; found splits: {', '.join(splits)}. "
            "Pass split= one of these, or add the missing folder."
        )
    elif (root / split).is_dir():
        folder, note = root / split, ""
        inner_ab = (folder / "A", folder / "B")
    else:
        return root, (root / "A" / split, root / "B" / split), ""

    has_a, has_b = (d.is_dir() for d in inner_ab)
    if has_a != has_b:
        present, missing = inner_ab if has_a else inner_ab[::-1]
        raise FileNotFoundError(
            f"found {present} but no {missing}: the paired layout needs both A/ and B/; {_LAYOUTS}"
        )
    return folder, (inner_ab if has_a else None), note


def _list_folder(folder: Path) -> tuple[list[Path], list[tuple[str, str]], list[Path]]:
    """Image files directly in ``folder`` (sorted), the other files as (path, reason), and the
    image names that are symbolic links whose targets are missing (git-annex / DataLad files
    not fetched: ``is_file()`` is False for them, so they would vanish without a word)."""
    images, others, unfetched = [], [], []
    for entry in sorted(folder.iterdir()):
        # Hidden entries include .DS_Store, macOS ._ resource forks and the edges cache.
        if entry.name.startswith("."):
            continue
        if not entry.is_file():
            dangling = entry.is_symlink() and not entry.exists()
            if dangling and entry.suffix.lower() in IMAGE_EXTENSIONS:
                unfetched.append(entry)
            continue
        if entry.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(entry)
        else:
            others.append((str(entry), f"not an image file (extension {entry.suffix or 'none'!r})"))
    return images, others, unfetched


def _pair_files(a_dir: Path, b_dir: Path) -> tuple[list[Sample], list[tuple[str, str]], list[Path]]:
    """Match A and B files by name without extension (in Unicode NFC); raise if any name is
    missing on one side. A pair with a side whose link target is missing is left out, with a
    warning; returns the pairs, the non-image files and those links."""
    a_images, a_others, a_unfetched = _list_folder(a_dir)
    b_images, b_others, b_unfetched = _list_folder(b_dir)
    unfetched = a_unfetched + b_unfetched
    if not a_images and not b_images and unfetched:
        raise _unfetched_error(unfetched, len(unfetched), a_dir, b_dir)
    if not a_images and not b_images:
        raise _empty_folder_error(a_dir, a_others)
    a_by_stem, b_by_stem = _by_stem(a_images, a_dir), _by_stem(b_images, b_dir)
    a_missing = {_nfc(p.stem) for p in a_unfetched}
    b_missing = {_nfc(p.stem) for p in b_unfetched}
    only_a = sorted(a_by_stem.keys() - b_by_stem.keys() - b_missing)
    only_b = sorted(b_by_stem.keys() - a_by_stem.keys() - a_missing)
    if only_a or only_b:
        raise ValueError(
            "A and B file names do not match (they are paired by name without extension): "
            f"{len(only_a)} only in {a_dir}: {_preview(only_a, _MISMATCH_LIMIT)}; "
            f"{len(only_b)} only in {b_dir}: {_preview(only_b, _MISMATCH_LIMIT)}. "
            "Rename or remove them so that every A image has a B image of the same name."
        )
    stems = sorted(a_by_stem.keys() & b_by_stem.keys())
    if not stems and unfetched:
        total = len(a_images) + len(b_images) + len(unfetched)
        raise _unfetched_error(unfetched, total, a_dir, b_dir)
    if unfetched:
        total = len(a_images) + len(b_images) + len(unfetched)
        _warn_unfetched(unfetched, total, a_dir, b_dir)
    files = [Sample(stem, a_by_stem[stem], b_by_stem[stem]) for stem in stems]
    return files, a_others + b_others, unfetched


def _nfc(name: str) -> str:
    # macOS writes names in NFD ("e" + combining accent), Linux keeps what it is given (mostly
    # NFC): the same name read by people can be two byte strings.
    return unicodedata.normalize("NFC", name)


def _by_stem(images: list[Path], folder: Path) -> dict[str, Path]:
    """Images by their name without extension, in Unicode NFC; raise on a name seen twice."""
    by_stem: dict[str, Path] = {}
    for path in images:
        stem = _nfc(path.stem)
        if stem in by_stem:
            other = by_stem[stem]
            why = (
                " (the names differ only in Unicode normalisation, e.g. one copied from a Mac)"
                if other.stem != path.stem
                else ""
            )
            raise ValueError(
                f"{folder} has two images named {stem!r} ({other.name} and {path.name}){why}; "
                "A/B pairs are matched by name without extension, so keep only one"
            )
        by_stem[stem] = path
    return by_stem


def _detect_aligned_or_photos(images: list[Path], folder: Path) -> tuple[str, str]:
    """``aligned`` when nearly every image is twice as wide as high, ``photos`` when few are at
    least that wide; otherwise a ``ValueError`` that asks for ``format``.

    A wrong guess costs a whole training run on the wrong task, so the ambiguous case is refused:
    images wider than 2:1 are side-by-side pairs of non-square images (4:3 pairs make 8:3) or
    panoramas, and a folder that is mostly 2:1 with a few exceptions is a mixed one.
    """
    headers = zip(images, _parallel_map(_header_size, images), strict=True)
    sized = [(p, s) for p, s in headers if s is not None]
    if not sized:
        raise ValueError(
            f"none of the {len(images)} images in {folder} could be opened, e.g. "
            f"{_preview([p.name for p in images], _WARN_LIMIT)}; check that they are valid images"
        )
    wide = sum(abs(w - 2 * h) <= 1 for _, (w, h) in sized)
    doubled = [(p, w, h) for p, (w, h) in sized if w >= 2 * h - 1]  # no camera's photo shape
    detail = f"{wide}/{len(sized)} images are twice as wide as high"
    if wide >= ALIGNED_SHARE * len(sized):
        return "aligned", f"auto-detected: {detail}"
    if len(doubled) >= PAIRLIKE_SHARE * len(sized):
        examples = _preview([f"{p.name} {w}x{h}" for p, w, h in doubled], 3)
        raise ValueError(
            f"cannot tell the layout of {folder}: {len(doubled)} of {len(sized)} images are at "
            f"least twice as wide as high ({examples}) but only {wide} exactly 2:1. If each "
            "image is an input and its target side by side (non-square pairs: 4:3 images "
            "make 8:3), pass --format aligned (format='aligned'); if they are photos to learn "
            "from their edge maps, pass --format photos (format='photos')"
        )
    return "photos", (
        f"auto-detected: only {detail}, {ALIGNED_SHARE:.0%} needed for 'aligned'; "
        "pass format= to override"
    )


def _header_size(path: Path) -> tuple[int, int] | None:
    """(width, height) as the image is seen, i.e. after its EXIF orientation, as decoded."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            return (height, width) if turned else (width, height)
    except Exception:  # unreadable files are reported when the dataset is built
        return None


def _decode_problem(path: Path) -> str | None:
    """Return why ``path`` does not decode, or None when it does."""
    try:
        if path.stat().st_size == 0:
            return "empty file"
        with Image.open(path) as img:
            if img.format == "PNG":
                # Walks every chunk and checks its CRC without inflating the pixels: catches
                # truncation and corruption at a fraction of a full decode's cost.
                img.verify()
            else:
                # A JPEG decoded at 1/8 scale still reads every byte of the stream, so a
                # truncated file fails here too; other formats are usually small to decode.
                img.draft(img.mode, (max(1, img.width // 8), max(1, img.height // 8)))
                img.load()
    # Corrupt files can make a decoder raise nearly anything; the reason is reported, not hidden.
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _read_rgb(path: Path, min_size: tuple[int, int]) -> Image.Image:
    """Decode ``path`` as every entry point does (``pix2pix.imageio``); JPEGs may decode at a
    reduced scale, still at least ``min_size`` (width, height) since the transform resizes to it.
    """
    try:
        return imageio.decode_image(path, min_size=min_size).image
    except Exception as e:  # see _decode_problem
        raise _UnreadableError(path, f"{type(e).__name__}: {e}") from e


def _skip_for_the_run(
    dataset: Dataset, key: object, error: _UnreadableError, what: str, *, stacklevel: int
) -> None:
    """Mark an item that failed to load during training: never tried again, listed in the
    dataset's ``skipped``, and one warning naming the file (the next item takes its place)."""
    dataset._failed.add(key)
    dataset.skipped.append((str(error.path), error.reason))
    warnings.warn(
        f"could not read {error.path} ({error.reason}); using the next {what} in its place "
        "and skipping this file for the rest of the run",
        stacklevel=stacklevel + 1,
    )


def _check_options(
    channels: dict[str, int], load_size: int, crop_size: int, *, train: bool, paper: str
) -> None:
    """ValueError unless every channel count is 1 or 3 and 1 <= crop_size <= load_size."""
    for name, value in channels.items():
        if value not in (1, 3):
            raise ValueError(f"{name} must be 1 (grayscale) or 3 (RGB), got {value!r}")
    if crop_size < 1 or (train and load_size < crop_size):
        raise ValueError(
            f"need 1 <= crop_size <= load_size, got load_size={load_size!r}, "
            f"crop_size={crop_size!r}; {paper} uses load_size=286, crop_size=256"
        )


def _with_channels(img: Image.Image, channels: int) -> Image.Image:
    mode = "L" if channels == 1 else "RGB"
    return img if img.mode == mode else img.convert(mode)


def _build_transform(
    load_size: int, crop_size: int, *, flip: bool, train: bool
) -> tuple[v2.Resize, v2.Compose | None]:
    """The resize (the same every time: what the image cache holds) and the random part that
    follows it, None when ``train=False`` (resized straight to ``crop_size``)."""
    bicubic = v2.InterpolationMode.BICUBIC
    side = load_size if train else crop_size
    resize = v2.Resize((side, side), interpolation=bicubic, antialias=True)
    if not train:
        return resize, None
    # Called with (A, B) together, v2 draws each random parameter once and applies it to both.
    steps: list[v2.Transform] = [v2.RandomCrop(crop_size)]
    if flip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    return resize, v2.Compose(steps)


def available_memory() -> int | None:
    """Bytes of memory this process could still take, or None when unknown.

    The system's available memory (``psutil`` when installed, else ``os.sysconf``'s free pages,
    which leave out the page cache), capped by the headroom under a container's cgroup limit.
    """
    found: list[int] = []
    try:
        import psutil

        found.append(int(psutil.virtual_memory().available))
    except ImportError:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    cgroup = Path("/sys/fs/cgroup")
    for limit, usage in (
        ("memory.max", "memory.current"),  # cgroup v2
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),  # v1
    ):
        with contextlib.suppress(ValueError, OSError):
            headroom = int((cgroup / limit).read_text()) - int((cgroup / usage).read_text())
            found.append(max(0, headroom))  # "max" (no limit) fails int() and is skipped
            break
    return min(found) if found else None


def _cache_decision(mode: str, needed: int, budget: int | None) -> tuple[bool, str]:
    """Whether to keep ``needed`` bytes of decoded images in memory, and a note for summaries."""
    if mode not in CACHE_CHOICES:
        raise ValueError(f"unknown cache mode {mode!r}; expected one of {CACHE_CHOICES}")
    size = _bytes(needed)
    if mode == "off":
        return False, "images decoded per item (cache off)"
    if mode == "on":
        return True, f"images decoded once and kept in memory ({size})"
    if budget is None:
        available = available_memory()
        if available is None:
            return False, (
                f"images decoded per item: the memory available is unknown, so {size} of "
                "decoded images are not kept (cache 'on' keeps them)"
            )
        budget = int(CACHE_SHARE * available)
    if needed > budget:
        return False, (
            f"images decoded per item: kept in memory they would take {size}, over the "
            f"budget of {_bytes(budget)} (cache 'on' keeps them anyway)"
        )
    return True, f"images decoded once and kept in memory ({size} of a {_bytes(budget)} budget)"


def _bytes(count: float) -> str:
    """``46.7 kB``, ``1.2 GB``: a byte count for people (powers of 1000)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if count < 1000:
            return f"{count:.0f} bytes" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"


def _decode_all(
    count: int,
    shapes: list[tuple[int, int, int]],
    load: Callable[[int], tuple[torch.Tensor, ...]],
    failed: Callable[[int, _UnreadableError], None],
) -> list[torch.Tensor]:
    """uint8 arrays ``(count, *shape)``, one per shape, whose row ``i`` is ``load(i)``; ``failed``
    is told of the rows whose files did not decode (left unset), after the others are loaded."""
    arrays = [torch.empty((count, *shape), dtype=torch.uint8) for shape in shapes]

    def fill(i: int) -> _UnreadableError | None:
        try:
            images = load(i)
        except _UnreadableError as e:
            return e
        for array, image in zip(arrays, images, strict=True):
            array[i] = image
        return None

    # Threads: PIL decodes and torch resizes with the GIL released. Each thread writes its own
    # rows, and the arrays are filled before any DataLoader worker forks.
    problems = _parallel_map(fill, range(count))
    for i, problem in enumerate(problems):
        if problem is not None:
            failed(i, problem)
    return arrays


def _to_tensor(img: Image.Image) -> tv_tensors.Image:
    # Resizing uint8 keeps bicubic overshoot clamped to 0..255, hence exactly [-1, 1] later.
    return tv_tensors.Image(TF.pil_to_tensor(img))


def _to_unit_range(img: torch.Tensor) -> torch.Tensor:
    return img.as_subclass(torch.Tensor).float() / 127.5 - 1.0


def _save_png_atomic(img: Image.Image, dest: Path) -> None:
    """Write ``img`` to ``dest`` so readers (other DataLoader workers) never see a partial file."""
    with atomic_write(dest) as f:
        img.save(f, format="PNG")


def _remove_stale_edges(folder: Path, photo_name: str, version: str) -> None:
    """Delete cached edge maps of earlier versions (other mtime or size) of the same photo."""
    pattern = re.compile(re.escape(photo_name) + r"\.(\d+-\d+)\.\d+px\.png")
    for entry in folder.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and match.group(1) != version:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _unique_names(paths: list[Path]) -> list[str]:
    """File stems, falling back to the full name where two files share a stem."""
    stems = [p.stem for p in paths]
    return [p.name if stems.count(p.stem) > 1 else p.stem for p in paths]


def _empty_folder_error(folder: Path, others: list[tuple[str, str]]) -> ValueError:
    text = f"no images ({', '.join(IMAGE_EXTENSIONS)}) found directly in {folder}"
    if others:
        names = _preview([Path(p).name for p, _ in others], _WARN_LIMIT)
        text += f"; it holds {len(others)} other files: {names}"
    subfolders = sorted(e.name for e in folder.iterdir() if e.is_dir() and e.name[0] != ".")
    if subfolders:
        text += f"; it has subfolders {_preview(subfolders, _WARN_LIMIT)}, which are not searched"
    return ValueError(f"{text}; {_LAYOUTS}")


_UNFETCHED_HINT = (
    "git-annex or DataLad files not fetched yet? Fetch them in the dataset with "
    "`git annex get .` or `datalad get .`, or remove the links"
)


def _warn_unfetched(links: list[Path], total: int, *folders: Path) -> None:
    where, names = " + ".join(map(str, folders)), _preview([p.name for p in links], _WARN_LIMIT)
    warnings.warn(
        f"skipped {len(links)} symbolic links whose targets are missing, of {total} image files "
        f"in {where}: {names} ({_UNFETCHED_HINT}); training goes on without them",
        stacklevel=4,
    )


def _unfetched_error(links: list[Path], total: int, *folders: Path) -> ValueError:
    where, names = " + ".join(map(str, folders)), _preview([p.name for p in links], _WARN_LIMIT)
    if len(links) == total:
        what = f"all {total} image files in {where} are symbolic links whose targets are missing"
    else:
        what = (
            f"no A/B pair is complete without the {len(links)} (of {total}) image files in "
            f"{where} that are symbolic links whose targets are missing"
        )
    return ValueError(f"nothing to train on: {what}: {names} ({_UNFETCHED_HINT})")


def _preview(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... and {len(names) - limit} more" if len(names) > limit else "")


def _preview_skipped(skipped: list[tuple[str, str]], root: Path) -> str:
    def short(path: str) -> str:
        with contextlib.suppress(ValueError):
            return str(Path(path).relative_to(root))
        return path

    return _preview([f"{short(p)} ({reason})" for p, reason in skipped], _WARN_LIMIT)


def _parallel_map(fn: Callable[[_T], _R], items: Iterable[_T]) -> list[_R]:
    """Map ``fn`` over ``items`` in threads: file reads and PIL decoding release the GIL."""
    items = list(items)
    if len(items) < 32:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=_IO_THREADS) as pool:
        return list(pool.map(fn, items))
