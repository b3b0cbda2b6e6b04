"""Files written whole or not at all, with the permissions ``open()`` and ``mkdir()`` would give.

The usual tools each get one half: ``tempfile.mkstemp`` / ``mkdtemp`` give a private name for an
atomic ``os.replace`` but create the file ``0600`` and the folder ``0700`` (kept by the rename),
and ``safetensors.torch.save_file`` (0.8) writes ``0600`` too. A model folder, a training
checkpoint or a prepared dataset then reads as "Permission denied" to anyone the user shares it
with (a group, a web server, a container running as another user), beside a ``config.json`` that
is ``0644``. Here the temporary file or folder is created with ``0666`` / ``0777`` and the kernel
applies the umask, or a folder's default ACL, exactly as for any other file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch


def _fresh(parent: Path, name: str, create: Any) -> Path:
    """``create(path)`` for a new hidden ``path`` in ``parent`` derived from ``name``; retried
    on the (unlikely) name already taken."""
    while True:
        path = parent / f".{name}.{secrets.token_hex(6)}.part"
        try:
            create(path)
            return path
        except FileExistsError:
            continue


def leftovers(parent: str | os.PathLike[str], name: str = "*") -> list[Path]:
    """The temporary files and folders of :func:`atomic_write` / :func:`temporary_folder` for
    ``name`` (a glob pattern) left in ``parent`` by a process killed while writing."""
    return sorted(Path(parent).glob(f".{name}.*.part"))


def temporary_folder(parent: str | os.PathLike[str], name: str) -> Path:
    """A new empty hidden folder in ``parent`` (created with its parents), to fill and then
    rename into place with ``os.replace``; its mode is what ``mkdir()`` gives."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return _fresh(parent, name, lambda path: os.mkdir(path, 0o777))


@contextlib.contextmanager
def atomic_write(
    dest: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a new temporary file beside ``dest`` for writing and, on a clean exit, rename it onto
    ``dest`` (atomic on one file system): a reader sees the old file or the whole new one, never
    a part. On an exception the temporary file is removed and ``dest`` is left as it was.
    Creates ``dest``'s folder. ``mode``: ``"wb"`` or ``"w"``. Raises ``OSError`` as ``open``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write opens files for writing, 'wb' or 'w'; got {mode!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fds: list[int] = []
    tmp = _fresh(dest.parent, dest.name, lambda path: fds.append(os.open(path, flags, 0o666)))
    try:
        with os.fdopen(fds[0], mode, encoding=encoding) as f:
            yield f
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` (name -> contiguous CPU tensor) as a ``.safetensors`` file through
    :func:`atomic_write`: the whole file or none, with the umask's mode (``save_file`` writes
    ``0600`` in place). Holds the serialised file in memory once while writing. Raises as
    ``safetensors.torch.save`` and ``open``."""
    from safetensors.torch import save

    data = save(dict(tensors), metadata=dict(metadata) if metadata else None)
    with atomic_write(path) as f:
        f.write(data)
