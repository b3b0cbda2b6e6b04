"""Export a generator to ONNX with the paper's test mode kept, and check the file before using it.

    python -m pix2pix.export SOURCE OUT.onnx [--norm instance|running] [--fp16] [--height 256 ...]

The graph takes ``input`` (B, C, H, W) float32 in [-1, 1] and returns ``output`` (B, C_out, H, W)
float32 in [-1, 1]. Batch, height and width are dynamic; H and W must be multiples of the
network's size multiple (stored as the ``size_multiple`` metadata property: 256 for ``unet_256``,
4 for the ResNets) and at least ``min_size`` (8 for the ResNets' padding layers). Padding an
image to that stays outside the graph, as in ``Translator`` (``pix2pix.inference.pad_to_multiple``:
centred, reflection, then replication).

Test mode (Isola et al. 2017, section 3.3 and the reference's default ``--eval`` off):

- ``norm="instance"`` (default): every BatchNorm layer normalises each image by its own
  per-channel statistics, then applies the layer's affine; exported as ONNX
  ``InstanceNormalization`` with the BatchNorm scale and shift. This is what ``Translator`` does.
  A naive ``model.eval()`` export would silently use the running statistics instead.
- ``norm="running"``: BatchNorm uses its stored running statistics (``BatchNormalization``).
- Dropout is off (no noise): the graph is deterministic.

``fp16=True`` stores the weights as float16 and casts them to float32 inside the graph (a
``Cast`` per weight, folded once when a runtime loads the model): half the file, the same fp32
arithmetic. A full-fp16 graph is not offered: ONNX Runtime has no fp16 convolution kernels on
the CPU or in WebAssembly (docs/PERFORMANCE.md).

The model's task metadata goes into the ONNX ``metadata_props`` (strings; lists as JSON):
``architecture``, ``network`` (JSON), ``size_multiple``, ``min_size`` (the smallest side the
graph takes), ``in_channels``, ``out_channels``,
``norm``, ``weights`` (fp32 / fp16), ``input_range`` (``-1,1``), ``input_kind``, ``direction``,
``train_size``, ``palette`` (JSON list of RGB triples), ``class_names`` (JSON list),
``dataset``, ``license``, ``source``, plus ``producer`` notes; a key whose value is unknown is
left out. ``read_metadata(path)`` reads them back.

Every export is checked: ONNX Runtime runs the file on a seeded test input and the result is
compared with PyTorch running the same model in the same mode. fp32 must agree within 1e-3
(largest absolute difference, values in [-1, 1]); fp16 weights must reach a PSNR of at least
45 dB (peak-to-peak 2). A failed check deletes the file and raises ``ExportCheckError``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix import networks

NORM_MODES = ("instance", "running")
INPUT_NAME, OUTPUT_NAME = "input", "output"
FP32_TOLERANCE = 1e-3  # largest absolute difference allowed, outputs in [-1, 1]
FP16_MIN_PSNR = 45.0  # dB, peak-to-peak 2
_FP16_MAX = 65504.0


class ExportCheckError(RuntimeError):
    """The exported file disagrees with PyTorch beyond the tolerances; see ``report``."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class ExportReport:
    """What ``export_onnx`` wrote and how its check went.

    ``max_abs_diff``: the largest absolute difference between ONNX Runtime and PyTorch over the
    checked shapes (outputs in [-1, 1]); ``psnr_db``: the same comparison as a PSNR with
    peak-to-peak 2 (``inf`` when equal). ``checked_shapes``: the (B, C, H, W) inputs run through
    both.
    """

    path: Path
    opset: int
    norm: str
    fp16: bool
    size_multiple: int
    size_bytes: int
    max_abs_diff: float
    psnr_db: float
    passed: bool
    checked_shapes: list[tuple[int, int, int, int]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for people: file, size, check result."""
        shapes = ", ".join("x".join(map(str, s)) for s in self.checked_shapes)
        weights = "fp16 weights" if self.fp16 else "fp32"
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{self.path} ({self.size_bytes / 1e6:.1f} MB, opset {self.opset}, {weights}, "
            f"norm {self.norm}): check against PyTorch on {shapes} {verdict}: largest difference "
            f"{self.max_abs_diff:.2e}, PSNR {self.psnr_db:.1f} dB"
        )


class _InputStatsNorm(nn.Module):
    """A BatchNorm layer in the paper's test mode: each image's own statistics, then the affine.

    Exports as ONNX ``InstanceNormalization`` with the BatchNorm scale and shift (a BatchNorm
    without affine parameters gets ones and zeros).
    """

    def __init__(self, bn: nn.BatchNorm2d) -> None:
        super().__init__()
        ones = torch.ones(bn.num_features) if bn.weight is None else bn.weight.detach().clone()
        zeros = torch.zeros(bn.num_features) if bn.bias is None else bn.bias.detach().clone()
        self.weight = nn.Parameter(ones, requires_grad=False)
        self.bias = nn.Parameter(zeros, requires_grad=False)
        self.eps = bn.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


# torch.export and torch.compile's tracing share process-wide state (dynamo's trace metadata,
# ``torch.compiler.is_exporting``): in threads at once they fail ("... is not tracked with proxy",
# ``KeyError: 'custom'``). The app exports for browsers and compiles candidates in the background,
# so both hold this lock while they trace (``pix2pix.backends``' compiled candidates too).
TRACE_LOCK = threading.Lock()


class _ExportGate:
    """Keeps ONNX exports and runs of compiled code apart: while ``torch.compiler.is_exporting()``
    is true anywhere in the process, a compiled function enters and leaves torch's process-wide
    trace annotations, so a run in another thread fails with ``KeyError: 'custom'`` (torch
    2.14). An export waits for the compiled runs in flight to end; a run asked for while an
    export traces is told to take its uncompiled path instead of waiting (seconds) or failing.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runs = 0
        self._exporting = False

    @contextlib.contextmanager
    def exporting(self) -> Iterator[None]:
        """Hold while an export traces (inside ``TRACE_LOCK``, which orders exports)."""
        with self._cond:
            self._exporting = True
            self._cond.wait_for(lambda: self._runs == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exporting = False
                self._cond.notify_all()

    @contextlib.contextmanager
    def compiled_run(self) -> Iterator[bool]:
        """Yields True when compiled code may run now (then no export starts until it ends),
        False while an export traces."""
        with self._cond:
            allowed = not self._exporting
            if allowed:
                self._runs += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._cond:
                    self._runs -= 1
                    self._cond.notify_all()


EXPORT_GATE = _ExportGate()


def export_view(generator: nn.Module, norm: str = "instance") -> nn.Module:
    """A CPU fp32 copy of ``generator`` in test mode, written in ops that export cleanly.

    ``norm="instance"``: ``networks.BatchNorm2d`` layers become per-image normalisation with their
    affine (``_InputStatsNorm``); ``"running"``: they stay BatchNorm in eval mode. Dropout is off.
    The original model is not changed.
    """
    if norm not in NORM_MODES:
        raise ValueError(f"unknown norm mode {norm!r}; expected one of {NORM_MODES}")
    view = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32).eval()
    view.requires_grad_(False)
    if norm == "instance":
        for parent in list(view.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, networks.BatchNorm2d):
                    setattr(parent, name, _InputStatsNorm(child))
    return view


def export_onnx(
    generator: nn.Module,
    path: str | os.PathLike,
    *,
    height: int = 256,
    width: int = 256,
    norm: str = "instance",
    fp16: bool = False,
    metadata: dict[str, Any] | None = None,
    opset: int = 18,
    check: bool = True,
) -> ExportReport:
    """Export ``generator`` to the ONNX file ``path`` and check it with ONNX Runtime.

    ``height`` / ``width``: the test input's size, in pixels (rounded up to the network's size
    multiple); the exported graph accepts any batch and any multiple. ``metadata``: extra
    ``metadata_props`` (values JSON-encoded unless strings), overriding those read from the
    model's task (``Pix2PixGenerator.task``). Returns an ``ExportReport``.

    ``opset``: the ONNX opset the file is written in (``report.opset`` is read back from it).
    torch's exporter builds opset 18 and converts it down only as far as the model's ops allow,
    so the lowest possible depends on the model (a small U-Net: 15, a ResNet: higher).

    Raises ``ValueError`` for a bad ``norm`` or size or an ``opset`` that cannot be written
    (naming the lowest this model can be written in, or the newest ``onnx`` knows),
    ``ImportError`` without ``onnx`` /
    ``onnxruntime`` (``pip install pix2pix-studio[fast]``), and ``ExportCheckError`` (the file
    deleted) when ONNX Runtime disagrees with PyTorch beyond the tolerances in the module doc.
    ``check=False`` skips the check (for callers that compare outputs themselves, such as
    ``pix2pix.backends``); the report then has ``passed=False`` and NaN differences.
    """
    onnx, ort = _require_onnx()
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    path = Path(path)
    multiple = networks.size_multiple(generator)
    in_channels = _in_channels(generator)
    view = export_view(generator, norm)
    # torch.export specialises dimensions that are 0 or 1 in the example input, so the example
    # has batch 2 and sides of at least two multiples (no 1x1 feature map at the bottom).
    side = _round_up(max(2 * multiple, 64), multiple)
    example = torch.zeros(2, in_channels, side, side)
    model = _export_graph(view, example, multiple, opset)
    written = model_opset(model)  # what the file says, not what was asked
    if fp16:
        _store_fp16(model)
    props = task_metadata(generator, norm=norm, fp16=fp16)
    props.update({k: _prop(v) for k, v in (metadata or {}).items() if v is not None})
    _set_metadata(model, props)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        onnx.save(model, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

    h, w = _round_up(height, multiple), _round_up(width, multiple)
    shapes = [(1, in_channels, h, w), (2, in_channels, h, w + multiple)] if check else []
    diff, psnr = (
        check_onnx(path, generator, shapes, norm=norm, ort=ort) if check else (math.nan,) * 2
    )
    passed = psnr >= FP16_MIN_PSNR if fp16 else diff <= FP32_TOLERANCE
    report = ExportReport(
        path=path,
        opset=written,
        norm=norm,
        fp16=fp16,
        size_multiple=multiple,
        size_bytes=path.stat().st_size,
        max_abs_diff=diff,
        psnr_db=psnr,
        passed=passed,
        checked_shapes=shapes,
        metadata=props,
    )
    if check and not passed:
        path.unlink(missing_ok=True)
        need = f"PSNR >= {FP16_MIN_PSNR} dB" if fp16 else f"a difference <= {FP32_TOLERANCE}"
        raise ExportCheckError(
            f"the exported model disagrees with PyTorch: largest difference {diff:.3g}, PSNR "
            f"{psnr:.1f} dB (needed {need}); {path} was deleted. An op this exporter renders "
            f"differently is the likely cause; try --norm running or a newer opset, and report it.",
            report,
        )
    return report


def check_onnx(
    path: str | os.PathLike,
    generator: nn.Module,
    shapes: list[tuple[int, int, int, int]],
    *,
    norm: str = "instance",
    seed: int = 0,
    ort: Any = None,
) -> tuple[float, float]:
    """Run the ONNX file and PyTorch on seeded inputs of ``shapes`` (values in [-1, 1]).

    The PyTorch side is ``generator`` itself under ``networks.eval_mode`` (``Translator``'s test
    mode, dropout off). Returns (largest absolute difference, PSNR in dB with peak-to-peak 2).
    """
    if ort is None:
        _, ort = _require_onnx()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    reference = copy.deepcopy(generator).to(device="cpu", dtype=torch.float32)
    rng = torch.Generator().manual_seed(seed)
    worst, squared, count = 0.0, 0.0, 0
    for shape in shapes:
        x = _test_input(shape, rng)
        with (
            networks.eval_mode(reference, input_stats=norm == "instance", noise=None),
            torch.inference_mode(),
        ):
            expected = reference(x).numpy().astype(np.float64)
        got = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0].astype(np.float64)
        if got.shape != expected.shape:
            raise ExportCheckError(
                f"ONNX output shape {got.shape} != PyTorch {expected.shape} for input {shape}",
                _empty_report(path, norm),
            )
        error = got - expected
        if not np.isfinite(error).all():
            return math.inf, -math.inf
        worst = max(worst, float(np.abs(error).max()))
        squared += float((error**2).sum())
        count += error.size
    mse = squared / max(count, 1)
    psnr = math.inf if mse == 0 else 10 * math.log10(4.0 / mse)
    return worst, psnr


def _test_input(shape: tuple[int, int, int, int], rng: torch.Generator) -> torch.Tensor:
    """Smooth structure plus noise in [-1, 1]: closer to images than pure noise."""
    b, c, h, w = shape
    coarse = torch.rand(b, c, max(h // 16, 1), max(w // 16, 1), generator=rng)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    noise = torch.rand(b, c, h, w, generator=rng)
    return (0.8 * smooth + 0.2 * noise) * 2 - 1


def task_metadata(generator: nn.Module, *, norm: str, fp16: bool) -> dict[str, str]:
    """The ``metadata_props`` for ``generator`` (see the module doc), as strings."""
    from pix2pix import __version__

    props: dict[str, Any] = {
        "producer": f"pix2pix-studio {__version__}, torch {torch.__version__}",
        "size_multiple": networks.size_multiple(generator),
        "min_size": networks.min_size(generator),
        "in_channels": _in_channels(generator),
        "norm": norm,
        "weights": "fp16" if fp16 else "fp32",
        "input_range": "-1,1",
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
    }
    config = getattr(generator, "config", None)
    if callable(config):  # a Pix2PixGenerator: architecture and task as hub.py stores them
        cfg = config()
        props["architecture"] = cfg.get("architecture")
        props["network"] = cfg.get("network")
        props["out_channels"] = getattr(generator, "out_channels", None)
        task = cfg.get("task") or {}
        for key in ("input_kind", "direction", "train_size", "patch", "dataset", "palette",
                    "class_names", "license", "source"):  # fmt: skip
            props[key] = task.get(key)
    return {k: _prop(v) for k, v in props.items() if v not in (None, "", [], {})}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata properties of an exported file, JSON values decoded (lists, numbers)."""
    onnx, _ = _require_onnx()
    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            out[prop.key] = prop.value
    return out


# --------------------------------------------------------------------------------------------
# Graph building
# --------------------------------------------------------------------------------------------


def model_opset(model: Any) -> int:
    """The default-domain ONNX opset an ``onnx.ModelProto`` declares in its ``opset_import``."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise ValueError("the ONNX model declares no default-domain opset")
    return versions[0]


def _export_graph(view: nn.Module, example: torch.Tensor, multiple: int, opset: int) -> Any:
    """The ONNX ModelProto of ``view`` in ``opset``, with dynamic batch and sides at multiples of
    ``multiple``; ``ValueError`` when the exporter cannot write that opset for this model."""
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ValueError(
            f"opset {opset} cannot be written: the newest opset this onnx knows is {newest} "
            f"(onnx {onnx.__version__}); pass --opset {newest} or lower"
        )
    model = _trace_graph(view, example, multiple, opset)
    written = model_opset(model)
    if written == opset:
        return model
    if written < opset:
        raise ValueError(
            f"opset {opset} cannot be written for this model: torch {torch.__version__}'s "
            f"exporter wrote opset {written} instead; pass --opset {written}"
        )
    # Below the opset the exporter builds in, it converts down as far as the ops allow and keeps
    # its own opset where it cannot go further (with a log line, no error). Conversion goes one
    # opset at a time, so what can be written is every opset from the lowest one up: bisect.
    low, high = opset + 1, written  # `written` can be written
    while low < high:
        mid = (low + high) // 2
        if model_opset(_trace_graph(view, example, multiple, mid)) == mid:
            high = mid
        else:
            low = mid + 1
    raise ValueError(
        f"opset {opset} cannot be written for this model: torch {torch.__version__}'s exporter "
        f"builds opset {written} and converts it down only as far as the model's ops allow; "
        f"the lowest it writes for this model is opset {high}. Pass --opset {high} or higher "
        f"(opset={high})"
    )


def _trace_graph(view: nn.Module, example: torch.Tensor, multiple: int, opset: int) -> Any:
    """torch's ONNX export of ``view``, as it comes: the opset may not be the one asked for."""
    dim = torch.export.Dim
    batch = dim("batch", min=1, max=4096)
    # Sides as multiples of the network's multiple: the graph is valid only there.
    most = max(65536 // multiple, 2)
    rows, cols = dim("rows", min=1, max=most), dim("cols", min=1, max=most)
    height = rows * multiple if multiple > 1 else rows
    width = cols * multiple if multiple > 1 else cols
    with TRACE_LOCK, EXPORT_GATE.exporting(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter
        program = torch.onnx.export(
            view,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={_forward_arg(view): {0: batch, 2: height, 3: width}},
            verbose=False,
        )
    model = program.model_proto
    # Readable names for the symbolic sizes ("256*rows" -> "height") on the graph's ends.
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        for index, name in ((0, "batch"), (2, "height"), (3, "width")):
            if len(dims) > index and dims[index].dim_param:
                dims[index].dim_param = name
    return model


def _forward_arg(module: nn.Module) -> str:
    import inspect

    params = list(inspect.signature(module.forward).parameters)
    if not params:
        raise ValueError(f"{type(module).__name__}.forward takes no input")
    return params[0]


def _store_fp16(model: Any) -> None:
    """Store float32 initializers as float16, each followed by a Cast back to float32."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(init)
        if values.size < 16 or np.abs(values).max(initial=0.0) >= _FP16_MAX:
            continue  # scalars and tiny vectors: no size to win; huge values: not representable
        name = init.name
        half = numpy_helper.from_array(values.astype(np.float16), name=f"{name}__fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [half.name], [name], to=TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend([*casts, *nodes])


def _set_metadata(model: Any, props: dict[str, str]) -> None:
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _prop(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _in_channels(generator: nn.Module) -> int:
    for m in generator.modules():
        if hasattr(m, "input_channels"):
            return int(m.input_channels)
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            return int(m.in_channels)
    raise ValueError(f"{type(generator).__name__} has no convolutions; not a generator")


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _empty_report(path: str | os.PathLike, norm: str) -> ExportReport:
    return ExportReport(Path(path), 0, norm, False, 1, 0, math.inf, -math.inf, False)


def _require_onnx() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f"ONNX export needs the onnx and onnxruntime packages ({e.name} is missing): "
            "pip install 'pix2pix-studio[fast]'"
        ) from e
    return onnx, onnxruntime


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="pix2pix-export", description="Export a generator to ONNX and check it."
    )
    p.add_argument("source", help="Hub repo id[@rev], folder, weight file or URL")
    p.add_argument("out", type=Path, help="the .onnx file to write")
    p.add_argument("--revision", default=None, help="Hub revision of SOURCE")
    p.add_argument(
        "--direction",
        choices=("AtoB", "BtoA"),
        default=None,
        help="which generator of a CycleGAN model (default: A -> B)",
    )
    p.add_argument(
        "--norm",
        choices=NORM_MODES,
        default="instance",
        help="instance: each image's own statistics (the paper's test mode, default); "
        "running: BatchNorm's stored statistics",
    )
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the file)")
    p.add_argument(
        "--height", type=int, help="check input height, pixels (default: the training size, or 256)"
    )
    p.add_argument(
        "--width", type=int, help="check input width, pixels (default: the training size, or 256)"
    )
    p.add_argument(
        "--opset",
        type=int,
        default=18,
        help="ONNX opset (default 18); one the model cannot be written in is refused, naming "
        "the lowest it can",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pix2pix-export``; returns the exit status (0 only when the check passed)."""
    args = parse_args(argv)
    from pix2pix.hub import load_generator

    if args.out.suffix.lower() != ".onnx":
        print(f"error: {args.out} should end in .onnx", file=sys.stderr)
        return 2
    try:
        model = load_generator(
            args.source, revision=args.revision, device="cpu", direction=args.direction
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    side = getattr(getattr(model, "task", None), "train_size", None) or 256
    try:
        report = export_onnx(
            model,
            args.out,
            height=args.height or side,
            width=args.width or side,
            norm=args.norm,
            fp16=args.fp16,
            opset=args.opset,
        )
    except ExportCheckError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ImportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"wrote {report.path}")
    return 0


__all__ = [
    "ExportCheckError",
    "ExportReport",
    "check_onnx",
    "export_onnx",
    "export_view",
    "model_opset",
    "read_metadata",
    "task_metadata",
]

if __name__ == "__main__":
    sys.exit(main())
