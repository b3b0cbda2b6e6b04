"""The models the app serves: loaded once at start, kept resident, run by the request handlers.

Bundled models (local paths) load before the app starts serving. Models from the Hub or a URL are
downloaded and loaded at start too, in a background thread by default on CPU hosts, so that a
cold Space answers within seconds while large checkpoints arrive; they join the picker when ready.
Nothing is downloaded while answering a request. A model that fails to load is marked unavailable
with the reason and never stops the app.

On ZeroGPU (``gpu.zero_gpu()``) the main process only emulates CUDA, so nothing is measured or run
on the device outside an ``@on_gpu`` call: models run on a fixed path (PyTorch with fp16
autocast, no warm-up) and their ONNX exports read a CPU copy of the weights.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pix2pix import backends
from pix2pix import edges as edge_maps
from pix2pix.app.gpu import on_gpu, zero_gpu
from pix2pix.app.imaging import fit_long_side, snap_to_palette
from pix2pix.app.registry import ModelEntry, Registry
from pix2pix.hub import TaskInfo, holds_both_directions, load_generator
from pix2pix.inference import Translator, best_device

log = logging.getLogger("pix2pix.app")

READY, LOADING, UNAVAILABLE = "ready", "loading", "unavailable"
DEFAULT_SIZE = 256


class ModelError(LookupError):
    """A request named a model or group that does not exist or cannot run; says which exist."""


@dataclass(frozen=True)
class ModelStatus:
    """Where one registry entry stands: ready, loading, or unavailable with the reason."""

    state: str
    reason: str = ""
    seconds: float = 0.0  # time to load and warm up


@dataclass(frozen=True)
class ServedModel:
    """A loaded model with its merged task metadata and its resident translator."""

    entry: ModelEntry
    task: TaskInfo
    size: int  # the side the model was trained on; inputs are scaled so their long side is this
    translator: Translator
    architecture: str
    # The weights on the CPU in fp32, for what reads them outside a request (ONNX exports and
    # their hashes): the translator's own model on a CPU host, a copy made before the move to the
    # device elsewhere (on ZeroGPU the device copy may only be touched inside a GPU call).
    cpu_model: nn.Module
    # A CycleGAN model's generator for the other direction (F for this G), for the cycle view
    # F(G(x)); None for a model that holds one generator.
    reverse: Translator | None = None

    @property
    def kind(self) -> str:
        """``edges``, ``labels`` or ``photo``."""
        return self.task.input_kind or "photo"

    def prepare(self, image: Image.Image) -> Image.Image:
        """Apply the app's input policy: long side = training size; labels snapped to palette."""
        labels = self.kind == "labels"
        image = fit_long_side(image, self.size, nearest=labels)
        return snap_to_palette(image, self.task.palette) if labels else image


class ModelStore:
    """Loads the registry's models and runs them; thread-safe."""

    def __init__(
        self,
        registry: Registry,
        *,
        device: str | torch.device | None = None,
        precision: str = "auto",
    ) -> None:
        self.registry = registry
        self.device = torch.device(device) if device is not None else best_device()
        self.precision = precision
        # ZeroGPU: a timing outside a GPU call would be the CPU's under CUDA emulation, and one
        # inside would spend a visitor's GPU quota; models run on a fixed path instead.
        self.measures = not zero_gpu()
        self._served: dict[str, ServedModel] = {}
        self._status = {e.id: ModelStatus(LOADING, "waiting to load") for e in registry.models}
        self._guard = threading.Lock()
        self._background: list[threading.Thread] = []
        self.key = uuid.uuid4().hex
        _STORES[self.key] = self

    # ----------------------------------------------------------------------------------------
    # Loading
    # ----------------------------------------------------------------------------------------

    def load(self, *, remote: str = "background") -> None:
        """Load local models now; remote ones now (``startup``), in a thread (``background``),
        or not at all (``skip``: they are listed as unavailable).

        On the CPU, models start on PyTorch's rule-of-thumb path (packed oneDNN in fp32) and
        the fastest path is measured afterwards, one model at a time, in a background thread
        (``Translator(backend="auto")`` on a copy, then swapped in): a first start on a new
        machine measures every candidate, and ONNX Runtime's and OpenVINO's need an ONNX export
        of each model, minutes in all on 2 vCPUs. With the choices cached (later starts) each
        swap takes a moment. On CUDA the measurement happens at load, as before; on ZeroGPU
        there is none (``measures``).

        Background loading of remote models runs in its own thread, beside the measurement: one
        that cannot be had (offline and not cached) is unavailable within moments, not after
        every other model's measurement.
        """
        if remote not in ("background", "startup", "skip"):
            raise ValueError(f"remote must be 'background', 'startup' or 'skip', got {remote!r}")
        if remote == "background" and zero_gpu():
            # CUDA is emulated in the main thread only: a loader thread could not move models.
            log.info("ZeroGPU: Hub and URL models load at start-up, not in the background")
            remote = "startup"
        local = [e for e in self.registry.models if e.is_local]
        others = [e for e in self.registry.models if not e.is_local]
        for entry in local:
            self._load_one(entry)
        later: list[ModelEntry] = []
        if remote == "skip":
            for entry in others:
                self._set(entry.id, ModelStatus(UNAVAILABLE, "remote models are switched off"))
        elif remote == "startup":
            for entry in others:
                self._load_one(entry)
        else:
            later = others
        loaded = [e for e in self.registry.models if e not in later]
        loader = None
        if later:

            def load_later() -> None:
                for entry in later:
                    self._load_one(entry)

            loader = self._start("pix2pix-model-loader", load_later)
        if self.defers_measuring:

            def measure() -> None:
                for entry in loaded:
                    self._measure_one(entry.id)
                if loader is not None:  # then the remote models, once loaded
                    loader.join()
                    for entry in later:
                        self._measure_one(entry.id)

            self._start("pix2pix-backend-measurer", measure)

    def _start(self, name: str, work: Callable[[], None]) -> threading.Thread:
        """Run ``work`` in a daemon thread that :meth:`wait` waits for."""
        thread = threading.Thread(target=work, name=name, daemon=True)
        self._background.append(thread)
        thread.start()
        return thread

    @property
    def defers_measuring(self) -> bool:
        """Whether models start on the rule-of-thumb path and are measured in the background."""
        return self.measures and self.device.type == "cpu" and self.precision in ("auto", "fp32")

    def _measure_one(self, model_id: str) -> None:
        """Measure ``model_id``'s fastest path on a copy (``backend="auto"``) and swap it in."""
        served = self.served(model_id)
        if served is None:
            return
        try:
            model = copy.deepcopy(served.translator.model)
            # In the background, the compiled candidates are worth their compile time too.
            compiled = backends.default_candidates(self.device, compiled=True)
            twin = Translator(model, device=self.device, precision=self.precision,
                              norm=served.entry.norm, candidates=compiled)  # fmt: skip
            with backends.model_named(model_id):
                twin(Image.new("RGB", (served.size, served.size), "white"))
        except Exception as e:  # the rule-of-thumb path keeps serving
            log.warning("measuring the backends of %s failed: %s", model_id, e)
            return
        with self._guard:
            if self._served.get(model_id) is served:
                self._served[model_id] = dataclasses.replace(served, translator=twin)
        how = "cached choice" if twin.choice is not None and twin.choice.cached else "measured"
        log.info("model %s now runs on backend %s (%s)", model_id, twin.backend, how)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for background work (remote models, backend measurement); True when done."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._background:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                return False
        return not self.loading

    @property
    def loading(self) -> bool:
        """Whether some model is still being loaded."""
        with self._guard:
            return any(s.state == LOADING for s in self._status.values())

    def _set(self, model_id: str, status: ModelStatus) -> None:
        with self._guard:
            self._status[model_id] = status

    def _load_one(self, entry: ModelEntry) -> None:
        self._set(entry.id, ModelStatus(LOADING, "loading"))
        log.info("loading model %s ...", entry.id)
        start = time.perf_counter()
        try:
            served = self._build(entry)
        except Exception as e:  # a broken or unreachable model must not stop the app
            reason = str(e).strip() or type(e).__name__
            log.warning("model %s unavailable: %s", entry.id, reason)
            self._set(entry.id, ModelStatus(UNAVAILABLE, reason))
            return
        seconds = time.perf_counter() - start
        with self._guard:
            self._served[entry.id] = served
            self._status[entry.id] = ModelStatus(READY, seconds=seconds)
        choice = served.translator.choice
        how = "" if choice is None else " (cached choice)" if choice.cached else " (measured now)"
        log.info("model %s ready on %s in %.1f s; backend %s%s", entry.id, self.device, seconds,
                 served.translator.backend, how)  # fmt: skip

    def _build(self, entry: ModelEntry) -> ServedModel:
        if entry.is_local and not Path(entry.source).exists():
            shown = _relative(Path(entry.source), self.registry.path.parent)
            raise FileNotFoundError(f"{shown} not found")
        # A CycleGAN source holds both generators: the entry's direction picks one, and the
        # other comes along for the cycle view. Of a single generator, a registry direction only
        # describes it (an override of its metadata, as the other keys are).
        direction = entry.overrides.get("direction")
        pair = holds_both_directions(entry.source, revision=entry.revision)
        model = load_generator(
            entry.source, revision=entry.revision, direction=direction if pair else None
        )
        back = None
        if pair:
            other = "BtoA" if model.task.direction == "AtoB" else "AtoB"
            back = load_generator(entry.source, revision=entry.revision, direction=other)
        task = dataclasses.replace(model.task, **entry.overrides)
        if task.input_kind is None:
            raise ValueError("its config has no input kind; set 'input' in the registry")
        if task.input_kind == "labels" and not task.palette:
            raise ValueError("a label model needs a palette (in its config or the registry)")
        model.task = task
        size = task.train_size or max(model.size_multiple, 1)
        if size < 32:
            size = DEFAULT_SIZE
        # Copied before the translator moves the model (on ZeroGPU, out of reach of this process).
        cpu_model = None if self.device.type == "cpu" else copy.deepcopy(model).float().eval()
        measured = self.measures and not self.defers_measuring  # see load()
        translator = Translator(
            model,
            device=self.device,
            precision=self.precision,
            norm=entry.norm,
            backend="auto" if measured else "torch",
        )
        if self.measures:
            # Warm-up: the first pass allocates and picks kernels, before the first user waits.
            # Not on ZeroGPU: there it would run on the CPU under emulation and warm nothing.
            translator(Image.new("RGB", (size, size), "white"))
        cpu_model = translator.model if cpu_model is None else cpu_model
        reverse = None
        if back is not None:  # PyTorch's rule-of-thumb path: it runs only for the cycle view
            reverse = Translator(back, device=self.device, precision=self.precision,
                                 norm=entry.norm, backend="torch")  # fmt: skip
        return ServedModel(entry, task, size, translator, model.architecture, cpu_model, reverse)

    # ----------------------------------------------------------------------------------------
    # Queries
    # ----------------------------------------------------------------------------------------

    def status(self, model_id: str) -> ModelStatus:
        """The status of one entry."""
        with self._guard:
            return self._status[model_id]

    def served(self, model_id: str) -> ServedModel | None:
        """The loaded model, or None while it is not ready."""
        with self._guard:
            return self._served.get(model_id)

    def ready_ids(self) -> list[str]:
        """Ids of the models that can run now, in registry order."""
        with self._guard:
            return [e.id for e in self.registry.models if e.id in self._served]

    def get(self, model_id: str | None) -> ServedModel:
        """The loaded model ``model_id``; ModelError says why not and lists the ready ones."""
        ids = self.registry.ids
        if not model_id or model_id not in ids:
            raise ModelError(f"unknown model {model_id!r}; valid models: {', '.join(ids)}")
        served = self.served(model_id)
        if served is None:
            status = self.status(model_id)
            ready = ", ".join(self.ready_ids()) or "none yet"
            if status.state == LOADING:
                raise ModelError(f"model {model_id!r} is still loading; ready now: {ready}")
            raise ModelError(f"model {model_id!r} is unavailable ({status.reason}); ready: {ready}")
        return served

    def group(self, name: str | None) -> list[ModelEntry]:
        """The entries of group ``name``; ModelError lists the valid groups."""
        groups = self.registry.groups
        if not name or name not in groups:
            valid = ", ".join(groups) or "none"
            raise ModelError(f"unknown group {name!r}; valid groups: {valid}")
        return groups[name]

    # ----------------------------------------------------------------------------------------
    # Running
    # ----------------------------------------------------------------------------------------

    def translate(self, model_id: str, image: Image.Image, seed: int | None = None) -> Image.Image:
        """Run one model on one image (after the input policy of :meth:`ServedModel.prepare`)."""
        self.get(model_id)  # the error for an unknown or unavailable model, before the GPU call
        return _run(self.key, [model_id], image, seed)[0][0]

    def cycle(
        self, model_id: str, image: Image.Image, seed: int | None = None
    ) -> tuple[Image.Image, Image.Image]:
        """A CycleGAN model's G(x) and the cycle back F(G(x)) (the CycleGAN paper's Figure 1
        idea: how much of x survives the round trip); ModelError for a model without a reverse
        generator."""
        served = self.get(model_id)
        if served.reverse is None:
            cycles = [e.id for e in self.registry.models if (s := self.served(e.id)) and s.reverse]
            raise ModelError(
                f"model {model_id!r} holds one generator, so it has no cycle F(G(x)); CycleGAN "
                f"models that do: {', '.join(cycles) or 'none ready'}"
            )
        output, back = _run(self.key, [model_id], image, seed, cycle=True)[0]
        assert back is not None
        return output, back

    def compare(
        self, group: str, image: Image.Image, seed: int | None = None
    ) -> tuple[
        list[tuple[ServedModel, Image.Image, Image.Image | None]], list[tuple[ModelEntry, str]]
    ]:
        """Run every ready variant of ``group`` on ``image``; returns (results, skipped+reason).

        Each result is (model, G(x), F(G(x))): the cycle back is there for CycleGAN models (the
        ones with a reverse generator), None for the others."""
        ready, skipped = [], []
        for entry in self.group(group):
            served = self.served(entry.id)
            if served is None:
                skipped.append((entry, self.status(entry.id).reason or "loading"))
            else:
                ready.append(served)
        ids = [s.entry.id for s in ready]
        outputs = _run(self.key, ids, image, seed, cycle=True) if ready else []
        return [(s, out, back) for s, (out, back) in zip(ready, outputs, strict=True)], skipped


# ZeroGPU runs @on_gpu functions in a worker process and pickles their arguments and results, so
# the function that runs models is module-level, takes plain values and finds its store by key.
_STORES: weakref.WeakValueDictionary[str, ModelStore] = weakref.WeakValueDictionary()


@on_gpu()
def _run(
    store_key: str,
    model_ids: list[str],
    image: Image.Image,
    seed: int | None,
    *,
    cycle: bool = False,
) -> list[tuple[Image.Image, Image.Image | None]]:
    """Each model on ``image`` (one batch per model, all in one call): (G(x), F(G(x)) or None).

    With ``cycle``, a model with a reverse generator also runs it on its own output, as the
    CycleGAN paper's cycle does (the raw output, not snapped to a palette)."""
    store = _STORES[store_key]
    outputs = []
    for model_id in model_ids:
        served = store.get(model_id)
        output = served.translator([served.prepare(image)], seed=seed)[0]
        back = None
        if cycle and served.reverse is not None:
            back = served.reverse([output], seed=seed)[0]
        outputs.append((output, back))
    return outputs


def photo_edges(
    image: Image.Image,
    size: int,
    *,
    method: str = "canny",
    low: float | None = None,
    high: float | None = None,
    line_width: int = 1,
) -> Image.Image:
    """A photo's edge map at ``size`` (long side), drawn like the model's training input.

    The photo is scaled first, so lines are ``line_width`` pixels wide at the model's scale: 1 for
    models trained on ``pix2pix.edges`` maps, the line art's width for line-art models (whose
    outlines are several pixels wide). Wide lines are detected on a half-size copy, which keeps
    the longer outlines a person would draw and drops fine texture that would fill the image.
    """
    photo = fit_long_side(image, size)
    coarse = line_width >= 3
    lines = edge_maps.photo_to_edges(
        np.asarray(photo),
        method=method,
        low=low,
        high=high,
        line_width=line_width,
        max_side=max(1, size // 2) if coarse else None,
        min_fragment=24 if coarse else 12,
    )
    return edge_maps.edges_to_pil(lines)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
