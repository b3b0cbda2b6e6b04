"""The Gradio Blocks: Draw, Upload, Compare and About, and the named API endpoints.

API (``gradio_client``): ``/translate`` (image file, model id, seed -> image), ``/compare`` (image
file, group -> gallery of the variants with captions), ``/edges`` (photo, model id, method, auto
thresholds, low, high -> edge map at that model's size) and ``/models`` (the registry with each
model's status). Seeds: -1 or empty = fixed (dropout off); any other integer = a reproducible
variation. Images are decoded by the app itself so a bad upload gets a message naming the problem.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import math
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import gradio as gr
import torch
from PIL import Image

from pix2pix.app import browser
from pix2pix.app.canvas import HEAD, drawing_canvas
from pix2pix.app.imaging import ImageInputError, OutputFiles, open_image, to_data_url
from pix2pix.app.registry import ModelEntry, Registry, load_registry
from pix2pix.app.service import (
    LOADING,
    READY,
    ModelError,
    ModelStore,
    ServedModel,
    photo_edges,
)
from pix2pix.edges import looks_like_drawing
from pix2pix.hub import PAPER_URL

log = logging.getLogger("pix2pix.app")
REMOTE_ENV = "PIX2PIX_REMOTE"  # background | startup | skip
# The live canvas's images: JPEG (quality 92) by default: 38 KB and 0.3 ms to encode for 256 px,
# against 190 KB and 8 ms for PNG. Its download button asks for a PNG.
OUTPUT_FORMAT_ENV = "PIX2PIX_CANVAS_FORMAT"
MAX_SEED = 2**63 - 1
COMPARISONS_KEPT = 16  # recent Compare results kept in memory (App._comparison)
IMAGE_HEIGHT = 380


def upload(value: Any) -> str | None:
    """The file behind an image input of an event run with ``preprocess=False``.

    Such events get the upload's FileData (already checked and moved into Gradio's cache)
    instead of Gradio opening it with Pillow first, which fails on a corrupt file with a generic
    error; the app decodes it itself (``open_image``) and says what is wrong. Plain paths, as
    Python callers pass them, go through unchanged.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        url = value.get("url") or ""
        return url if url.startswith("data:") else value.get("path")
    return str(value)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the app's own input and model errors into messages shown to the user."""
    try:
        yield
    except (ValueError, ModelError) as e:  # ImageInputError is a ValueError
        raise gr.Error(str(e)) from e


def parse_seed(value: Any) -> int | None:
    """-1, None or "" -> None (fixed: dropout off); a non-negative integer -> that seed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"seed must be an integer or -1 for fixed, got {value!r}") from None
    if math.isnan(number) or number != int(number) or number < -1 or number > MAX_SEED:
        raise ValueError(f"seed must be -1 (fixed) or an integer in 0..{MAX_SEED}, got {value!r}")
    return None if number == -1 else int(number)


def default_remote_mode() -> str:
    """``$PIX2PIX_REMOTE``, else ``startup`` with CUDA (ZeroGPU wants models on CUDA at import
    time) and ``background`` on CPU (a cold Space serves the bundled models within seconds)."""
    mode = os.environ.get(REMOTE_ENV)
    if mode:
        return mode
    return "startup" if torch.cuda.is_available() else "background"


def create_store(registry: Registry | None = None, *, remote: str | None = None) -> ModelStore:
    """Read the registry and load its models (see :class:`ModelStore`)."""
    store = ModelStore(registry or load_registry())
    store.load(remote=remote or default_remote_mode())
    return store


def build_demo(store: ModelStore | None = None) -> gr.Blocks:
    """The whole app as ``gr.Blocks``; loads the registry's models unless ``store`` is given."""
    return App(store or create_store()).blocks


def launch_options(demo: gr.Blocks | None = None) -> dict[str, Any]:
    """Arguments for ``demo.launch()``: host and port from the environment, theme, limits and,
    for a ``demo`` made by :func:`build_demo`, what the canvas needs to run models in the
    browser (the ``/p2p/`` routes and the cross-origin isolation headers; see ``browser.py``)."""
    port = os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT")
    app = _APPS.get(demo) if demo is not None else None
    options = {
        "app_kwargs": browser.app_kwargs(
            app.exports if app else None, app.preload_settings if app else None
        ),
        "server_name": os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        "server_port": int(port) if port else None,
        "theme": gr.themes.Soft(primary_hue="indigo", secondary_hue="slate"),
        "max_file_size": "25mb",
        "footer_links": ["api", "gradio"],
    }
    if app is not None and app.exports is not None:
        options["head"] = HEAD  # starts the browser runtime early (canvas.py)
    return options


class App:
    """Builds the Blocks around one ModelStore; handlers are methods so tests can call them."""

    def __init__(self, store: ModelStore, *, browser_mode: bool | None = None) -> None:
        """``browser_mode``: offer running models in the visitor's browser (None: unless
        ``$PIX2PIX_BROWSER=off``; either way only where onnxruntime-web and the export exist)."""
        self.store = store
        self.registry = store.registry
        self.canvas_format = os.environ.get(OUTPUT_FORMAT_ENV, "jpeg")
        self.files = OutputFiles()  # every image handed to Gradio goes through here
        self._compared: OrderedDict[tuple, tuple[list, list]] = OrderedDict()
        self._compared_guard = threading.Lock()
        # Running models in the visitor's browser: where no npm step ran (a Space), onnxruntime-web
        # is fetched once now, in the background; until it is there the server answers.
        self.browser_mode = browser_mode
        self.ort_fetch = browser.start_ort_fetch(wanted=browser_mode)
        off = self.browser_off
        self.exports = (
            browser.OnnxExports(store) if off is None or self.ort_fetch is not None else None
        )
        if self.exports is not None:
            # The default model's export is made now (in the background; after the fetch, if
            # one runs) so that the first visitor's browser gets it at once; the others when
            # first asked for.
            exports, first = self.exports, store.ready_ids()[:1]
            if self.ort_fetch is None:
                exports.prefetch(first)
            else:
                self.ort_fetch.when_ready(lambda: exports.prefetch(first))
        if off is not None and self.ort_fetch is not None:
            log.info("models run on the server until onnxruntime-web is fetched")
        elif off is not None:
            log.info("models run on the server only: %s", off)
        else:
            log.info(
                "the canvas may run models in visitors' browsers (onnxruntime-web %s from %s); "
                "each browser times a run against a server round trip and keeps the faster",
                browser.pinned_ort_version(), browser.ort_dist(),
            )  # fmt: skip
        self.blocks = self._build()
        _APPS[self.blocks] = self

    @property
    def browser_off(self) -> str | None:
        """Why models cannot run in the visitor's browser now, or None when they can."""
        return browser.unavailable_reason(wanted=self.browser_mode)

    # ----------------------------------------------------------------------------------------
    # Handlers
    # ----------------------------------------------------------------------------------------

    def translate(self, image: str | None, model: str, seed: Any) -> str:
        """Translate one image with one model.

        Args:
            image: the model's input (an edge map, a label map or a photo, as the model takes);
                scaled so that its longer side is the model's training size.
            model: a model id (see /models).
            seed: -1 or empty: fixed output; any other integer: a reproducible variation.
        Returns:
            The translated image (PNG).
        """
        return self._translate(image, model, seed)

    def _translate(self, image: str | None, model: str, seed: Any) -> str:
        with user_errors():
            picture = open_image(upload(image), what="input image")
            return self.files.save(self.store.translate(model, picture, parse_seed(seed)))

    def translate_quietly(self, image: str | None, model: str, seed: Any) -> str | None:
        """The Upload tab's automatic run: nothing to do without an image."""
        if image is None:
            return None
        return self._translate(image, model, seed)

    def compare(self, image: str | None, group: str) -> list[tuple[str, str]]:
        """Run one image through every model of a group (fixed seed).

        Args:
            image: the input, as the group's models take it.
            group: a group name (see /models).
        Returns:
            The variants' images, each captioned with its label and receptive field. A group
            with a CycleGAN model starts with the input x, and each CycleGAN output G(x) is
            followed by the cycle back F(G(x)) (the CycleGAN paper's Figure 1 idea).
        """
        with user_errors():
            entries = self.store.group(group)
            picture = open_image(upload(image), what="input image")
            results, skipped = self._comparison(group, picture)
        if skipped:
            gr.Warning("Not shown: " + "; ".join(f"{e.label} ({reason})" for e, reason in skipped))
        if not results:
            raise gr.Error(f"no model of group {group!r} is ready ({len(entries)} listed)")
        shown: list[tuple[str, str]] = []
        cycles = [served for served, _, back in results if back is not None]
        if cycles:  # x as the models see it (their size; a label map on their palette)
            shown.append((self.files.save(cycles[0].prepare(picture)), "x: the input"))
        for served, output, back in results:
            shown.append((self.files.save(output), caption(served)))
            if back is not None:
                shown.append((self.files.save(back), "F(G(x)): the cycle back to x"))
        return shown

    def _comparison(
        self, group: str, picture: Image.Image
    ) -> tuple[
        list[tuple[ServedModel, Image.Image, Image.Image | None]], list[tuple[ModelEntry, str]]
    ]:
        """``store.compare``, remembered for the last few inputs (the seed is fixed, so the same
        input gives the same images): the Compare tab's examples are computed once per process,
        not once per visitor who opens the tab."""
        ready = tuple(e.id for e in self.store.group(group) if self.store.served(e.id))
        key = (group, ready, hashlib.sha256(picture.tobytes()).hexdigest(), picture.size)
        with self._compared_guard:
            if key in self._compared:
                self._compared.move_to_end(key)
                return self._compared[key]
        found = self.store.compare(group, picture)
        with self._compared_guard:
            self._compared[key] = found
            while len(self._compared) > COMPARISONS_KEPT:
                self._compared.popitem(last=False)
        return found

    def compare_examples(self, group: str | None) -> list[str]:
        """The group's example inputs (copies Gradio may serve), for the Compare tab."""
        return self._example_copies(self.registry.group_examples(group))

    def open_compare(self, image: Any, group: str, shown: Any) -> Any:
        """The Compare tab opened: compare its input (pre-filled with the group's first example)
        unless results are already shown or no model of the group is ready yet."""
        if shown or image is None or not self._group_ready(group):
            return gr.skip()
        return self.compare(image, group)

    def on_group(self, group: str) -> tuple:
        """Another group: its examples, its first example as the input, and their comparison."""
        images = self.compare_examples(group)
        first = images[0] if images else None
        results = self.compare(first, group) if first and self._group_ready(group) else None
        return gr.update(value=images or None, visible=bool(images)), first, results

    def pick_compare_example(self, group: str, event: gr.SelectData) -> tuple:
        """Load the clicked example into the Compare input and compare it."""
        images = self.compare_examples(group)
        if not 0 <= event.index < len(images):
            return gr.skip(), gr.skip()
        image = images[event.index]
        return image, self.compare(image, group) if self._group_ready(group) else None

    def _group_ready(self, group: str | None) -> bool:
        groups = self.registry.groups
        return group in groups and any(self.store.served(e.id) for e in groups[group])

    def edges(
        self,
        photo: str | None,
        model: str,
        method: str,
        auto: bool,
        low: float,
        high: float,
        mode: dict | None = None,
    ) -> str | None:
        """A photo's edge map, the input an edge model expects, at that model's size.

        Args:
            photo: any photo.
            model: the id of the model the edge map is for (its training size is used).
            method: "canny" (thin outlines) or "xdog" (ink-like).
            auto: choose Canny's thresholds per image (then low and high are ignored).
            low: Canny's low threshold (gradient magnitude of the 0..255 image).
            high: Canny's high threshold.
        Returns:
            The edge map: black lines on white (PNG). On the Upload tab (``mode`` given), an
            image that already is a line drawing (``pix2pix.edges.looks_like_drawing``: dark
            lines on white, colour-pen dabs too) is kept as it is, scaled to the model's size:
            its edges would lose the dabs' colours and the lines' widths.
        """
        if mode is not None and not mode.get("edges"):
            return gr.skip()  # the Upload tab's pass-through handles this model
        if photo is None and mode is not None:
            return None
        with user_errors():
            picture = open_image(upload(photo), what="photo")
            served = self.store.get(model)
            if mode is not None and looks_like_drawing(picture):
                return self.files.save(served.prepare(picture))
            if method not in ("canny", "xdog"):
                raise ValueError(f"unknown edge method {method!r}; valid: canny, xdog")
            thresholds = (None, None) if auto or method != "canny" else (low, high)
            lines = photo_edges(
                picture,
                served.size,
                method=method,
                low=thresholds[0],
                high=thresholds[1],
                line_width=max(1, round(served.entry.pen or 1)),
            )
            return self.files.save(lines)

    def prepare(self, photo: str | None, model: str, mode: dict | None) -> str | None:
        """The Upload tab's model input for edge maps, label maps and photos (no detection)."""
        if mode is None or mode.get("edges"):
            return gr.skip()
        if photo is None:
            return None
        with user_errors():
            picture = open_image(upload(photo), what="image")
            return self.files.save(self.store.get(model).prepare(picture))

    def translate_drawing(self, payload: Any) -> dict[str, Any]:
        """The canvas's server function: {image, model, seed, format?} -> {image, ms, label} or
        {error}; ``image`` is a data URL both ways."""
        start = time.perf_counter()
        try:
            if not isinstance(payload, dict):
                raise ImageInputError("expected {image, model, seed}")
            served = self.store.get(payload.get("model"))
            drawing = open_image(payload.get("image"), what="drawing")
            seed = parse_seed(payload.get("seed"))
            fmt = payload.get("format") or self.canvas_format
            if fmt not in ("jpeg", "png"):
                raise ValueError(f"format must be 'jpeg' or 'png', got {fmt!r}")
            url = to_data_url(self.store.translate(served.entry.id, drawing, seed), fmt)
        except (ValueError, ModelError) as e:
            return {"error": str(e)}
        ms = (time.perf_counter() - start) * 1000
        return {"image": url, "ms": round(ms, 1), "label": served.entry.name}

    def drawing_image(self, value: str | None) -> str:
        """The canvas's current drawing as an image (for Compare)."""
        if not value:
            raise gr.Error("Draw something in the Draw tab first.")
        with user_errors():
            return self.files.save(open_image(value, what="drawing"))

    def models_info(self) -> list[dict[str, Any]]:
        """Every model of the registry: id, name, task, input kind, size, group, variant,
        status ("ready", "loading" or "unavailable") and the reason when unavailable."""
        rows = []
        for entry in self.registry.models:
            status = self.store.status(entry.id)
            served = self.store.served(entry.id)
            rows.append(
                {
                    "id": entry.id,
                    "name": entry.name,
                    "task": entry.task,
                    "input": served.kind if served else entry.overrides.get("input_kind"),
                    "size": served.size if served else entry.overrides.get("train_size"),
                    "group": entry.group,
                    "variant": entry.variant,
                    "status": status.state,
                    "reason": status.reason,
                }
            )
        return rows

    # ----------------------------------------------------------------------------------------
    # View state
    # ----------------------------------------------------------------------------------------

    def default_model(self) -> str:
        ready = self.store.ready_ids()
        return ready[0] if ready else self.registry.ids[0]

    def preload_settings(self) -> dict[str, Any]:
        """What the page's early start needs: the default model's ``{model, size, browser}``, or
        ``{}`` when it cannot run in the browser now (not loaded yet, no runtime)."""
        settings = self.canvas_settings(self.default_model(), None)
        if not settings.get("browser"):
            return {}
        return {k: settings[k] for k in ("model", "size", "browser")}

    def model_choices(self) -> list[tuple[str, str]]:
        choices = []
        for entry in self.registry.models:
            state = self.store.status(entry.id).state
            suffix = {READY: "", LOADING: " (loading…)"}.get(state, " (unavailable)")
            choices.append((entry.name + suffix, entry.id))
        return choices

    def canvas_settings(self, model: str, seed: Any) -> dict[str, Any]:
        try:
            seed_value = parse_seed(seed)
        except ValueError:
            seed_value = None
        served = self.store.served(model) if model in self.registry.ids else None
        if served is None:
            return {"model": model, "seed": seed_value, "ready": False, "message": self.why(model)}
        task = served.task
        fill = 0
        if served.entry.fill and task.class_names and served.entry.fill in task.class_names:
            fill = task.class_names.index(served.entry.fill)
        return {
            "model": model,
            "seed": seed_value,
            "ready": True,
            "kind": served.kind,
            "size": served.size,
            "palette": task.palette if served.kind == "labels" else None,
            "classes": task.class_names if served.kind == "labels" else None,
            "fill": fill,
            "pen": served.entry.pen,
            "hints": served.kind == "edges" and task.hints,  # the canvas's colour pen
            "browser": browser.browser_settings(self.exports, served) if self.exports else None,
        }

    def why(self, model: str) -> str:
        try:
            self.store.get(model)
        except ModelError as e:
            return str(e)
        return ""

    def model_summary(self, model: str) -> str:
        if model not in self.registry.ids:
            return ""
        entry = self.registry.get(model)
        served = self.store.served(model)
        if served is None:
            return f"**{entry.name}** · {entry.task}  \n⚠️ {self.why(model)}"
        task = served.task
        parts = [f"**{entry.name}**", entry.task or f"{served.kind} → image"]
        parts.append(f"{served.size}×{served.size} px")
        if task.dataset:
            parts.append(f"trained on {task.dataset}")
        if task.license:
            parts.append(f"licence: {task.license}")
        hint = {
            "edges": "Draw black lines on white, or upload a photo (its edges are found for you).",
            "labels": "Paint regions with the label colours, or upload a label map.",
            "photo": "This model translates photos: use the Upload tab (drawing works too).",
        }[served.kind]
        if served.kind == "edges" and task.hints:
            hint += " Dab a colour inside a shape with the colour pen to choose its colour."
        return " · ".join(parts) + "  \n" + hint

    def upload_note(self, model: str) -> str:
        served = self.store.served(model)
        if served is None:
            return ""
        size = served.size
        note = (
            f"Images are scaled so that their longer side is **{size} px**, the size this model "
            f"was trained on; the aspect ratio is kept and the model pads the rest."
        )
        if served.kind == "edges":
            note += (
                " Photos become edge maps first (settings below); drawings (dark lines on white,"
                " colour dabs too) are used as they are."
            )
        elif served.kind == "labels":
            note += " Colours are snapped to the nearest label colour."
        return note

    def examples(self, model: str) -> list[str]:
        if model not in self.registry.ids:
            return []
        return self._example_copies(self.registry.get(model).examples)

    def _example_copies(self, paths: Iterable[Path]) -> list[str]:
        images = []
        for path in paths:
            with contextlib.suppress(ImageInputError):  # an unreadable example is left out
                images.append(self.files.save(open_image(path, what="example")))
        return images

    def about(self) -> str:
        rows = []
        for entry in self.registry.models:
            served = self.store.served(entry.id)
            status = self.store.status(entry.id)
            task = served.task if served else None
            data = task.dataset if task else entry.overrides.get("dataset")
            lic = task.license if task else entry.overrides.get("license")
            state = {READY: "ready", LOADING: "loading…"}.get(
                status.state, "unavailable: " + status.reason
            )
            source = entry.source if not entry.is_local else "bundled"
            if entry.revision:
                source += f"@{entry.revision}"
            name = f"{entry.name} (`{entry.id}`)"
            cells = [name, entry.task, data or "—", lic or "—", source, state]
            rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        header = "| model | task | trained on | licence | source | status |\n" + "|---" * 6 + "|\n"
        table = header + "\n".join(rows)
        return ABOUT.format(paper=PAPER_URL) + table + self._credits() + self._backends()

    def _credits(self) -> str:
        """Each ready model's data credits and the reason for its licence, from the "Data:" part
        of its model card's notes (the bundled line-art model credits five emoji sets there)."""
        lines = []
        for entry in self.registry.models:
            served = self.store.served(entry.id)
            notes = served.task.notes if served else ""
            if "Data:" in notes:
                lines.append(f"- `{entry.id}`: {notes[notes.index('Data:') :].strip()}")
        return "\n\n### Data credits and licences\n" + "\n".join(lines) if lines else ""

    def _backends(self) -> str:
        """How each ready model runs here (``Translator.backend``), chosen by measurement."""
        lines = []
        for entry in self.registry.models:
            served = self.store.served(entry.id)
            if served is not None:
                translator = served.translator
                reason = translator.backend_reason
                if translator.choice is None and self.store.defers_measuring:
                    reason = "PyTorch's rule of thumb until the measurement in the background ends"
                elif not self.store.measures:
                    reason = (
                        "fixed on ZeroGPU (PyTorch, fp16 autocast on the GPU), not measured: a "
                        "timing outside a GPU call would be the CPU's, one inside would spend "
                        "visitors' GPU quota"
                    )
                lines.append(f"- `{entry.id}`: **{translator.backend}**: {reason}")
        return "\n\n### Inference backends on this machine\n" + "\n".join(lines) if lines else ""

    def status_view(self, model: str, seed: Any, as_is: bool) -> tuple:
        """Canvas settings, summary, upload note, edge controls and the Upload tab's mode."""
        served = self.store.served(model)
        edges = served is not None and served.kind == "edges"
        return (
            gr.update(settings=self.canvas_settings(model, seed)),
            self.model_summary(model),
            self.upload_note(model),
            gr.update(visible=edges),
            gr.update(visible=edges and not as_is),
            {"model": model, "edges": edges and not as_is},
        )

    def on_model(self, model: str, seed: Any, as_is: bool) -> tuple:
        examples = self.examples(model)
        examples_update = gr.update(value=examples or None, visible=bool(examples))
        return (*self.status_view(model, seed, as_is), examples_update)

    def refresh(self, model: str, seed: Any, as_is: bool) -> tuple:
        """Page load and, while models load, every few seconds: statuses and choices."""
        return (
            gr.update(choices=self.model_choices()),
            self.about(),
            gr.Timer(active=self.store.loading),
            *self.status_view(model, seed, as_is),
        )

    # ----------------------------------------------------------------------------------------
    # Layout
    # ----------------------------------------------------------------------------------------

    def _build(self) -> gr.Blocks:
        model0 = self.default_model()
        groups = list(self.registry.groups)
        group0 = groups[0] if groups else None
        # The Compare tab opens on its group's first example, compared when the tab is opened.
        compare_examples0 = self.compare_examples(group0)
        # delete_cache: Gradio's copies of inputs and outputs go after an hour.
        with gr.Blocks(title="pix2pix studio", delete_cache=(1800, 3600)) as demo:
            gr.Markdown(HEADER.format(paper=PAPER_URL))
            with gr.Row():
                model = gr.Dropdown(
                    self.model_choices(),
                    value=model0,
                    label="Model",
                    info="What the model turns your image into. Unavailable ones say why.",
                    scale=3,
                )
                with gr.Column(scale=2, min_width=260):
                    seed = gr.Number(
                        value=-1,
                        precision=0,
                        minimum=-1,
                        label="Seed",
                        info="-1: fixed. Other numbers: a variation (the paper's dropout noise).",
                    )
                    with gr.Row():
                        vary = gr.Button("New variation", size="sm")
                        fixed = gr.Button("Fixed", size="sm")
            summary = gr.Markdown(self.model_summary(model0))

            with gr.Tabs():
                with gr.Tab("Draw", id="draw") as draw_tab:
                    canvas = drawing_canvas(
                        self.canvas_settings(model0, -1),
                        self.translate_drawing,
                        elem_id="p2p-canvas",
                    )
                with gr.Tab("Upload", id="upload") as upload_tab:
                    note = gr.Markdown(self.upload_note(model0))
                    with gr.Row(equal_height=False):
                        photo = gr.Image(
                            label="Your image",
                            sources=["upload", "webcam", "clipboard"],
                            type="filepath",
                            height=IMAGE_HEIGHT,
                            elem_id="upload-input",
                        )
                        model_input = gr.Image(
                            label="What the model sees",
                            type="filepath",
                            format="png",
                            interactive=False,
                            height=IMAGE_HEIGHT,
                            elem_id="upload-model-input",
                        )
                        result = gr.Image(
                            label="Result",
                            format="png",
                            interactive=False,
                            height=IMAGE_HEIGHT,
                            buttons=["download", "fullscreen"],
                            elem_id="upload-result",
                        )
                    as_is = gr.Checkbox(label="My image already is an edge map", value=False)
                    with gr.Accordion("Edge detection", open=False) as edge_box:
                        with gr.Row():
                            method = gr.Radio(
                                ["canny", "xdog"],
                                value="canny",
                                label="Method",
                                info="Canny: thin outlines. XDoG: ink-like, keeps more shading.",
                            )
                            auto = gr.Checkbox(
                                value=True,
                                label="Automatic thresholds",
                                info="Chosen per image (Otsu); untick to set them yourself.",
                            )
                        with gr.Row():
                            low = gr.Slider(0, 400, value=50, step=1, label="Low threshold")
                            high = gr.Slider(0, 400, value=100, step=1, label="High threshold")
                    translate_button = gr.Button("Translate again", variant="secondary")
                with gr.Tab("Compare", id="compare") as compare_tab:
                    gr.Markdown(
                        "One input through every model of a group, side by side. The facades "
                        "study keeps the generator and changes only the discriminator's receptive "
                        "field (the paper's Figure 6): small patches give sharp but tiled texture, "
                        "the whole image gives less detail, L1 alone gives blur."
                    )
                    with gr.Row():
                        with gr.Column(scale=1, min_width=260):
                            group = gr.Dropdown(groups, value=group0, label="Group")
                            compare_input = gr.Image(
                                compare_examples0[0] if compare_examples0 else None,
                                label="Input",
                                sources=["upload", "clipboard"],
                                type="filepath",
                                format="png",
                                height=260,
                                elem_id="compare-input",
                            )
                            with gr.Row():
                                use_drawing = gr.Button("Use my drawing", size="sm")
                                use_upload = gr.Button("Use the Upload input", size="sm")
                            run_compare = gr.Button("Compare", variant="primary")
                            compare_examples = gr.Gallery(
                                compare_examples0 or None,
                                label="Examples for this group: click one to compare it",
                                columns=4,
                                height=140,
                                allow_preview=False,
                                buttons=[],
                                visible=bool(compare_examples0),
                                elem_id="compare-examples",
                            )
                        with gr.Column(scale=3):
                            gallery = gr.Gallery(
                                label="Variants",
                                columns=5,
                                format="png",
                                object_fit="contain",
                                height="auto",
                                elem_id="compare-gallery",
                            )
                with gr.Tab("About", id="about") as about_tab:
                    about = gr.Markdown(self.about())

            # The model's examples, for the Draw and Upload tabs (Compare has its group's own).
            with gr.Column() as examples_box:
                examples = gr.Gallery(
                    self.examples(model0) or None,
                    label="Examples: click one to load it into the canvas and the Upload tab",
                    columns=8,
                    fit_columns=False,
                    height=150,
                    allow_preview=False,
                    buttons=[],
                    visible=bool(self.examples(model0)),
                    elem_id="examples",
                )
            mode = gr.State(None)
            timer = gr.Timer(2.0, active=self.store.loading)

            # --- model, seed, page load -----------------------------------------------------
            view = [canvas, summary, note, as_is, edge_box, mode]
            hidden = {"show_progress": "hidden", "api_visibility": "private"}
            model.change(self.on_model, [model, seed, as_is], [*view, examples], **hidden)
            seed.change(
                lambda m, s: gr.update(settings=self.canvas_settings(m, s)),
                [model, seed],
                canvas,
                **hidden,
            )
            as_is.change(self.status_view, [model, seed, as_is], view, **hidden)
            vary.click(lambda: random.randint(0, 99_999), None, seed, **hidden)
            fixed.click(lambda: -1, None, seed, **hidden)
            refreshed = [model, about, timer, *view]
            demo.load(self.refresh, [model, seed, as_is], refreshed, **hidden)
            timer.tick(self.refresh, [model, seed, as_is], refreshed, **hidden)

            # --- Upload tab -------------------------------------------------------------------
            # preprocess=False: image inputs arrive as files the handlers decode themselves.
            raw = {"preprocess": False}
            gr.on(
                [photo.change, mode.change, method.change, auto.change, low.release, high.release],
                self.edges,
                [photo, model, method, auto, low, high, mode],
                model_input,
                api_name="edges",
                show_progress="minimal",
                **raw,
            )
            gr.on(
                [photo.change, mode.change],
                self.prepare,
                [photo, model, mode],
                model_input,
                api_visibility="private",
                show_progress="minimal",
                **raw,
            )
            gr.on(
                [model_input.change, seed.change],
                self.translate_quietly,
                [model_input, model, seed],
                result,
                api_visibility="private",
                **raw,
            )
            translate_button.click(
                self.translate, [model_input, model, seed], result, api_name="translate", **raw
            )

            # --- Compare tab ------------------------------------------------------------------
            use_drawing.click(self.drawing_image, canvas, compare_input, **hidden)
            use_upload.click(lambda p: p, model_input, compare_input, **hidden)
            run_compare.click(
                self.compare, [compare_input, group], gallery, api_name="compare", **raw
            )
            compare_tab.select(
                self.open_compare, [compare_input, group, gallery], gallery, **hidden, **raw
            )
            group.change(self.on_group, group, [compare_examples, compare_input, gallery], **hidden)
            compare_examples.select(
                self.pick_compare_example, group, [compare_input, gallery], **hidden
            )
            for tab, shown in ((draw_tab, True), (upload_tab, True), (compare_tab, False),
                               (about_tab, False)):  # fmt: skip
                tab.select(_visible(shown), None, examples_box, **hidden)

            # --- examples ---------------------------------------------------------------------
            examples.select(self.pick_example, model, [canvas, photo], **hidden)

            gr.api(self.models_info, api_name="models")
        return demo

    def pick_example(self, model: str, event: gr.SelectData) -> tuple:
        """Load the clicked example into the canvas and the Upload tab."""
        paths = self.registry.get(model).examples if model in self.registry.ids else ()
        if not 0 <= event.index < len(paths):
            return gr.skip(), gr.skip()
        with user_errors():
            image = open_image(paths[event.index], what="example")
        load = {"url": to_data_url(image, "png"), "nonce": time.time()}
        return gr.update(load=load), self.files.save(image)


# The App behind each Blocks it built (for launch_options).
_APPS: WeakKeyDictionary[gr.Blocks, App] = WeakKeyDictionary()


def _visible(shown: bool) -> Any:
    return lambda: gr.update(visible=shown)


def caption(served: ServedModel) -> str:
    """A Compare caption: the variant label and the discriminator's receptive field (a CycleGAN
    model's G(x) says so: its discriminators see the output alone, no pairs)."""
    patch = served.task.patch
    field = f"{patch}×{patch} receptive field" if patch else "no patch discriminator"
    if served.reverse is not None:  # the distinguishing part first: captions are cut short
        return f"G(x): {served.entry.label} · {field}"
    return f"{served.entry.label} · {field}"


def _cell(text: str) -> str:
    return html.escape(str(text)).replace("|", "\\|").replace("\n", " ")


HEADER = """\
# pix2pix studio
Draw, upload or compare: image-to-image translation with **pix2pix**
([Isola et al., CVPR 2017]({paper})). Pick a model, then draw: the result follows your pen.
"""

ABOUT = """\
### What is pix2pix?
pix2pix learns to turn one kind of image into another from pairs of examples: edge maps into
photos, label maps into facades, day into night. A U-Net *generator* makes the output. A
*discriminator* looks at patches of the output next to the input and judges whether they look
real; its receptive field (1, 16, 70 or 286 pixels in the paper) sets the scale of the texture it
enforces. An L1 loss keeps the output close to the target. At test time the generator's dropout can
stay on as the noise *z*: each seed here gives a different, reproducible variation.

Paper: Phillip Isola, Jun-Yan Zhu, Tinghui Zhou, Alexei A. Efros, *Image-to-Image Translation with
Conditional Adversarial Networks*, CVPR 2017, [arXiv:1611.07004]({paper}).

### And CycleGAN?
CycleGAN learns the same kind of translation without pairs: from two separate sets of images (label
maps in one, facade photos in the other). It trains two generators, G from A to B and F back, and
asks that F(G(x)) come back to x (the *cycle loss*), since no target says what G(x) should be. The
Compare tab shows x, G(x) and the cycle back F(G(x)) beside pix2pix trained on the pairs: the
bundled facades pair was trained both ways on the same data and budget.

Paper: Jun-Yan Zhu, Taesung Park, Phillip Isola, Alexei A. Efros, *Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks*, ICCV 2017,
[arXiv:1703.10593](https://arxiv.org/abs/1703.10593).

### Models
"""
