"""ZeroGPU support without depending on it: ``on_gpu`` is ``spaces.GPU`` where the ``spaces``
package is installed (Hugging Face Spaces) and a no-op decorator everywhere else.

On ZeroGPU, ``spaces`` must be imported before anything initialises CUDA; ``app.py`` imports it
first for that reason. Off ZeroGPU, ``spaces.GPU`` itself returns the function unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

try:
    import spaces
except ImportError:
    spaces = None

F = TypeVar("F", bound=Callable)


def on_gpu(duration: int = 30) -> Callable[[F], F]:
    """Decorate a synchronous function that runs models: it gets a GPU for ``duration`` s."""
    if spaces is None:
        return lambda fn: fn
    return spaces.GPU(duration=duration)
