"""The hint propagation's rounds as one native kernel, for the compiled candidates.

``networks.HintPropagation`` spreads each dab's colour over its shape in ``steps`` rounds (96 for
lineart2color) on a grid of 4-px cells. Inductor compiles those rounds into masked loads that
recompute the previous round's state inside every neighbour's read: 1.3-1.5 ms of a 5-7 ms call
on 2 AMD EPYC vCPUs. ``hint_spread.c`` keeps the state in two padded buffers that stay in the
cache and takes 0.34 ms for the same rounds, values identical (PERFORMANCE, entry 39).

The kernel is built once per machine with the C++ compiler the compiled candidates already need
(``backends.cxx_compiler``), for this CPU (``-march=native``), into ``<cache>/native``, and loaded
with ``ctypes``. It runs as the custom operator ``pix2pix::hint_spread``, so ``torch.export``
traces it as one node and an AOTInductor package calls it (through PyTorch's dispatcher, in this
process). Where the library is not loaded the operator computes the same rounds with PyTorch
(``HintPropagation._spread``): a package never fails for the want of it, only runs slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from pix2pix import networks

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("hint_spread.c")
# -ffp-contract=off: a product and a sum stay two roundings, as in PyTorch, so values match.
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC")

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_loaded_from: Path | None = None  # the file _library came from


def flags(*, avx512: bool = True) -> tuple[str, ...]:
    """The compiler's flags: ``FLAGS``, and ``-mno-avx512f`` where the rest of PyTorch is kept
    below AVX-512 (``backends.avx512_off``), so the kernel does not use what the rest may not."""
    return FLAGS if avx512 else (*FLAGS, "-mno-avx512f")


def library_path(compiler: str, folder: Path, cpu: Any, *, avx512: bool = True) -> Path:
    """Where the kernel built by ``compiler`` for the CPU described by ``cpu`` (any JSON value:
    its model and flags) is kept in ``folder``: the name hashes the source, the flags, the
    compiler's path and the CPU, so a library built for another CPU is never loaded."""
    key = {
        "source": hashlib.sha256(SOURCE.read_bytes()).hexdigest(),
        "flags": flags(avx512=avx512),
        "compiler": compiler,
        "cpu": cpu,
        "platform": sys.platform,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return folder / f"hint_spread-{digest[:24]}.so"


def load(compiler: str, folder: Path, cpu: Any, *, avx512: bool = True) -> Path | None:
    """Build the kernel if ``folder`` does not hold it yet (with AVX-512 where the CPU has it,
    unless ``avx512`` is False) and load it; returns the library the operator now runs (the one
    loaded earlier in this process, if any), or None where it runs PyTorch's rounds. A failure
    (no compiler that takes GCC's flags, a build error, a library that does not load) is logged
    with its reason and leaves the operator on PyTorch's rounds. A kept library that does not
    load (damaged) is removed and built again, once."""
    global _library, _loaded_from
    with _lock:
        if _library is not None:
            return _loaded_from
        if sys.platform == "win32":
            log.info("the native hint-propagation kernel is not built on Windows (GCC's flags)")
            return None
        path = library_path(compiler, folder, cpu, avx512=avx512)
        try:
            if path.is_file():
                try:
                    lib = ctypes.CDLL(str(path))
                except OSError as error:
                    log.warning("%s did not load (%s); building it again", path, error)
                    path.unlink(missing_ok=True)
            if not path.is_file():
                _build(compiler, path, flags(avx512=avx512))
                lib = ctypes.CDLL(str(path))
        except (OSError, subprocess.SubprocessError, RuntimeError) as error:
            log.warning("hint propagation stays on PyTorch's rounds: %s", error)
            return None
        lib.hint_spread.restype = ctypes.c_int
        lib.hint_spread.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_long] * 4
        _library, _loaded_from = lib, path
        return path


def loaded() -> bool:
    """Whether ``pix2pix::hint_spread`` runs the native kernel (else PyTorch's rounds)."""
    return _library is not None


def _build(compiler: str, path: Path, options: tuple[str, ...]) -> None:
    """Compile ``SOURCE`` into ``path``, under a temporary name renamed at the end, so a
    concurrent process never loads half a library. Raises RuntimeError with the compiler's
    message when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.so")
    command = [compiler, *options, "-x", "c++", str(SOURCE), "-o", str(partial)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(
                f"building {SOURCE.name} failed ({' '.join(command)}): {done.stderr.strip()}"
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    log.info("built the native hint-propagation kernel in %.1f s: %s",
             time.perf_counter() - started, path)  # fmt: skip


@torch.library.custom_op("pix2pix::hint_spread", mutates_args=())
def hint_spread(seed: torch.Tensor, gate: torch.Tensor, steps: int) -> torch.Tensor:
    """``HintPropagation._spread(seed, gate)`` with ``steps`` rounds, values identical.

    ``seed``: (B, 4, h, w), colour x reach and reach; ``gate``: (B, 1, h, w), 1 on the cells
    that take their neighbours' colour; both float32 (others are cast). Returns (B, 4, h, w)
    float32, contiguous. The native kernel where ``load`` succeeded, else PyTorch.
    """
    seed = seed.to(torch.float32).contiguous()
    gate = gate.to(torch.float32).contiguous()
    if _library is None or seed.device.type != "cpu":
        return networks.HintPropagation(steps=steps)._spread(seed, gate).contiguous()
    b, c, h, w = seed.shape
    if c != 4 or gate.shape != (b, 1, h, w):
        raise ValueError(f"expected seed (B, 4, h, w) and gate (B, 1, h, w), got "
                         f"{tuple(seed.shape)} and {tuple(gate.shape)}")  # fmt: skip
    out = torch.empty_like(seed)
    status = _library.hint_spread(seed.data_ptr(), gate.data_ptr(), out.data_ptr(), b, h, w, steps)
    if status != 0:
        raise MemoryError(f"hint_spread could not allocate its buffers for {h}x{w} cells")
    return out


@hint_spread.register_fake
def _(seed: torch.Tensor, gate: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.empty(seed.shape, dtype=torch.float32, device=seed.device)
