"""Training throughput: the training step per precision and memory layout, with and without
``torch.compile``, and the data pipeline with and without the decoded-image cache.

    python -m bench.training --ngf 16 64 --batch 1 4                # the step, 4 x 5 configurations
    python -m bench.training --ngf 64 --batch 4 --no-compile        # eager configurations only
    python -m bench.training --data /tmp/facades --no-step          # data loading only

Step: the trainer's own ``train.train.train_step`` (unet_256, 70x70 PatchGAN with ndf = ngf, 256-px
crops, fused Adam) on one fixed random batch, so that only the networks are timed: fp32 eager in
NCHW and channels-last (the trainer's ``--channels-last auto`` times the two per run), bf16 eager
channels-last, and compiled fp32 NCHW and bf16 channels-last. Ratios are given over fp32 eager NCHW
and over the faster fp32 eager layout. Every configuration starts from the same seeds. The first
step of each is timed alone: with ``--compile on`` it compiles, and the compile time reported is
that first step less a steady one. After ``--warmup`` more steps the configurations of one (ngf,
batch) are timed in ``--rounds`` rounds of ``--steps`` steps each, in rotating order, so that the
drift of a shared machine hits all of them alike; images/s is the batch over the median step. Each
step's CPU time is recorded too (this process's, and for the first step its children's: the C++
compiler), and images per CPU-second from it: on a machine where other work takes most of the cores,
the wall-clock figures say little, and with ``OMP_NUM_THREADS=1`` the CPU time is the work itself.

The process keeps freed memory for reuse (``pix2pix.allocator``), as the trainer's CLI does;
``--default-malloc`` leaves glibc's defaults, under which fp32 steps page-fault afresh.

Data: ``PairedDataset`` items through the trainer's ``SeededItems`` and a DataLoader with
``--workers`` (kept from epoch to epoch as the trainer keeps them; ``--restart-workers`` starts
them again every epoch), decoded per item (cache off) or from memory (cache on), over ``--epochs``
epochs;
the cache's one-off decoding is reported apart. The first batches of both are compared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._dynamo
from torch.utils.data import BatchSampler, DataLoader

from pix2pix.allocator import keep_freed_memory
from pix2pix.backends import native_bf16
from train import train as T
from train.data import PairedDataset
from train.sysinfo import machine

# (precision, layout, compile): fp32 in both layouts (the trainer's --channels-last auto times
# them per run), bf16 channels-last as the trainer runs it.
CONFIGS = (
    ("no", "nchw", "off"),
    ("no", "channels-last", "off"),
    ("bf16", "channels-last", "off"),
    ("no", "nchw", "on"),
    ("bf16", "channels-last", "on"),
)
BASELINE = ("no", "nchw", "off")


class _Precision:
    """The two calls ``train_step`` makes on its Accelerator, for one precision on the CPU."""

    def __init__(self, bf16: bool) -> None:
        self.bf16 = bf16

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()


def build_step(
    ngf: int, batch: int, precision: str, layout: str, compile_: str
) -> Callable[[], None]:
    """One training step of a fresh pix2pix (seeded) on a fixed random batch of ``batch``;
    ``layout``: ``"nchw"`` or ``"channels-last"``."""
    args = T.parse_args(["--data", "d", "--out", "o", "--ngf", str(ngf), "--ndf", str(ngf)])
    bf16 = precision == "bf16"
    args.channels_last = layout == "channels-last"
    torch.manual_seed(0)
    G = T.build_generator(args).train()
    torch.manual_seed(1)
    D = T.build_discriminator(args, 3, 3).train()
    if args.channels_last:
        G.to(memory_format=torch.channels_last)
        D.to(memory_format=torch.channels_last)
    opt_G, opt_D = T.recipe_optimizers(G, D, args)  # the recipe's: lr 2e-4, betas (0.5, 0.999)
    nets = T.Nets(G, opt_G, D, D, opt_D)
    if compile_ == "on":
        nets = T.compile_nets(nets)
    data = torch.Generator().manual_seed(2)
    target = torch.rand(batch, 3, 256, 256, generator=data) * 2 - 1
    pair = {"input": -target.flip(-1), "target": target}
    accelerator = _Precision(bf16)
    torch.manual_seed(3)
    return lambda: T.train_step(pair, nets, accelerator, args)  # type: ignore[arg-type]


def _clocks() -> tuple[float, float, float]:
    """Wall time, this process's CPU time and its reaped children's CPU time, in seconds."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time(), children.ru_utime + children.ru_stime


def bench_steps(
    ngf: int,
    batch: int,
    *,
    steps: int,
    rounds: int,
    warmup: int,
    configs: tuple[tuple[str, str, str], ...] = CONFIGS,
) -> list[dict]:
    """Images/s (wall and CPU time) and first-step time of each of ``configs`` (by default all of
    ``CONFIGS``, which must include ``BASELINE``) at one (ngf, batch)."""
    # Every configuration compiles its own G and D (D twice: with and without gradients for its
    # weights), one process for all: past dynamo's default of 8 versions per frame the later
    # configurations would run D uncompiled (the ngf 64 rows of sessions 11-17 partly did).
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    fns: dict[tuple[str, str, str], Callable[[], None]] = {}
    first: dict[tuple[str, str, str], tuple[float, float]] = {}  # (wall, CPU with children)
    for config in configs:
        fns[config] = build_step(ngf, batch, *config)
        wall, cpu, children = _clocks()
        fns[config]()
        after = _clocks()
        first[config] = (after[0] - wall, after[1] - cpu + after[2] - children)
        for _ in range(warmup):
            fns[config]()
        print(
            f"  ngf {ngf} batch {batch} {config}: first step {first[config][0]:.1f} s "
            f"({first[config][1]:.1f} CPU-s)",
            flush=True,
        )
    walls: dict[tuple[str, str, str], list[float]] = {c: [] for c in configs}
    cpus: dict[tuple[str, str, str], list[float]] = {c: [] for c in configs}
    for r in range(rounds):
        order = configs[r % len(configs) :] + configs[: r % len(configs)]
        for config in order:
            for _ in range(steps):
                wall, cpu = time.perf_counter(), time.process_time()
                fns[config]()
                walls[config].append(time.perf_counter() - wall)
                cpus[config].append(time.process_time() - cpu)
    rows = []
    base = statistics.median(walls[BASELINE]), statistics.median(cpus[BASELINE])
    # The fp32 eager loop as the trainer runs it: in the faster of its two layouts.
    best_fp32 = min(statistics.median(walls[c]) for c in configs if c[0] == "no" and c[2] == "off")
    for config in configs:
        wall, cpu = statistics.median(walls[config]), statistics.median(cpus[config])
        rows.append(
            {
                "ngf": ngf,
                "batch": batch,
                "precision": config[0],
                "layout": config[1],
                "compile": config[2],
                "images_per_s": batch / wall,
                "vs_fp32_eager": base[0] / wall,
                "vs_best_fp32_eager": best_fp32 / wall,
                "median_step_ms": 1000 * wall,
                "images_per_cpu_s": batch / cpu,
                "cpu_vs_fp32_eager": base[1] / cpu,
                "median_step_cpu_ms": 1000 * cpu,
                "first_step_s": first[config][0],
                "compile_s": first[config][0] - wall if config[2] == "on" else None,
                "compile_cpu_s": first[config][1] - cpu if config[2] == "on" else None,
                "timed_steps": len(walls[config]),
            }
        )
    return rows


def bench_data(
    folder: Path, *, batch: int, workers: int, epochs: int, restart_workers: bool = False
) -> list[dict]:
    """Images/s of the training pipeline over ``folder``'s train split, cache off and on; with
    workers, kept from epoch to epoch as the trainer keeps them (``restart_workers``: started
    again every epoch, as the trainer did before session 21)."""
    rows, firsts = [], []
    for cache in ("off", "on"):
        start, cpu = time.perf_counter(), time.process_time()
        dataset = PairedDataset(folder, split="train", cache=cache)
        built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
        sampler = T.EpochShuffle(len(dataset), seed=0)
        loader = DataLoader(
            T.SeededItems(dataset, seed=0),
            batch_sampler=BatchSampler(sampler, batch, drop_last=False),
            num_workers=workers,
            persistent_workers=workers > 0 and not restart_workers,  # as the trainer runs it
        )
        count = 0
        start, cpu = time.perf_counter(), time.process_time()
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            for i, item in enumerate(loader):
                if epoch == 0 and i == 0:
                    firsts.append(item)
                count += item["input"].shape[0]
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        rows.append(
            {
                "cache": cache,
                "images": count,
                "images_per_s": count / seconds,
                "images_per_cpu_s": count / cpu_seconds if not workers else None,
                "build_s": built,
                "build_cpu_s": built_cpu,
                "summary": dataset.summary(),
            }
        )
        print(f"  data, cache {cache}: {count / seconds:.1f} images/s", flush=True)
    same = all(torch.equal(firsts[0][k], firsts[1][k]) for k in ("input", "target"))
    for row in rows:
        row["first_batch_identical"] = same
    return rows


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables."""
    lines = [f"Machine: {results['machine']}", f"{results.get('malloc', '')}", ""]
    if results["steps"]:
        lines += [
            "| ngf | batch | precision | layout | compile | images/s | vs fp32 eager NCHW | "
            "vs the faster fp32 eager | images/CPU-s | vs fp32 eager NCHW (CPU) | "
            "compile (s, CPU-s) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in results["steps"]:
            compile_s = (
                f"{r['compile_s']:.0f}, {r['compile_cpu_s']:.0f}"
                if r["compile_s"] is not None
                else "-"
            )
            lines.append(
                f"| {r['ngf']} | {r['batch']} | {'fp32' if r['precision'] == 'no' else 'bf16'} "
                f"| {r.get('layout', '-')} | {r['compile']} | {r['images_per_s']:.2f} | "
                f"{r['vs_fp32_eager']:.2f}x | {_ratio(r.get('vs_best_fp32_eager'))} | "
                f"{r['images_per_cpu_s']:.2f} | {r['cpu_vs_fp32_eager']:.2f}x | {compile_s} |"
            )
        lines.append("")
    if results["data"]:
        lines += [
            "| cache | images/s | images/CPU-s | dataset built in (s, CPU-s) |",
            "|---|---|---|---|",
        ]
        for r in results["data"]:
            per_cpu = f"{r['images_per_cpu_s']:.1f}" if r["images_per_cpu_s"] else "-"
            lines.append(
                f"| {r['cache']} | {r['images_per_s']:.1f} | {per_cpu} | "
                f"{r['build_s']:.1f}, {r['build_cpu_s']:.1f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints markdown tables and writes the raw figures to ``--json``."""
    p = argparse.ArgumentParser(
        prog="python -m bench.training",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--ngf", type=int, nargs="+", default=[16, 64], help="widths of G and D")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4], help="batch sizes")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration a round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of rotating order")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps after the first")
    p.add_argument("--no-step", action="store_true", help="skip the training-step benchmark")
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="eager configurations only (a first compile costs 10-120 s a configuration)",
    )
    p.add_argument("--data", type=Path, help="a paired dataset folder: time data loading too")
    p.add_argument("--data-batch", type=int, default=4, help="batch size of the data benchmark")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers (data benchmark)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the data benchmark")
    p.add_argument(
        "--restart-workers",
        action="store_true",
        help="start the DataLoader workers again every epoch (the trainer keeps them)",
    )
    p.add_argument("--json", type=Path, help="write the raw figures here")
    p.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc settings as they are (the trainer's CLI keeps freed memory for "
        "reuse: pix2pix.allocator)",
    )
    args = p.parse_args(argv)
    malloc = "glibc's defaults (--default-malloc)" if args.default_malloc else keep_freed_memory()
    results: dict[str, Any] = {"machine": {**machine(), "native_bf16": native_bf16()}}
    results["malloc"] = malloc
    results.update(steps=[], data=[])

    def save() -> None:  # after each (ngf, batch): a run stopped by a time limit keeps those
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    if not args.no_step:
        for ngf in args.ngf:
            for batch in args.batch:
                results["steps"] += bench_steps(
                    ngf,
                    batch,
                    steps=args.steps,
                    rounds=args.rounds,
                    warmup=args.warmup,
                    configs=tuple(c for c in CONFIGS if c[2] == "off" or not args.no_compile),
                )
                save()
                print(markdown({**results, "data": []}), flush=True)
    if args.data is not None:
        results["data"] = bench_data(
            args.data,
            batch=args.data_batch,
            workers=args.workers,
            epochs=args.epochs,
            restart_workers=args.restart_workers,
        )
    save()
    if results["data"] or args.no_step:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
