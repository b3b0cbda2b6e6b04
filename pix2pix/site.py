"""A static site of the live canvas: the models run in the visitor's browser, no server at all.

    python -m pix2pix.site OUT --model SOURCE [--model SOURCE ...] [--registry models.toml]

``SOURCE`` is a model id of the registry (``models.toml`` by default; its name, task, palette and
examples come along) or anything ``load_generator`` accepts (a folder, a Hub repo id, a URL). OUT
receives::

    index.html            the page: model picker, examples, the canvas (pix2pix/app/static)
    static/               engine.js, canvas.js, canvas.css, runner.js (worker), site.js, site.css
    ort/                  onnxruntime-web's WASM build (and its WebGPU build unless --no-webgpu)
    models/<id>.onnx      each model's ONNX export: dropout off, each image's own statistics
                          (pix2pix.export, checked against PyTorch); fp16 storage unless --fp32
    models/<id>.stage<i>.onnx  the same graph cut into 4 stages (pix2pix.stages), which a
                          cross-origin isolated page runs in WASM so that a run of an older drawing
                          stops between two when the pointer lifts
    examples/<id>/        up to 8 example inputs per registry model
    README.md             Hugging Face Space front matter (sdk: static, COOP/COEP/CORP headers)
    LICENSES.md           the licences of this project, onnxruntime-web and each model
    _headers              the same headers for hosts that read this file (Netlify, Cloudflare)

It works from any static host: with the cross-origin isolation headers the WASM runs on several
threads, without them on one. The page requests nothing beyond its own origin.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import html
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pix2pix.hub import PAPER_URL, load_generator

STATIC = Path(__file__).resolve().parent / "app" / "static"
# The response headers of the site (a static Space's `custom_headers`, and `_headers`): COOP and
# COEP make the page cross-origin isolated (threaded WebAssembly); CORP `cross-origin` lets a
# cross-origin isolated page embed it, as huggingface.co/spaces/... does with a static Space
# (Hugging Face's own examples set the three together).
HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "cross-origin",
}
SITE_STATIC = ("engine.js", "canvas.js", "canvas.css", "runner.js", "site.js", "site.css")
MAX_EXAMPLES = 8
_SLUG = re.compile(r"[^a-z0-9._-]+")


@dataclass
class SiteModel:
    """One model of the site: its canvas settings and where its files went."""

    id: str
    name: str
    task: str
    settings: dict[str, Any]
    onnx: Path
    license: str | None
    dataset: str | None
    source: str


def build_site(
    out: str | Path,
    sources: list[str],
    *,
    registry: str | Path | None = None,
    fp16: bool = True,
    webgpu: bool = True,
    title: str = "pix2pix studio · in your browser",
    overwrite: bool = False,
) -> list[SiteModel]:
    """Write the static site to ``out`` (see the module doc); returns its models.

    Raises ``FileExistsError`` when ``out`` holds files and ``overwrite`` is false,
    ``FileNotFoundError`` without onnxruntime-web (``npm ci``), ``ValueError`` for a model that
    cannot be drawn for (no input kind, a label model without a palette) or a duplicate id, and
    what ``load_generator`` / ``export_onnx`` raise for a source that cannot be loaded or exported.
    """
    from pix2pix.app import browser, ortweb  # the runtime's file lists (imports the app package)

    out = Path(out)
    if not sources:
        raise ValueError("give at least one --model")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite to replace the site in it")
    dist = browser.ort_dist()
    fix = f"run `make install` (npm ci) in the project, or set ${browser.ORT_DIR_ENV} to its dist/"
    if dist is None and not os.environ.get(browser.ORT_DIR_ENV):
        # No npm step ran: the tarball pinned in package-lock.json, fetched once (ortweb.py).
        not_allowed = ortweb.fetch_wanted()
        if not_allowed is not None:
            raise FileNotFoundError(f"onnxruntime-web not found (no fetch: {not_allowed}): {fix}")
        try:
            dist = ortweb.fetch(browser.ORT_WASM, optional=browser.ORT_WEBGPU)
        except (ortweb.FetchError, ValueError) as e:
            raise FileNotFoundError(f"onnxruntime-web not found, fetch failed ({e}): {fix}") from e
    if dist is None:
        raise FileNotFoundError(f"onnxruntime-web not found: {fix}")
    if overwrite and out.exists():
        for sub in ("static", "ort", "models", "examples"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)

    ort_files = list(browser.ORT_WASM)
    if webgpu and all((dist / n).is_file() for n in browser.ORT_WEBGPU):
        ort_files += browser.ORT_WEBGPU
    (out / "ort").mkdir()
    for name in ort_files:
        shutil.copy2(dist / name, out / "ort" / name)
    (out / "static").mkdir()
    for name in SITE_STATIC:
        shutil.copy2(STATIC / name, out / "static" / name)

    models: list[SiteModel] = []
    for source in sources:
        model = _export_model(source, out, registry=registry, fp16=fp16, webgpu=webgpu)
        if any(m.id == model.id for m in models):
            raise ValueError(f"two models have the id {model.id!r}; give each source once")
        models.append(model)

    (out / "index.html").write_text(_index_html(models, title), encoding="utf-8")
    (out / "README.md").write_text(_readme(models, title, fp16), encoding="utf-8")
    with_examples = any((out / "examples").glob("*/*"))
    licences = _licenses(models, browser.pinned_ort_version(), with_examples)
    (out / "LICENSES.md").write_text(licences, "utf-8")
    headers = "".join(f"  {name}: {value}\n" for name, value in HEADERS.items())
    (out / "_headers").write_text("/*\n" + headers, encoding="utf-8")
    return models


def _export_model(
    source: str, out: Path, *, registry: str | Path | None, fp16: bool, webgpu: bool
) -> SiteModel:
    from pix2pix.app.browser import STAGES
    from pix2pix.export import export_onnx
    from pix2pix.stages import write_stages

    entry = _registry_entry(source, registry)
    if entry is not None:
        generator = load_generator(entry.source, revision=entry.revision)
        generator.task = dataclasses.replace(generator.task, **entry.overrides)
        model_id, name, task_line, norm = entry.id, entry.name, entry.task, entry.norm
        fill_name, pen, examples = entry.fill, entry.pen, list(entry.examples)
    else:
        generator = load_generator(source)
        model_id = _SLUG.sub("-", Path(source.rstrip("/")).name.lower()).strip("-.") or "model"
        name, task_line, norm, fill_name, pen, examples = model_id, "", "instance", None, None, []
    task = generator.task
    kind = task.input_kind
    if kind is None:
        raise ValueError(f"{source}: its config has no input kind; give it in a registry entry")
    if kind == "labels" and not task.palette:
        raise ValueError(f"{source}: a label model needs a palette (in its config or a registry)")
    size = task.train_size or max(generator.size_multiple, 1)
    size = 256 if size < 32 else size  # as the app does (pix2pix/app/service.py)

    onnx = out / "models" / f"{model_id}.onnx"
    report = export_onnx(
        generator, onnx, height=size, width=size, norm=norm, fp16=fp16,
        metadata={"model_id": model_id},
    )  # fmt: skip
    print(report.summary(), file=sys.stderr)
    # The stages an isolated page's WASM session runs (a run can stop between them).
    targets = [onnx.with_name(f"{model_id}.stage{i}.onnx") for i in range(STAGES)]
    stage_files = write_stages(onnx, targets, height=size, width=size)

    version = hashlib.sha256(onnx.read_bytes()).hexdigest()[:16]
    fill = 0
    if fill_name and task.class_names and fill_name in task.class_names:
        fill = task.class_names.index(fill_name)
    urls = []
    for i, path in enumerate(examples[:MAX_EXAMPLES]):
        target = out / "examples" / model_id / f"{i}{path.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        urls.append(target.relative_to(out).as_posix())
    settings = {
        "model": model_id,
        "name": name,
        "task": task_line or f"{kind} → image",
        "seed": None,
        "ready": True,
        "kind": kind,
        "size": size,
        "palette": task.palette if kind == "labels" else None,
        "classes": task.class_names if kind == "labels" else None,
        "fill": fill,
        "pen": pen,
        "hints": kind == "edges" and task.hints,  # the canvas's colour pen
        "dataset": task.dataset,
        "license": task.license,
        "examples": urls,
        "browser": {
            # ?v= names the weights: a rebuilt site's visitors never get a cached older file.
            "onnx": f"{onnx.relative_to(out).as_posix()}?v={version}",
            "stages": [f"{p.relative_to(out).as_posix()}?v={version}" for p in stage_files],
            "ort": "ort/",
            "worker": "static/runner.js",
            "webgpu": webgpu,
        },
    }
    return SiteModel(model_id, name, task_line, settings, onnx, task.license, task.dataset, source)


def _registry_entry(source: str, registry: str | Path | None) -> Any:
    """The registry entry ``source`` names (by id, or by the folder of a local entry), or None.

    A folder that a registry entry points at gets that entry's settings (name, pen width, fill,
    examples), the same as its id would: ``checkpoints/lineart2color`` draws with its 7 px pen.
    """
    from pix2pix.app.registry import DEFAULT_REGISTRY, load_registry

    path = Path(registry) if registry is not None else DEFAULT_REGISTRY
    if not path.is_file():
        if registry is not None:
            raise FileNotFoundError(f"registry {path} not found")
        return None
    reg = load_registry(path)
    if source in reg.ids and not (Path(source).exists() and registry is None):
        return reg.get(source)
    if Path(source).exists():
        here = Path(source).resolve()
        for entry in reg.models:
            if entry.is_local and Path(entry.source).resolve() == here:
                return entry
    return None


def _index_html(models: list[SiteModel], title: str) -> str:
    canvas = (STATIC / "canvas.html").read_text(encoding="utf-8")
    data = json.dumps([m.settings for m in models], ensure_ascii=False).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/site.css">
<link rel="stylesheet" href="static/canvas.css">
</head>
<body>
<h1>{html.escape(title)}</h1>
<p>Image-to-image translation with <strong>pix2pix</strong>
(<a href="{PAPER_URL}">Isola et al., CVPR 2017</a>). Draw on the left: the model runs in your
browser (ONNX Runtime Web), stroke by stroke; nothing you draw leaves this page.</p>
<div class="p2p-head">
  <label>Model <select id="p2p-model"></select></label>
  <span id="p2p-about" class="p2p-about"></span>
</div>
<div id="p2p-canvas">
{canvas}</div>
<div id="p2p-examples" class="p2p-examples" aria-label="Examples"></div>
<footer>Made with pix2pix studio. Licences of the code, the runtime and each model:
<a href="LICENSES.md">LICENSES.md</a>.</footer>
<script id="p2p-models" type="application/json">{data}</script>
<script src="static/engine.js"></script>
<script src="static/canvas.js"></script>
<script src="static/site.js"></script>
</body>
</html>
"""


def _readme(models: list[SiteModel], title: str, fp16: bool) -> str:
    rows = "\n".join(
        f"| {m.name} (`{m.id}`) | {m.task or '—'} | {m.dataset or '—'} | {m.license or '—'} |"
        for m in models
    )
    weights = "fp16 storage (cast to fp32 at load)" if fp16 else "fp32"
    headers = "".join(f"  {name}: {value}\n" for name, value in HEADERS.items())
    return f"""---
title: {json.dumps(title, ensure_ascii=False)}
emoji: ✏️
colorFrom: indigo
colorTo: gray
sdk: static
app_file: index.html
short_description: pix2pix models that run in your browser, stroke by stroke
tags:
  - pix2pix
  - image-to-image
  - onnx
custom_headers:
{headers}---

# {title}

A static site made by `python -m pix2pix.site` (pix2pix studio): draw, and a pix2pix generator
([Isola et al., CVPR 2017]({PAPER_URL})) translates the drawing in your browser with ONNX Runtime
Web (WebAssembly, several threads when the page is cross-origin isolated; WebGPU on a real GPU).
No server runs; the page loads nothing beyond its own files.

| model | task | trained on | licence |
|---|---|---|---|
{rows}

The models are ONNX exports (`models/`, {weights}) with dropout off and each image normalised by
its own statistics, the paper's test mode; `models/<id>.stage*.onnx` is the same graph cut into
stages, which a cross-origin isolated page runs so that it can drop a run of an older drawing
when the pointer lifts. Licences: [LICENSES.md](LICENSES.md).

## Publish it

As a free static Space on Hugging Face (the front matter above configures it):
`hf upload --repo-type space YOUR-NAME/SPACE-NAME . .` from this folder. Any static host works;
`custom_headers` above (and `_headers` for hosts that read it) turn on cross-origin isolation for
multi-threaded WebAssembly; without them it runs on one thread. On Hugging Face they apply to the
Space's page on huggingface.co, which shows the site in a frame, as well as to the site's own
address (`https://YOUR-NAME-SPACE-NAME.static.hf.space`); `cross-origin-resource-policy:
cross-origin` is what lets the isolated page embed that frame.
"""


ORT_MIT = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def _licenses(models: list[SiteModel], ort_version: str | None, with_examples: bool) -> str:
    root = Path(__file__).resolve().parents[1]
    project = root / "LICENSE"
    project_text = project.read_text("utf-8") if project.is_file() else "MIT License\n"
    lines = ["# Licences", "", "## The models", ""]
    for m in models:
        lic = m.license or "not stated by the model's metadata: ask its author before reuse"
        data = f"; trained on {m.dataset}" if m.dataset else ""
        lines.append(
            f"- **{m.name}** (`models/{m.id}.onnx` and its stages `models/{m.id}.stage*.onnx`, "
            f"from `{m.source}`): {lic}{data}."
        )
    credits = root / "examples" / "README.md"
    if with_examples and credits.is_file():
        # The example inputs carry their own credits (OpenMoji line art: CC BY-SA 4.0).
        text = credits.read_text("utf-8").replace("# Example inputs", "").strip()
        lines += ["", "## The example inputs (`examples/`)", "", text]
    lines += [
        "",
        f"## onnxruntime-web {ort_version or ''} (`ort/`)".replace("  ", " "),
        "",
        "From the npm package `onnxruntime-web` (https://github.com/microsoft/onnxruntime).",
        "",
        "```",
        ORT_MIT.strip(),
        "```",
        "",
        "## pix2pix studio (`index.html`, `static/`)",
        "",
        "```",
        project_text.strip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m pix2pix.site",
        description="Write a static site of the live canvas (models run in the browser).",
    )
    p.add_argument("out", type=Path, help="folder to write the site into")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="SOURCE",
        help="a registry model id, or a folder / Hub repo id / URL (repeatable)",
    )
    p.add_argument("--registry", type=Path, help="the registry for model ids (models.toml)")
    p.add_argument("--fp32", action="store_true", help="keep fp32 weights (twice the download)")
    p.add_argument("--no-webgpu", action="store_true", help="leave out the 27 MB WebGPU build")
    p.add_argument("--title", default="pix2pix studio · in your browser")
    p.add_argument("--overwrite", action="store_true", help="replace a site already in OUT")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = parse_args(argv)
    try:
        models = build_site(
            args.out,
            args.model,
            registry=args.registry,
            fp16=not args.fp32,
            webgpu=not args.no_webgpu,
            title=args.title,
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"wrote {args.out}: {len(models)} model(s), {total / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
