"""Speed benchmark: our paths against a plain fp32 eager baseline, measured in the same run.

    python -m bench.benchmark                 # inference + training; writes docs/PERFORMANCE.md
    python -m bench.benchmark --app           # also the app through gradio_client and its memory

Inference, per model at its training size (the paper's generator at 256 px, every bundled model):
batch-1 latency p50 / p95 of ``Translator`` (PIL in, PIL out) and of the baseline (the same
weights, ``model(x)`` in fp32 eager under ``no_grad``, which is what the reference implementation
runs), the output error of our path against fp32 (max abs on [0, 255], PSNR), and batch-8
throughput. Training: images/s of ``train.train`` against a minimal fp32 eager loop with the same
networks, losses and optimizers.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
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

from pix2pix import Translator, load_generator, networks
from pix2pix.hub import Pix2PixGenerator
from train.sysinfo import machine

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ("sketch2product", "facades-patch1", "facades-patch16", "facades-patch70",
           "facades-patch286", "facades-l1")  # fmt: skip


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


def bench_inference(name: str, model: Pix2PixGenerator, size: int, runs: int) -> dict:
    """Translator against the fp32 eager baseline on one model."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    x = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]

    baseline_model = model.net

    def baseline_forward() -> None:
        with torch.no_grad():
            baseline_model(x)

    translate = Translator(model, device="cpu")
    eager = Translator(model, device="cpu", backend="eager")
    timed = interleaved(
        {"baseline": baseline_forward, "ours": lambda: translate(image),
         "ours_eager": lambda: eager(image)},
        runs=runs,
    )  # fmt: skip
    baseline, ours = timed["baseline"], timed["ours"]

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
        "max_abs_error_255": float(np.abs(got - reference).max()),
        "psnr_db": 10 * np.log10(255**2 / mse) if mse > 0 else float("inf"),
        "batch8_images_per_s": 8000 / throughput["p50_ms"],
    }


def bench_training(steps: int) -> dict:
    """``train.train`` images/s against a minimal fp32 eager loop at the same settings."""
    from torch.utils.data import DataLoader

    from pix2pix import losses
    from train.data import PairedDataset
    from train.datasets.synthetic_facades import generate

    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "data", splits=(16, 0, 0), seed=0, size=256)
        for empty in ("val", "test"):  # a split folder without images is an error for train
            with contextlib.suppress(OSError):
                (data / empty).rmdir()
        settings = ["--netG", "unet_256", "--ngf", "16", "--ndf", "16", "--patch", "70"]
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "train.train", "--data", str(data), "--out", f"{tmp}/run",
             *settings, "--max-steps", str(steps), "--workers", "0", "--sample-every", "0",
             "--save-every", str(10 * steps), "--log-every", str(steps)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
        summary = json.loads((Path(tmp) / "run" / "train_summary.json").read_text())
        ours = summary.get("images_per_second") or steps / (time.perf_counter() - start)

        torch.manual_seed(0)
        G = networks.init_weights(networks.create_generator("unet_256", ngf=16)).train()
        D = networks.init_weights(networks.create_discriminator(70, ndf=16)).train()
        opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        # The same data pipeline as train.train (decode, resize 286, crop 256, mirror), so that
        # both figures include it.
        dataset = PairedDataset(data, split="train")
        batches = itertools.cycle(DataLoader(dataset, batch_size=1, shuffle=True))

        def step() -> None:
            batch = next(batches)
            a, b = batch["input"], batch["target"]
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

        base = timings(step, runs=steps, warmup=0)  # train.train counts its first steps too
    return {
        "settings": "unet_256 ngf 16, 70x70 D ndf 16, batch 1, 256 px, fp32",
        "train_images_per_s": ours,
        "baseline_images_per_s": 1000 / base["mean_ms"],
        "ratio": ours / (1000 / base["mean_ms"]),
        "steps": steps,
        "note": "Both include loading and augmenting the images in the main process "
        "(DataLoader without workers); train.train's figure is its own images/s over the run",
    }


def bench_app(runs: int) -> dict:
    """End-to-end /translate latency through gradio_client and the app's peak memory."""
    from gradio_client import Client, handle_file

    sys.path.insert(0, str(ROOT))
    from tests.app_fixtures import free_port

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
    return {"ready_seconds": ready, "translate_via_gradio_client": results, "peak_rss_mb": peak}


def bench_browser(strokes: int, screenshot: Path | None) -> dict:
    """Pointer-up to new output shown, and updates/s while drawing, in headless Chromium."""
    sys.path.insert(0, str(ROOT))
    from tests.app_fixtures import CANVAS, browser_page, measure_canvas, serve

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


def write_markdown(results: dict, path: Path, command: str) -> None:
    """The tables of ``results`` as docs/PERFORMANCE.md (keeps the attempts log below them)."""
    m = results["machine"]
    lines = [
        "# Performance",
        "",
        f"Measured by `{command}` on {m['cpu']} ({m['cores']} cores, torch {m['torch']}, "
        f"{m['threads']} threads), {results['date']}. Raw figures: `bench/results.json`.",
        "",
        "## Inference, batch 1 (PIL in, PIL out for ours; tensor forward for the baseline)",
        "",
        'Timed in alternating rounds (baseline, ours, ours with `backend="eager"`), so that the '
        "machine's drift hits all three alike.",
        "",
        "| model | px | ours: backend, precision | ours p50 / p95 (ms) | baseline fp32 eager p50 / p95 (ms) | speed-up | ours, eager backend p50 (ms) | max abs err | PSNR vs fp32 | batch-8 img/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["inference"]:
        t, b = r["translator"], r["baseline_fp32_eager"]
        lines.append(
            f"| {r['model']} | {r['size']} | {r['backend']}, {r['precision']} | {t['p50_ms']:.1f} / {t['p95_ms']:.1f} | "
            f"{b['p50_ms']:.1f} / {b['p95_ms']:.1f} | {r['speedup_p50']:.2f}x | "
            f"{r['translator_eager_backend']['p50_ms']:.1f} | "
            f"{r['max_abs_error_255']:.1f} | {r['psnr_db']:.1f} dB | {r['batch8_images_per_s']:.1f} |"
        )
    if "training" in results:
        t = results["training"]
        lines += [
            "",
            "## Training",
            "",
            f"{t['settings']}: `train.train` {t['train_images_per_s']:.2f} images/s, baseline "
            f"eager loop {t['baseline_images_per_s']:.2f} images/s ({t['ratio']:.2f}x). {t['note']}.",
        ]
    if "app" in results:
        a = results["app"]
        lines += ["", "## App", "", f"Ready to serve {a['ready_seconds']:.1f} s after start "
                  f"(all bundled models loaded and warmed up); peak memory {a['peak_rss_mb']:.0f} MB.", ""]  # fmt: skip
        for model, t in a["translate_via_gradio_client"].items():
            lines.append(
                f"- `/translate` via gradio_client, {model}: p50 {t['p50_ms']:.0f} ms, p95 {t['p95_ms']:.0f} ms"
            )
    if "browser" in results:
        b = results["browser"]
        lines += [
            "",
            f"## Live drawing in headless Chromium ({b['strokes']} strokes per model)",
            "",
        ]
        for model, r in b["models"].items():
            lines.append(f"- {model}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
    old = path.read_text() if path.is_file() else ""
    log = old[old.index("## Attempts log") :] if "## Attempts log" in old else "## Attempts log\n"
    path.write_text("\n".join(lines) + "\n\n" + log)


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
    args = p.parse_args(argv)
    command = "python -m bench.benchmark " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "inference": []}
    results["inference"].append(
        bench_inference("paper unet_256 ngf64", paper_generator(), 256, args.runs)
    )
    for name in BUNDLED:
        folder = ROOT / "checkpoints" / name
        if folder.is_dir():
            model = load_generator(folder)
            size = model.task.train_size or 256
            results["inference"].append(bench_inference(name, model, size, args.runs))
            if size != 256:  # every model at 256x256 too, as the other rows are
                results["inference"].append(bench_inference(name, model, 256, args.runs))
    if not args.no_train:
        results["training"] = bench_training(args.train_steps)
    if args.app:
        results["app"] = bench_app(args.runs)
    if args.browser:
        results["browser"] = bench_browser(args.strokes, args.screenshot)
    (ROOT / "bench").mkdir(exist_ok=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_markdown(results, args.out, command.strip())
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
