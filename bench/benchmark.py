"""Speed benchmark: our paths against a plain fp32 eager baseline, measured in the same run.

    python -m bench.benchmark                 # inference + training; writes docs/PERFORMANCE.md
    python -m bench.benchmark --app           # also the app through gradio_client and its memory
    python -m bench.benchmark --short         # a few runs, four models, no app: a shared machine

Inference, per model at its training size (the paper's generator at 256 px, every bundled model):
batch-1 latency p50 / p95 of ``Translator`` (PIL in, PIL out) and of the baseline (the same
weights, ``model(x)`` in fp32 eager under ``no_grad``, which is what the reference implementation
runs), the output error of our path against fp32 (max abs on [0, 255], PSNR), and batch-8
throughput. Backends: every candidate ``Translator(backend="auto")`` measures (``pix2pix.backends``),
its p50 / p95 and PSNR against fp32 eager, timed interleaved with the baseline, and the one auto
picked. Export: the ONNX export check of the paper's generator (fp32 and fp16 weights). Training:
images/s of ``train.train`` per precision against a minimal fp32 eager loop with the same
networks, losses and optimizers. The machine (CPU model, flags: avx2 / avx512 / amx) is recorded;
docs/PERFORMANCE.md keeps one section per machine kind.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pix2pix import Translator, backends, imageio, load_generator, networks
from pix2pix.hub import Pix2PixGenerator
from train.sysinfo import machine

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("lineart2color", "sketch2product", "facades-patch1", "facades-patch16",
           "facades-patch70", "facades-patch286", "facades-l1")  # fmt: skip


def sample(fn: Callable[[], object], *, runs: int, warmup: int = 3) -> list[float]:
    """Wall times of ``runs`` calls of ``fn`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def timings(fn: Callable[[], object], *, runs: int, warmup: int = 3) -> dict[str, float]:
    """p50 / p95 / mean wall time of ``fn`` in milliseconds."""
    return _summary(sample(fn, runs=runs, warmup=warmup))


def interleaved(
    fns: dict[str, Callable[[], object]], *, runs: int, rounds: int = 3
) -> dict[str, dict[str, float]]:
    """``timings`` of several functions, taken in alternating rounds so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            samples[name].extend(sample(fn, runs=per_round, warmup=2))
    return {name: _summary(values) for name, values in samples.items()}


def _summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_ms": statistics.median(samples),
        "p95_ms": samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))],
        "mean_ms": statistics.fmean(samples),
        "runs": len(samples),
    }


def paper_generator() -> Pix2PixGenerator:
    """The paper's generator (unet_256, ngf 64, batch norm, dropout), weights N(0, 0.02)."""
    torch.manual_seed(0)
    model = Pix2PixGenerator("unet_256", {"ngf": 64, "norm": "batch", "dropout": True})
    networks.init_weights(model.net)
    return model.eval()


def _to_input(image: Image.Image) -> torch.Tensor:
    """An RGB image as the generators read it: (1, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]


def bench_inference(
    name: str, model: Pix2PixGenerator, size: int, runs: int, candidates: list[str] | None = None
) -> dict:
    """Translator against the fp32 eager baseline on one model, and against each candidate.

    ``candidates``: backend names (``pix2pix.backends``) to time end to end as well, each as
    ``Translator(backend=name)`` in the same interleaved rounds: the check that ``auto`` is within
    10% of the best of them on the real path, not only on its own measurement.
    """
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    x = _to_input(image)
    baseline_model = model.net

    def baseline_on(inp: torch.Tensor) -> Callable[[], None]:
        def forward() -> None:  # the fp32 eager forward on a tensor, no conversions
            with torch.no_grad():
                baseline_model(inp)

        return forward

    baseline_forward = baseline_on(x)

    # The app's auto: the compiled candidates are measured too (default_candidates(compiled=True)).
    app_candidates = backends.default_candidates(torch.device("cpu"), compiled=True)
    translate = Translator(model, device="cpu", candidates=app_candidates)
    eager = Translator(model, device="cpu", backend="eager")
    fns = {"baseline": baseline_forward, "ours": lambda: translate(image),
           "ours_eager": lambda: eager(image)}  # fmt: skip
    for cand in candidates or []:
        if cand != backends.BASELINE:
            explicit = Translator(model, device="cpu", backend=cand)
            fns[f"backend:{cand}"] = lambda t=explicit: t(image)
    drawing = hint_drawing(model, size)
    if drawing is not None:  # noise is dabs everywhere; the canvas sends lines until a dab
        fns |= {
            "drawing:baseline": baseline_on(_to_input(drawing)),
            "drawing:ours": lambda: translate(drawing),
        }
    timed = interleaved(fns, runs=runs)
    on_drawing = {k.split(":", 1)[1]: timed.pop(k) for k in list(timed) if k.startswith("drawing:")}
    baseline, ours = timed["baseline"], timed["ours"]
    end_to_end = {backends.BASELINE: timed["ours_eager"]["p50_ms"]}
    end_to_end |= {k.split(":", 1)[1]: v["p50_ms"] for k, v in timed.items() if ":" in k}
    best = min(end_to_end, key=end_to_end.get)

    # Error of our path against fp32 in the same (paper's) test mode, on [0, 255].
    with torch.no_grad(), networks.eval_mode(model, input_stats=True, noise=None):
        reference = ((model(x)[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).numpy()
    got = np.asarray(translate(image), np.float64)
    mse = float(np.mean((got - reference) ** 2))
    batch = [image] * 8
    throughput = timings(lambda: translate(batch), runs=max(3, runs // 5), warmup=1)
    return {
        "model": name,
        "size": size,
        "precision": str(translate.dtype).replace("torch.", ""),
        "backend": translate.backend,
        "baseline_fp32_eager": baseline,
        "translator": ours,
        "translator_eager_backend": timed["ours_eager"],
        "speedup_p50": baseline["p50_ms"] / ours["p50_ms"],
        "end_to_end_p50_ms": end_to_end,
        "best_end_to_end": best,
        "auto_vs_best": ours["p50_ms"] / end_to_end[best],
        "auto_vs_eager_backend": timed["ours_eager"]["p50_ms"] / ours["p50_ms"],
        "drawing_without_dabs": on_drawing or None,
        "max_abs_error_255": float(np.abs(got - reference).max()),
        "psnr_db": 10 * np.log10(255**2 / mse) if mse > 0 else float("inf"),
        "batch8_images_per_s": 8000 / throughput["p50_ms"],
    }


def hint_drawing(model: Pix2PixGenerator, size: int) -> Image.Image | None:
    """For a model that takes colour hints, the first line-art example (examples/lineart),
    resized to ``size``: a drawing without dabs, so its hint propagation has nothing to spread.
    None for other models or when the example is missing."""
    if not model.task.hints:
        return None
    found = sorted((ROOT / "examples" / "lineart").glob("*.png"))
    if not found:
        return None
    return imageio.to_rgb(imageio.read_image(found[0])).resize((size, size), Image.BICUBIC)


def bench_backends(name: str, model: Pix2PixGenerator, size: int) -> dict:
    """Every CPU candidate on one model at batch 1, interleaved with the fp32 eager baseline."""
    cands = [c for c in backends.CANDIDATES if c.device_type == "cpu"]
    ctx = backends.Context(
        model, torch.device("cpu"), True, (1, model.in_channels, size, size),
        backends.model_hash(model),
    )  # fmt: skip
    start = time.perf_counter()
    choice, _ = backends.select(ctx, cands)  # what Translator(backend="auto") does, cached
    seconds = time.perf_counter() - start
    # auto as the app runs it: reads the choice just made from the cache
    translate = Translator(
        model, device="cpu", candidates=backends.default_candidates(ctx.device, compiled=True)
    )
    translate.run(backends.test_input(ctx.shape), seed=None)
    return {
        "model": name,
        "size": size,
        "candidates": [vars(m) for m in choice.measurements],
        "best": choice.name,
        "auto": translate.backend,
        "auto_reason": translate.backend_reason,
        "measure_seconds": seconds,
    }


def bench_export(model: Pix2PixGenerator) -> list[dict]:
    """The ONNX export check of ``model`` at 256 px, fp32 and fp16 weights."""
    from pix2pix import export

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fp16 in (False, True):
            start = time.perf_counter()
            report = export.export_onnx(model, Path(tmp) / "g.onnx", fp16=fp16)
            rows.append(
                {"fp16": fp16, "max_abs_diff": report.max_abs_diff, "psnr_db": report.psnr_db,
                 "passed": report.passed, "mb": report.size_bytes / 1e6,
                 "seconds": time.perf_counter() - start}
            )  # fmt: skip
    return rows


def training_data(folder: Path, pairs: int) -> Path:
    """``pairs`` synthetic facade pairs (256 px, seed 0) as a paired dataset with a train split
    only, written under ``folder``; returns the dataset's root."""
    from train.datasets.synthetic_facades import generate

    data = generate(folder / "data", splits=(pairs, 0, 0), seed=0, size=256)
    for empty in ("val", "test"):  # a split folder without images is an error for train
        with contextlib.suppress(OSError):
            (data / empty).rmdir()
    return data


def run_trainer(
    data: Path, out: Path, steps: int, precision: str, *, device: str = "cpu", ngf: int = 16,
    batch: int = 1, options: tuple[str, ...] = (),
) -> dict:  # fmt: skip
    """Train ``train.train`` for ``steps`` steps in a subprocess (unet_256 and a 70x70 PatchGAN of
    width ``ngf``, 256-px crops, no samples or checkpoints in between) and return its
    ``train_summary.json`` as a dict (``steady_images_per_second``: images/s after the warm-up
    steps). ``options``: more trainer options, e.g. ``("--workers", "4")``; without them the
    images are loaded in the main process. Raises ``RuntimeError`` with the end of the trainer's
    stderr if it fails.
    """
    command = [sys.executable, "-m", "train.train", "--data", str(data), "--out", str(out),
               "--netG", "unet_256", "--ngf", str(ngf), "--ndf", str(ngf), "--patch", "70",
               "--batch-size", str(batch), *(["--cpu"] if device == "cpu" else []),
               "--max-steps", str(steps), "--sample-every", "0",
               "--save-every", str(10 * steps), "--log-every", str(steps),
               "--mixed-precision", precision,
               *([] if "--workers" in options else ["--workers", "0"]), *options]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads((out / "train_summary.json").read_text())


def bench_training(
    steps: int, precision: str = "no", *, device: str = "cpu", ngf: int = 16, batch: int = 1
) -> dict:
    """``train.train`` images/s against a minimal fp32 eager loop at the same settings.

    ``device``: ``"cpu"`` or ``"cuda"`` (``train.train`` is given ``--cpu`` for the former);
    ``ngf`` / ``batch``: the generator's and discriminator's width and the batch size (unet_256,
    70x70 PatchGAN, 256-px crops). Both sides decode and augment every image in the main process
    (``train.train`` with ``--cache-images off --workers 0``), so the ratio compares the steps;
    ``bench.gpu``'s data-pipeline rows measure the cache and the workers.
    """
    from torch.utils.data import DataLoader

    from pix2pix import losses
    from train.data import PairedDataset

    with tempfile.TemporaryDirectory() as tmp:
        data = training_data(Path(tmp), max(16, 2 * batch))
        start = time.perf_counter()
        summary = run_trainer(data, Path(tmp) / "run", steps, precision, device=device, ngf=ngf,
                              batch=batch, options=("--cache-images", "off"))  # fmt: skip
        ours = summary.get("steady_images_per_second") or summary.get("images_per_second")
        ours = ours or batch * steps / (time.perf_counter() - start)

        torch.manual_seed(0)
        where = torch.device(device)
        G = networks.init_weights(networks.create_generator("unet_256", ngf=ngf)).train()
        D = networks.init_weights(networks.create_discriminator(70, ndf=ngf)).train()
        G, D = G.to(where), D.to(where)
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        # The same data pipeline as train.train (decode, resize 286, crop 256, mirror), so that
        # both figures include it.
        dataset = PairedDataset(data, split="train")
        loader = DataLoader(dataset, batch_size=batch, shuffle=True)
        # Loaded afresh every epoch, as train.train does (itertools.cycle would replay the first
        # epoch's batches from memory and leave decoding and augmenting out).
        batches = (pair for _ in itertools.count() for pair in loader)

        def step() -> None:
            pair = next(batches)
            a, b = pair["input"].to(where), pair["target"].to(where)
            fake = G(a)
            d_loss = losses.discriminator_loss(
                D(torch.cat([a, b], 1)), D(torch.cat([a, fake.detach()], 1))
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = losses.generator_gan_loss(D(torch.cat([a, fake], 1))) + 100 * losses.l1_loss(
                fake, b
            )
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            if where.type == "cuda":
                torch.cuda.synchronize(where)

        # The same steps left out as train.train's steady figure leaves out.
        warm = summary.get("warmup_steps", 0) if summary.get("steady_images_per_second") else 0
        base = timings(step, runs=steps - warm, warmup=warm)
    return {
        "settings": f"unet_256 ngf {ngf}, 70x70 D ndf {ngf}, batch {batch}, 256 px, {device}",
        "precision": precision,
        "train_images_per_s": ours,
        "baseline_images_per_s": 1000 * batch / base["mean_ms"],
        "ratio": ours / (1000 * batch / base["mean_ms"]),
        "steps": steps,
        "warmup_steps": warm,
        "note": "Both include loading and augmenting the images in the main process "
        "(DataLoader without workers); both leave out the same first (warm-up) steps",
    }


def bench_app(runs: int) -> dict:
    """End-to-end /translate latency through gradio_client and the app's peak memory."""
    from gradio_client import Client, handle_file

    from bench.serving import free_port

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    started = time.perf_counter()
    try:
        client = None
        while time.perf_counter() - started < 180:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:  # the server is not up yet
                time.sleep(0.5)
        if client is None:
            raise RuntimeError("the app did not start within 180 s")
        ready = time.perf_counter() - started
        # The default model's export for the browser runs in the background from the start;
        # asking for the file waits for it. Timed, then out of the way of the timings below.
        export_s = None
        with contextlib.suppress(Exception):
            import httpx

            default = client.predict(api_name="/models")[0]["id"]
            url = f"http://127.0.0.1:{port}/p2p/models/{default}.onnx"
            httpx.get(url, timeout=600).raise_for_status()
            export_s = time.perf_counter() - started
        sketch = ROOT / "examples" / "sketch2product" / "sneaker.png"
        results = {}
        for model, path in (
            ("sketch2product", sketch),
            ("facades-patch70", ROOT / "examples" / "facades" / "facade-0.png"),
        ):
            display = model  # the API takes the registry id

            def call(path: Path = path, display: str = display) -> object:
                return client.predict(handle_file(str(path)), display, -1, api_name="/translate")

            results[model] = timings(call, runs=runs, warmup=2)
        peak = _peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {
        "ready_seconds": ready,
        "default_export_ready_seconds": export_s,
        "translate_via_gradio_client": results,
        "peak_rss_mb": peak,
    }


def bench_browser(strokes: int, screenshot: Path | None) -> dict:
    """Pointer-up to new output shown, and updates/s while drawing, in headless Chromium."""
    from bench.chromium import CANVAS, browser_page, measure_canvas
    from bench.serving import serve

    results = {}
    with serve(None, remote="skip") as server, browser_page() as page:
        page.goto(server.url)
        page.wait_for_selector(f"{CANVAS} canvas.p2p-canvas")
        for model_id in ("sketch2product", "facades-patch70"):
            name = server.app.registry.get(model_id).name
            results[model_id] = measure_canvas(page, strokes=strokes, model=(name, model_id))
        if screenshot is not None:
            page.screenshot(path=screenshot, full_page=True)
    return {"strokes": strokes, "models": results}


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_kind(info: dict) -> str:
    """A short name for the kind of machine: CPU model, its best SIMD for us, vCPUs."""
    flags = set(info["flags"])
    if "amx_bf16" in flags:
        simd = "AMX + AVX512-BF16" if "avx512_bf16" in flags else "AMX"
    elif "avx512_bf16" in flags:
        simd = "AVX512-BF16"
    elif "avx512f" in flags:
        simd = "AVX512 (no native bf16)"
    elif "avx2" in flags:
        simd = "AVX2 only"
    else:
        simd = ", ".join(info["flags"]) or "unknown SIMD"
    if info.get("avx512_off") and "avx2" in flags:
        simd = f"AVX2 only (AVX-512 switched off: {info['avx512_off']})"
    return f"{info['model']}, {simd}, {info['cores']} vCPU"


def backend_lines(results: dict) -> list[str]:
    """Markdown: each model's candidates (p50 / p95 / PSNR / time to build: for the compiled
    candidates, the compilation) and auto's pick; the export check."""
    lines = []
    for r in results.get("backends", []):
        lines += [
            "",
            f"### Backends: {r['model']} at {r['size']} px, batch 1 (`auto` picked "
            f"**{r['auto']}**; measuring took {r['measure_seconds']:.1f} s)",
            "",
            "| candidate | status | p50 (ms) | p95 (ms) | vs fp32 eager | PSNR vs fp32 (dB) "
            "| build (s) | note |",
            "|---|---|---|---|---|---|---|---|",
        ]
        base = next(c for c in r["candidates"] if c["name"] == backends.BASELINE)["p50_ms"]
        for c in r["candidates"]:

            def num(value: float | None, fmt: str) -> str:
                return "—" if value is None else format(value, fmt)

            speed = None if c["p50_ms"] is None else base / c["p50_ms"]
            cells = [c["name"], c["status"], num(c["p50_ms"], ".1f"), num(c["p95_ms"], ".1f"),
                     num(speed, ".2f") + ("x" if speed else ""), num(c["psnr_db"], ".1f"),
                     num(c.get("build_s"), ".1f"), " ".join(c["note"].split()).replace("|", "/")]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
    if "export" in results:
        lines += [
            "",
            f"### ONNX export check ({results.get('export_model', 'paper unet_256 ngf64')}, "
            "256 px, ONNX Runtime vs PyTorch)",
            "",
        ]
        for e in results["export"]:
            kind = "fp16 weights" if e["fp16"] else "fp32"
            lines.append(
                f"- {kind}: {e['mb']:.0f} MB, largest difference {e['max_abs_diff']:.2e}, PSNR "
                f"{e['psnr_db']:.1f} dB, {'passed' if e['passed'] else 'FAILED'} "
                f"(export + check {e['seconds']:.0f} s)"
            )
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def write_markdown(
    results: dict, path: Path, command: str, raw: Path = ROOT / "bench" / "results.json"
) -> None:
    """``results`` as this machine kind's section of docs/PERFORMANCE.md.

    Sections of other machine kinds and the attempts log are kept as they are.
    """
    m = results["machine"]
    kind = machine_kind(m["cpu_info"])
    lines = [
        f"<!-- machine: {kind} -->",
        f"## {kind}",
        "",
        f"Measured by `{command}` on {m['cpu']} (flags {', '.join(m['cpu_info']['flags'])}; "
        f"{m['cores']} cores, torch {m['torch']}, {m['threads']} threads), {results['date']}. "
        f"Raw figures: `{_shown(raw)}`. {results.get('note', '')}",
        "",
        "### Inference, batch 1 (PIL in, PIL out for ours; tensor forward for the baseline)",
        "",
        'Timed in alternating rounds (baseline, ours, ours with `backend="eager"`, and ours with '
        "each backend `auto` found usable, end to end), so that the machine's drift hits all "
        "alike. auto / best: ours (auto) p50 over the fastest backend's end-to-end p50 (1.00 "
        "when auto picked it; the issue's bound is 1.10).",
        "",
        "| model | px | ours: backend | ours p50 / p95 (ms) | baseline fp32 eager p50 / p95 (ms) | speed-up | ours, eager backend p50 (ms) | best end to end: backend, p50 (ms) | auto / best | max abs err | PSNR vs fp32 | batch-8 img/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["inference"]:
        t, b = r["translator"], r["baseline_fp32_eager"]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['backend']} | {t['p50_ms']:.1f} / {t['p95_ms']:.1f} | "
            f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f} | {r['speedup_p50']:.2f}x | "
            f"{r['translator_eager_backend']['p50_ms']:.1f} | {_best_cell(r)} | {_auto_vs_best(r)} | "
            f"{r['max_abs_error_255']:.1f} | {r['psnr_db']:.1f} dB | {r['batch8_images_per_s']:.1f} |"
        )
    for r in results["inference"]:
        if r.get("drawing_without_dabs"):
            d = r["drawing_without_dabs"]
            lines += [
                "",
                f"{r['model']} on a line drawing without dabs (`examples/lineart`, what the "
                "canvas sends until a dab is drawn; the hint propagation then skips its rounds), "
                f"in the same rounds: ours p50 {d['ours']['p50_ms']:.1f} ms, baseline fp32 eager "
                f"{d['baseline']['p50_ms']:.1f} ms "
                f"({d['baseline']['p50_ms'] / d['ours']['p50_ms']:.2f}x).",
            ]
    lines += backend_lines(results)
    for t in results.get("training", []):
        lines += [
            "",
            f"### Training, --mixed-precision {t['precision']}",
            "",
            f"{t['settings']}, {t['steps']} steps: `train.train` {t['train_images_per_s']:.2f} images/s, baseline "
            f"fp32 eager loop {t['baseline_images_per_s']:.2f} images/s ({t['ratio']:.2f}x). {t['note']}.",
        ]
    if "app" in results:
        a = results["app"]
        export = a.get("default_export_ready_seconds")
        export_text = (
            f" The default model's ONNX export for the browser (made in the background from the "
            f"start) was ready {export:.1f} s after start; the calls below were timed after it."
            if export is not None
            else ""
        )
        lines += ["", "### App", "", f"Ready to serve {a['ready_seconds']:.1f} s after start "
                  f"(all bundled models loaded and warmed up; the backend choices were cached by "
                  f"the measurements above); peak memory {a['peak_rss_mb']:.0f} MB.{export_text}",
                  ""]  # fmt: skip
        for model, t in a["translate_via_gradio_client"].items():
            lines.append(
                f"- `/translate` via gradio_client, {model}: p50 {t['p50_ms']:.0f} ms, p95 {t['p95_ms']:.0f} ms"
            )
    if "browser" in results:
        b = results["browser"]
        lines += [
            "",
            f"### Live drawing in headless Chromium ({b['strokes']} strokes per model)",
            "",
        ]
        for model, r in b["models"].items():
            lines.append(f"- {model}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    lines.append(f"<!-- /machine: {kind} -->")
    old = path.read_text() if path.is_file() else ""
    path.write_text(splice_section(old, kind, "\n".join(lines)))


def _best_cell(r: dict) -> str:
    """The fastest backend end to end and how ``auto`` compares (older results lack it)."""
    if "best_end_to_end" not in r:
        return "—"
    best = r["best_end_to_end"]
    return f"{best}, {r['end_to_end_p50_ms'][best]:.1f}"


def _auto_vs_best(r: dict) -> str:
    return f"{r['auto_vs_best']:.2f}" if "auto_vs_best" in r else "—"


def splice_section(old: str, kind: str, section: str) -> str:
    """``old`` (PERFORMANCE.md's text) with ``kind``'s machine section replaced by ``section``.

    Everything else is kept as it is: other machines' sections, the browser section, the attempts
    log. A new kind goes before the attempts log (or at the end).
    """
    if not old:
        return HEADER + section + "\n\n## Attempts log\n"
    mine = re.compile(
        rf"<!-- machine: {re.escape(kind)} -->\n.*?<!-- /machine: {re.escape(kind)} -->", re.S
    )
    if mine.search(old):
        return mine.sub(lambda _: section, old, count=1)
    if "## Attempts log" in old:
        at = old.index("## Attempts log")
        return old[:at] + section + "\n\n" + old[at:]
    return old.rstrip("\n") + "\n\n" + section + "\n"


HEADER = """# Performance

One section per kind of machine the benchmark (`python -m bench.benchmark`) has run on; each
section's figures come from one run on that machine, with the fp32 eager baseline measured in the
same run. The attempts log at the end records what was tried and what it gave.

"""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write bench/results.json and docs/PERFORMANCE.md."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--app", action="store_true", help="also benchmark the app (starts app.py)")
    p.add_argument("--no-train", action="store_true")
    p.add_argument("--browser", action="store_true", help="also the live canvas in Chromium")
    p.add_argument("--strokes", type=int, default=20)
    p.add_argument("--screenshot", type=Path, help="with --browser: save the page here")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    p.add_argument(
        "--short",
        action="store_true",
        help="a shared machine: 6 runs, the paper's generator, lineart2color, facades-l1 and "
        "sketch2product, "
        "4 training steps per precision",
    )
    p.add_argument("--note", default="", help="a sentence for the section (e.g. the load)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json", help="raw figures")
    args = p.parse_args(argv)
    given = list(argv if argv is not None else sys.argv[1:])
    if "--note" in given:  # the note is printed after the command, not inside it
        at = given.index("--note")
        del given[at : at + 2]
    given = [a for a in given if not a.startswith("--note=")]
    command = "python -m bench.benchmark " + " ".join(given)
    bundled = ("lineart2color", "sketch2product", "facades-l1") if args.short else BUNDLED
    if args.short:
        args.runs, args.train_steps = min(args.runs, 6), min(args.train_steps, 4)
    # A fresh cache: auto measures here instead of reading an earlier run's choice.
    os.environ["PIX2PIX_CACHE"] = tempfile.mkdtemp(prefix="pix2pix-bench-")
    os.environ.pop(backends.ENV_CANDIDATES, None)
    results: dict = {
        "machine": {**machine(), "cpu_info": backends.cpu_info()},
        "date": time.strftime("%Y-%m-%d"),
        "note": args.note,
        "inference": [],
        "backends": [],
    }
    models = [("paper unet_256 ngf64", paper_generator(), 256)]
    for name in bundled:
        folder = ROOT / "checkpoints" / name
        if not (folder / "model.safetensors").is_file():
            print(f"skipped {name}: no {folder / 'model.safetensors'}", file=sys.stderr)
            continue
        model = load_generator(folder)
        models.append((name, model, model.task.train_size or 256))
    for name, model, size in models:
        measured = bench_backends(name, model, size)
        results["backends"].append(measured)
        ok = [c["name"] for c in measured["candidates"] if c["status"] == "ok"]
        results["inference"].append(bench_inference(name, model, size, args.runs, ok))
        if size != 256 and not args.short:  # every model at 256x256 too, as the other rows are
            results["inference"].append(bench_inference(name, model, 256, args.runs))
    # The export check of the paper's generator; --short: of the last bundled model (smaller).
    exported = models[-1] if args.short else models[0]
    results["export_model"] = exported[0]
    results["export"] = bench_export(exported[1])
    if not args.no_train:
        precisions = ["no", "bf16"]  # bf16 too where it is emulated: why auto keeps fp32 there
        results["training"] = [bench_training(args.train_steps, p) for p in precisions]
    if args.app:
        results["app"] = bench_app(args.runs)
    if args.browser:
        results["browser"] = bench_browser(args.strokes, args.screenshot)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(results, args.out, command.strip(), args.json)
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
