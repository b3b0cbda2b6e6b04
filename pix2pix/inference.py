"""Translate images with a generator: image in, image out.

``Translator`` owns every step between a user's image and the network: mode and range conversion,
padding to the network's size multiple, device and precision, the paper's test-time options
(normalisation by each image's own statistics; dropout as noise), and the way back to PIL.

Input size policy: any height and width. Each side is padded to the next multiple of the network's
``size_multiple`` (256 for ``unet_256``: eight halvings), centred, by reflection where the image is
large enough and by edge replication beyond that; the output is cropped back to the input's size.
Images are not resized: a network trained on 256-pixel crops sees the same scale it was trained on.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pix2pix import backends, imageio, networks, onednn

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
# "auto": measured (pix2pix.backends); "torch": the rule without measuring (packed oneDNN on the
# CPU in fp32, else eager); a candidate's name: that one only.
BACKENDS = ("auto", "torch", "eager", "onednn", *(n for n in backends.NAMES if n != "eager-fp32"))
NORM_MODES = ("instance", "running")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_UNSET: Any = object()

# One lock per model: test-time switches live on the model's layers, so two threads (e.g. two app
# requests) must not run the same model at once.
_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()

ImageLike = Image.Image | np.ndarray | str | os.PathLike


def best_device() -> torch.device:
    """CUDA if present, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 / AMX), so autocast to bf16 pays off.

    The one decision the backends and training share (``pix2pix.backends.native_bf16``, read
    from the CPU flags): PyTorch's own check also says yes on plain AVX512, which emulates bf16.
    """
    return backends.native_bf16()


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """``auto``: fp16 on CUDA, bf16 on CPUs with native bf16, otherwise fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision != "auto":
        return _DTYPES[precision]
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


class Translator:
    """Run a generator on images: ``Translator(model)(image) -> PIL.Image``.

    ``norm="instance"``: normalisation layers use each input's own statistics (the paper's test
    mode); ``"running"``: the stored running statistics (eval mode). The model's statistics are
    never changed. ``seed=None``: dropout off, deterministic; an integer: dropout on, with masks
    drawn from that seed (the paper's noise z), so each seed gives a reproducible variation.
    The model is moved to ``device`` (and its weights to fp32) once and stays there.

    ``backend="auto"`` (with ``precision`` ``"auto"`` or ``"fp32"``): the way to run is chosen by
    measurement (``pix2pix.backends``: PyTorch eager, packed oneDNN, bf16 channels-last where the
    CPU has native bf16, the model compiled ahead of time by AOTInductor (which compiles it,
    on the calling thread, for that shape only, and keeps the package for the next start), ONNX
    Runtime, OpenVINO; fp16 and CUDA graphs on CUDA)
    at the first call's input shape, kept if within 40 dB PSNR of fp32 and fastest; the choice
    is cached on disk, so a later start only builds it. Other shapes reuse it. ``backend`` then
    names the choice and ``backend_reason`` gives the measurements. Calls with a ``seed``
    (dropout noise) run on the PyTorch path, as does ``"auto"`` with precision fp16 / bf16.
    ``"torch"``: no measuring; on the CPU in fp32, convolutions run on weights packed once into
    oneDNN's layout (``pix2pix.onednn``), elsewhere the model's own forward. ``"eager"``: the
    model's own forward; ``"onednn"``: the packed path, failing where it cannot be had; any other
    name in ``BACKENDS``: that candidate only, failing (``ValueError``) where it cannot run; it is
    built when the translator is made, for a square input at the network's multiple (at least
    64 px), which for a compiled candidate is the one shape that runs compiled.
    ``candidates``: what ``"auto"`` measures (default ``backends.default_candidates``).
    """

    def __init__(
        self,
        generator: nn.Module,
        *,
        device: str | torch.device | None = None,
        precision: str = "auto",
        norm: str = "instance",
        seed: int | None = None,
        backend: str = "auto",
        candidates: Sequence[backends.Candidate] | None = None,
    ) -> None:
        if norm not in NORM_MODES:
            raise ValueError(f"unknown norm mode {norm!r}; expected one of {NORM_MODES}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
        self.device = torch.device(device) if device is not None else best_device()
        self.dtype = resolve_precision(precision, self.device)
        self.norm = norm
        self.seed = seed
        # Weights live in fp32 (a model saved or cast to fp16 / bf16 is upcast once);
        # reduced precision is autocast's job, which keeps normalisation in fp32.
        self.model = generator.to(device=self.device, dtype=torch.float32).eval()
        self.model.requires_grad_(False)
        self.multiple = networks.size_multiple(self.model)
        self.min_size = networks.min_size(self.model)
        convs = [m for m in self.model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
        if not convs:
            raise ValueError(f"{type(generator).__name__} has no convolutions; not a generator")
        self.in_channels = networks.input_channels(self.model)
        measured = backend == "auto" and precision in ("auto", "fp32")
        fixed = backend if backend not in ("auto", "torch", "eager", "onednn") else None
        self.backend, self.net = self._backend("torch" if measured or fixed else backend)
        self.backend_reason = f"backend={backend!r}, precision={precision!r}: no measuring"
        self.choice: backends.Choice | None = None
        self._candidates = list(candidates or backends.default_candidates(self.device))
        self._measured, self._fixed = measured, fixed
        self._runners: dict[str, backends.Runner] = {}
        self._chosen: dict[tuple[int, ...], str] = {}
        self._fp32_only = precision == "fp32"
        if measured:
            self.backend, self.backend_reason = "auto", "not measured yet (first call)"
        with _LOCKS_GUARD:
            self._lock = _LOCKS.setdefault(self.model, threading.Lock())
        if fixed:
            side = -(-64 // self.multiple) * self.multiple  # at least 64 px, at the multiple
            with self._lock:
                self._runner_for((1, self.in_channels, side, side))

    def _backend(self, backend: str) -> tuple[str, nn.Module]:
        """The backend in use and the module that runs: the model or its packed twin."""
        packable = self.device.type == "cpu" and self.dtype == torch.float32
        packable = packable and onednn.available()
        if backend == "onednn" and not packable:
            raise ValueError(
                "backend='onednn' needs the CPU, precision fp32 and a PyTorch built with oneDNN; "
                f"here: device {self.device}, {self.dtype}, oneDNN {onednn.available()}. "
                "Use backend='auto' to fall back by itself."
            )
        if backend == "eager" or not packable:
            return "eager", self.model
        return "onednn", onednn.packed_copy(self.model)

    def _runner_for(self, shape: tuple[int, ...]) -> backends.Runner:
        """The chosen runner at input ``shape``: measured (or read from the cache) once."""
        name = self._chosen.get(shape)
        if name is None:
            if self._chosen:
                name = next(iter(self._chosen.values()))  # measured at the first shape
            elif self._fixed:
                name = self._fixed
            ctx = backends.Context(
                self.model, self.device, self.norm == "instance", shape,
                backends.model_hash(self.model) if name is None else "", self._fp32_only,
            )  # fmt: skip
            if name is None:
                self.choice, runner = backends.select(ctx, self._candidates)
                name = self.choice.name
                self._runners[name] = runner
                cached = f" (cached {self.choice.when})" if self.choice.cached else ""
                self.backend, self.backend_reason = name, self.choice.reason + cached
            if name not in self._runners:
                self._runners[name] = self._build(name, ctx)
            self._chosen[shape] = name
        return self._runners[name]

    def _build(self, name: str, ctx: backends.Context) -> backends.Runner:
        found = [c for c in backends.CANDIDATES if c.name == name]
        found = [c for c in found if c.device_type == self.device.type] or found
        if not found:
            raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
        if ctx.model_hash == "":
            ctx = dataclasses.replace(ctx, model_hash=backends.model_hash(self.model))
        try:
            runner = found[0].build(ctx)
        except backends.Unavailable as e:
            raise ValueError(f"backend {name!r} cannot run here: {e}") from e
        if name == self._fixed:
            self.backend, self.backend_reason = name, f"backend={name!r} asked for"
        return runner

    def __call__(
        self, images: ImageLike | Sequence[ImageLike], *, seed: int | None = _UNSET
    ) -> Image.Image | list[Image.Image]:
        """Translate one image (returns one) or a list (returns a list, batched by size)."""
        seed = self.seed if seed is _UNSET else seed
        if isinstance(images, Image.Image | np.ndarray | str | os.PathLike):
            return self.translate_batch([images], seed=seed)[0]
        return self.translate_batch(list(images), seed=seed)

    def translate_batch(self, images: list[ImageLike], *, seed: int | None) -> list[Image.Image]:
        """Translate several images; same-sized ones run together as one batch."""
        tensors = [to_tensor(image, self.in_channels) for image in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(tensors):
            groups.setdefault(tuple(t.shape[-2:]), []).append(i)
        results: list[Image.Image | None] = [None] * len(images)
        for indices in groups.values():
            batch = torch.stack([tensors[i] for i in indices])
            for i, out in zip(indices, self.run(batch, seed=seed), strict=True):
                results[i] = out
        return results  # type: ignore[return-value]

    def run(self, batch: torch.Tensor, *, seed: int | Sequence[int] | None) -> list[Image.Image]:
        """Translate a (B, C, H, W) batch in [-1, 1] of one size; returns PIL images.

        ``seed``: None (dropout off), one seed for every image, or one seed per image; an image's
        variation depends only on its own seed, not on the rest of the batch.
        """
        height, width = batch.shape[-2:]
        x = pad_to_multiple(batch.to(self.device), self.multiple, minimum=self.min_size)
        noise = None
        if seed is not None:
            # One generator per image, so an image's variation does not depend on what shares
            # its batch. CUDA draws the masks on the GPU (no host round trip; its own random
            # stream, so a seed's variation is reproducible per device type); others on the CPU.
            where = self.device if self.device.type == "cuda" else torch.device("cpu")
            seeds = [seed] * len(batch) if isinstance(seed, int) else list(seed)
            if len(seeds) != len(batch):
                raise ValueError(f"{len(seeds)} seeds for a batch of {len(batch)} images")
            noise = [torch.Generator(device=where).manual_seed(s) for s in seeds]
        autocast = torch.autocast(
            self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32
        )
        with self._lock:
            if seed is None and (self._measured or self._fixed):
                y = self._runner_for(tuple(x.shape))(x)
            else:
                with (
                    networks.eval_mode(self.net, input_stats=self.norm == "instance", noise=noise),
                    torch.inference_mode(),
                    autocast,
                ):
                    y = self.net(x)
        top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
        y = y[..., top : top + height, left : left + width]
        return [_to_pil(p) for p in backends.to_pixels(y)]  # the one host sync


def _to_pil(pixels: np.ndarray) -> Image.Image:
    if pixels.shape[-1] == 1:
        return Image.fromarray(pixels[..., 0], "L").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(pixels[..., :3]), "RGB")


def pad_to_multiple(x: torch.Tensor, multiple: int, *, minimum: int = 1) -> torch.Tensor:
    """Pad a (B, C, H, W) tensor, centred, so H and W become multiples of ``multiple`` and at
    least ``minimum`` (a ResNet generator's padding layers need 8 pixels)."""
    height, width = x.shape[-2:]
    floor = -(-minimum // multiple) * multiple
    pad_h, pad_w = max(-height % multiple, floor - height), max(-width % multiple, floor - width)
    if pad_h == 0 and pad_w == 0:
        return x
    pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
    # Reflection needs each pad smaller than the side; a small image inside a large multiple
    # (a 100 px sketch for unet_256) continues its border pixels instead.
    reflect = max(pads[:2]) < width and max(pads[2:]) < height
    return F.pad(x, pads, mode="reflect" if reflect else "replicate")


# --------------------------------------------------------------------------------------------
# Image conversion
# --------------------------------------------------------------------------------------------


def to_tensor(image: ImageLike, channels: int = 3) -> torch.Tensor:
    """Convert an image file, a PIL image or an array to a (channels, H, W) float tensor in [-1, 1].

    Files and PIL images (any mode: 1, L, LA, P, PA, RGB, RGBA, I;16, I, F, CMYK, YCbCr) go
    through ``pix2pix.imageio``, as in every other entry point: EXIF orientation applied, 8-bit
    RGB, 16-bit ranges scaled, transparency composited onto white. Arrays (H, W), (H, W, 1..4) of
    uint8, uint16, bool or float in [0, 1] are taken as they are; their alpha also goes on white.
    """
    array = to_float_array(image)  # (H, W, C) in [0, 1], C in 1..4
    if array.shape[2] in (2, 4):
        alpha = array[..., -1:]
        array = array[..., :-1] * alpha + (1.0 - alpha)
    if channels == 3 and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif channels == 1 and array.shape[2] == 3:
        array = array @ np.array([[0.299], [0.587], [0.114]], dtype=np.float32)
    elif array.shape[2] != channels:
        raise ValueError(
            f"cannot feed a {array.shape[2]}-channel image to a {channels}-channel net"
        )
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor * 2 - 1


def to_float_array(image: ImageLike) -> np.ndarray:
    """A PIL image or array as a float32 (H, W, C) array in [0, 1], C in 1..4."""
    if isinstance(image, str | os.PathLike):
        return _pil_to_float(imageio.read_image(image))
    if isinstance(image, Image.Image):
        return _pil_to_float(image)
    if isinstance(image, np.ndarray):
        return _array_to_float(image)
    raise TypeError(
        f"expected an image file path, a PIL image or a numpy array, got {type(image).__name__}"
    )


def _pil_to_float(image: Image.Image) -> np.ndarray:
    # The one decoding rule of every entry point: upright per EXIF, 8-bit RGB, alpha on white.
    return _array_to_float(np.asarray(imageio.to_rgb(image)))


def _array_to_float(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or not 1 <= array.shape[2] <= 4 or 0 in array.shape[:2]:
        raise ValueError(
            f"expected an image array of shape (H, W) or (H, W, C) with C in 1..4 and H, W > 0; "
            f"got shape {array.shape}"
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        return _check_range(array.astype(np.float32), f"a {array.dtype} array")
    raise ValueError(
        f"unsupported array dtype {array.dtype}; expected uint8, uint16, bool or float in [0, 1]"
    )


def _check_range(array: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ValueError(f"{what} holds NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"{what} must hold values in [0, 1]; found [{low:.4g}, {high:.4g}]")
    return np.clip(array, 0.0, 1.0)
