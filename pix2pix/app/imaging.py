"""Images in and out of the app: decoding uploads with clear errors, the size policy, label
palettes, and data URLs for the drawing canvas. No gradio here: errors are ``ImageInputError``,
which the UI turns into messages for the user.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pix2pix import imageio
from pix2pix.files import atomic_write

MAX_DATA_URL_CHARS = 8_000_000
_DATA_URL = re.compile(r"^data:(image/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)

# Uploads decode like every other entry point (pix2pix.imageio): these are its names.
ImageInputError = imageio.ImageReadError
MAX_PIXELS = imageio.MAX_PIXELS


def open_image(source: str | os.PathLike | bytes | None, *, what: str = "image") -> Image.Image:
    """Decode an uploaded file path, a ``data:`` URL or raw bytes into an RGB PIL image.

    ``pix2pix.imageio.decode_image`` does the work, as for every other entry point: EXIF
    orientation, modes and 16-bit ranges, transparency onto white, the first frame of an
    animation; images above ``imageio.MAX_PIXELS`` are downscaled (the app scales every input to
    its model's size anyway), decompression bombs refused. Errors are ``ImageInputError`` with
    a message for the user: nothing given, empty, not an image, truncated or corrupt, too large.
    """
    if isinstance(source, str) and source.startswith("data:"):
        source = decode_data_url(source, what=what)
    return imageio.decode_image(source, what=what).image


def decode_data_url(url: str, *, what: str = "image") -> bytes:
    """The bytes of a base64 ``data:image/...`` URL."""
    if len(url) > MAX_DATA_URL_CHARS:
        raise ImageInputError(f"the {what} is too large ({len(url)} characters of data URL)")
    match = _DATA_URL.match(url)
    if not match:
        raise ImageInputError(f"the {what} is not a base64 data:image URL")
    try:
        return base64.b64decode(url[match.end() :], validate=True)
    except (binascii.Error, ValueError) as e:
        raise ImageInputError(f"the {what} holds invalid base64 data") from e


def fit_long_side(image: Image.Image, size: int, *, nearest: bool = False) -> Image.Image:
    """Scale so the longer side is ``size`` pixels (aspect kept); ``nearest`` for label maps."""
    width, height = image.size
    if max(width, height) == size:
        return image
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Bicubic, as the training data was resized (Pillow antialiases when shrinking).
    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BICUBIC
    return image.resize(new, resample)


def snap_to_palette(image: Image.Image, palette: list[list[int]]) -> Image.Image:
    """Replace every pixel by the nearest palette colour (label maps from JPEGs, antialiasing)."""
    pixels = np.asarray(image.convert("RGB"))
    keys = _rgb_keys(pixels.reshape(-1, 3))
    palette_keys = _rgb_keys(np.asarray(palette))
    if np.isin(keys, palette_keys).all():  # drawn on the canvas: already exact
        return image.convert("RGB")
    # Unique colours first: even a JPEG has far fewer colours than pixels.
    unique, inverse = np.unique(keys, return_inverse=True)
    colors = np.asarray(palette, dtype=np.int32)  # (K, 3)
    rgb = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], axis=1)
    nearest = ((rgb[:, None, :] - colors[None, :, :]) ** 2).sum(-1).argmin(1)
    snapped = colors[nearest][inverse.reshape(-1)].astype(np.uint8)
    return Image.fromarray(snapped.reshape(pixels.shape), "RGB")


def _rgb_keys(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def to_data_url(image: Image.Image, fmt: str = "png") -> str:
    """Encode as a ``data:`` URL: ``png`` (exact, compressed quickly) or ``jpeg`` (quality 92)."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=1)
    elif fmt == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=92)
    else:
        raise ValueError(f"unknown data URL format {fmt!r}; expected 'png' or 'jpeg'")
    return f"data:image/{fmt};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class OutputFiles:
    """PNG files for the images the app hands to Gradio, each written once, atomically.

    Gradio stores a returned PIL image under a name derived from its bytes and rewrites that
    file in place whenever the same image is returned again; a browser reading it at that moment
    gets a truncated response (``net::ERR_CONTENT_LENGTH_MISMATCH``, a broken image). Handing
    Gradio a finished file instead avoids that: it copies files into its cache only once, by
    renaming. Files not used for ``max_age`` seconds are deleted.
    """

    def __init__(self, folder: str | os.PathLike | None = None, *, max_age: float = 3600) -> None:
        self.folder = Path(folder or tempfile.mkdtemp(prefix="pix2pix-app-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_age = max_age
        self._saves = 0
        self._guard = threading.Lock()

    def save(self, image: Image.Image) -> str:
        """The path of a PNG file holding ``image``."""
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        data = buffer.getvalue()
        path = self.folder / f"{hashlib.sha256(data).hexdigest()[:40]}.png"
        if path.exists():
            with contextlib.suppress(OSError):
                os.utime(path)
        else:
            with atomic_write(path) as f:
                f.write(data)
        with self._guard:
            self._saves += 1
            prune = self._saves % 200 == 0
        if prune:
            self.prune()
        return str(path)

    def prune(self) -> None:
        """Delete the files not used for ``max_age`` seconds."""
        cutoff = time.time() - self.max_age
        for path in self.folder.glob("*.png"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
