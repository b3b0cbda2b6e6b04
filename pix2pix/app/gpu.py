"""ZeroGPU support without depending on it: ``on_gpu`` is ``spaces.GPU`` where the ``spaces``
package is installed (Hugging Face Spaces) and a no-op decorator everywhere else.

On ZeroGPU, ``spaces`` must be imported before anything initialises CUDA; ``app.py`` imports it
first for that reason. Off ZeroGPU, ``spaces.GPU`` itself returns the function unchanged.

On ZeroGPU (:func:`zero_gpu`) the main process has no GPU: ``spaces`` makes
``torch.cuda.is_available()`` True there and emulates CUDA tensors on the CPU in the main thread
only; in any other thread a CUDA operation raises "Low-level CUDA init reached", and after
``launch()`` the "CUDA" weights are packed away to disk. The GPU exists only inside an ``@on_gpu``
call, in a forked worker. So outside such calls the app never runs or times a model on its device
copy: exports read a CPU copy (``ServedModel.cpu_model``), inside :func:`cpu_work`, and no backend
is measured.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch

try:
    import spaces
except ImportError:
    spaces = None

F = TypeVar("F", bound=Callable)
ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU Spaces


def on_gpu(duration: int = 30) -> Callable[[F], F]:
    """Decorate a synchronous function that runs models: it gets a GPU for ``duration`` s."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


def zero_gpu() -> bool:
    """Whether this process runs on ZeroGPU: ``spaces`` installed and ``$SPACES_ZERO_GPU`` true
    (the same test ``spaces`` makes), so CUDA is only emulated outside ``@on_gpu`` calls."""
    flag = os.environ.get(ZERO_GPU_ENV, "").lower() in ("1", "t", "true")
    return spaces is not None and flag


_cpu_threads: dict[int, int] = {}  # thread id -> depth of cpu_work() in that thread
_cpu_guard = threading.Lock()


@contextlib.contextmanager
def cpu_work() -> Iterator[None]:
    """Run CPU-only work that asks about CUDA (an ONNX export: ``torch.export`` saves the CUDA
    random state when ``torch.cuda.is_available()``) in this thread.

    On ZeroGPU, ``torch.cuda.is_available()`` answers False in this thread meanwhile, the truth
    about this process, instead of the emulation's True, which would send such work into a real
    CUDA initialisation ("Low-level CUDA init reached"); other threads still see the emulation.
    The GPU calls run in forked workers that restore PyTorch as it was. Elsewhere a no-op.
    """
    if not zero_gpu():
        yield
        return
    me = threading.get_ident()
    with _cpu_guard:
        _answer_false_in_cpu_work()
        _cpu_threads[me] = _cpu_threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _cpu_guard:
            _cpu_threads[me] -= 1
            if not _cpu_threads[me]:
                del _cpu_threads[me]


def _answer_false_in_cpu_work() -> None:
    """Wrap ``torch.cuda.is_available`` (the emulation's) once: False in a cpu_work() thread."""
    emulated = torch.cuda.is_available
    if getattr(emulated, "cpu_work_aware", False):
        return

    def is_available() -> bool:
        return threading.get_ident() not in _cpu_threads and emulated()

    is_available.cpu_work_aware = True  # type: ignore[attr-defined]
    torch.cuda.is_available = is_available
