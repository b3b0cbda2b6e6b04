"""Files written whole or not at all, readable as the user's umask allows.

Two things every writer here needs and the standard tools each get half of:

- ``tempfile.mkstemp`` / ``mkdtemp`` give a private name for an atomic ``os.replace``, but create
  the file ``0600`` and the folder ``0700``, and the rename keeps that mode;
- ``safetensors`` (0.8) writes its files ``0600`` too.

A model folder, a training checkpoint or a prepared dataset then reads as "Permission denied" to
anyone else the user shares it with (a group, a web server, a container running as another user),
while the ``config.json`` beside it is ``0644``. Everything the project writes for the user goes
through :func:`atomic_write` or :func:`save_safetensors`, and a folder made by ``mkdtemp`` to be
renamed into place through :func:`as_created`: files get ``0666`` and folders ``0777`` less the
umask, as ``open()`` and ``mkdir()`` would give them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import torch

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask (e.g. ``0o022``), read without changing it where Linux says it in
    ``/proc/self/status``; elsewhere set and restored under a lock."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def as_created(path: str | os.PathLike[str]) -> None:
    """Give ``path`` the mode ``open()`` / ``mkdir()`` would have: ``0o666`` for a file, ``0o777``
    for a folder, less the umask. Raises OSError as ``os.chmod`` does."""
    base = 0o777 if os.path.isdir(path) else 0o666
    os.chmod(path, base & ~umask())


@contextlib.contextmanager
def atomic_write(
    dest: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``dest`` for writing; on a clean exit give it the umask's
    mode and rename it onto ``dest`` (atomic on one file system), so a reader sees the old file
    or the whole new one, never a part. On an exception the temporary file is removed and
    ``dest`` is left as it was. Creates ``dest``'s folder. ``mode``: ``"wb"`` or ``"w"``."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write opens files for writing, 'wb' or 'w'; got {mode!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
        as_created(tmp)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def save_safetensors(
    tensors: Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    metadata: Mapping[str, str] | None = None,
) -> None:
    """``safetensors.torch.save_file``, then the umask's mode (it writes ``0600``).
    ``tensors``: name -> contiguous CPU tensor; raises as ``save_file`` does."""
    from safetensors.torch import save_file

    save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata else None)
    as_created(path)
