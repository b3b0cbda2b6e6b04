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
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 40_000_000  # larger uploads are refused before decoding (decompression bombs)
MAX_DATA_URL_CHARS = 8_000_000
_DATA_URL = re.compile(r"^data:(image/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)


class ImageInputError(ValueError):
    """An input that is not a usable image; the message says what is wrong with it."""


def open_image(source: str | os.PathLike | bytes | None, *, what: str = "image") -> Image.Image:
    """Decode an uploaded file path, a ``data:`` URL or raw bytes into an RGB PIL image.

    Checks, each with its own message: nothing given, an empty file, not an image, truncated or
    corrupt data, too many pixels. EXIF rotation is applied; transparency is composited onto
    white (the background of sketches and label maps); animations give their first frame.
    """
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ImageInputError(f"no {what} given")
    name = what
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, str) and source.startswith("data:"):
        data = decode_data_url(source, what=what)
    else:
        path = Path(source)
        name = f"{what} {path.name!r}"
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ImageInputError(f"could not read the {name}: {e.strerror or e}") from e
    if not data:
        raise ImageInputError(f"the {name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as e:
        raise ImageInputError(
            f"the {name} is not an image this app can read (PNG, JPEG, WebP, GIF, BMP, TIFF)"
        ) from e
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageInputError(f"the {name} has too many pixels to decode safely") from e
    except Exception as e:  # Pillow's decoders raise many types on damaged data
        raise ImageInputError(f"the {name} is truncated or corrupt ({e})") from e
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageInputError(
            f"the {name} is {width}x{height} pixels; the limit is "
            f"{MAX_PIXELS // 1_000_000} megapixels"
        )
    try:
        image.load()
    except Exception as e:  # as above: OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageInputError(f"the {name} is truncated or corrupt ({e})") from e
    # A malformed EXIF block only loses the rotation, never the image.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)
    return to_rgb(image)


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


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB, with any transparency composited onto white."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16L", "I;16B", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Image.fromarray(np.round(array / scale * 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


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
            fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
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
