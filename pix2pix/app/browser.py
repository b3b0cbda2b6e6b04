"""What the canvas needs to run models in the visitor's browser, served from the app's own origin.

- ``/p2p/static/<file>``: the canvas's worker (``static/runner.js``).
- ``/p2p/ort/<version>/<file>`` (and ``/p2p/ort/<file>``): onnxruntime-web's WASM (and WebGPU)
  build, from the npm package pinned in
  ``package.json`` / ``package-lock.json``: ``node_modules/`` (``npm ci``, run by ``make install``),
  or ``$PIX2PIX_ORT_DIR``, or, where no npm step runs (a Space), the pinned tarball fetched once at
  start-up, checked against the lock file's integrity hash and cached (``ortweb.py``). The
  visitor's page loads nothing from a CDN: it needs no network beyond the app.
- ``/p2p/models/<id>.onnx``: the model's ONNX export (``pix2pix.export``: dropout off, each image's
  own statistics, checked against PyTorch), made on first request, or ahead by ``prefetch``, and
  cached on disk by a hash of the weights and export settings. ``?stage=i`` answers its i-th of
  ``STAGES`` stages (``pix2pix.stages``): a cross-origin isolated page runs those in WASM, so
  that a run of an older drawing stops at the next stage when the pointer lifts.
- Caching: the URLs the canvas is given name what they serve (the model's ``?v=<hash of its
  weights and export settings>``, the worker's ``?v=<hash of the file>``, onnxruntime-web's
  version in its path) and are answered ``Cache-Control: public, max-age=31536000, immutable``: a
  returning visitor's browser asks nothing. Any other request for these files (no version, or an
  outdated one) is answered ``no-cache`` and revalidated: 304 on a matching ``If-None-Match`` or
  ``If-Modified-Since`` (Starlette's ``FileResponse`` alone never answers 304).
- ``/p2p/preload.json``: the default model's canvas settings (``{model, size, browser}``, or
  ``{}`` while it cannot run in the browser), read by the early start in the page's head
  (``canvas.HEAD``, ``static/engine.js``).
- Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
  ``Cross-Origin-Embedder-Policy: require-corp``: the page becomes cross-origin isolated, which
  multi-threaded WebAssembly needs (SharedArrayBuffer). ``PIX2PIX_ISOLATION=off`` drops them.

``PIX2PIX_BROWSER=off`` keeps every model on the server (the canvas then never loads the runtime).
``PIX2PIX_ORT_FETCH=off`` (or ``HF_HUB_OFFLINE=1``) never fetches onnxruntime-web; while it is
missing or being fetched, the canvas uses the server.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pix2pix.app import ortweb
from pix2pix.app.gpu import cpu_work
from pix2pix.app.service import ModelError, ModelStore, ServedModel
from pix2pix.hub import cache_dir

log = logging.getLogger("pix2pix.app")

BROWSER_ENV = "PIX2PIX_BROWSER"  # auto (default) | off
ISOLATION_ENV = "PIX2PIX_ISOLATION"  # on (default) | off
ORT_DIR_ENV = "PIX2PIX_ORT_DIR"
ROOT = Path(__file__).resolve().parents[2]
PACKAGE_JSON = ROOT / "package.json"
NPM_DIST = ROOT / "node_modules" / "onnxruntime-web" / "dist"  # where `npm ci` puts the build
STATIC = Path(__file__).with_name("static")
PREFIX = "p2p"
# The onnxruntime-web files the canvas loads: the WASM build (always) and the WebGPU build (only
# on a real GPU adapter). Their licence travels with them.
ORT_WASM = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEBGPU = (
    "ort.webgpu.min.js",
    "ort-wasm-simd-threaded.asyncify.mjs",
    "ort-wasm-simd-threaded.asyncify.wasm",
)
WORKER = "runner.js"
STAGES = 4  # the browser's WASM runs cut into this many stages (docs/PERFORMANCE.md attempt 30)
EXPORT_VERSION = 1  # bump when the export's settings change, to invalidate cached files
MEDIA_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".onnx": "application/octet-stream",
}
ISOLATION_HEADERS = [
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
]


def pinned_ort_version() -> str | None:
    """The onnxruntime-web version ``package.json`` pins, or None without the file."""
    try:
        return json.loads(PACKAGE_JSON.read_text("utf-8"))["dependencies"]["onnxruntime-web"]
    except (OSError, KeyError, ValueError):
        return None


def ort_dist() -> Path | None:
    """The folder holding onnxruntime-web's WASM build (``dist/`` of the npm package), or None.

    ``$PIX2PIX_ORT_DIR`` if set; else ``node_modules/onnxruntime-web/dist`` next to the project's
    ``package.json`` (``npm ci`` puts it there); else the copy :func:`start_ort_fetch` fetched
    into the cache.
    """
    folder = os.environ.get(ORT_DIR_ENV)
    candidates = [Path(folder)] if folder else [NPM_DIST, _fetched_dist()]
    for path in candidates:
        if path is not None and ortweb.is_complete(path, ORT_WASM):
            return path
    return None


def _fetched_dist() -> Path | None:
    try:
        return ortweb.cache_folder(ortweb.pinned_tarball())
    except ValueError:
        return None


class OrtFetch:
    """The one-time fetch of the pinned onnxruntime-web tarball, in a background thread."""

    def __init__(self) -> None:
        self.error: str | None = None  # why it failed, once it has
        self.thread = threading.Thread(target=self._run, name="pix2pix-ort-fetch", daemon=True)
        self._done = False
        self._then: list[Callable[[], object]] = []
        self._guard = threading.Lock()

    def when_ready(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` (in the fetch's thread) once the files are there; never on failure."""
        with self._guard:
            if not self._done:
                self._then.append(callback)
                return
        if self.error is None:
            callback()

    def _run(self) -> None:
        try:
            ortweb.fetch(ORT_WASM, optional=ORT_WEBGPU)
        except Exception as e:  # any failure leaves the app on the server, with the reason
            self.error = str(e) if isinstance(e, ortweb.FetchError) else f"{type(e).__name__}: {e}"
            log.warning(
                "could not fetch onnxruntime-web: %s. The Draw tab runs every model on the "
                "server. To run models in the browser: restart with network access to the npm "
                "registry, or run `make install` (npm ci), or set $%s to its dist/ folder.",
                e,
                ORT_DIR_ENV,
            )
        else:
            log.info("onnxruntime-web is ready: models can run in visitors' browsers")
        with self._guard:
            self._done, then = True, self._then
        for callback in then if self.error is None else ():
            try:
                callback()
            except Exception as e:  # a failing follow-up must not hide the fetch's result
                log.warning("after fetching onnxruntime-web: %s", e)

    @property
    def running(self) -> bool:
        """Whether the fetch is still under way."""
        return self.thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the fetch to end; True when it has (successfully or not)."""
        self.thread.join(timeout)
        return not self.running


_FETCHES: dict[Path, OrtFetch] = {}  # one fetch per cache folder per process
_FETCH_GUARD = threading.Lock()


def _current_fetch() -> OrtFetch | None:
    folder = _fetched_dist()
    with _FETCH_GUARD:
        return _FETCHES.get(folder) if folder is not None else None


def browser_wanted(wanted: bool | None = None) -> bool:
    """``wanted`` if given, else whether ``$PIX2PIX_BROWSER`` leaves browser runs on."""
    if wanted is None:
        return os.environ.get(BROWSER_ENV, "auto").lower() not in ("off", "0", "false", "no")
    return wanted


def _export_missing() -> str | None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        return f"the ONNX export needs {e.name}: pip install onnx onnxscript onnxruntime"
    return None


def start_ort_fetch(wanted: bool | None = None) -> OrtFetch | None:
    """Fetch onnxruntime-web in a background thread, once per process, when browser runs are
    wanted, the ONNX export can run, onnxruntime-web is not installed, ``$PIX2PIX_ORT_DIR`` is
    unset and ``ortweb.fetch_wanted`` allows it (``$PIX2PIX_ORT_FETCH``, ``HF_HUB_OFFLINE``).

    Returns the fetch (also one started earlier), or None when there is nothing to fetch or it is
    not allowed. Call at start-up only: the app opens no connection while answering requests.
    """
    if not browser_wanted(wanted) or _export_missing() is not None:
        return None
    if os.environ.get(ORT_DIR_ENV) or ort_dist() is not None or ortweb.fetch_wanted():
        return None
    folder = _fetched_dist()
    if folder is None:
        log.warning("cannot fetch onnxruntime-web: %s is unreadable", ortweb.PACKAGE_LOCK)
        return None
    with _FETCH_GUARD:
        fetch = _FETCHES.get(folder)
        if fetch is None or (fetch.error is not None and not fetch.running):
            fetch = _FETCHES[folder] = OrtFetch()
            fetch.thread.start()
    return fetch


def unavailable_reason(wanted: bool | None = None) -> str | None:
    """Why models cannot run in the browser here (now), or None when they can.

    ``wanted``: False switches browser runs off; None leaves it to ``$PIX2PIX_BROWSER``.
    """
    if not browser_wanted(wanted):
        return f"switched off (App(browser_mode=False) or ${BROWSER_ENV}=off)"
    missing = _export_missing()
    if missing is not None:
        return missing
    if ort_dist() is None:
        fix = f"run `make install` (npm ci) or set ${ORT_DIR_ENV} to its dist/ folder"
        if os.environ.get(ORT_DIR_ENV):
            return f"${ORT_DIR_ENV} does not hold onnxruntime-web's WASM build: {fix}"
        fetch = _current_fetch()
        if fetch is not None and fetch.running:
            return "onnxruntime-web is being fetched from the npm registry (pinned, once)"
        if fetch is not None and fetch.error is not None:
            return f"onnxruntime-web could not be fetched ({fetch.error}): {fix}"
        not_fetched = ortweb.fetch_wanted() or "the fetch was not started"
        return f"onnxruntime-web is not installed and not fetched ({not_fetched}): {fix}"
    return None


def weights_key(served: ServedModel, *, fp16: bool = False) -> str:
    """A hash of a model's weights, its export size and settings and the library code that
    defines its graph (``backends.graph_source_hash``): the name of its cached export."""
    from pix2pix.backends import graph_source_hash

    digest = hashlib.sha256()
    header = [EXPORT_VERSION, served.size, served.entry.norm, fp16, str(torch.__version__)]
    header.append(graph_source_hash())
    digest.update(json.dumps(header).encode())
    for name, tensor in served.cpu_model.state_dict().items():
        digest.update(name.encode())
        data = tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)
        digest.update(data.numpy().tobytes())
    return digest.hexdigest()[:24]


class OnnxExports:
    """The ONNX export of each served model, made once (per weights and settings) and cached.

    ``fp16``: store the weights as float16, each followed by a Cast to float32: half the download,
    but in onnxruntime-web (WASM) about 1 s more to create the session and slower runs (measured,
    docs/PERFORMANCE.md attempt 19), so the app keeps float32: its visitors' download comes from
    the app itself."""

    def __init__(
        self, store: ModelStore, folder: Path | None = None, *, fp16: bool = False
    ) -> None:
        self.store = store
        self.folder = folder or cache_dir() / "onnx"
        self.fp16 = fp16
        self._keys: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def key(self, served: ServedModel) -> str:
        """The cache key of ``served``'s export (hashing the weights once per model)."""
        model_id = served.entry.id
        with self._guard:
            if model_id not in self._keys:
                self._keys[model_id] = weights_key(served, fp16=self.fp16)
            return self._keys[model_id]

    def path(self, model_id: str) -> Path:
        """The model's ONNX file, exported now if it is not cached; raises ModelError/ValueError."""
        served = self.store.get(model_id)
        target = self.folder / f"{model_id}-{self.key(served)}.onnx"
        with self._guard:
            lock = self._locks.setdefault(model_id, threading.Lock())
        with lock:
            if not target.is_file():
                from pix2pix.export import export_onnx

                model = served.cpu_model  # never the device's copy (ZeroGPU)
                with cpu_work():  # ZeroGPU: CUDA is only emulated here (gpu.py)
                    report = export_onnx(
                        model,
                        target,
                        height=served.size,
                        width=served.size,
                        norm=served.entry.norm,
                        fp16=self.fp16,
                        metadata={"model_id": model_id},
                    )
                log.info("exported %s for the browser: %s", model_id, report.summary())
        return target

    def stage_path(self, model_id: str, stage: int) -> Path:
        """The ``stage``-th of the model's ``STAGES`` stages (an ONNX file), cut from its export
        now if not cached; raises ModelError/ValueError, and ``LookupError`` for a stage the model
        has not got (a graph with fewer nodes than ``STAGES``)."""
        from pix2pix.stages import write_stages

        full = self.path(model_id)
        served = self.store.get(model_id)
        targets = [full.with_name(f"{full.stem}.stage{i}of{STAGES}.onnx") for i in range(STAGES)]
        with self._locks[model_id]:
            if not targets[0].is_file():  # written last (write_stages)
                written = write_stages(full, targets, height=served.size, width=served.size)
                log.info("cut %s into %d stages for the browser", model_id, len(written))
        if not 0 <= stage < STAGES or not targets[stage].is_file():
            raise LookupError(f"model {model_id} has no stage {stage}")
        return targets[stage]

    def prefetch(self, model_ids: Iterable[str]) -> threading.Thread:
        """Export models in a background thread, so the first visitor does not wait for it."""

        def work() -> None:
            for model_id in model_ids:
                try:
                    self.stage_path(model_id, 0)  # the export, then its stages
                except Exception as e:  # one failed export must not stop the others
                    log.warning("browser export of %s failed: %s", model_id, e)

        thread = threading.Thread(target=work, name="pix2pix-onnx-prefetch", daemon=True)
        thread.start()
        return thread


def browser_settings(exports: OnnxExports, served: ServedModel) -> dict[str, Any] | None:
    """The canvas's ``settings.browser`` for one model: where its ONNX file, onnxruntime-web and
    the worker are (relative URLs, so that the app works under any root path); None while
    onnxruntime-web is not there (still being fetched, or the fetch failed)."""
    dist = ort_dist()
    if dist is None:
        return None
    onnx = f"{PREFIX}/models/{served.entry.id}.onnx?v={exports.key(served)}"
    return {
        "onnx": onnx,
        "stages": [f"{onnx}&stage={i}" for i in range(STAGES)],
        "ort": f"{PREFIX}/ort/{ort_version(dist)}/",
        "worker": f"{PREFIX}/static/{WORKER}?v={file_hash(STATIC / WORKER)}",
        "webgpu": ortweb.is_complete(dist, ORT_WEBGPU),
    }


def ort_version(dist: Path) -> str:
    """The version of the onnxruntime-web build in ``dist`` (the package.json beside it, as in
    the fetched copy, or above it, as in ``node_modules``): the runtime's URLs carry it, so that
    they can be cached for good. Where neither says, a hash of the files' sizes and times."""
    stamp = tuple((dist / n).stat().st_mtime_ns for n in ORT_WASM if (dist / n).is_file())
    return _ort_version(dist, stamp)


@functools.lru_cache(maxsize=8)
def _ort_version(dist: Path, stamp: tuple[int, ...]) -> str:
    for meta in (dist / "package.json", dist.parent / "package.json"):
        try:
            data = json.loads(meta.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if data.get("name") == ortweb.PACKAGE and _VERSION.fullmatch(str(data.get("version"))):
            return str(data["version"])
    sizes = [(n, (dist / n).stat().st_size) for n in ORT_WASM if (dist / n).is_file()]
    return hashlib.sha256(json.dumps([sizes, stamp]).encode()).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """A short hash of a file's content (read again only when its size or time changes)."""
    stat = path.stat()
    return _file_hash(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_hash(path: Path, size: int, mtime_ns: int) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------

_MODEL_FILE = re.compile(r"^([a-z0-9][a-z0-9._-]*)\.onnx$")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,63}")
IMMUTABLE = "public, max-age=31536000, immutable"  # a versioned URL: its content never changes
REVALIDATE = "no-cache"  # any other: kept, but asked about (If-None-Match) before each use
# Starlette's StaticFiles holds the conditional-request rule (If-None-Match, else
# If-Modified-Since, against FileResponse's ETag and Last-Modified); FileResponse alone never
# answers 304. Borrowed here rather than written again: the files are not one static folder.
_CONDITIONAL = StaticFiles(check_dir=False)


class _FileResponse(FileResponse):
    """A FileResponse read in 1 MiB chunks (Starlette's default: 64 KiB): the runtime and the
    models are 14-30 MB, and each chunk waits for the event loop, which Gradio keeps busy while its
    own page loads (the default model's download: 0.7-1.3 s in 64 KiB chunks, mostly 0.14-0.35 s
    in 1 MiB ones; docs/PERFORMANCE.md attempt 18)."""

    chunk_size = 1 << 20


def _file(request: Request, path: Path, *, versioned: bool) -> Response:
    """``path``, cached for good where the URL named its version (``versioned``), else
    revalidated: 304 when the request's validators match."""
    media = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    headers = {"Cache-Control": IMMUTABLE if versioned else REVALIDATE}
    response = _FileResponse(path, media_type=media, headers=headers, stat_result=path.stat())
    if _CONDITIONAL.is_not_modified(response.headers, request.headers):
        return NotModifiedResponse(response.headers)
    return response


def routes(
    exports: OnnxExports | None, preload: Callable[[], dict[str, Any]] | None = None
) -> list[Route]:
    """The routes under ``/p2p/``; names are matched against fixed lists, never joined blindly.

    ``preload() -> dict`` answers ``/p2p/preload.json`` (``{}`` when not given)."""
    allowed_ort = set(ORT_WASM) | set(ORT_WEBGPU)

    def static_file(request: Request) -> Response:
        name = request.path_params["name"]
        if name != WORKER:
            return PlainTextResponse(f"no such file: {name}", status_code=404)
        path = STATIC / name
        return _file(request, path, versioned=request.query_params.get("v") == file_hash(path))

    def ort_file(request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        dist = ort_dist()
        if name not in allowed_ort or dist is None or not (dist / name).is_file():
            return PlainTextResponse(f"onnxruntime-web file not available: {name}", 404)
        if version is not None and not _VERSION.fullmatch(version):
            return PlainTextResponse(f"no such version: {version[:20]!r}", status_code=404)
        # Another version than the one here (a page from before an upgrade): today's files,
        # not to be kept under that URL.
        return _file(request, dist / name, versioned=version == ort_version(dist))

    def model_file(request: Request) -> Response:
        match = _MODEL_FILE.match(request.path_params["name"])
        if exports is None or match is None:
            return PlainTextResponse("no such model file", status_code=404)
        stage = request.query_params.get("stage")
        if stage is not None and not re.fullmatch(r"[0-9]{1,2}", stage):
            return PlainTextResponse(f"no such stage: {stage[:20]!r}", status_code=404)
        try:
            if stage is None:
                path = exports.path(match.group(1))
            else:
                path = exports.stage_path(match.group(1), int(stage))
        except (ModelError, LookupError) as e:
            return PlainTextResponse(str(e), status_code=404)
        except Exception as e:  # the canvas falls back to the server
            log.warning("browser export of %s failed: %s", match.group(1), e)
            return PlainTextResponse(f"export failed: {e}", status_code=503)
        # ?v= names the weights: an outdated one (a page from before new weights) gets today's
        # file, not to be kept under that URL.
        current = exports.key(exports.store.get(match.group(1)))
        return _file(request, path, versioned=request.query_params.get("v") == current)

    def preload_settings(request: Request) -> Response:
        try:
            settings = preload() if preload is not None else {}
        except Exception as e:  # the canvas then starts the runtime itself, later
            log.warning("preload settings failed: %s", e)
            settings = {}
        return JSONResponse(settings, headers={"Cache-Control": "no-store"})

    return [
        Route(f"/{PREFIX}/preload.json", preload_settings),
        Route(f"/{PREFIX}/static/{{name}}", static_file),
        Route(f"/{PREFIX}/ort/{{version}}/{{name}}", ort_file),
        Route(f"/{PREFIX}/ort/{{name}}", ort_file),
        Route(f"/{PREFIX}/models/{{name}}", model_file),
    ]


class IsolationHeaders:
    """ASGI middleware: COOP ``same-origin`` + COEP ``require-corp`` on every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in ISOLATION_HEADERS if k not in names]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def isolation_enabled() -> bool:
    """Whether the app sends the cross-origin isolation headers (``$PIX2PIX_ISOLATION``)."""
    return os.environ.get(ISOLATION_ENV, "on").lower() not in ("off", "0", "false", "no")


def app_kwargs(
    exports: OnnxExports | None, preload: Callable[[], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``launch(app_kwargs=...)``: the ``/p2p/`` routes and, unless switched off, the headers."""
    kwargs: dict[str, Any] = {"routes": routes(exports, preload)}
    if isolation_enabled():
        kwargs["middleware"] = [Middleware(IsolationHeaders)]
    return kwargs
