"""Held-out curves of a training run: every saved generator snapshot evaluated on one split.

The trainer keeps only its newest checkpoint; ``train/recipes/openmoji.sh`` copies each one's
generator to ``RUN/snapshots/step-<N>.safetensors`` while the run goes. This script evaluates them
all (``train.evaluate``: L1, PSNR, SSIM, colourfulness; dropout off, per-image statistics) and
writes ``RUN/curve.json``, one entry per step, so the best snapshot can be chosen on held-out data
rather than at a fixed budget::

    python -m train.curves runs/lineart-gan10 --data data/openmoji --split val
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

_STEP = re.compile(r"step-(\d+)\.safetensors$")


def snapshots(run: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's generator snapshots, in step order."""
    found = []
    for path in (run / "snapshots").glob("step-*.safetensors"):
        match = _STEP.search(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def curve(
    run: Path, data: Path, *, split: str = "val", every: int = 1, limit: int | None = None
) -> list[dict[str, Any]]:
    """Evaluate every snapshot of ``run`` on ``split``; reuse entries ``RUN/curve.json`` has.

    Returns one dict per step: ``step`` and the metrics of ``train.evaluate`` (``l1``,
    ``psnr_db``, ``ssim``, ``colourfulness_median``, ``target_colourfulness_median``). Only
    steps that are multiples of ``every`` are evaluated.
    Raises FileNotFoundError when the run has no snapshots.
    """
    from train.evaluate import evaluate

    found = [(step, path) for step, path in snapshots(run) if step % every == 0]
    if not found:
        raise FileNotFoundError(f"{run}/snapshots holds no step-<N>.safetensors (N % {every} == 0)")
    out = run / f"curve-{split}.json"
    done = {}
    if out.is_file():
        done = {e["step"]: e for e in json.loads(out.read_text(encoding="utf-8"))}
    entries = []
    for step, path in found:
        if step not in done:
            results = evaluate(path, data, split=split, limit=limit, progress=False)
            done[step] = {"step": step, **results["metrics"]}
            print(_row(done[step]), flush=True)
        entries.append(done[step])
    out.write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")
    return entries


def _row(e: dict[str, Any]) -> str:
    return (
        f"step {e['step']:>6}  L1 {e['l1']:.4f}  PSNR {e['psnr_db']:.2f}  SSIM {e['ssim']:.4f}  "
        f"colourfulness {e['colourfulness_median']:.1f} (targets "
        f"{e['target_colourfulness_median']:.1f})"
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.curves``; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m train.curves", description=__doc__.split("\n\n")[0])
    p.add_argument("run", type=Path, help="a run folder holding snapshots/")
    p.add_argument("--data", type=Path, required=True, help="dataset root")
    p.add_argument("--split", default="val")
    p.add_argument("--every", type=int, default=1, help="only steps that are multiples of this")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = p.parse_args(argv)
    try:
        curve(args.run, args.data, split=args.split, every=args.every, limit=args.limit)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
