"""onnxruntime-web where no npm step runs (a Hugging Face Space): the pinned tarball, fetched once.

``package-lock.json`` pins onnxruntime-web's version and the sha512 integrity hash of its npm
tarball (what ``npm ci`` checks). Where no npm step ran, :func:`fetch` downloads that tarball once
from the npm registry (the lock entry's ``resolved`` URL, else the registry's standard tarball URL
for the pinned version), checks the hash *before* opening it, and extracts only the files the
canvas loads (``package/dist/<name>``, regular files of bounded size, no other member) plus the
package's ``package.json`` (its name, version and licence) into
``<cache>/onnxruntime-web/<version>/``: written into a temporary folder, renamed into place when
complete, so the cache never holds half a copy. The app then serves that folder from its own
origin like ``node_modules/onnxruntime-web/dist``. Nothing here runs while answering a request.

``$PIX2PIX_ORT_FETCH``: ``auto`` (default) fetches when onnxruntime-web is not installed, unless
``HF_HUB_OFFLINE`` is set; ``off`` never fetches.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pix2pix.hub import cache_dir

log = logging.getLogger("pix2pix.app")

FETCH_ENV = "PIX2PIX_ORT_FETCH"  # auto (default) | off
PACKAGE = "onnxruntime-web"
ROOT = Path(__file__).resolve().parents[2]
PACKAGE_LOCK = ROOT / "package-lock.json"
REGISTRY = "https://registry.npmjs.org"
MAX_TARBALL = 256 << 20  # bytes; onnxruntime-web 1.30.0's tarball is 33 MB
MAX_FILE = 64 << 20  # bytes per extracted file; its largest (the WebGPU build's wasm) is 27 MB
CONNECT_TIMEOUT = 5.0  # seconds: an offline host fails fast
READ_TIMEOUT = 30.0  # seconds without a byte before giving up
METADATA = "package.json"


class FetchError(RuntimeError):
    """The pinned tarball could not be fetched, checked or unpacked; says why and what to do."""


@dataclass(frozen=True)
class PinnedTarball:
    """One npm package as ``package-lock.json`` pins it."""

    name: str
    version: str
    url: str  # the tarball's URL
    integrity: str  # Subresource-Integrity form: "sha512-<base64 of the digest>"


def pinned_tarball(lock: Path | None = None, name: str = PACKAGE) -> PinnedTarball:
    """The lock file's entry for ``name``; raises ValueError when the file or entry is unusable.

    The URL is the entry's ``resolved`` field, or (npm omits it in some lock files) the npm
    registry's tarball URL for the pinned version, ``<registry>/<name>/-/<name>-<version>.tgz``.
    """
    lock = lock or PACKAGE_LOCK
    try:
        packages = _read_lock(lock, lock.stat().st_mtime_ns)["packages"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"cannot read the npm lock file {lock}: {e}") from e
    entry = packages.get(f"node_modules/{name}") if isinstance(packages, dict) else None
    if not isinstance(entry, dict):
        raise ValueError(f"{lock} pins no {name} (no packages['node_modules/{name}'])")
    version, integrity = entry.get("version"), entry.get("integrity")
    if not isinstance(version, str) or not version:
        raise ValueError(f"{lock}: {name} has no version")
    if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
        raise ValueError(f"{lock}: {name} needs a sha512 integrity hash, got {integrity!r}")
    url = entry.get("resolved") or f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"{lock}: {name} resolves to {url!r}, not an http(s) URL")
    return PinnedTarball(name, version, url, integrity)


@functools.lru_cache(maxsize=8)
def _read_lock(lock: Path, mtime_ns: int) -> dict:
    # The app asks for the pin on each canvas request where node_modules is absent: parse once.
    return json.loads(lock.read_text("utf-8"))


def cache_folder(pin: PinnedTarball) -> Path:
    """Where the fetched files of ``pin`` live: ``<cache>/<name>/<version>/``."""
    return cache_dir() / pin.name.replace("/", "+") / pin.version


def is_complete(folder: Path, files: Iterable[str]) -> bool:
    """Whether ``folder`` holds every one of ``files``."""
    return all((folder / name).is_file() for name in files)


def fetch_wanted() -> str | None:
    """Why the tarball must not be fetched here (``$PIX2PIX_ORT_FETCH``, offline), or None."""
    mode = os.environ.get(FETCH_ENV, "auto").lower()
    if mode in ("off", "0", "false", "no"):
        return f"${FETCH_ENV}={mode}"
    if mode not in ("auto", "on", "1", "true", "yes"):
        return f"${FETCH_ENV} must be auto or off, got {mode!r}"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    return None


def fetch(
    files: Iterable[str],
    *,
    optional: Iterable[str] = (),
    pin: PinnedTarball | None = None,
    dest: Path | None = None,
) -> Path:
    """Make ``dest`` (default :func:`cache_folder`) hold ``files`` from the pinned tarball's
    ``package/dist/``, downloading it once; returns ``dest``.

    ``optional``: more ``dist/`` files, extracted when the tarball has them. A complete ``dest``
    is returned without any request. Raises FetchError (HTTP error, timeout, hash mismatch, a
    truncated or malformed tarball, a wanted file missing or not a regular file); then nothing
    is left in ``dest`` or beside it.
    """
    pin = pin or pinned_tarball()
    dest = dest or cache_folder(pin)
    files, optional = list(files), [n for n in optional if n not in files]
    if is_complete(dest, files):
        return dest
    for name in files + optional:
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ValueError(f"expected a plain file name inside dist/, got {name!r}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        tarball = Path(tmp) / "package.tgz"
        _download(pin, tarball)
        staged = Path(tmp) / "files"
        staged.mkdir()
        _extract(pin, tarball, staged, files, optional)
        try:
            staged.rename(dest)
        except OSError:
            # Another process finished first (or an incomplete folder is in the way).
            if not is_complete(dest, files):
                shutil.rmtree(dest, ignore_errors=True)
                staged.rename(dest)
    log.info("%s %s is in %s", pin.name, pin.version, dest)
    return dest


def _download(pin: PinnedTarball, target: Path) -> None:
    import httpx

    algorithm, _, expected = pin.integrity.partition("-")
    digest = hashlib.new(algorithm)
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    what = f"{pin.name} {pin.version}"
    log.info("fetching %s from %s (once; pinned in package-lock.json)", what, pin.url)
    try:
        with (
            httpx.stream("GET", pin.url, timeout=timeout, follow_redirects=True) as response,
            target.open("wb") as out,
        ):
            if response.status_code != 200:
                raise FetchError(f"{pin.url} answered HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0) or None
            if total is not None and total > MAX_TARBALL:
                raise FetchError(f"{pin.url} is {total} bytes, more than {MAX_TARBALL} allowed")
            size, shown = 0, 0
            for chunk in response.iter_bytes(1 << 20):
                size += len(chunk)
                if size > MAX_TARBALL:
                    raise FetchError(f"{pin.url} sent more than {MAX_TARBALL} bytes")
                digest.update(chunk)
                out.write(chunk)
                if total and size * 4 // total > shown:
                    shown = size * 4 // total
                    log.info("  %s: %.1f of %.1f MB", what, size / 1e6, total / 1e6)
            if total is not None and size != total and not response.headers.get("content-encoding"):
                raise FetchError(f"{pin.url}: got {size} of {total} bytes (connection cut)")
    except httpx.HTTPError as e:
        raise FetchError(f"could not download {pin.url}: {type(e).__name__}: {e}") from e
    got = base64.b64encode(digest.digest()).decode("ascii")
    if got != expected:
        raise FetchError(
            f"{pin.url} does not match the integrity hash pinned in package-lock.json "
            f"(expected {pin.integrity}, got {algorithm}-{got}); the download was discarded"
        )


def _extract(
    pin: PinnedTarball, tarball: Path, into: Path, files: list[str], optional: list[str]
) -> None:
    """Copy the wanted members, by exact name, out of the checked tarball; nothing else."""
    wanted = {f"package/dist/{name}": name for name in files + optional}
    wanted[f"package/{METADATA}"] = METADATA
    found: set[str] = set()
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member in archive:
                name = wanted.get(member.name)
                if name is None or name in found:
                    continue
                if not member.isreg():
                    raise FetchError(f"{pin.url}: {member.name} is not a regular file")
                if member.size > MAX_FILE:
                    raise FetchError(f"{pin.url}: {member.name} is {member.size} bytes")
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has data
                with source, (into / name).open("xb") as out:
                    shutil.copyfileobj(source, out)
                found.add(name)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise FetchError(f"{pin.url}: the tarball is damaged ({type(e).__name__}: {e})") from e
    missing = [name for name in files if name not in found]
    if missing:
        raise FetchError(f"{pin.url} lacks {', '.join(f'dist/{n}' for n in missing)}")
