"""The paper's generator on a CUDA GPU at batch 1, 16 and 64 in each precision and memory layout.

``python -m bench.gpu_layouts``: forward time and forward + conversion to 8-bit pixels on the
host (``backends.to_pixels``), ms p50 of 20 synchronised runs after 5 warm-ups, with per-image
statistics and dropout off, as the ``Translator`` runs it. fp32 is timed with and without TF32
(cuDNN's tensor-core fp32, PyTorch's default for convolutions). Prints one line per path; exits 2
without a CUDA GPU. Figures: docs/PERFORMANCE.md, NVIDIA H200 section.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable

import torch

from bench.benchmark import paper_generator
from bench.gpu import cuda_timings
from pix2pix import backends, networks


def _path(model: torch.nn.Module, dtype: torch.dtype, channels_last: bool) -> Callable:
    twin = copy.deepcopy(model).to(dtype=dtype)
    if channels_last:
        twin = twin.to(memory_format=torch.channels_last)

    def run(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dtype)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with networks.eval_mode(twin, input_stats=True, noise=None), torch.inference_mode():
            return twin(x)

    return run


def _measure(run: Callable, x: torch.Tensor) -> tuple[float, float]:
    """(forward, forward + 8-bit pixels on the host) ms p50 of ``run`` on ``x``."""
    forward = cuda_timings(lambda: run(x), runs=20)
    to_host = cuda_timings(lambda: backends.to_pixels(run(x)), runs=20)
    return forward["p50_ms"], to_host["p50_ms"]


def main() -> int:
    if not torch.cuda.is_available():
        print("bench.gpu_layouts needs a CUDA GPU; none is visible here.", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    model = paper_generator().to(device).eval().requires_grad_(False)
    for batch in (1, 16, 64):
        x = backends.test_input((batch, 3, 256, 256)).to(device)
        paths: dict[str, tuple[float, float]] = {}
        for tf32 in (True, False):
            torch.backends.cudnn.allow_tf32 = tf32
            paths[f"fp32 NCHW, TF32 {'on' if tf32 else 'off'}"] = _measure(
                _path(model, torch.float32, False), x
            )
        torch.backends.cudnn.allow_tf32 = True
        for dtype in (torch.float16, torch.bfloat16):
            for channels_last in (True, False):
                name = f"{str(dtype).removeprefix('torch.')} {'NHWC' if channels_last else 'NCHW'}"
                paths[name] = _measure(_path(model, dtype, channels_last), x)
        for name, (forward, to_host) in paths.items():
            print(f"batch {batch:2d}  {name:22s} forward {forward:7.2f} ms   to host uint8 "
                  f"{to_host:7.2f} ms  ({1000 * batch / to_host:6.0f} images/s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
