"""onnxruntime-web where no npm step ran (a Space): the tarball pinned in package-lock.json, fetched
once at start-up, checked against the lock's sha512 before unpacking, extracted safely and served
by the app's own ``/p2p/ort/`` route.

Everything runs against a real HTTP server on 127.0.0.1 serving real tarballs built here from the
installed ``node_modules/onnxruntime-web`` (``npm ci``); ``node_modules`` is hidden from the app by
pointing ``browser.NPM_DIST`` at a missing folder. Nothing reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import logging
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from bench.serving import free_port, serve
from pix2pix.app import browser, ortweb

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = ROOT / "node_modules" / "onnxruntime-web"
VERSION = "1.30.0-test"  # a cache folder of its own, never the real pin's


# --------------------------------------------------------------------------------------------
# Tarballs and a registry on 127.0.0.1
# --------------------------------------------------------------------------------------------


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def make_tarball(extra: list[tarfile.TarInfo | tuple[str, bytes]] = ()) -> bytes:
    """An npm-style tarball (``package/...``) of the installed WASM build, plus ``extra`` members
    (added before the real ones, so that a hostile member with a wanted name comes first)."""
    if not all((INSTALLED / "dist" / n).is_file() for n in browser.ORT_WASM):
        pytest.fail(f"{INSTALLED} not found: run `make install` (npm ci) first")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for item in extra:
            if isinstance(item, tarfile.TarInfo):
                archive.addfile(item)
            else:
                _add(archive, *item)
        _add(archive, "package/package.json", (INSTALLED / "package.json").read_bytes())
        for name in browser.ORT_WASM:
            _add(archive, f"package/dist/{name}", (INSTALLED / "dist" / name).read_bytes())
    return buffer.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


@pytest.fixture(scope="module")
def good() -> bytes:
    return make_tarball()


class Registry:
    """A tiny tarball server: ``files`` by path; ``cut`` paths promise more bytes than they send."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[str] = []
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry.requests.append(self.path)
                data = registry.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if self.path in registry.cut else data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry() -> Iterator[Registry]:
    server = Registry()
    yield server
    server.close()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """No node_modules, an empty cache, a test lock file, online: returns ``pin(url, integrity)``
    which writes the lock file pointing at ``url`` and returns the parsed pin."""
    monkeypatch.setattr(browser, "NPM_DIST", tmp_path / "no-node-modules")
    monkeypatch.setattr(ortweb, "PACKAGE_LOCK", tmp_path / "package-lock.json")
    monkeypatch.setattr(browser, "_FETCHES", {})
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(browser.ORT_DIR_ENV, raising=False)
    monkeypatch.delenv(ortweb.FETCH_ENV, raising=False)

    def pin(url: str, integrity: str) -> ortweb.PinnedTarball:
        entry = {"version": VERSION, "resolved": url, "integrity": integrity, "license": "MIT"}
        lock = {"lockfileVersion": 3, "packages": {"node_modules/onnxruntime-web": entry}}
        ortweb.PACKAGE_LOCK.write_text(json.dumps(lock))
        return ortweb.pinned_tarball()

    return pin


def cache_entries(tmp_path: Path) -> list[str]:
    """Everything under the onnxruntime-web cache folder (relative paths)."""
    root = tmp_path / "cache" / "onnxruntime-web"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


# --------------------------------------------------------------------------------------------
# The pin
# --------------------------------------------------------------------------------------------


def test_the_lock_file_pins_a_registry_tarball_with_a_sha512() -> None:
    pin = ortweb.pinned_tarball(ROOT / "package-lock.json")
    assert pin.version == browser.pinned_ort_version()  # package.json and the lock agree
    assert pin.url == (
        f"https://registry.npmjs.org/onnxruntime-web/-/onnxruntime-web-{pin.version}.tgz"
    )
    assert pin.integrity.startswith("sha512-")
    assert len(base64.b64decode(pin.integrity.removeprefix("sha512-"), validate=True)) == 64
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "registry.npmjs.org" in readme and "integrity" in readme
    assert ortweb.FETCH_ENV in readme


def test_a_lock_file_without_a_usable_entry_is_refused(tmp_path: Path) -> None:
    lock = tmp_path / "package-lock.json"
    lock.write_text(json.dumps({"packages": {}}))
    with pytest.raises(ValueError, match="pins no onnxruntime-web"):
        ortweb.pinned_tarball(lock)
    entry = {"version": "1.0.0", "integrity": "sha1-abc="}
    lock.write_text(json.dumps({"packages": {"node_modules/onnxruntime-web": entry}}))
    with pytest.raises(ValueError, match="sha512"):
        ortweb.pinned_tarball(lock)
    lock.write_text("{ not json")
    with pytest.raises(ValueError, match="cannot read"):
        ortweb.pinned_tarball(lock)


# --------------------------------------------------------------------------------------------
# Fetching
# --------------------------------------------------------------------------------------------


def test_fetch_extracts_the_wanted_files_byte_for_byte_once(site, registry, good) -> None:
    registry.files["/ort.tgz"] = good
    pin = site(registry.url + "/ort.tgz", sri(good))
    folder = ortweb.fetch(browser.ORT_WASM, optional=browser.ORT_WEBGPU)
    assert folder == ortweb.cache_folder(pin)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*browser.ORT_WASM, "package.json"])
    for name in browser.ORT_WASM:
        assert (folder / name).read_bytes() == (INSTALLED / "dist" / name).read_bytes()
    assert browser.ort_dist() == folder
    assert registry.requests == ["/ort.tgz"]
    assert ortweb.fetch(browser.ORT_WASM) == folder  # complete: no second request
    assert registry.requests == ["/ort.tgz"]


def test_a_wrong_integrity_is_refused_and_leaves_nothing(site, registry, good, tmp_path) -> None:
    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(b"something else"))
    with pytest.raises(ortweb.FetchError, match="does not match the integrity hash"):
        ortweb.fetch(browser.ORT_WASM)
    assert cache_entries(tmp_path) == []
    assert browser.ort_dist() is None


@pytest.mark.parametrize("path", ["/missing.tgz", "/cut.tgz", "/down"])
def test_http_errors_and_cut_connections_leave_nothing(
    site, registry, good, tmp_path, path
) -> None:
    registry.files["/cut.tgz"] = good
    registry.cut.add("/cut.tgz")
    url = f"http://127.0.0.1:{free_port()}/ort.tgz" if path == "/down" else registry.url + path
    site(url, sri(good))
    expected = {"/missing.tgz": "HTTP 404", "/cut.tgz": "could not download|connection cut"}
    with pytest.raises(ortweb.FetchError, match=expected.get(path, "could not download")):
        ortweb.fetch(browser.ORT_WASM)
    assert cache_entries(tmp_path) == []


def test_a_malformed_tarball_with_the_right_hash_is_refused(site, registry, tmp_path) -> None:
    junk = b"not a gzip stream " * 1000
    registry.files["/ort.tgz"] = junk
    site(registry.url + "/ort.tgz", sri(junk))
    with pytest.raises(ortweb.FetchError, match="damaged"):
        ortweb.fetch(browser.ORT_WASM)
    assert cache_entries(tmp_path) == []


def test_a_tarball_lacking_a_file_is_refused(site, registry, good, tmp_path) -> None:
    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    with pytest.raises(ortweb.FetchError, match=r"lacks dist/not-in-the-package\.js"):
        ortweb.fetch([*browser.ORT_WASM, "not-in-the-package.js"])
    assert cache_entries(tmp_path) == []


def test_members_outside_the_wanted_names_are_never_written(site, registry, tmp_path) -> None:
    evil = [
        ("../evil", b"outside"),
        ("package/../../evil2", b"outside"),
        ("/tmp/evil3-" + tmp_path.name, b"absolute"),
        ("package/dist/../../../evil4", b"outside"),
    ]
    data = make_tarball(evil)
    registry.files["/ort.tgz"] = data
    site(registry.url + "/ort.tgz", sri(data))
    folder = ortweb.fetch(browser.ORT_WASM)
    assert sorted(p.name for p in folder.iterdir()) == sorted([*browser.ORT_WASM, "package.json"])
    assert not list(tmp_path.rglob("evil*"))
    assert not Path("/tmp/evil3-" + tmp_path.name).exists()
    assert cache_entries(tmp_path) == sorted(
        [VERSION] + [f"{VERSION}/{n}" for n in [*browser.ORT_WASM, "package.json"]]
    )


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
def test_a_wanted_name_that_is_not_a_regular_file_is_refused(
    site, registry, tmp_path, kind
) -> None:
    member = tarfile.TarInfo(f"package/dist/{browser.ORT_WASM[0]}")
    member.type = kind
    member.linkname = "/etc/passwd"
    data = make_tarball([member])
    registry.files["/ort.tgz"] = data
    site(registry.url + "/ort.tgz", sri(data))
    with pytest.raises(ortweb.FetchError, match="not a regular file"):
        ortweb.fetch(browser.ORT_WASM)
    assert cache_entries(tmp_path) == []


def test_an_oversized_member_is_refused(site, registry, good, tmp_path, monkeypatch) -> None:
    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    monkeypatch.setattr(ortweb, "MAX_FILE", 1 << 20)  # the 14 MB wasm is then too large
    with pytest.raises(ortweb.FetchError, match=r"ort-wasm-simd-threaded\.wasm is 14"):
        ortweb.fetch(browser.ORT_WASM)
    assert cache_entries(tmp_path) == []


@pytest.mark.parametrize(
    ("env", "value", "reason"),
    [("HF_HUB_OFFLINE", "1", "HF_HUB_OFFLINE is set"), (ortweb.FETCH_ENV, "off", "=off")],
)
def test_offline_or_switched_off_fetches_nothing(
    site, registry, good, monkeypatch, env, value, reason
) -> None:
    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    monkeypatch.setenv(env, value)
    assert browser.start_ort_fetch(wanted=True) is None
    why = browser.unavailable_reason(wanted=True)
    assert why is not None and reason in why and "make install" in why
    assert registry.requests == []


# --------------------------------------------------------------------------------------------
# The app
# --------------------------------------------------------------------------------------------


def write_registry(folder: Path) -> Path:
    """One tiny local edges model (unet_128, ngf 4), and the registry naming it."""
    import torch

    from pix2pix import networks
    from pix2pix.hub import Pix2PixGenerator, save_generator

    torch.manual_seed(0)
    task = {"input_kind": "edges", "train_size": 128, "dataset": "test data"}
    model = Pix2PixGenerator("unet_128", {"ngf": 4}, task)
    networks.init_weights(model.net)
    save_generator(model.eval(), folder / "tiny")
    (folder / "registry.toml").write_text(
        '[[model]]\nid = "tiny"\nname = "Tiny"\npath = "tiny"\ntask = "edges -> noise"\n'
    )
    return folder / "registry.toml"


def translate_through_the_api(url: str, tmp_path: Path) -> Image.Image:
    from gradio_client import Client, handle_file

    sketch = Image.new("RGB", (128, 128), "white")
    ImageDraw.Draw(sketch).line([(10, 10), (110, 100)], fill="black", width=3)
    sketch.save(tmp_path / "sketch.png")
    client = Client(url, verbose=False)
    out = client.predict(
        handle_file(str(tmp_path / "sketch.png")), "tiny", -1, api_name="/translate"
    )
    return Image.open(out)


def test_the_app_fetches_at_start_serves_the_copy_and_reuses_it(
    site, registry, good, tmp_path, caplog
) -> None:
    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    registry_file = write_registry(tmp_path / "app")
    caplog.set_level(logging.INFO, logger="pix2pix.app")
    with serve(registry_file, remote="skip", browser_mode=True) as server:
        url, app = server.url.rstrip("/"), server.app
        assert app.ort_fetch is not None and app.ort_fetch.wait(60)
        assert app.ort_fetch.error is None
        assert app.browser_off is None
        # The default model's export, started once the files arrived: wait for it, so that no
        # export runs beside the requests below.
        onnx = app.exports.path("tiny").read_bytes()
        response = httpx.get(f"{url}/p2p/models/tiny.onnx", timeout=120)
        assert response.status_code == 200 and response.content == onnx
        settings = app.canvas_settings("tiny", -1)["browser"]
        assert settings is not None and not settings["webgpu"]
        # The fetched copy's package.json names the version its URLs carry (cached for good).
        assert settings["ort"] == f"p2p/ort/{browser.pinned_ort_version()}/"
        for name in browser.ORT_WASM:
            response = httpx.get(f"{url}/p2p/ort/{name}", timeout=30)
            assert response.status_code == 200, name
            assert response.content == (INSTALLED / "dist" / name).read_bytes(), name
            assert response.headers["cross-origin-embedder-policy"] == "require-corp"
        assert httpx.get(f"{url}/p2p/ort/package.json", timeout=30).status_code == 404
    assert registry.requests == ["/ort.tgz"]
    assert "fetching onnxruntime-web" in caplog.text and "MB" in caplog.text

    # A second start: the cache, no request.
    with serve(registry_file, remote="skip", browser_mode=True) as server:
        url, app = server.url.rstrip("/"), server.app
        assert app.ort_fetch is None and app.browser_off is None
        response = httpx.get(f"{url}/p2p/ort/{browser.ORT_WASM[2]}", timeout=30)
        assert response.content == (INSTALLED / "dist" / browser.ORT_WASM[2]).read_bytes()
    assert registry.requests == ["/ort.tgz"]


@pytest.mark.parametrize("problem", ["404", "integrity"])
def test_a_failed_fetch_keeps_the_app_translating_on_the_server(
    site, registry, good, tmp_path, caplog, problem
) -> None:
    registry.files["/ort.tgz"] = good
    integrity = sri(b"other bytes") if problem == "integrity" else sri(good)
    site(registry.url + ("/ort.tgz" if problem == "integrity" else "/gone.tgz"), integrity)
    caplog.set_level(logging.INFO, logger="pix2pix.app")
    with serve(write_registry(tmp_path / "app"), remote="skip", browser_mode=True) as server:
        url, app = server.url.rstrip("/"), server.app
        assert app.ort_fetch is not None and app.ort_fetch.wait(60)
        reason = app.browser_off
        expected = "HTTP 404" if problem == "404" else "does not match the integrity hash"
        assert reason is not None and "could not be fetched" in reason and expected in reason
        assert "make install" in reason
        assert app.canvas_settings("tiny", -1)["browser"] is None  # the canvas uses the server
        response = httpx.get(f"{url}/p2p/ort/{browser.ORT_WASM[0]}", timeout=30)
        assert response.status_code == 404
        image = translate_through_the_api(url, tmp_path)
        assert image.size == (128, 128)
    assert cache_entries(tmp_path) == []
    assert "could not fetch onnxruntime-web" in caplog.text


# --------------------------------------------------------------------------------------------
# The static site
# --------------------------------------------------------------------------------------------


def test_the_static_site_copies_the_fetched_runtime(site, registry, good, tmp_path) -> None:
    from pix2pix.site import build_site

    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    write_registry(tmp_path / "models")
    build_site(tmp_path / "site", [str(tmp_path / "models" / "tiny")], fp16=False)
    for name in browser.ORT_WASM:
        copied = (tmp_path / "site" / "ort" / name).read_bytes()
        assert copied == (INSTALLED / "dist" / name).read_bytes(), name
    assert registry.requests == ["/ort.tgz"]


def test_the_static_site_offline_says_why_it_has_no_runtime(site, tmp_path, monkeypatch) -> None:
    from pix2pix.site import build_site

    site("http://127.0.0.1:9/never.tgz", sri(b"x"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match=r"HF_HUB_OFFLINE is set.*make install"):
        build_site(tmp_path / "site", ["unused"])


# --------------------------------------------------------------------------------------------
# In the browser
# --------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"


def test_the_fetched_runtime_runs_the_model_in_chromium(site, registry, good, tmp_path) -> None:
    """node_modules hidden: the page loads onnxruntime-web from the fetched copy and runs the
    model with it (WASM). Requests beyond 127.0.0.1 are blocked; console errors fail the test."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium (no playwright install)")
    from playwright.sync_api import sync_playwright

    registry.files["/ort.tgz"] = good
    site(registry.url + "/ort.tgz", sri(good))
    with (
        serve(write_registry(tmp_path / "app"), remote="skip", browser_mode=True) as server,
        sync_playwright() as p,
    ):
        url, app = server.url.rstrip("/"), server.app
        assert app.ort_fetch is not None and app.ort_fetch.wait(60) and app.browser_off is None
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"], headless=True
        )
        try:
            page = chromium.new_page()
            problems: list[str] = []
            ort_requests: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("request", lambda r: ort_requests.append(r.url) if "/p2p/ort/" in r.url else 0)
            local = ("http://127.0.0.1", "data:", "blob:")
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(local) else route.abort()
                ),
            )
            page.goto(url)
            page.wait_for_function(
                """() => { const el = document.querySelector('#p2p-canvas .p2p');
                           const c = el && el.p2pStats && el.p2pStats.choice.tiny;
                           return c && c.where !== 'pending'; }""",
                timeout=240_000,
            )
            choice = page.evaluate(
                "document.querySelector('#p2p-canvas .p2p').p2pStats.choice.tiny"
            )
            assert page.evaluate("crossOriginIsolated")
        finally:
            chromium.close()
    assert choice["backend"] == "wasm" and choice["browserMs"] is not None, choice
    assert any(u.endswith("/ort-wasm-simd-threaded.wasm") for u in ort_requests), ort_requests
    assert not [p for p in problems if "ERR_FAILED" not in p], problems
    assert registry.requests == ["/ort.tgz"]
