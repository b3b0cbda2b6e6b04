"""The canvas's browser code is real files: each parses (``node --check``), the templates fit
gr.HTML's rules, and the app builds its component from exactly these files."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pix2pix.app import canvas

SCRIPTS = ["engine.js", "canvas.js", "runner.js", "site.js"]
NO_NODE = "node not found: the JavaScript checks need Node.js (apt-get install -y nodejs)"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse(name: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail(NO_NODE)
    result = subprocess.run(
        [node, "--check", str(canvas.STATIC / name)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_a_script_with_a_syntax_error_fails_the_check(tmp_path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail(NO_NODE)
    broken = tmp_path / "broken.js"
    source = canvas.static_text("canvas.js")
    broken.write_text(source.replace("function pix2pixCanvas(", "function ("))
    result = subprocess.run([node, "--check", str(broken)], capture_output=True, timeout=60)
    assert result.returncode != 0


def test_the_component_is_built_from_the_files() -> None:
    assert canvas.static_text("canvas.html") == canvas.HTML_TEMPLATE
    assert canvas.static_text("canvas.css") == canvas.CSS_TEMPLATE
    engine, script = canvas.static_text("engine.js"), canvas.static_text("canvas.js")
    assert canvas.JS_ON_LOAD.startswith(engine + "\n" + script)
    assert "pix2pixCanvas(element, props, server, watch)" in canvas.JS_ON_LOAD
    # The page's head starts the same engine early, from the same file, inlined.
    assert engine in canvas.HEAD and "p2pPreload('p2p/preload.json')" in canvas.HEAD
    for name in ("canvas.py", "ui.py"):
        source = (canvas.STATIC.parent / name).read_text()
        assert "addEventListener" not in source, f"{name} holds JavaScript"


def test_templates_reject_what_gr_html_cannot_hold(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(canvas, "STATIC", tmp_path)
    (tmp_path / "bad.css").write_text(".a { content: '${x}'; }")
    with pytest.raises(ValueError, match=r"bad\.css"):
        canvas._template("bad.css")


def test_the_runner_warms_up_on_the_smallest_onnx_model() -> None:
    # runner.js creates a session from these bytes so that onnxruntime-web compiles its
    # WebAssembly while the real model downloads: they must be a valid model doing nothing.
    import base64
    import re

    import numpy as np
    import onnx
    import onnxruntime as rt

    source = canvas.static_text("runner.js")
    encoded = re.search(r"const WARM_MODEL = '([A-Za-z0-9+/=]+)';", source).group(1)
    data = base64.b64decode(encoded)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    x = np.array([0.5], dtype=np.float32)
    (y,) = rt.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert y.tolist() == [0.5]
