"""The app and the static site, served on 127.0.0.1 for the benchmarks and the tests.

Lives in bench/ because the benchmarks need it and bench/ never imports tests/ (see
ARCHITECTURE.md); the tests import it from here. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import functools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running app: its URL, its App (handlers, store) and how long start-up took."""

    url: str
    app: Any
    startup_s: float


@contextlib.contextmanager
def serve(
    registry: Path | None = None, *, remote: str = "background", browser_mode: bool | None = None
) -> Iterator[Server]:
    """Build and launch the app on a free local port (the real models.toml by default).

    ``browser_mode``: True lets the canvas run models in the browser, False keeps every model on
    the server (the canvas loads no runtime), None leaves it to ``$PIX2PIX_BROWSER``."""
    from pix2pix.app import App, create_store, launch_options, load_registry

    start = time.perf_counter()
    store = create_store(load_registry(registry), remote=remote)
    app = App(store, browser_mode=browser_mode)
    options = launch_options(app.blocks)
    _, url, _ = app.blocks.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        theme=options["theme"],
        head=options.get("head"),
        app_kwargs=options["app_kwargs"],
    )
    try:
        yield Server(url.rstrip("/") + "/", app, time.perf_counter() - start)
    finally:
        app.blocks.close()
        # The app's background work (ONNX exports for browsers, backend measurement) traces
        # models with torch.export / torch.compile, through dynamo's process-wide state: left
        # running into what this process does next, it raced it (KeyError: 'custom' under
        # torch.manual_seed). Stopping means letting it end.
        for thread in threading.enumerate():
            if thread.name.startswith(("pix2pix-onnx", "pix2pix-backend")):
                thread.join(timeout=600)


class _StaticHandler(SimpleHTTPRequestHandler):
    """Files of one folder, optionally with the COOP/COEP headers a static host can set."""

    isolation = False

    def end_headers(self) -> None:
        if self.isolation:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path, *, isolation: bool) -> Iterator[str]:
    """Serve ``folder`` (e.g. the static site) with a plain HTTP server on a free local port;
    yields its URL (ending in ``/``).

    ``isolation``: send Cross-Origin-Opener-Policy / Cross-Origin-Embedder-Policy, which make the
    page cross-origin isolated (threaded WASM), as a host honouring the site's ``_headers`` would.
    """
    handler = type("Handler", (_StaticHandler,), {"isolation": isolation})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
