"""The compiled candidates against eager, and what compiling costs at a first and a second start.

    python -m bench.compiled                         # the paper's generator and lineart2color
    python -m bench.compiled --runs 10 --json /tmp/compiled.json

In one process, per model (the paper's generator, unet_256 ngf 64, random weights; the bundled
lineart2color), batch 1 at 256 px: fp32 eager, bf16 channels-last, inductor-fp32 and
inductor-bf16-channels-last (``pix2pix.backends``; those that can run here) are built, the
compiled ones with an empty inductor cache (the first start's compile time), checked against fp32
eager (PSNR) and timed as ``choose`` times them (the runner and the 8-bit conversion, in blocks
after an untimed call, in rounds of rotating order): p50 of ``--runs`` calls each. Then a fresh
process with the same cache builds the compiled candidates again: the second start's compile time.
The full benchmark (``python -m bench.benchmark``) measures them too, beside every other
candidate, in its per-model backend tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pix2pix import backends, load_generator
from pix2pix.hub import Pix2PixGenerator

ROOT = Path(__file__).resolve().parents[1]
NAMES = (backends.BASELINE, "bf16-channels-last", *backends.COMPILED)


def models(names: list[str]) -> list[tuple[str, Pix2PixGenerator]]:
    """The models to measure: ``paper`` (unet_256 ngf 64) or a folder under checkpoints/."""
    from bench.benchmark import paper_generator

    folder = ROOT / "checkpoints"
    return [(n, paper_generator() if n == "paper" else load_generator(folder / n)) for n in names]


def build(model: Pix2PixGenerator, names: tuple[str, ...], size: int) -> dict[str, dict]:
    """Each candidate built for (1, C, size, size): its runner, build seconds or why not."""
    ctx = backends.Context(model, torch.device("cpu"), True, (1, model.in_channels, size, size),
                           backends.model_hash(model))  # fmt: skip
    built = {}
    for cand in (c for c in backends.CANDIDATES if c.device_type == "cpu" and c.name in names):
        start = time.perf_counter()
        try:
            runner = cand.build(ctx)
        except backends.Unavailable as e:
            built[cand.name] = {"runner": None, "note": str(e)}
            continue
        built[cand.name] = {"runner": runner, "build_s": time.perf_counter() - start}
    return built


def measure(built: dict[str, dict], shape: tuple[int, ...], runs: int, block: int = 2) -> None:
    """Add PSNR against fp32 eager and the p50 / p95 of ``runs`` timed calls to ``built``."""
    x = backends.test_input(shape)
    names = [n for n, b in built.items() if b["runner"] is not None]
    reference = built[backends.BASELINE]["runner"](x)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for name in names:
        built[name]["psnr_db"] = backends.psnr(built[name]["runner"](x), reference)
    for r in range(max(1, -(-runs // block))):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            run = built[name]["runner"]
            backends.to_pixels(run(x))  # untimed: the previous candidate's wake
            for _ in range(block):
                start = time.perf_counter()
                backends.to_pixels(run(x))
                samples[name].append(1000 * (time.perf_counter() - start))
    for name, ms in samples.items():
        ms.sort()
        built[name]["p50_ms"] = statistics.median(ms)
        built[name]["p95_ms"] = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        built[name]["runs"] = len(ms)


def compile_only(names: list[str], size: int) -> dict[str, dict[str, float | str]]:
    """Build the compiled candidates of each model; their build seconds (or why not)."""
    out = {}
    for name, model in models(names):
        built = build(model, backends.COMPILED, size)
        out[name] = {n: b.get("build_s", b.get("note", "")) for n, b in built.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure, print a Markdown table per model, write ``--json``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="paper,lineart2color", help="comma-separated")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--runs", type=int, default=10, help="timed calls per candidate")
    p.add_argument("--json", type=Path, help="raw figures")
    p.add_argument("--compile-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if args.compile_only:  # the second start, in its own process
        print(json.dumps(compile_only(names, args.size)))
        return 0
    # A fresh cache (choices, inductor's files), shared with the second start below.
    os.environ["PIX2PIX_CACHE"] = tempfile.mkdtemp(prefix="pix2pix-compiled-")
    os.environ.pop(backends.INDUCTOR_CACHE_ENV, None)
    results: dict = {"cpu": backends.cpu_info(), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M"),
                     "models": {}}  # fmt: skip

    def save() -> None:  # after each model: a run stopped by a time limit keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))

    for name, model in models(names):
        built = build(model, NAMES, args.size)
        measure(built, (1, model.in_channels, args.size, args.size), args.runs)
        results["models"][name] = {n: {k: v for k, v in b.items() if k != "runner"}
                                   for n, b in built.items()}  # fmt: skip
        save()
    second = subprocess.run(
        [sys.executable, "-m", "bench.compiled", "--compile-only", "--models", args.models,
         "--size", str(args.size)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if second.returncode:  # the first start's figures still stand
        results["second_start_error"] = second.stderr[-2000:]
        print(f"the second start failed:\n{results['second_start_error']}", file=sys.stderr)
        results["second_start_build_s"] = {name: {} for name in results["models"]}
    else:
        results["second_start_build_s"] = json.loads(second.stdout.strip().splitlines()[-1])
    print(f"{results['cpu']['model']}, {results['threads']} threads, torch {results['torch']}")
    for name, built in results["models"].items():
        base = built[backends.BASELINE]["p50_ms"]
        print(f"\n{name}, batch 1, {args.size} px\n")
        print(
            "| candidate | p50 (ms) | p95 (ms) | vs fp32 eager | PSNR (dB) | build: first "
            "start (s) | build: second start (s) |\n|---|---|---|---|---|---|---|"
        )
        for cand, b in built.items():
            if "p50_ms" not in b:
                print(f"| {cand} | unavailable: {b['note']} | | | | | |")
                continue
            again = results["second_start_build_s"][name].get(cand, "")
            again = f"{again:.1f}" if isinstance(again, float) else again
            print(f"| {cand} | {b['p50_ms']:.1f} | {b['p95_ms']:.1f} | {base / b['p50_ms']:.2f}x"
                  f" | {b['psnr_db']:.1f} | {b['build_s']:.1f} | {again} |")  # fmt: skip
    save()
    return 1 if second.returncode else 0


if __name__ == "__main__":
    raise SystemExit(main())
