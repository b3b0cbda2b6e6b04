"""Inference backends, and the choice among them by measurement on the machine at hand.

A *candidate* is one way to run a generator in the paper's test mode with dropout off: PyTorch
eager fp32, PyTorch with convolution weights packed for oneDNN (``pix2pix.onednn``), bf16 weights
in channels-last layout (only where the CPU computes bf16 natively: ``avx512_bf16`` or
``amx_bf16``), ONNX Runtime and OpenVINO (when installed: ``pip install pix2pix-studio[fast]``;
both run the file ``pix2pix.export`` writes), the model compiled by ``torch.compile`` (below), and
on CUDA fp16 weights in channels-last layout, with and without a captured CUDA graph.

Compiled candidates (CPU only): ``inductor-fp32`` everywhere, and ``inductor-bf16-channels-last``
(bf16 weights, channels-last) where the CPU computes bf16 natively; measurement decides between
them and the rest. Each is a copy of the model in its test mode, exported by ``torch.export`` (the
graph ``torch.compile`` would trace: ``networks.compiled_export``) and compiled ahead of time by
AOTInductor with ``freezing`` (weights folded in as constants; convolution weights pre-packed) into
one package for the one input shape it is built for (``Context.shape``; batch 1 at the model's
training size, padded to the network's multiple, in the app). Calls run the package's C++ directly:
no guards to check and no Python wrapper. They are measured where compiling pays: by the app, in
the background, and where asked for (``default_candidates(device, compiled=True)`` passed as a
``Translator``'s ``candidates``, or named in ``$PIX2PIX_BACKENDS``), not by default in a command or
script whose process may only translate a few images. Building it the first time compiles it, on
the building thread: for a 256-px U-Net on 2 AMD EPYC vCPUs 12-25 s (lineart2color to the
paper's generator). A generator with a hint propagation calls its rounds in a native kernel
(``pix2pix.hint_spread``, built once per CPU in under a second with the same compiler): inductor's
own code for its 96 rounds took 50-90 s to compile and ran 4x slower. The package is kept in
``package_path`` (``<cache>/compiled``, keyed by the weights, the code, the shape, the precision,
the CPU, the threads and torch's version), and a later start loads it in about a second instead of
compiling (PERFORMANCE, entry 38); once ``choose`` has measured, only the chosen candidate's
package is kept; inductor's own files go to ``inductor_cache_dir()``. The app never builds one on a
request's thread: it measures in the background (``pix2pix.app.service``) and serves on PyTorch's
rule-of-thumb path until then. Other shapes never compile: an input of another shape runs the same
copy uncompiled (bf16) or its packed oneDNN twin (fp32), at eager speed. So the worst case is one
compilation per runner, whatever the inputs. No C++ compiler (``cxx_compiler``) or a Python that
``torch.compile`` does not support makes them ``Unavailable``. On CUDA they are not offered: fp16
and CUDA graphs are measured there, and ZeroGPU Spaces do not support ``torch.compile``.

``choose`` builds the available candidates, runs each on a test input of the real shape, drops
those whose output is below ``MIN_PSNR`` dB against fp32 eager, times the rest (each with the
``Translator``'s 8-bit conversion of the output) in blocks of calls, in rounds of rotating order,
and takes the fastest median. fp32 eager is always measured, so the choice is never slower
than it on the measurement. The result is cached in ``<cache>/backends.json`` (``hub.cache_dir``)
under a key made of the machine (CPU model and flags, GPU name, threads), the library versions,
a hash of the model's weights, the input shape and the test mode, so a later start only builds
the chosen candidate. ONNX files for the runtime candidates are cached beside it.

The CUDA candidates could not be run where this was written (no GPU); they are built defensively
and a failure to build or a mismatch only removes them from the choice.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix import networks, onednn
from pix2pix.files import atomic_write

log = logging.getLogger(__name__)

MIN_PSNR = 40.0  # dB against fp32 eager, peak-to-peak 2 (outputs in [-1, 1])
BASELINE = "eager-fp32"
CACHE_NAME = "backends.json"
CACHE_VERSION = 2  # 2: timed in blocks with the 8-bit conversion; ORT threads do not spin
ENV_CANDIDATES = "PIX2PIX_BACKENDS"  # comma-separated names: limits what "auto" measures

Runner = Callable[[torch.Tensor], torch.Tensor]


class Unavailable(RuntimeError):
    """A candidate cannot run here; the message says why."""


@dataclass(frozen=True)
class Context:
    """What a candidate needs to build its runner.

    ``model``: the generator in fp32 on ``device`` (shared, not to be changed); ``input_stats``:
    the paper's per-image normalisation (else running statistics); ``shape``: the (B, C, H, W)
    input the runner is measured on; ``model_hash``: see ``model_hash``.
    """

    model: nn.Module
    device: torch.device
    input_stats: bool
    shape: tuple[int, ...]
    model_hash: str
    fp32_only: bool = False


@dataclass(frozen=True)
class Candidate:
    """One way to run a generator: ``build(ctx)`` returns a runner or raises ``Unavailable``.

    A runner maps a (B, C, H, W) float32 tensor in [-1, 1] on ``ctx.device`` to the generator's
    float32 output on the same device. ``fp32``: computes in float32 (kept when the caller asks
    for fp32 only).
    """

    name: str
    build: Callable[[Context], Runner]
    fp32: bool = True
    device_type: str = "cpu"


@dataclass
class Measurement:
    """One candidate's result: ``status`` is ``ok``, ``rejected`` (PSNR) or ``unavailable``."""

    name: str
    status: str
    p50_ms: float | None = None
    p95_ms: float | None = None
    psnr_db: float | None = None
    build_s: float | None = None
    note: str = ""


@dataclass
class Choice:
    """The candidate ``choose`` picked, why, and every measurement behind it."""

    name: str
    reason: str
    shape: tuple[int, ...]
    measurements: list[Measurement] = field(default_factory=list)
    cached: bool = False
    when: str = ""

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Choice:
        measurements = [Measurement(**m) for m in data.get("measurements", [])]
        return cls(
            name=data["name"],
            reason=data["reason"],
            shape=tuple(data["shape"]),
            measurements=measurements,
            cached=True,
            when=data.get("when", ""),
        )


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------

_FLAGS_OF_INTEREST = (
    "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "avx_vnni", "asimd", "sve", "bf16",
)  # fmt: skip


def cpu_info() -> dict[str, Any]:
    """The CPU model name and the SIMD flags that matter here (Linux ``/proc/cpuinfo``)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return {
        "model": model,
        "flags": sorted(flags.intersection(_FLAGS_OF_INTEREST)),
        "cores": os.cpu_count(),
        "torch_capability": _torch_capability(),
        "avx512_off": avx512_off(),
    }


# oneDNN's names for the instruction sets below AVX512-BF16 (``ONEDNN_MAX_CPU_ISA``).
_ONEDNN_BELOW_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                      "AVX512_CORE_VNNI")  # fmt: skip


def avx512_off() -> str | None:
    """The environment settings that keep the libraries below AVX-512, or None.

    ``ATEN_CPU_CAPABILITY=avx2`` (or ``default``) caps PyTorch's own kernels and the code that
    ``torch.compile`` generates; ``ONEDNN_MAX_CPU_ISA`` (``DNNL_MAX_CPU_ISA``) caps oneDNN's
    convolutions, which compute bf16 natively only from ``AVX512_CORE_BF16`` up. With either, a
    CPU that has AVX-512 runs as one without it (bench measures an AVX2-only CPU that way).
    """
    found = []
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").strip().lower()
    if aten in ("default", "avx2"):
        found.append(f"ATEN_CPU_CAPABILITY={aten}")
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip().upper()
        if value in _ONEDNN_BELOW_BF16:
            found.append(f"{name}={value}")
    return ", ".join(found) or None


def _torch_capability() -> str:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return "unknown"


def no_native_bf16() -> str:
    """Why bf16 is not native here, for messages ("no native bf16" in both)."""
    off = avx512_off()
    if off and set(cpu_info()["flags"]) & {"avx512_bf16", "amx_bf16"}:
        return f"no native bf16 with AVX-512 switched off ({off})"
    return "this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag)"


def native_bf16() -> bool:
    """Whether the CPU computes bf16 in hardware (AVX512-BF16 or AMX-BF16), per its flags.

    PyTorch's own test (``mkldnn._is_mkldnn_bf16_supported``) also says yes on plain AVX512,
    where bf16 is emulated and slower than fp32; the flags do not. No where the environment
    keeps the libraries below AVX-512 (``avx512_off``).
    """
    info = cpu_info()
    return bool(set(info["flags"]) & {"avx512_bf16", "amx_bf16"}) and not info["avx512_off"]


def machine_key(device: torch.device) -> dict[str, Any]:
    """What a measurement depends on besides the model: hardware, threads, library versions."""
    key: dict[str, Any] = {
        "cpu": cpu_info(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device.type,
    }
    if device.type == "cuda":
        key["gpu"] = torch.cuda.get_device_name(device)
    for module in ("onnxruntime", "openvino", "onnx"):
        key[module] = _version(module)
    return key


def _version(module: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return None


# The library's files that define what a generator computes and how it is exported.
GRAPH_SOURCES = ("networks.py", "hub.py", "export.py")


@functools.cache
def graph_source_hash() -> str:
    """A short hash of ``GRAPH_SOURCES``' contents. Part of ``model_hash`` and of the browser
    export's key (``app.browser.weights_key``): an export or measurement cached on disk by an
    older version of that code (same weights, different computation) is not reused."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in GRAPH_SOURCES:
        digest.update(name.encode())
        digest.update((here / name).read_bytes())
    return digest.hexdigest()[:16]


def model_hash(model: nn.Module) -> str:
    """A SHA-256 over the module structure, every parameter and buffer (names, values) and the
    code that runs them (``graph_source_hash``)."""
    digest = hashlib.sha256(repr(model).encode())
    digest.update(graph_source_hash().encode())
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        digest.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        digest.update(str(t.dtype).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:32]


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


def _torch_runner(
    module: nn.Module,
    ctx: Context,
    *,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> Runner:
    if networks.reads_fp32_input(module):  # it casts after reading the pixels itself
        dtype, channels_last = torch.float32, False

    def run(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with (
            networks.eval_mode(module, input_stats=ctx.input_stats, noise=None),
            torch.inference_mode(),
        ):
            return module(x.to(dtype)).float()

    return run


def _eager(ctx: Context) -> Runner:
    return _torch_runner(ctx.model, ctx)


def _onednn(ctx: Context) -> Runner:
    if ctx.device.type != "cpu":
        raise Unavailable("packed oneDNN weights are for the CPU")
    if not onednn.available():
        raise Unavailable("this PyTorch has no oneDNN packed-weight kernels")
    return _torch_runner(onednn.packed_copy(ctx.model), ctx)


def _reduced_copy(ctx: Context, dtype: torch.dtype) -> nn.Module:
    twin = copy.deepcopy(ctx.model).to(dtype=dtype, memory_format=torch.channels_last)
    return twin.eval().requires_grad_(False)


def _bf16_channels_last(ctx: Context) -> Runner:
    if ctx.device.type != "cpu":
        raise Unavailable("the bf16 candidate is for the CPU")
    if not native_bf16():
        raise Unavailable(no_native_bf16())
    return _torch_runner(_reduced_copy(ctx, torch.bfloat16), ctx, channels_last=True,
                         dtype=torch.bfloat16)  # fmt: skip


def _cuda_fp16_channels_last(ctx: Context) -> Runner:
    if ctx.device.type != "cuda":
        raise Unavailable("needs a CUDA device")
    twin = _reduced_copy(ctx, torch.float16)
    return _torch_runner(twin, ctx, dtype=torch.float16, channels_last=True)


def _cuda_graph(ctx: Context) -> Runner:
    """fp16 channels-last, captured once as a CUDA graph for ``ctx.shape`` and replayed."""
    if ctx.device.type != "cuda":
        raise Unavailable("needs a CUDA device")
    twin = _reduced_copy(ctx, torch.float16)
    fallback = _torch_runner(twin, ctx, dtype=torch.float16, channels_last=True)
    static_x = torch.zeros(ctx.shape, device=ctx.device, dtype=torch.float16)
    static_x = static_x.contiguous(memory_format=torch.channels_last)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream(device=ctx.device)
    stream.wait_stream(torch.cuda.current_stream(ctx.device))
    with (
        networks.eval_mode(twin, input_stats=ctx.input_stats, noise=None),
        torch.inference_mode(),
    ):
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up on a side stream, as capture requires
                twin(static_x)
        torch.cuda.current_stream(ctx.device).wait_stream(stream)
        with torch.cuda.graph(graph):
            static_y = twin(static_x)

    def run(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape) != tuple(static_x.shape):
            return fallback(x)  # the graph holds one shape; others run eagerly
        with torch.inference_mode():
            static_x.copy_(x)
            graph.replay()
            return static_y.float()  # a new tensor: the next replay cannot overwrite it

    return run


def onnx_file(ctx: Context) -> Path:
    """The exported ONNX file of ``ctx.model`` in its test mode, cached by model hash."""
    from pix2pix import export

    norm = "instance" if ctx.input_stats else "running"
    path = cache_dir() / "onnx" / f"{ctx.model_hash}-{norm}.onnx"
    if not path.is_file():
        try:
            export.export_onnx(ctx.model, path, norm=norm, check=False)
        except ImportError as e:
            raise Unavailable(str(e)) from e
    return path


def _runtime(ctx: Context, module: str, what: str) -> Any:
    """Import the optional runtime ``module`` for a CPU candidate, or raise ``Unavailable``."""
    if ctx.device.type != "cpu":
        raise Unavailable(f"the {what} candidate runs on the CPU")
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"{module} is not installed (pip install pix2pix-studio[fast])") from e


def _onnxruntime(ctx: Context) -> Runner:
    ort = _runtime(ctx, "onnxruntime", "ONNX Runtime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # ONNX Runtime's threads spin after each run by default; on a machine with few cores they
    # then compete with the PyTorch work around the run (padding, the 8-bit conversion), which
    # measured 25.0 vs 19.8 ms per 256-px image for a ngf-16 U-Net on 2 AMD EPYC vCPUs.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_file(ctx)), options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor) -> torch.Tensor:
        y = session.run(["output"], {"input": x.detach().contiguous().numpy()})[0]
        return torch.from_numpy(y)

    return run


def _openvino(ctx: Context) -> Runner:
    ov = _runtime(ctx, "openvino", "OpenVINO")
    core = ov.Core()
    source = core.read_model(str(onnx_file(ctx)))
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    if ctx.fp32_only:
        config["INFERENCE_PRECISION_HINT"] = "f32"
    compiled: dict[tuple[int, ...], Any] = {}
    lock = threading.Lock()

    def request_for(shape: tuple[int, ...]) -> Any:
        with lock:
            if shape not in compiled:
                if len(compiled) >= 4:  # a few shapes, compiled statically (faster than dynamic)
                    compiled.pop(next(iter(compiled)))
                model = source.clone()
                model.reshape({0: list(shape)})
                compiled[shape] = core.compile_model(model, "CPU", config).create_infer_request()
            return compiled[shape]

    def run(x: torch.Tensor) -> torch.Tensor:
        request = request_for(tuple(x.shape))
        request.infer({0: x.detach().contiguous().numpy()})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    request_for(tuple(ctx.shape))
    return run


# --------------------------------------------------------------------------------------------
# Compiled candidates: AOTInductor packages (CPU)
# --------------------------------------------------------------------------------------------

INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
COMPILED = ("inductor-fp32", "inductor-bf16-channels-last")
_inductor_dir_set: str | None = None  # the value this module put into INDUCTOR_CACHE_ENV


def cxx_compiler() -> str | None:
    """The path of the C++ compiler inductor would call for CPU kernels, or None if there is none.

    The names inductor tries, in its order: ``torch._inductor.config.cpp.cxx`` (``$CXX``, else
    ``g++``; ``clang++`` on macOS), ``$CXX`` or ``cl`` on Windows. Its other way, downloading GCC
    with conda (``$TORCH_INDUCTOR_INSTALL_GXX``), is not counted: nothing is downloaded here.
    """
    if sys.platform == "win32":
        names: list[str | None] = [os.environ.get("CXX", "cl")]
    else:
        from torch._inductor import config

        cxx = config.cpp.cxx
        names = list(cxx) if isinstance(cxx, list | tuple) else [cxx]
    for name in names:
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


def inductor_cache_dir() -> Path:
    """The folder where inductor keeps what compiling produced, made the one it uses.

    ``$TORCHINDUCTOR_CACHE_DIR`` when the user set it; otherwise ``cache_dir() / "inductor"``
    (under ``$PIX2PIX_CACHE``), written into that variable, which inductor reads on each use: its
    generated C++ and the libraries built from it are found there by the next start. Inductor
    writes its own default (a folder in the system's temporary directory) into the variable on
    first use; that value, or one this function wrote, is not taken for the user's choice.
    """
    global _inductor_dir_set
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    current = os.environ.get(INDUCTOR_CACHE_ENV)
    theirs = current and current != _inductor_dir_set
    if theirs and os.path.abspath(current) != os.path.abspath(default_cache_dir()):
        return Path(current)
    ours = str(cache_dir() / "inductor")
    os.environ[INDUCTOR_CACHE_ENV] = _inductor_dir_set = ours
    return Path(ours)


class PhaseTransposedConv(nn.Module):
    """A 4x4, stride-2, padding-1 ``ConvTranspose2d`` as one 2x2 convolution with 4 x C_out
    outputs over the input padded by one pixel, then its four phases (output pixel parities)
    interleaved: the same sums, so fp32 outputs agree to about 1e-7.

    Output row 2m + a takes input rows m - 1 + a and m + a with kernel rows (3, 1) for a = 0 and
    (2, 0) for a = 1; columns alike. For a generator's last layer (3 outputs from 128 x 128)
    oneDNN's transposed kernel, which vectorises over output channels, is the slowest layer of a
    compiled 256-px U-Net; this form runs it 0.5-1 ms faster there (PERFORMANCE, entry 36).
    Input (B, C_in, H, W), output (B, C_out, 2H, 2W), dtype of the weights.
    """

    TAPS = ((3, 1), (2, 0))  # kernel rows (columns) used by output parity 0 and 1

    def __init__(self, conv: nn.ConvTranspose2d) -> None:
        super().__init__()
        w = conv.weight.detach()  # (C_in, C_out, 4, 4)
        phases = [
            w[:, :, self.TAPS[a]][:, :, :, self.TAPS[b]].transpose(0, 1)  # (C_out, C_in, 2, 2)
            for a in (0, 1)
            for b in (0, 1)
        ]
        self.weight = nn.Parameter(torch.cat(phases).contiguous(), requires_grad=False)
        bias = None if conv.bias is None else conv.bias.detach().repeat(4)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.out_channels = conv.out_channels

    @staticmethod
    def fits(module: nn.Module) -> bool:
        """An exact ``nn.ConvTranspose2d`` of this shape with at most 4 outputs."""
        return (
            type(module) is nn.ConvTranspose2d
            and module.kernel_size == (4, 4)
            and module.stride == (2, 2)
            and module.padding == (1, 1)
            and module.output_padding == (0, 0)
            and module.dilation == (1, 1)
            and module.groups == 1
            and module.out_channels <= 4
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        y = F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias)  # (B, 4 C_out, H+1, W+1)
        y = y.view(b, 2, 2, self.out_channels, h + 1, w + 1)
        rows = [
            torch.stack([y[:, a, c, :, a : a + h, c : c + w] for c in (0, 1)], -1) for a in (0, 1)
        ]  # each (B, C_out, H, W, 2): the column parities of row parity a
        return torch.stack(rows, 3).reshape(b, self.out_channels, 2 * h, 2 * w)


def phase_small_transposed(model: nn.Module) -> nn.Module:
    """Replace, in place, each ``ConvTranspose2d`` that ``PhaseTransposedConv.fits``; returns
    ``model``."""
    for name, child in model.named_children():
        if PhaseTransposedConv.fits(child):
            setattr(model, name, PhaseTransposedConv(child))
        else:
            phase_small_transposed(child)
    return model


# freezing: parameters become constants, convolution weights pre-packed for oneDNN.
INDUCTOR_OPTIONS = {"freezing": True}

# The packages this process compiled, in order (a second start compiles none).
compiled_packages: list[Path] = []
_naming = threading.local()


@contextlib.contextmanager
def model_named(name: str) -> Iterator[None]:
    """Within it (this thread), the log lines about compiling name the model ``name`` (the app's
    model id): the app measures several models one after another in the background."""
    before = getattr(_naming, "name", None)
    _naming.name = name
    try:
        yield
    finally:
        _naming.name = before


@functools.cache
def _this_file_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


def package_path(ctx: Context, bf16: bool, spread: str | None = None) -> Path:
    """Where the compiled package of ``ctx``'s model for this machine is kept:
    ``<cache>/compiled/<key>.pt2``, the key a hash of the model (``model_hash``: weights and the
    code that runs them), this file (how the copy is prepared), the input shape, the
    precision, the test mode, the machine (``machine_key``: CPU flags, threads, torch version)
    and ``INDUCTOR_OPTIONS``, and ``spread`` (the native hint-propagation kernel's library, when
    the graph calls it); a package built for another CPU, torch or version of this code is
    never loaded."""
    key = {
        # this file too: how the twin is prepared (phase form, layout) changes the package
        "backends": _this_file_hash(),
        "model": ctx.model_hash,
        "shape": list(ctx.shape),
        "bf16": bf16,
        "input_stats": ctx.input_stats,
        "machine": machine_key(ctx.device),
        "options": INDUCTOR_OPTIONS,  # (a copy goes to AOTInductor, which adds its own keys)
    }
    if spread is not None:
        key["spread"] = spread
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
    return cache_dir() / "compiled" / f"{digest[:32]}.pt2"


def _compile_package(
    twin: nn.Module, example: torch.Tensor, path: Path, bf16: bool, *, native_spread: bool
) -> None:
    """Export ``twin`` on ``example`` (the graph ``torch.compile`` would trace:
    ``networks.compiled_export``, with ``pix2pix::hint_spread`` for the hint propagation's
    rounds when ``native_spread``) and compile it with AOTInductor into the package ``path``,
    written under a temporary name and renamed, so a concurrent start never loads half a file."""
    from pix2pix.export import TRACE_LOCK

    inductor_cache_dir()
    what = "bf16 channels-last" if bf16 else "fp32"
    if getattr(_naming, "name", None):
        what = f"{what} candidate of {_naming.name},"
    else:
        what = f"{what} candidate"
    shape = "x".join(map(str, example.shape))
    log.info("compiling the %s for %s (AOTInductor; once per model, shape and "
             "machine, kept for the next start) ...", what, shape)  # fmt: skip
    started = time.perf_counter()
    spread = torch.ops.pix2pix.hint_spread if native_spread else None
    with TRACE_LOCK, torch.no_grad(), networks.compiled_export(spread):
        exported = torch.export.export(twin, (example,))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.partial.pt2")
    try:
        with torch.no_grad():  # inductor freezes the weights only where grad is off
            torch._inductor.aoti_compile_and_package(
                exported, package_path=str(partial), inductor_configs=dict(INDUCTOR_OPTIONS)
            )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    compiled_packages.append(path)
    log.info("compiled the %s for %s in %.0f s: %s", what, shape,
             time.perf_counter() - started, path)  # fmt: skip


def _load_package(path: Path) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The compiled model in ``path`` (our own cache), or None when it does not load (a partial
    or damaged file: it is removed and compiled again)."""
    try:
        loaded = torch._inductor.aoti_load_package(str(path))
    except Exception as error:  # any failure: compile it again
        log.warning("compiled package %s did not load (%s); compiling it again", path, error)
        path.unlink(missing_ok=True)
        return None
    return loaded  # called with the input, it returns the output as the model does


def _compiled(ctx: Context, *, bf16: bool) -> Runner:
    """``ctx.model`` compiled by AOTInductor for ``ctx.shape``, weights frozen into it.

    Built once per model, shape and machine and kept in ``package_path`` (a later start loads it
    in a fraction of a second); building compiles here, on the calling thread; other shapes never
    compile (see the module docstring).
    """
    if ctx.device.type != "cpu":
        raise Unavailable(
            "the compiled candidates are for the CPU: on CUDA fp16 and CUDA graphs are measured, "
            "and ZeroGPU Spaces do not support torch.compile"
        )
    if bf16 and not native_bf16():
        raise Unavailable(no_native_bf16())
    if not torch._dynamo.is_dynamo_supported():
        raise Unavailable(f"torch.compile does not support Python {platform.python_version()}")
    if cxx_compiler() is None:
        raise Unavailable(
            "no C++ compiler for torch.compile (inductor looks for $CXX, else g++; "
            "install one or set CXX)"
        )
    dtype = torch.bfloat16 if bf16 else torch.float32
    layout = torch.channels_last if bf16 else torch.contiguous_format
    twin = copy.deepcopy(ctx.model).to(dtype=dtype, memory_format=layout)
    twin.eval().requires_grad_(False)
    for m in twin.modules():  # the twin stays in the test mode: nothing else runs it
        if isinstance(m, networks.BatchNorm2d):
            m.use_input_stats = ctx.input_stats
    # Other shapes: the same twin uncompiled (bf16), or its packed oneDNN copy (fp32), which is
    # what runs before any measurement.
    fallback = twin if bf16 else onednn.packed_copy(twin)
    shape = tuple(ctx.shape)
    in_dtype, in_layout = dtype, layout
    if networks.reads_fp32_input(twin):  # it casts after reading the pixels itself
        in_dtype, in_layout = torch.float32, torch.contiguous_format

    def prepare(x: torch.Tensor) -> torch.Tensor:
        # A new tensor with the strides the package was compiled for (it does not check them).
        return x.to(dtype=in_dtype, memory_format=in_layout, copy=True)

    spread = _native_spread(ctx.model)
    path = package_path(ctx, bf16, spread)
    compiled = _load_package(path) if path.is_file() else None
    if compiled is None:
        # Only what compiles gets the phase form: the packed copy keeps its own last-layer GEMM.
        exported = phase_small_transposed(copy.deepcopy(twin)).to(memory_format=layout)
        example = prepare(test_input(shape).to(ctx.device))
        _compile_package(exported, example, path, bf16, native_spread=spread is not None)
        compiled = _load_package(path)
        if compiled is None:
            raise Unavailable(f"the package compiled for this model did not load ({path})")

    from pix2pix.export import EXPORT_GATE

    def run(x: torch.Tensor) -> torch.Tensor:
        # While an ONNX export traces in another thread the uncompiled path answers
        # (``export.EXPORT_GATE``), as it did for torch.compile's code.
        with EXPORT_GATE.compiled_run() as allowed, torch.inference_mode():
            if allowed and tuple(x.shape) == shape:
                return compiled(prepare(x)).float()
            return fallback(prepare(x)).float()

    return run


def _native_spread(model: nn.Module) -> str | None:
    """The name of the native hint-propagation library the compiled graph of ``model`` calls
    (``pix2pix.hint_spread``), built and loaded now; None for a model without a hint
    propagation, or where the library could not be built (the graph then runs the rounds
    itself, as ``torch.compile`` would)."""
    if not any(isinstance(m, networks.HintPropagation) for m in model.modules()):
        return None
    from pix2pix import hint_spread

    compiler = cxx_compiler()
    if compiler is None:
        return None
    avx512 = avx512_off() is None
    library = hint_spread.load(compiler, cache_dir() / "native", cpu_info(), avx512=avx512)
    return None if library is None else library.name


def _inductor_fp32(ctx: Context) -> Runner:
    return _compiled(ctx, bf16=False)


def _inductor_bf16_channels_last(ctx: Context) -> Runner:
    return _compiled(ctx, bf16=True)


CANDIDATES: tuple[Candidate, ...] = (
    Candidate(BASELINE, _eager),
    Candidate("onednn-fp32", _onednn),
    Candidate("bf16-channels-last", _bf16_channels_last, fp32=False),
    Candidate("inductor-fp32", _inductor_fp32),
    Candidate("inductor-bf16-channels-last", _inductor_bf16_channels_last, fp32=False),
    Candidate("onnxruntime", _onnxruntime),
    Candidate("openvino", _openvino, fp32=False),  # bf16 by itself where the CPU has it
    Candidate(BASELINE, _eager, device_type="cuda"),
    Candidate("cuda-fp16-channels-last", _cuda_fp16_channels_last, False, "cuda"),
    Candidate("cuda-graph-fp16", _cuda_graph, False, "cuda"),
)
NAMES = tuple(dict.fromkeys(c.name for c in CANDIDATES))


def default_candidates(device: torch.device, *, compiled: bool = False) -> list[Candidate]:
    """The candidates for ``device``'s type, limited by ``$PIX2PIX_BACKENDS`` when set.

    The compiled candidates (:data:`COMPILED`) are left out unless ``compiled=True`` or
    ``$PIX2PIX_BACKENDS`` names them: compiling costs every new process seconds to a minute (its
    tracing is redone even from inductor's cache), which pays in a long-lived server that
    measures in the background (the app passes ``compiled=True``), not in a command that
    translates a few images (``pix2pix-translate``, a ``Translator`` in a script)."""
    wanted = [n.strip() for n in os.environ.get(ENV_CANDIDATES, "").split(",") if n.strip()]
    unknown = sorted(set(wanted) - set(NAMES))
    if unknown:
        raise ValueError(f"{ENV_CANDIDATES} names unknown backends {unknown}; known: {NAMES}")
    found = [c for c in CANDIDATES if c.device_type == device.type]
    if not compiled:
        found = [c for c in found if c.name not in COMPILED or c.name in wanted]
    if not found:  # MPS and others: the model's own forward
        found = [Candidate(BASELINE, _eager, device_type=device.type)]
    if wanted:
        found = [c for c in found if c.name in wanted or c.name == BASELINE]
    return found


# --------------------------------------------------------------------------------------------
# Measuring and choosing
# --------------------------------------------------------------------------------------------


def test_input(shape: Sequence[int], seed: int = 0) -> torch.Tensor:
    """A seeded (B, C, H, W) input in [-1, 1]: smooth structure plus some noise."""
    b, c, h, w = shape
    rng = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, c, max(h // 16, 1), max(w // 16, 1), generator=rng)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    return (0.8 * smooth + 0.2 * torch.rand(b, c, h, w, generator=rng)) * 2 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of ``a`` against ``b``, values in [-1, 1] (peak-to-peak 2); inf when equal."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    if mse != mse:  # NaN
        return float("-inf")
    return float("inf") if mse == 0 else 10 * float(torch.log10(torch.tensor(4.0 / mse)))


def to_pixels(y: torch.Tensor) -> np.ndarray:
    """A generator's (B, C, H, W) output in [-1, 1] as (B, H, W, C) uint8 on the host.

    The ``Translator``'s own last step; ``choose`` times it with every candidate, so that what a
    runtime leaves running after its call (threads that spin) is paid for in the measurement as
    it is in use.
    """
    pixels = ((y.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).cpu().numpy()  # the one host sync


def choose(
    ctx: Context,
    candidates: Sequence[Candidate],
    *,
    rounds: int = 8,
    block: int = 2,
    budget_s: float = 20.0,
) -> tuple[Choice, dict[str, Runner]]:
    """Build, check and time ``candidates`` on ``ctx.shape``; return the choice and the runners.

    Each candidate is built and run twice (its warm-up: packing, compilation, first-run
    allocations), its output compared with fp32 eager (``MIN_PSNR``). Then all kept candidates
    are timed in up to ``rounds`` rounds (at least 2; fewer than ``rounds`` when the next would
    overrun ``budget_s``): in each round every candidate runs one untimed call and then ``block``
    timed calls of the path the ``Translator`` takes (the runner and ``to_pixels``), one
    candidate after another in an order that rotates each round. Blocks, rather than alternating
    single calls, time each candidate the way it is used (many calls in a row), not in the wake
    of another runtime's threads; rotating the order spreads the machine's drift. The fastest
    median wins; fp32 eager is always timed, so the choice is never slower than it on the
    measurement.
    """
    x = test_input(ctx.shape).to(ctx.device)
    runners: dict[str, Runner] = {}
    results: dict[str, Measurement] = {}
    reference: torch.Tensor | None = None
    ordered = sorted(candidates, key=lambda c: c.name != BASELINE)  # the baseline first
    for cand in ordered:
        if cand.name in results:
            continue
        if ctx.fp32_only and not cand.fp32 and cand.name != "openvino":
            results[cand.name] = Measurement(cand.name, "unavailable", note="not fp32")
            continue
        start = time.perf_counter()
        try:
            runner = cand.build(ctx)
            y = _sync(runner(x), ctx.device)
            runner(x)
        except Unavailable as e:
            results[cand.name] = Measurement(cand.name, "unavailable", note=str(e))
            continue
        except Exception as e:  # a runtime that fails here must not take the app down
            log.warning("backend %s failed to build or run: %s", cand.name, e)
            note = " ".join(f"failed: {type(e).__name__}: {e}".split())[:300]
            results[cand.name] = Measurement(cand.name, "unavailable", note=note)
            continue
        built = time.perf_counter() - start
        if reference is None:
            if cand.name != BASELINE:
                raise ValueError(f"the first candidate must be {BASELINE}, got {cand.name}")
            reference = y.float().cpu()
        quality = psnr(y.float().cpu(), reference)
        status = "ok" if quality >= MIN_PSNR else "rejected"
        note = "" if status == "ok" else f"PSNR {quality:.1f} dB < {MIN_PSNR:g} dB"
        results[cand.name] = Measurement(cand.name, status, psnr_db=quality, build_s=built,
                                         note=note)  # fmt: skip
        if status == "ok":
            runners[cand.name] = runner
    if BASELINE not in runners:
        raise RuntimeError(f"the baseline {BASELINE} could not run: {results[BASELINE].note}")

    names = list(runners)
    times: dict[str, list[float]] = {name: [] for name in names}
    started = time.perf_counter()
    for r in range(max(rounds, 2)):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            to_pixels(runners[name](x))  # untimed: the previous candidate's wake
            for _ in range(max(block, 1)):
                t0 = time.perf_counter()
                to_pixels(runners[name](x))
                times[name].append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        if r >= 1 and elapsed / (r + 1) * (r + 2) > budget_s:
            break
    for name, samples in times.items():
        ms = sorted(1000 * s for s in samples)
        results[name].p50_ms = statistics.median(ms)
        results[name].p95_ms = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    best = min(times, key=lambda n: (results[n].p50_ms, n != BASELINE))
    choice = Choice(
        name=best,
        reason=_reason(best, results, ctx.shape, len(times[BASELINE])),
        shape=tuple(ctx.shape),
        measurements=[results[c.name] for c in ordered if c.name in results],
        when=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    # A compiled package that lost is dead weight on disk (5-220 MB): only the choice is built
    # at the next start.
    for name in set(COMPILED) & set(results) - {best}:
        package_path(ctx, name == "inductor-bf16-channels-last").unlink(missing_ok=True)
    return choice, {best: runners[best]}


def _sync(y: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return y


def _reason(best: str, results: dict[str, Measurement], shape: Sequence[int], runs: int) -> str:
    base = results[BASELINE].p50_ms or float("nan")
    won = results[best].p50_ms or float("nan")
    parts = [
        f"measured at {'x'.join(map(str, shape))} ({runs} timed runs each, in rotating "
        f"blocks): {best} p50 {won:.1f} ms, {base / won:.2f}x {BASELINE} ({base:.1f} ms)"
    ]
    for m in results.values():
        if m.name in (best, BASELINE):
            continue
        if m.status == "ok":
            parts.append(f"{m.name} {m.p50_ms:.1f} ms")
        else:
            parts.append(f"{m.name} {m.status}: {m.note}")
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# The on-disk cache
# --------------------------------------------------------------------------------------------

_CACHE_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Where choices and ONNX files are kept (``pix2pix.hub.cache_dir() / "backends"``)."""
    from pix2pix.hub import cache_dir as root

    return root() / "backends"


def cache_key(ctx: Context, candidates: Sequence[Candidate]) -> str:
    """The key of a measurement: machine, versions, model hash, shape, mode and candidates."""
    data = {
        "version": CACHE_VERSION,
        "machine": machine_key(ctx.device),
        "model": ctx.model_hash,
        "shape": list(ctx.shape),
        "input_stats": ctx.input_stats,
        "fp32_only": ctx.fp32_only,
        "candidates": sorted({c.name for c in candidates}),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def load_cached(key: str) -> Choice | None:
    """The cached choice for ``key``, or None (also when the file is unreadable)."""
    entry = read_entry(CACHE_NAME, key)
    try:
        return Choice.from_json(entry) if entry else None
    except (ValueError, KeyError, TypeError):
        return None


def store(key: str, choice: Choice) -> None:
    """Add ``choice`` under ``key`` to the cache file (written atomically)."""
    write_entry(CACHE_NAME, key, choice.to_json())


def read_entry(name: str, key: str) -> Any:
    """The JSON value under ``key`` in the cache file ``name`` (in :func:`cache_dir`), or None
    when there is none or the file is unreadable."""
    with _CACHE_LOCK:
        try:
            data = json.loads((cache_dir() / name).read_text(encoding="utf-8"))
            return data.get(key) if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None


def write_entry(name: str, key: str, value: Any) -> None:
    """Set ``key`` to the JSON ``value`` in the cache file ``name``, keeping its other entries
    (an unreadable file starts afresh); written atomically, so that readers in other processes
    see the old file or the new one."""
    path = cache_dir() / name
    with _CACHE_LOCK:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            data = {}
        data[key] = value
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)


def select(
    ctx: Context, candidates: Sequence[Candidate], *, use_cache: bool = True
) -> tuple[Choice, Runner]:
    """The runner for ``ctx``: the cached choice when there is one, else ``choose`` and cache.

    A cached candidate that no longer builds is measured again.
    """
    key = cache_key(ctx, candidates)
    cached = load_cached(key) if use_cache else None
    if cached is not None:
        by_name = {c.name: c for c in candidates}
        if cached.name in by_name:
            try:
                return cached, by_name[cached.name].build(ctx)
            except Exception as e:
                log.warning("cached backend %s no longer builds (%s); measuring", cached.name, e)
    choice, runners = choose(ctx, candidates)
    if use_cache:
        try:
            store(key, choice)
        except OSError as e:
            log.warning("could not cache the backend choice: %s", e)
    return choice, runners[choice.name]


__all__ = [
    "BASELINE",
    "CANDIDATES",
    "COMPILED",
    "MIN_PSNR",
    "Candidate",
    "Choice",
    "Context",
    "Measurement",
    "Unavailable",
    "avx512_off",
    "choose",
    "cpu_info",
    "cxx_compiler",
    "default_candidates",
    "inductor_cache_dir",
    "machine_key",
    "model_hash",
    "native_bf16",
    "no_native_bf16",
    "select",
    "to_pixels",
]
