"""The live canvas with the models in the browser (onnxruntime-web), in headless Chromium.

    python -m bench.browser [--strokes 10] [--write docs/PERFORMANCE.md]

For the bundled models of the app (served from 127.0.0.1, cross-origin isolated) it measures, in
one run: the model run in the browser (worker, WASM), pointer-up to new output shown, output
updates per second while drawing and requests per stroke; the same canvas with every model on the
server (the baseline); page load to the default model's browser session being ready and to its
first output; and the static site (``pix2pix.site``) served by a plain HTTP server with and
without COOP/COEP. Exports are made first (they are cached), so load times do not include them.
With ``--write``, the results replace the browser section of docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from bench.chromium import (
    CHROMIUM,
    browser_page,
    draw_stroke,
    measure_canvas,
    open_canvas,
    output_state,
    select_model,
    start_up_phases,
    stroke_points,
    wait_for_choice,
    wait_for_output,
)
from bench.serving import serve, serve_folder

MODELS = ("lineart2color", "sketch2product", "facades-patch70")  # the app's default first
SECTION = "## In the visitor's browser (onnxruntime-web)"
# Start-up phases in the order they usually end (bench.chromium.start_up_phases).
PHASES = (
    "response", "dom", "load", "preload", "worker", "runtime", "canvas", "onnx_end",
    "ort-wasm-simd-threaded.wasm_end", "session", "warmup", "timed", "roundtrip", "choice",
    "output",
)  # fmt: skip


def _cpu() -> str:
    model, flags = platform.processor() or "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    kinds = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({'/'.join(kinds) or 'no avx2'})"


def _chromium_version() -> str:
    import subprocess

    out = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    return out.stdout.strip()


def _first_output(page, url: str, model: str) -> dict:
    """Page load -> the model's browser session ready (timed) -> first output of a stroke."""
    t0 = time.perf_counter()
    open_canvas(page, url, timeout=120_000)
    choice = wait_for_choice(page, model, timeout=600_000)
    ready = time.perf_counter() - t0
    _, version = draw_stroke(page, stroke_points(0, 4), step_ms=0)
    wait_for_output(page, version)
    first = time.perf_counter() - t0
    phases = start_up_phases(page)
    # A returning visitor: the same page reloaded (HTTP cache, compiled WASM, remembered choice).
    t1 = time.perf_counter()
    page.reload()
    page.wait_for_selector("#p2p-canvas canvas.p2p-canvas", timeout=120_000)
    again = wait_for_choice(page, model, timeout=600_000)
    _, version = draw_stroke(page, stroke_points(1, 4), step_ms=0)
    wait_for_output(page, version)
    return {
        "page_load_to_browser_ready_s": round(ready, 2),
        "page_load_to_first_output_s": round(first, 2),
        "where": choice["where"],
        "choice": choice,
        "phases_ms": phases,
        "reload_to_first_output_s": round(time.perf_counter() - t1, 2),
        "reload_remembered": again.get("remembered"),
        "reload_phases_ms": start_up_phases(page),
    }


def _first_drawn_at_mount(page, url: str) -> dict:
    """Page load -> a stroke drawn the moment the canvas appears -> its output, wherever it ran
    (in the app the server answers while the browser still loads the model)."""
    t0 = time.perf_counter()
    open_canvas(page, url, timeout=120_000)
    mounted = time.perf_counter() - t0
    _, version = draw_stroke(page, stroke_points(0, 4), step_ms=0)
    drawn = time.perf_counter() - t0  # Playwright's mouse waits for the page to take each event
    wait_for_output(page, version, timeout=600_000)
    return {
        "page_load_to_canvas_s": round(mounted, 2),
        "page_load_to_stroke_drawn_s": round(drawn, 2),
        "page_load_to_first_output_s": round(time.perf_counter() - t0, 2),
        "where": output_state(page)["where"],
    }


def _measure(page, model: str, name: str | None, strokes: int, *, in_page: bool = False) -> dict:
    chosen = (name, model) if name else None
    r = measure_canvas(page, strokes=strokes, model=chosen, in_page=in_page)
    r["server_calls_per_stroke"] = r.pop("server_calls") / strokes
    return {k: round(v, 2) if k.startswith("cpu_") else round(v, 1) for k, v in r.items()}


def bench_app(strokes: int) -> dict:
    results: dict = {"browser": {}, "browser_in_page": {}, "server": {}}
    with serve(None, remote="skip", browser_mode=True) as server:
        for model in MODELS:  # exports first: cached on disk, so the timings below exclude them
            server.app.exports.stage_path(model, 0)  # the export and its stages
        with browser_page() as page:
            default = server.app.default_model()
            results["first_output"] = {default: _first_output(page, server.url, default)}
            for model in MODELS:
                name = server.app.registry.get(model).name
                select_model(page, name, model)
                choice = wait_for_choice(page, model, timeout=600_000)
                results["browser"][model] = _measure(page, model, None, strokes)
                results["browser"][model]["where"] = choice["where"]
                results["browser"][model]["threads"] = choice.get("threads")
                results["browser"][model]["decided_by"] = choice.get("reason")
                # The same strokes generated by the page itself: no driver work while drawing.
                in_page = _measure(page, model, None, strokes, in_page=True)
                results["browser_in_page"][model] = in_page
            results["isolated"] = page.evaluate("crossOriginIsolated")
        with browser_page() as page:  # a first visit again, drawing at once
            results["first_drawn_at_mount"] = _first_drawn_at_mount(page, server.url)
    with serve(None, remote="skip", browser_mode=False) as server, browser_page() as page:
        open_canvas(page, server.url, timeout=120_000)
        for model in MODELS:
            name = server.app.registry.get(model).name
            results["server"][model] = _measure(page, model, name, strokes)
    return results


def bench_first(repeats: int) -> dict:
    """Only the first output after page load (app and static site), in ``repeats`` fresh pages."""
    from pix2pix.site import build_site

    results: dict = {"app": [], "app_drawn_at_mount": [], "site": []}
    with serve(None, remote="skip", browser_mode=True) as server:
        default = server.app.default_model()
        server.app.exports.stage_path(default, 0)  # the export and its stages
        for _ in range(repeats):
            with browser_page() as page:
                results["app"].append(_first_output(page, server.url, default))
            with browser_page() as page:
                results["app_drawn_at_mount"].append(_first_drawn_at_mount(page, server.url))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "site"
        build_site(out, [MODELS[0]])
        with serve_folder(out, isolation=True) as url:
            for _ in range(repeats):
                with browser_page() as page:
                    results["site"].append(_first_output(page, url, MODELS[0]))
    return results


def bench_site(strokes: int) -> dict:
    from pix2pix.site import build_site

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "site"
        build_site(out, list(MODELS))
        model_bytes = sum(f.stat().st_size for f in (out / "models").iterdir())
        wasm_bytes = (out / "ort" / "ort-wasm-simd-threaded.wasm").stat().st_size
        results["bytes"] = {
            "models_mb": round(model_bytes / 1e6, 1),
            "ort_wasm_mb": round(wasm_bytes / 1e6, 1),
        }
        for isolation in (True, False):
            key = "coop_coep" if isolation else "plain"
            with serve_folder(out, isolation=isolation) as url, browser_page() as page:
                first = _first_output(page, url, MODELS[0])
                runs = {}
                for model in MODELS:
                    page.select_option("#p2p-model", model)
                    choice = wait_for_choice(page, model, timeout=600_000)
                    runs[model] = _measure(page, model, None, strokes)
                    runs[model]["threads"] = choice.get("threads")
                results[key] = {"first_output": first, "models": runs}
    return results


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        SECTION,
        "",
        f"`python -m bench.browser --strokes {r['strokes']}` on {m['cpu']}, {m['cores']} vCPU, "
        f"{m['chromium']} headless, onnxruntime-web {m['ort']}, {r['date']}. {r.get('note', '')} "
        "Page served from 127.0.0.1; exports made (and cached) first.",
        "",
        "| model | where | model run p50 (ms) | pointer-up → output p50 / p95 (ms) "
        "| updates/s while drawing | server requests per stroke |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model, b in r["app"]["browser"].items():
        s = r["app"]["server"][model]
        lines.append(
            f"| {model} | app, browser mode, ran on: {b['where']} ({b['decided_by']}) | "
            f"{b['browser_run_ms_p50']} | {b['p50_ms']} / {b['p95_ms']} | "
            f"{b['updates_per_s_while_drawing']} | {b['server_calls_per_stroke']} |"
        )
        lines.append(
            f"| {model} | server (baseline, same run) | {s['server_ms_p50']} (server side) | "
            f"{s['p50_ms']} / {s['p95_ms']} | {s['updates_per_s_while_drawing']} | "
            f"{s['server_calls_per_stroke']} |"
        )
    lines += [
        "",
        "The same strokes in the app's browser mode, drawn two ways (same run): with Playwright's "
        "mouse (one CDP message per step from the Python driver through Playwright's node "
        "process, as in the table above) and generated inside the page (pointer events from a "
        "requestAnimationFrame loop at the same points and pace: no driver work while drawing). "
        "CPU: seconds of CPU per second of wall time while the strokes were drawn and answered, "
        "by process (python: the driver and the app's server threads; renderer: the page and its "
        "workers, where the model runs; other: chromium's browser and GPU processes). Dropped: "
        "pointer-ups that stopped a browser run of an older drawing between two stages.",
        "",
        "| model | strokes | model run p50 (ms) | pointer-up → output p50 / p95 (ms) | updates/s "
        "| dropped | CPU python | CPU driver | CPU renderer | CPU other |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for model, b in r["app"]["browser"].items():
        for label, x in (("mouse (CDP)", b), ("in the page", r["app"]["browser_in_page"][model])):
            lines.append(
                f"| {model} | {label} | {x['browser_run_ms_p50']} | {x['p50_ms']} / "
                f"{x['p95_ms']} | {x['updates_per_s_while_drawing']} | "
                f"{x.get('supersedes', '')} / {x['strokes']} | {x['cpu_python']} | "
                f"{x['cpu_driver']} | {x['cpu_renderer']} | {x['cpu_chromium-other']} |"
            )
    for model, f in r["app"]["first_output"].items():
        phases = f.get("phases_ms", {})
        order = [k for k in PHASES if k in phases]
        lines += [
            "",
            f"App, default model {model}: page load → browser session ready (download, session, "
            f"timed runs, one server round trip) {f['page_load_to_browser_ready_s']} s; → first "
            f"output of a stroke {f['page_load_to_first_output_s']} s. Cross-origin isolated: "
            f"{r['app']['isolated']}. When each phase ended (ms after navigation start): "
            + ", ".join(f"{k} {phases[k]}" for k in order)
            + f". The same page reloaded (a returning visitor: HTTP cache, choice remembered: "
            f"{f.get('reload_remembered')}): first output {f.get('reload_to_first_output_s')} s.",
        ]
    if "first_drawn_at_mount" in r["app"]:
        m = r["app"]["first_drawn_at_mount"]
        lines += [
            "",
            f"A first visit that draws as soon as the canvas appears "
            f"({m['page_load_to_canvas_s']} s; the page took the 4-point stroke by "
            f"{m.get('page_load_to_stroke_drawn_s', '?')} s): its first output "
            f"{m['page_load_to_first_output_s']} s after page load, from the {m['where']} "
            "(strokes go to the server while the browser measures).",
        ]
    site = r["site"]
    lines += [
        "",
        f"Static site ({', '.join(MODELS)}; models {site['bytes']['models_mb']} MB with fp16 "
        f"storage, onnxruntime-web WASM {site['bytes']['ort_wasm_mb']} MB), plain HTTP server:",
        "",
        "| headers | model | threads | model run p50 (ms) | pointer-up → output p50 / p95 (ms) "
        "| updates/s | first output after load (s) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for key, label in (("coop_coep", "COOP + COEP"), ("plain", "none")):
        s = site[key]
        for model, b in s["models"].items():
            first = s["first_output"]["page_load_to_first_output_s"] if model == MODELS[0] else ""
            lines.append(
                f"| {label} | {model} | {b['threads']} | {b['browser_run_ms_p50']} | "
                f"{b['p50_ms']} / {b['p95_ms']} | {b['updates_per_s_while_drawing']} | {first} |"
            )
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Replace (or add, before the attempts log) the browser section of ``path``."""
    old = path.read_text() if path.is_file() else "# Performance\n"
    if SECTION in old:
        start = old.index(SECTION)
        rest = old[start + len(SECTION) :]
        end = rest.find("\n## ")
        tail = "" if end < 0 else rest[end + 1 :]
        new = old[:start] + text + ("\n" + tail if tail else "")
    elif "## Attempts log" in old:
        i = old.index("## Attempts log")
        new = old[:i] + text + "\n" + old[i:]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def main(argv: list[str] | None = None) -> int:
    """Run the browser benchmark; print JSON, optionally write the PERFORMANCE.md section."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--strokes", type=int, default=10)
    p.add_argument("--write", type=Path, help="replace the browser section of this Markdown file")
    p.add_argument("--note", default="", help="a sentence on the conditions (e.g. the load)")
    p.add_argument(
        "--first-output-only",
        type=int,
        metavar="N",
        help="measure only the first output after page load (app, static site), N fresh pages each",
    )
    args = p.parse_args(argv)
    from pix2pix.app import browser

    if args.first_output_only:
        print(json.dumps(bench_first(args.first_output_only), indent=1, default=str))
        return 0

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "strokes": args.strokes,
        "note": args.note,
        "machine": {
            "cpu": _cpu(),
            "cores": os.cpu_count(),
            "chromium": _chromium_version(),
            "ort": browser.pinned_ort_version(),
        },
        "app": bench_app(args.strokes),
        "site": bench_site(args.strokes),
    }
    print(json.dumps(results, indent=1, default=str))
    if args.write:
        write_section(args.write, markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
