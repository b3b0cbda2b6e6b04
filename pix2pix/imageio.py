"""Read image files: the one place where a file (or a PIL image someone opened) becomes pixels.

Every entry point decodes through here: ``Translator`` given a path or a PIL image, the translate
CLI and its ``--edges``, the app's uploads and API, the training and evaluation loaders and
``pix2pix.edges``. So a file looks the same everywhere:

- **orientation**: the EXIF (or XMP) orientation tag is applied (``ImageOps.exif_transpose``), so
  a phone photo stored sideways comes out upright;
- **modes**: the result is 8-bit RGB. Transparency (``RGBA``, ``LA``, ``PA``, ``P`` or ``RGB`` with
  a transparent colour) is composited onto white, the background of sketches and label maps;
  ``CMYK`` and ``YCbCr`` go through Pillow's conversion; ``1`` and ``L`` are replicated to RGB;
- **16-bit and wider ranges**: ``I;16*`` (16-bit PNG / TIFF / PGM) span 0..65535; ``I`` (32-bit
  integers) spans 0..255 when every value fits (Pillow's ``convert("I")`` of an 8-bit image), else
  0..65535; ``F`` (32-bit float) spans 0..1 when every value fits, else 0..255, else 0..65535.
  Values outside the range are clipped; NaN or infinite values are refused;
- **size**: images are refused when their header declares more than ``MAX_DECLARED_PIXELS``
  (a decompression bomb: a tiny file declaring 60000x60000); larger than ``MAX_PIXELS`` they are
  downscaled to it (aspect kept) with a notice. JPEGs are decoded at a reduced scale
  (``Image.draft``: libjpeg's 1/2, 1/4, 1/8 DCT scaling, memory and time shrink alike); other
  formats decode whole, one such large image at a time in the process, so peak memory stays near
  one decoded image of at most ``MAX_DECLARED_PIXELS`` pixels plus its resampling buffers;
- **animations** give their first frame.

Only Pillow and numpy are used; this module imports nothing else from the project.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow refuses to open more than twice Image.MAX_IMAGE_PIXELS (178,956,970 px) as a
# decompression bomb; that is also our limit, wide enough for 108 MP phone photos (12000x9000).
MAX_DECLARED_PIXELS = 2 * 89_478_485
# Decoded images are downscaled to at most this many pixels (about 7700x5200).
MAX_PIXELS = 40_000_000
READABLE = "PNG, JPEG, WebP, GIF, BMP, TIFF"
# File name endings that folders are searched for (the CLI's inputs, training data).
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")

# Decodes of large non-JPEG images (which cannot be decoded at a reduced scale) take turns.
_LARGE_DECODE = threading.Lock()


class ImageReadError(ValueError):
    """A file that is not a usable image; the message names it and says what is wrong."""


class ImageDownscaledWarning(UserWarning):
    """An image larger than the pixel limit was downscaled while decoding."""


@dataclass(frozen=True)
class DecodedImage:
    """What :func:`decode_image` returns.

    ``image``: 8-bit RGB, upright. ``original_size``: (width, height) of the upright image as the
    file stores it. ``notice``: a sentence when the image was downscaled to the pixel limit.
    """

    image: Image.Image
    original_size: tuple[int, int]
    notice: str | None = None


def decode_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    what: str = "image",
    max_pixels: int | None = MAX_PIXELS,
    min_size: tuple[int, int] | None = None,
) -> DecodedImage:
    """Decode a file (path, bytes or binary file object) into an upright 8-bit RGB image.

    ``what`` names the input in error messages ("photo", "input image"). ``max_pixels``: larger
    images are downscaled to this many pixels with a notice (None: no limit besides
    ``MAX_DECLARED_PIXELS``). ``min_size`` (width, height of the upright image): a caller that
    resizes to this size anyway lets JPEGs decode at a reduced scale down to it; the result may
    then be smaller than the file, without a notice.

    Raises ``ImageReadError`` for a missing or empty file, a file that is not an image, truncated
    or corrupt data, a NaN-holding float image, or a declared size above ``MAX_DECLARED_PIXELS``.
    """
    name, stream = _open_source(source, what)
    # A file we opened is closed when done; a caller's file object is left open.
    owned = stream if stream is not source else None
    with owned or contextlib.nullcontext():
        return _decode(stream, name, max_pixels, min_size)


def _decode(
    stream: BinaryIO,
    name: str,
    max_pixels: int | None,
    min_size: tuple[int, int] | None,
) -> DecodedImage:
    try:
        with warnings.catch_warnings():
            # Our own limit below decides; Pillow's warning threshold is half of it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except UnidentifiedImageError as e:
        raise ImageReadError(f"the {name} is not an image file this can read ({READABLE})") from e
    except Image.DecompressionBombError as e:
        raise _too_large(name, None) from e
    except Exception as e:  # Pillow's decoders raise many types on damaged data
        raise ImageReadError(f"the {name} is truncated or corrupt ({e})") from e
    width, height = image.size
    if width * height > MAX_DECLARED_PIXELS:
        raise _too_large(name, (width, height))
    if width * height == 0:
        raise ImageReadError(f"the {name} has no pixels ({width}x{height})")
    turned = _orientation(image) in (5, 6, 7, 8)
    upright = (height, width) if turned else (width, height)
    large = max_pixels is not None and width * height > max_pixels
    if image.format == "JPEG":
        _draft(image, upright, max_pixels, min_size, turned)
    lock = _LARGE_DECODE if large and image.format != "JPEG" else contextlib.nullcontext()
    with lock:
        try:
            image.load()
        except Exception as e:  # as above: OSError, SyntaxError, ValueError, struct.error
            raise ImageReadError(f"the {name} is truncated or corrupt ({e})") from e
        # In place: a 108 MP image must not be copied just to find it needs no turn.
        with contextlib.suppress(Exception):  # a malformed EXIF block loses only the rotation
            ImageOps.exif_transpose(image, in_place=True)
        result = _to_rgb_upright(image, name)
        if max_pixels is not None and result.width * result.height > max_pixels:
            scale = math.sqrt(max_pixels / (result.width * result.height))
            size = (max(1, int(result.width * scale)), max(1, int(result.height * scale)))
            result = result.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    notice = None
    if min_size is None and result.size != upright:
        notice = (
            f"the {name} is {upright[0]}x{upright[1]} pixels; it was downscaled to "
            f"{result.width}x{result.height} (the limit is {max_pixels / 1e6:g} megapixels)"
        )
    return DecodedImage(result, upright, notice)


def read_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    what: str = "image",
    max_pixels: int | None = MAX_PIXELS,
) -> Image.Image:
    """:func:`decode_image`'s image; a downscale is reported as an ``ImageDownscaledWarning``."""
    decoded = decode_image(source, what=what, max_pixels=max_pixels)
    if decoded.notice:
        warnings.warn(decoded.notice, ImageDownscaledWarning, stacklevel=2)
    return decoded.image


def to_rgb(image: Image.Image, *, what: str = "image") -> Image.Image:
    """An open PIL image as upright 8-bit RGB, by the rules of this module's docstring.

    The image is not resized. Raises ``ImageReadError`` for NaN / infinite float pixels or a
    mode Pillow cannot convert.
    """
    # A malformed EXIF block loses only the rotation, never the image.
    with contextlib.suppress(Exception):
        image = ImageOps.exif_transpose(image)  # a copy: the caller's image is left as it is
    return _to_rgb_upright(image, what)


def _to_rgb_upright(image: Image.Image, what: str) -> Image.Image:
    mode = image.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        image = Image.fromarray(_wide_to_8bit(image, what), "L")
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        image = image.convert("RGBA")
    has_alpha = "A" in image.getbands() or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if image.mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as e:  # e.g. LAB, HSV without a conversion
        raise ImageReadError(f"the {what} has mode {image.mode!r}, which cannot become RGB") from e


def to_mode(image: Image.Image, channels: int) -> Image.Image:
    """:func:`to_rgb`, then ``L`` (ITU-R 601 luma) when ``channels`` is 1."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    rgb = to_rgb(image)
    return rgb if channels == 3 else rgb.convert("L")


def _wide_to_8bit(image: Image.Image, what: str) -> np.ndarray:
    """``I;16*``, ``I`` and ``F`` pixels as uint8 (H, W), scaled by the range they use."""
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImageReadError(f"the {what} holds NaN or infinite values")
    high = float(values.max(initial=0.0))
    if image.mode.startswith("I;16"):
        top = 65535.0
    elif image.mode == "F" and high <= 1.0:
        top = 1.0
    else:
        top = 255.0 if high <= 255.0 else 65535.0
    return np.round(np.clip(values / top, 0.0, 1.0) * 255.0).astype(np.uint8)


def _open_source(source: str | os.PathLike | bytes | BinaryIO, what: str) -> tuple[str, BinaryIO]:
    if source is None or (isinstance(source, str) and not source.strip()):
        raise ImageReadError(f"no {what} given")
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageReadError(f"the {what} is empty (0 bytes)")
        return what, io.BytesIO(source)
    if hasattr(source, "read"):
        return what, source  # type: ignore[return-value]
    path = Path(source)
    name = f"{what} {path.name!r}"  # the name only: app errors must not show server paths
    try:
        if path.stat().st_size == 0:
            raise ImageReadError(f"the {name} is empty (0 bytes)")
        return name, open(path, "rb")  # closed by decode_image
    except IsADirectoryError as e:
        raise ImageReadError(f"the {name} is a folder, not an image file") from e
    except FileNotFoundError as e:
        raise ImageReadError(f"the {name} does not exist") from e
    except OSError as e:
        raise ImageReadError(f"could not read the {name}: {e.strerror or e}") from e


def _orientation(image: Image.Image) -> int:
    with contextlib.suppress(Exception):
        return int(image.getexif().get(0x0112, 1))
    return 1


def _draft(
    image: Image.Image,
    upright: tuple[int, int],
    max_pixels: int | None,
    min_size: tuple[int, int] | None,
    turned: bool,
) -> None:
    """Ask libjpeg for the smallest DCT scale that still covers what the caller needs."""
    width, height = upright
    if min_size is not None:
        want = (min(width, max(1, min_size[0])), min(height, max(1, min_size[1])))
    elif max_pixels is not None and width * height > max_pixels:
        # The mildest DCT scale (1/2, 1/4, 1/8) that fits the limit; beyond 1/8, resize after.
        for k in (2, 4, 8):
            want = (math.ceil(width / k), math.ceil(height / k))
            if want[0] * want[1] <= max_pixels:
                break
    else:
        return
    if turned:
        want = (want[1], want[0])  # draft works in the file's stored orientation
    with contextlib.suppress(Exception):  # draft is an optimisation; a failure decodes in full
        image.draft(image.mode, want)


def _too_large(name: str, size: tuple[int, int] | None) -> ImageReadError:
    declared = f"declares {size[0]}x{size[1]} pixels" if size else "declares too many pixels"
    return ImageReadError(
        f"the {name} {declared}, more than the {MAX_DECLARED_PIXELS / 1e6:.0f} megapixels "
        "that can be decoded safely (a decompression bomb, or an image to save at a lower "
        "resolution first)"
    )
