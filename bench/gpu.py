"""GPU benchmark: the CUDA paths against plain fp32 eager on the same GPU, in the same run.

    python -m bench.gpu                          # prints a Markdown section and the raw JSON
    python -m bench.gpu --json out.json --md out.md --train-steps 30

Needs a CUDA GPU (exits with a message otherwise). Measured, per model for the first three
(the paper's generator, unet_256 ngf 64 with batch norm, and bundled 256-px models):

- forward only, batch 1: every CUDA candidate ``Translator(backend="auto")`` measures
  (``pix2pix.backends.choose``: fp32 eager, fp16 channels-last, fp16 in a captured CUDA graph),
  timed with the device synchronised, and the one ``auto`` picked;
- end to end, batch 1: ``Translator`` (PIL in, PIL out) with ``auto`` and with each backend, and
  the host transfers one request makes (PyTorch's profiler counts the copies);
- throughput: images/s at batch 1 and batch 64, of fp32 eager on a tensor already on the GPU
  (the baseline) and of the chosen path (on a tensor, and end to end from PIL images);
- training: ``train.train`` images/s per mixed precision against a minimal fp32 eager loop with
  the same networks, losses, optimizers and data pipeline on the same GPU;
- the data pipeline: ``train.train`` images/s with the decoded images kept in memory
  (``--cache-images on``) and without (``off``), each with the images loaded in the main process
  and with loader workers (``--data-steps``; 0 leaves it out);
- compile: ``train.train`` images/s with ``--compile on`` against ``off`` and the first step's
  time, compiling included (``--compile-steps``; 0 leaves it out).

``--json`` is written again after every row, so a run stopped by a time limit keeps what it
measured; a trainer run that fails becomes a row with its ``error``. fp32 eager is PyTorch's
default: cuDNN may use TF32 for convolutions
(``torch.backends.cudnn.allow_tf32``, on by default), as the reference implementation runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench.benchmark import bench_training, paper_generator, run_trainer, training_data
from pix2pix import Translator, backends, load_generator
from pix2pix.hub import Pix2PixGenerator

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("lineart2color", "facades-patch70")
EXPLICIT = ("eager", "cuda-fp16-channels-last", "cuda-graph-fp16")  # Translator(backend=...)
CUDA_NAMES = tuple(c.name for c in backends.CANDIDATES if c.device_type == "cuda")


def cuda_timings(fn: Callable[[], object], *, runs: int, warmup: int = 5) -> dict[str, float]:
    """p50 / p95 of ``fn`` in ms, the GPU synchronised after each call."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(1000 * (time.perf_counter() - t0))
    samples.sort()
    return {
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))], 3),
        "runs": runs,
    }


def _images(count: int, side: int) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)
    ]


def host_copies(fn: Callable[[], object]) -> dict[str, int]:
    """Host-to-device and device-to-host copies the CUDA profiler records during ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return {"HtoD": sum("HtoD" in n for n in names), "DtoH": sum("DtoH" in n for n in names)}


def bench_model(name: str, model: Pix2PixGenerator, size: int, runs: int) -> dict:
    device = torch.device("cuda")
    shape = (1, model.in_channels, size, size)
    ctx = backends.Context(model.to(device), device, True, shape, backends.model_hash(model))
    cands = backends.default_candidates(device)
    choice, _ = backends.select(ctx, cands)  # measured here: the cache is this run's own
    forward = {m.name: {"status": m.status, "p50_ms": m.p50_ms, "p95_ms": m.p95_ms,
                        "psnr_db": m.psnr_db, "note": m.note}
               for m in choice.measurements}  # fmt: skip

    image = _images(1, size)[0]
    auto = Translator(model, device=device)
    auto(image)  # reads the choice just made from the cache
    end_to_end = {"auto": cuda_timings(lambda: auto(image), runs=runs)}
    for backend in EXPLICIT:
        t = Translator(model, device=device, backend=backend)
        end_to_end[backend] = cuda_timings(lambda t=t: t(image), runs=runs)
    copies = host_copies(lambda: auto(image))

    # Throughput: fp32 eager on a GPU tensor (the baseline) against the chosen path.
    eager = backends._eager(ctx)
    runner = auto._runner_for(shape)
    through: dict[str, dict] = {}
    for batch in (1, 64):
        x = backends.test_input((batch, *shape[1:])).to(device)
        pics = _images(batch, size)
        runs_b = runs if batch == 1 else max(5, runs // 4)
        # Both to 8-bit pixels on the host: an output on the GPU is not yet a result.
        base = cuda_timings(lambda x=x: backends.to_pixels(eager(x)), runs=runs_b)
        ours = cuda_timings(lambda x=x: backends.to_pixels(runner(x)), runs=runs_b)
        pil = cuda_timings(lambda p=pics: auto(p), runs=max(3, runs_b // 2), warmup=2)
        through[f"batch{batch}"] = {
            "fp32_eager_tensor_images_per_s": round(1000 * batch / base["p50_ms"], 1),
            "auto_tensor_to_uint8_images_per_s": round(1000 * batch / ours["p50_ms"], 1),
            "auto_pil_end_to_end_images_per_s": round(1000 * batch / pil["p50_ms"], 1),
        }
    b1, b64 = through["batch1"], through["batch64"]
    return {
        "model": name,
        "size": size,
        "forward_batch1": forward,
        "auto": auto.backend,
        "auto_reason": auto.backend_reason,
        "end_to_end_batch1": end_to_end,
        "host_copies_per_request": copies,
        "throughput": through,
        "batch64_auto_vs_batch1_fp32_eager": round(
            b64["auto_tensor_to_uint8_images_per_s"] / b1["fp32_eager_tensor_images_per_s"], 2
        ),
        "batch64_auto_vs_batch64_fp32_eager": round(
            b64["auto_tensor_to_uint8_images_per_s"] / b64["fp32_eager_tensor_images_per_s"], 2
        ),
    }


def _trainer_row(
    data: Path, out: Path, steps: int, precision: str, *, device: str, ngf: int, batch: int,
    options: tuple[str, ...], **labels: object,
) -> dict:  # fmt: skip
    """One ``train.train`` run (``run_trainer``) as a row: ``labels``, then steady images/s (after
    the trainer's warm-up steps), images/s over the run, the first step's seconds (with
    ``--compile on``: compiling), the whole process's wall time in seconds, and the trainer's
    ``data`` line (whether the images were kept in memory). A run that fails gives ``error`` (the
    end of its stderr) and no figures."""
    start = time.perf_counter()
    row: dict = {"settings": f"unet_256 ngf {ngf}, batch {batch}, "
                             f"{'fp32' if precision == 'no' else precision}", **labels}  # fmt: skip
    try:
        summary = run_trainer(data, out, steps, precision, device=device, ngf=ngf, batch=batch,
                              options=options)  # fmt: skip
    except RuntimeError as error:
        summary = {}
        row["error"] = str(error)[-1000:]
    row.update({
        "steady_images_per_s": summary.get("steady_images_per_second"),
        "images_per_s": summary.get("images_per_second"),
        "first_step_s": summary.get("first_step_seconds"),
        "run_seconds": round(time.perf_counter() - start, 2),
        "steps": steps,
        "warmup_steps": summary.get("warmup_steps"),
        "compiled": summary.get("compiled"),
        "data": summary.get("data"),
    })  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def _trainer_rows(
    steps: int, variants: list[tuple[dict, tuple[str, ...]]], *, pairs: int, precision: str,
    device: str, ngf: int, batch: int, rows: list[dict] | None = None,
    saved: Callable[[], None] | None = None,
) -> list[dict]:  # fmt: skip
    """One ``_trainer_row`` per variant (its labels and its trainer options) on ``pairs``
    synthetic facade pairs, appended to ``rows`` (a new list by default), with ``saved`` called
    after each."""
    rows = [] if rows is None else rows
    with tempfile.TemporaryDirectory() as tmp:
        data = training_data(Path(tmp), pairs)
        for i, (labels, options) in enumerate(variants):
            print(f"train.train {' '.join(options)}", flush=True)
            rows.append(_trainer_row(
                data, Path(tmp) / f"run-{i}", steps, precision, device=device, ngf=ngf,
                batch=batch, options=options, **labels,
            ))  # fmt: skip
            if saved:
                saved()
    return rows


def bench_data_pipeline(
    steps: int, *, ngf: int = 64, batch: int = 16, precision: str = "fp16",
    workers: tuple[int, ...] = (0, 4), pairs: int = 256, device: str = "cuda",
    rows: list[dict] | None = None, saved: Callable[[], None] | None = None,
) -> list[dict]:  # fmt: skip
    """``train.train`` on ``device`` (the GPU by default) with ``--cache-images off`` and ``on``,
    for each loader worker count (rows of ``_trainer_row``, labelled ``cache_images`` and
    ``workers``; ``rows`` and ``saved`` as in ``_trainer_rows``). ``pairs`` synthetic facade
    pairs (256 px on each side, loaded at 286 and cropped to 256 as the recipe does); ``steps`` of
    ``batch`` images go through them more than once, so that the uncached rows decode images again
    each epoch as a long run does.
    """
    variants = [
        ({"cache_images": cache, "workers": count},
         ("--cache-images", cache, "--workers", str(count)))
        for count in workers for cache in ("off", "on")
    ]  # fmt: skip
    return _trainer_rows(steps, variants, pairs=pairs, precision=precision, device=device,
                         ngf=ngf, batch=batch, rows=rows, saved=saved)  # fmt: skip


def bench_compile(
    steps: int, *, ngf: int = 64, batch: int = 1, precision: str = "bf16", device: str = "cuda",
    rows: list[dict] | None = None, saved: Callable[[], None] | None = None,
) -> list[dict]:  # fmt: skip
    """``train.train`` on ``device`` with ``--compile off`` and ``on`` (rows of ``_trainer_row``,
    labelled ``compile``; the images kept in memory, loaded in the main process; ``rows`` and
    ``saved`` as in ``_trainer_rows``): whether compiling the training step pays there, and what
    the first step (compiling) costs."""
    variants = [({"compile": choice}, ("--cache-images", "on", "--compile", choice))
                for choice in ("off", "on")]  # fmt: skip
    return _trainer_rows(steps, variants, pairs=16, precision=precision, device=device, ngf=ngf,
                         batch=batch, rows=rows, saved=saved)  # fmt: skip


def machine() -> dict:
    props = torch.cuda.get_device_properties(0)
    return {
        "gpu": torch.cuda.get_device_name(0),
        "gpu_memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _cell(value: object) -> str:
    """A table cell: "-" for a figure that is missing (a failed run, too few steps)."""
    return "-" if value is None else str(value)


def _table(caption: str, header: list[str]) -> list[str]:
    """A Markdown table's caption and header lines (after a blank line)."""
    return ["", caption, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]


def _inference_lines(inference: list[dict]) -> list[str]:
    """The inference tables (forward, end to end, throughput) of ``bench_model``'s rows."""
    lines = _table(
        "Forward only, batch 1, ms p50 (device synchronised); PSNR against fp32 eager:",
        ["model", *CUDA_NAMES, "auto picked"],
    )
    for row in inference:
        cells = []
        for name in CUDA_NAMES:
            f = row["forward_batch1"].get(name, {})
            if f.get("status") != "ok":
                cells.append(f.get("status", "-"))
                continue
            psnr = f["psnr_db"]
            quality = "exact" if psnr == float("inf") else f"{psnr:.0f} dB"
            cells.append(f"{f['p50_ms']:.2f} ({quality})")
        lines.append(f"| {row['model']} ({row['size']} px) | " + " | ".join(cells) +
                     f" | {row['auto']} |")  # fmt: skip
    lines += _table(
        "End to end, batch 1 (`Translator`, PIL in, PIL out), ms p50; host copies per request:",
        ["model", "auto", *EXPLICIT, "copies HtoD / DtoH"],
    )
    for row in inference:
        e = row["end_to_end_batch1"]
        c = row["host_copies_per_request"]
        lines.append(
            f"| {row['model']} | {e['auto']['p50_ms']:.2f} | "
            + " | ".join(f"{e[b]['p50_ms']:.2f}" for b in EXPLICIT)
            + f" | {c['HtoD']} / {c['DtoH']} |"
        )
    lines += _table(
        "Throughput, images/s (tensor: input already on the GPU, output to 8-bit on the host, "
        "fp32 eager too; "
        "PIL: `Translator` on a list of images):",
        ["model", "fp32 eager b1", "auto b1", "fp32 eager b64", "auto b64", "auto b64 PIL",
         "b64 auto / b1 eager", "b64 auto / b64 eager"],
    )  # fmt: skip
    for row in inference:
        b1, b64 = row["throughput"]["batch1"], row["throughput"]["batch64"]
        lines.append(
            f"| {row['model']} | {b1['fp32_eager_tensor_images_per_s']} | "
            f"{b1['auto_tensor_to_uint8_images_per_s']} | "
            f"{b64['fp32_eager_tensor_images_per_s']} | {b64['auto_tensor_to_uint8_images_per_s']} "
            f"| {b64['auto_pil_end_to_end_images_per_s']} | "
            f"{row['batch64_auto_vs_batch1_fp32_eager']}x | "
            f"{row['batch64_auto_vs_batch64_fp32_eager']}x |"
        )
    return lines


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        f"### {m['gpu']} ({m['gpu_memory_gib']} GiB), PyTorch {m['torch']}, CUDA {m['cuda']}, "
        f"cuDNN {m['cudnn']} ({m['when']})",
    ]
    if r.get("inference"):
        lines += _inference_lines(r["inference"])
    if r.get("training"):
        lines += _table(
            "Training, `train.train` images/s against the minimal fp32 eager loop (same GPU, "
            "networks, losses, optimizers, data pipeline without workers):",
            ["settings", "mixed precision", "train.train", "fp32 eager loop", "ratio"],
        )
        for t in r["training"]:
            lines.append(
                f"| {t['settings']} | {t['precision']} | {t['train_images_per_s']:.1f} | "
                f"{t['baseline_images_per_s']:.1f} | {t['ratio']:.2f}x |"
            )
    if r.get("data_pipeline"):
        lines += _table(
            "Data pipeline, `train.train` images/s with the decoded images kept in memory "
            "(`--cache-images on`) and decoded per step (`off`); run: the whole process's wall "
            "time, start-up and the cache's decoding included:",
            ["settings", "workers", "cache off", "cache on", "on / off", "run off / on (s)"],
        )
        by_workers: dict[int, dict[str, dict]] = {}
        for row in r["data_pipeline"]:
            by_workers.setdefault(row["workers"], {})[row["cache_images"]] = row
        for count, pair in by_workers.items():
            off, on = pair.get("off", {}), pair.get("on", {})  # a run cut short has one
            rate_off, rate_on = off.get("steady_images_per_s"), on.get("steady_images_per_s")
            ratio = f"{rate_on / rate_off:.2f}x" if rate_off and rate_on else "-"
            lines.append(
                f"| {(off or on)['settings']} | {count} | {_cell(rate_off)} | {_cell(rate_on)} "
                f"| {ratio} | {_cell(off.get('run_seconds'))} / {_cell(on.get('run_seconds'))} |"
            )
    if r.get("compile"):
        lines += _table(
            "Training step compiled, `train.train --compile on` against `off` (images kept in "
            "memory); first step: compiling included:",
            ["settings", "compile", "images/s", "vs off", "first step (s)", "run (s)"],
        )
        off_rate = next(
            (row["steady_images_per_s"] for row in r["compile"] if row["compile"] == "off"), None
        )
        for row in r["compile"]:
            rate = row["steady_images_per_s"]
            ratio = f"{rate / off_rate:.2f}x" if rate and off_rate else "-"
            lines.append(
                f"| {row['settings']} | {row['compile']} | {_cell(rate)} | {ratio} | "
                f"{_cell(row['first_step_s'])} | {row['run_seconds']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--train-steps", type=int, default=30, help="0: no training figures")
    p.add_argument("--no-inference", action="store_true", help="training figures only")
    p.add_argument(
        "--data-steps",
        type=int,
        default=60,
        help="steps of each data-pipeline run (cache on / off x workers); 0: none",
    )
    p.add_argument(
        "--compile-steps",
        type=int,
        default=40,
        help="steps of each run with --compile off / on (ngf 64, batch 1, bf16); 0: none",
    )
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 4],
        help="loader worker counts of the data-pipeline rows",
    )
    p.add_argument("--json", type=Path, help="write the raw figures here")
    p.add_argument("--md", type=Path, help="write the Markdown section here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench.gpu needs a CUDA GPU; none is visible here.", file=sys.stderr)
        return 2
    # A cache of this run's own, so that every choice below is measured now.
    os.environ["PIX2PIX_CACHE"] = tempfile.mkdtemp(prefix="pix2pix-gpu-bench-")
    results: dict = {
        "machine": machine(),
        "inference": [],
        "training": [],
        "data_pipeline": [],
        "compile": [],
    }
    models = []
    if not args.no_inference:
        models.append(("paper unet_256 ngf 64", paper_generator(), 256))
        models += [(n, load_generator(ROOT / "checkpoints" / n), 256) for n in BUNDLED]

    def save() -> None:  # after every row: a run stopped by a time limit keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")

    for name, model, size in models:
        print(f"inference: {name}", flush=True)
        results["inference"].append(bench_model(name, model, size, args.runs))
        save()
    if args.train_steps:
        for ngf, batch in ((64, 1), (64, 16)):
            for precision in ("no", "bf16", "fp16"):
                print(f"training: ngf {ngf} batch {batch} {precision}", flush=True)
                results["training"].append(
                    bench_training(args.train_steps, precision, device="cuda", ngf=ngf,
                                   batch=batch)
                )  # fmt: skip
                save()
    if args.data_steps:
        bench_data_pipeline(
            args.data_steps,
            workers=tuple(args.workers),
            rows=results["data_pipeline"],
            saved=save,
        )
    if args.compile_steps:
        bench_compile(args.compile_steps, rows=results["compile"], saved=save)
    md = markdown(results)
    save()
    if args.md:
        args.md.write_text(md)
    print(json.dumps(results, indent=1, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
