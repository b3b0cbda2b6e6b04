"""What machine a measurement ran on, for reports and benchmarks."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import torch


def machine() -> dict[str, str | int]:
    """CPU model, cores, torch and Python versions, torch's thread count."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count() or 0,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
