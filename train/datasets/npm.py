"""Data sets delivered as npm packages: download one with ``npm pack`` and unpack its tarball."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path


def pack(spec: str, into: Path) -> Path:
    """Download the npm package ``spec`` (``name@version``) with ``npm pack`` into ``into``;
    returns the tarball's path. Raises RuntimeError without npm or when the download fails."""
    if shutil.which("npm") is None:
        raise RuntimeError("--fetch needs npm (Node.js); or pass the tarball with --source")
    out = subprocess.run(
        ["npm", "pack", spec, "--silent"], cwd=into, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"npm pack {spec} failed: {out.stderr.strip()[-500:]}")
    return into / out.stdout.strip().splitlines()[-1]


def unpack(source: Path, into: Path, marker: str) -> Path:
    """The ``package/`` folder of an npm tarball (unpacked into ``into``) or of a folder.

    A folder is taken as the package itself unless it holds ``package/<marker>`` (a file or
    folder that every such package has). Tarball members are extracted with tarfile's ``data``
    filter (no absolute paths, links out of the folder or device files).
    """
    if source.is_dir():
        return source / "package" if (source / "package" / marker).exists() else source
    with tarfile.open(source) as tar:
        tar.extractall(into, filter="data")
    return into / "package"
