"""The live drawing canvas: a plain ``<canvas>`` in a ``gr.HTML`` component, no frontend build.

The browser code lives in real files in ``pix2pix/app/static/`` (read here once): ``canvas.html``
(markup), ``canvas.css``, ``canvas.js`` (drawing, undo, where the model runs, latest-wins updates),
``engine.js`` (the page's side of the browser runtime, shared with the early start in the page's
head: :data:`HEAD`) and ``runner.js`` (the worker that runs the ONNX export with onnxruntime-web).
``canvas.js`` defines one function, ``pix2pixCanvas(element, props, server, watch)``; gr.HTML's
``js_on_load`` is ``engine.js``, ``canvas.js`` and the call. The static site (``pix2pix.site``)
uses the same files.

Python talks to it through two props: ``settings`` (model, seed, input kind, size, palette,
``hints`` (the model takes colour-hint dabs: the canvas shows its colour pen) and, when the
browser can run the model, the URLs of its ONNX file, onnxruntime-web and the worker; set when
the model or seed changes) and ``load`` (an image data URL to paint onto the canvas, e.g.
an example). The component's ``value`` is the current drawing as a PNG data URL at the model's
resolution, updated at the end of every stroke, so other events (Compare) can read it. The server
function ``translate_drawing`` answers when the model runs on the server (see ``canvas.js``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

STATIC = Path(__file__).with_name("static")


def static_text(name: str) -> str:
    """The text of one of the canvas's files in ``pix2pix/app/static``."""
    return (STATIC / name).read_text(encoding="utf-8")


def _template(name: str) -> str:
    # gr.HTML evaluates html_template and css_template as Handlebars, then as a JavaScript template
    # literal: neither may hold a backtick, a dollar-brace or a double brace.
    text = static_text(name)
    for bad in ("`", "${", "{{"):
        if bad in text:
            raise ValueError(f"{name} contains {bad!r}, which gr.HTML's templates cannot hold")
    return text


HTML_TEMPLATE = _template("canvas.html")
CSS_TEMPLATE = _template("canvas.css")
# Runs once per page with element, props, server, watch (see gr.HTML's js_on_load).
_ENGINE_JS = static_text("engine.js")
_CALL = "\npix2pixCanvas(element, props, server, watch);\n"
JS_ON_LOAD = _ENGINE_JS + "\n" + static_text("canvas.js") + _CALL
# For launch(head=...): Gradio applies the head about 0.7 s into the page load, well before its
# components (the canvas) run (about 2 s here), so the worker, onnxruntime-web and the default
# model's download, session and timing start there. The URL answers with the default model's
# settings (browser.py); relative, so the app works under any root path.
HEAD = "<script>\n" + _ENGINE_JS + "\np2pPreload('p2p/preload.json');\n</script>\n"
if "</script" in _ENGINE_JS:
    raise ValueError("engine.js must not contain '</script': it is inlined into the page's head")


def drawing_canvas(
    settings: dict[str, Any], translate: Callable[[Any], dict], **kwargs: Any
) -> gr.HTML:
    """The canvas component; ``translate(payload) -> dict`` answers ``server.translate_drawing``."""

    # gr.HTML exposes server functions to JavaScript by their __name__ (and marks them, which a
    # bound method does not allow), hence this plain function.
    def translate_drawing(payload: Any) -> dict:
        return translate(payload)

    return gr.HTML(
        value="",
        html_template=HTML_TEMPLATE,
        css_template=CSS_TEMPLATE,
        js_on_load=JS_ON_LOAD,
        apply_default_css=False,
        server_functions=[translate_drawing],
        settings=settings,
        load=None,
        **kwargs,
    )
