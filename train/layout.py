"""The training step's memory layout, channels-last (NHWC) or NCHW, chosen once per run.

oneDNN's bf16 convolutions are fastest channels-last. For fp32 on the CPU neither layout wins
everywhere, so ``auto`` times the run's own step both ways before training (PERFORMANCE.md, entry
47) and keeps the answer per machine and configuration, so that a later run with the same options
on the same machine takes the same layout, with the same rounding, without timing again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from pix2pix import backends

CHANNELS_LAST_CHOICES = ("auto", "on", "off")
CACHE_NAME = "training-layout.json"  # beside the inference choices, in backends.cache_dir()
CACHE_VERSION = 1
# auto takes channels-last for fp32 only when its step is this much shorter than NCHW's (PyTorch's
# default), so that near-ties, where two timings differ by noise, go one way every time.
MARGIN = 0.05


def resolve_channels_last(
    choice: str | bool,
    *,
    precision: str,
    device: torch.device,
    measure: Callable[[], tuple[dict[bool, float], str]],
) -> tuple[bool, str]:
    """Whether the run keeps its networks and batches channels-last, and why.

    ``choice``: ``"on"`` / ``"off"`` as asked; ``True`` / ``False``, the layout a resumed run
    chose (its config holds the resolved value, so that it continues with the same rounding);
    ``"auto"``: channels-last under bf16; NCHW on a GPU otherwise (not measured there); for fp32
    on the CPU, channels-last when its step is at least ``MARGIN`` (5 %) shorter than NCHW's in
    ``measure()``, which returns the seconds of a step in each layout, ``{channels_last:
    seconds}``, and where they come from; else NCHW. ``precision``: Accelerate's resolved mixed
    precision (``"no"``, ``"bf16"``, ``"fp16"``). Raises ``ValueError`` for an unknown ``choice``.
    """
    if isinstance(choice, bool):
        return choice, "as in the run resumed"
    if choice not in CHANNELS_LAST_CHOICES:
        raise ValueError(
            f"unknown channels-last choice {choice!r}; expected one of {CHANNELS_LAST_CHOICES}"
        )
    if choice != "auto":
        return choice == "on", "as asked"
    if precision == "bf16":
        return True, "auto: bf16 convolutions are fastest channels-last"
    if device.type != "cpu":
        return False, f"auto: {precision} on {device.type}, not measured"
    times, source = measure()
    cl, nchw = times[True], times[False]
    chosen = cl <= (1 - MARGIN) * nchw
    tie = f" (NCHW unless channels-last is {MARGIN:.0%} faster)" if cl < nchw and not chosen else ""
    return chosen, (
        f"auto: a step took {1000 * cl:.0f} ms channels-last against {1000 * nchw:.0f} ms NCHW"
        f"{tie}, {source}"
    )


def time_layouts(
    step: Callable[[], object], convert: Callable[[bool], object], *, repeats: int = 3
) -> dict[bool, float]:
    """Seconds of ``step()`` in each layout: the shortest of ``repeats`` timed calls after one
    untimed call each (first-call costs: oneDNN's primitive creation, the allocator's first
    blocks). ``convert(channels_last)``, untimed, puts the networks in that layout before each
    call; the layouts alternate, so that a shared machine's drift hits both."""
    for layout in (False, True):
        convert(layout)
        step()
    best = {False: float("inf"), True: float("inf")}
    for _ in range(repeats):
        for layout in (False, True):
            convert(layout)
            start = time.perf_counter()
            step()
            best[layout] = min(best[layout], time.perf_counter() - start)
    return best


def cache_key(device: torch.device, **run: Any) -> str:
    """The key of a layout measurement: the machine (CPU, threads, versions:
    ``backends.machine_key``) and what the run's step depends on (``run``: JSON-able values such
    as the networks' structure, the batch shape, the precision, the number of processes)."""
    data = {"version": CACHE_VERSION, "machine": backends.machine_key(device), **run}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def cached_times(
    key: str, measure: Callable[[], dict[bool, float]], *, store: bool = True, label: str = ""
) -> tuple[dict[bool, float], str]:
    """The step times under ``key`` in the cache, else ``measure()``'s (kept under ``key`` when
    ``store``, with ``label`` saying what was timed for a reader of the file; a cache that cannot
    be written gives a warning), and a phrase saying which. A damaged entry (not two positive
    finite times) is measured again."""
    entry = backends.read_entry(CACHE_NAME, key)
    try:
        times = {True: float(entry["channels_last_s"]), False: float(entry["nchw_s"])}
        if all(0 < t < math.inf for t in times.values()):
            return times, f"timed by an earlier run here ({backends.cache_dir() / CACHE_NAME})"
    except (TypeError, KeyError, ValueError):
        pass
    start = time.perf_counter()
    times = measure()
    took = time.perf_counter() - start
    if store:
        entry = {"channels_last_s": times[True], "nchw_s": times[False], "run": label}
        try:
            backends.write_entry(CACHE_NAME, key, entry)
        except OSError as e:  # the run goes on; the next one times again
            warnings.warn(
                f"could not keep the layout timing in {backends.cache_dir() / CACHE_NAME} ({e}); "
                "set $PIX2PIX_CACHE to a writable folder to keep it",
                stacklevel=2,
            )
    return times, f"timed on this run's networks and batch shape in {took:.1f} s"
