"""Cut an exported generator (ONNX) into stages run one after another, so that a run can stop
between two of them.

Why: onnxruntime-web cannot interrupt a model run. On the live canvas the browser keeps
translating while a stroke is drawn; when the pointer lifts, the run in progress is of an older
drawing, and the final drawing waits for what is left of it (half a run on average) before its
own run starts. Cut into stages, a run of an older drawing is dropped at the next boundary
(``pix2pix/app/static/runner.js``), so the wait falls to what is left of one stage.
Chained, the stages compute exactly what the whole graph computes (the same nodes and weights);
what they cost is copying the tensors that cross a boundary (the U-Net's skips) out of the runtime
and back in: about 2 ms a run for the bundled 256 px models in WASM (docs/PERFORMANCE.md).

Stages are balanced by the multiply-accumulates of their convolutions (``Conv`` and
``ConvTranspose``, at the given input size), the bulk of a generator's time. Nodes that only
compute from weights (fp16 storage's ``Cast`` per weight, ``pix2pix/export.py``) go with the stage
that uses their result, so no weight crosses a boundary. Each stage is a valid ONNX model: its
inputs are the graph's input and the tensors earlier stages produced for it, its outputs what later
stages (or the graph's output) need, under the same names; ``metadata_props`` are copied, plus
``stage`` (``"i/k"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def split_stages(model: Any, stages: int, *, height: int = 256, width: int = 256) -> list[Any]:
    """Cut ``model`` (an ``onnx.ModelProto`` with one graph input (B, C, H, W)) into ``stages``
    models that run in sequence (fewer only when the graph has fewer nodes than that, not counting
    those that compute from weights alone).

    ``height`` / ``width``: the input size (pixels) the convolutions' costs are computed at.
    Raises ``ValueError`` for ``stages < 1``, a graph with other than one input, or one whose
    shapes cannot be inferred at that size; ``ImportError`` without ``onnx``.
    """
    import onnx
    from onnx import helper, shape_inference

    if stages < 1:
        raise ValueError(f"stages must be at least 1, got {stages}")
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(f"expected a graph with one input, got {[i.name for i in inputs]}")
    source = inputs[0].name
    info = _shapes_at(model, source, height, width, onnx, shape_inference)

    nodes = list(graph.node)
    constant = _constant_nodes(nodes, initializers)
    work = [i for i in range(len(nodes)) if i not in constant]
    costs = np.array([_macs(nodes[i], info) for i in work], dtype=np.float64)
    cuts = _cut_points(costs, stages)  # positions in `work` where a new stage starts

    produced_by = {out: i for i, node in enumerate(nodes) for out in node.output}
    graph_outputs = [o.name for o in graph.output]
    groups = [work[a:b] for a, b in zip([0, *cuts], [*cuts, len(work)], strict=True)]
    stage_of = {i: s for s, group in enumerate(groups) for i in group}
    last_use: dict[str, int] = dict.fromkeys(graph_outputs, len(groups))  # latest stage reading it
    for i in work:
        for name in nodes[i].input:
            last_use[name] = max(last_use.get(name, -1), stage_of[i])
    out_models = []
    for s, group in enumerate(groups):
        members = set(group)
        _add_constant_inputs(members, nodes, constant, produced_by)
        ordered = [nodes[i] for i in sorted(members)]
        needed: list[str] = []
        for i in group:
            for name in nodes[i].input:
                if not name or name in initializers or name in needed:
                    continue
                origin = produced_by.get(name)
                if origin is None or (origin not in constant and stage_of[origin] < s):
                    needed.append(name)
        made = [out for i in group for out in nodes[i].output]
        outputs = [name for name in made if last_use.get(name, -1) > s]
        used = {name for node in ordered for name in node.input}
        stage_graph = helper.make_graph(
            ordered,
            f"{graph.name or 'generator'}_stage{s}",
            [_value_info(name, info, helper) for name in needed],
            [_value_info(name, info, helper) for name in outputs],
            [initializers[name] for name in sorted(used) if name in initializers],
        )
        stage = helper.make_model(
            stage_graph,
            opset_imports=list(model.opset_import),
            ir_version=model.ir_version,
            producer_name=model.producer_name,
            producer_version=model.producer_version,
        )
        for prop in model.metadata_props:
            stage.metadata_props.add(key=prop.key, value=prop.value)
        stage.metadata_props.add(key="stage", value=f"{s}/{len(groups)}")
        onnx.checker.check_model(stage)
        out_models.append(stage)
    return out_models


def write_stages(
    source: str | Path, targets: Sequence[str | Path], *, height: int = 256, width: int = 256
) -> list[Path]:
    """Cut the ONNX file ``source`` into ``len(targets)`` stages and write them to ``targets``.

    Each file is written to a temporary name, then renamed, the last stage first: once the first
    target exists, the set is complete. Returns the paths written: all of ``targets``, or the
    first few when the graph has fewer nodes than targets (the rest are not written).
    Raises what :func:`split_stages` raises, and ``OSError``."""
    import onnx

    parts = split_stages(onnx.load(str(source)), len(targets), height=height, width=width)
    written = [Path(t) for t in targets[: len(parts)]]
    for part, target in reversed(list(zip(parts, written, strict=True))):
        partial = target.with_name(target.name + ".partial")
        onnx.save(part, str(partial))
        partial.replace(target)
    return written


def _shapes_at(model: Any, source: str, height: int, width: int, onnx: Any, inference: Any):
    """Every tensor's shape (ints, 0 where unknown) and element type, the input fixed at
    1 x C x H x W."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = next(i for i in fixed.graph.input if i.name == source).type.tensor_type.shape.dim
    channels = dims[1].dim_value if len(dims) > 1 and dims[1].dim_value else 3
    for dim, value in zip(dims, (1, channels, height, width), strict=False):
        dim.Clear()
        dim.dim_value = value
    try:
        fixed = inference.infer_shapes(fixed, strict_mode=True)
    except Exception as e:  # onnx raises its own InferenceError types
        raise ValueError(f"cannot infer the graph's shapes at {height}x{width}: {e}") from e
    infos = [*fixed.graph.value_info, *fixed.graph.output, *fixed.graph.input]
    shapes = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in infos
        if i.type.HasField("tensor_type")
    }
    for t in fixed.graph.initializer:
        shapes[t.name] = list(t.dims)
    return shapes, {i.name: i.type.tensor_type.elem_type for i in infos}


def _constant_nodes(nodes: list[Any], initializers: dict[str, Any]) -> set[int]:
    """Indices of the nodes computed from weights alone (e.g. fp16 storage's Cast per weight)."""
    known = set(initializers)
    constant = set()
    for i, node in enumerate(nodes):
        from_weights = node.input and all(not name or name in known for name in node.input)
        if from_weights or (not node.input and node.op_type == "Constant"):
            constant.add(i)
            known.update(node.output)
    return constant


def _add_constant_inputs(
    members: set[int], nodes: list[Any], constant: set[int], produced_by: dict[str, int]
) -> None:
    """Add to ``members`` the constant nodes its nodes need, transitively (copied per stage)."""
    todo = list(members)
    while todo:
        for name in nodes[todo.pop()].input:
            origin = produced_by.get(name)
            if origin is not None and origin in constant and origin not in members:
                members.add(origin)
                todo.append(origin)


def _macs(node: Any, shapes_and_types: tuple[dict[str, list[int]], dict[str, int]]) -> float:
    """A convolution's multiply-accumulates at the inferred shapes; 0 for other nodes."""
    shapes = shapes_and_types[0]
    if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
        return 0.0
    weight = shapes.get(node.input[1], [])
    # Conv: each output pixel uses the whole kernel; ConvTranspose: each input pixel does.
    spatial = shapes.get(node.output[0] if node.op_type == "Conv" else node.input[0], [])
    if len(weight) < 3 or len(spatial) < 3:
        return 0.0
    return float(np.prod(weight, dtype=np.float64) * np.prod(spatial[2:], dtype=np.float64))


def _cut_points(costs: np.ndarray, stages: int) -> list[int]:
    """Where stages start (indices into ``costs``, increasing, none empty): ``stages - 1`` cuts
    (fewer only with fewer nodes), each stage's share of the total cost as close to 1 / ``stages``
    as whole nodes allow; a stage that would be empty takes the next node."""
    total = float(costs.sum())
    cumulative = np.cumsum(costs) if total > 0 else np.arange(1, len(costs) + 1, dtype=np.float64)
    total = float(cumulative[-1]) if len(costs) else 0.0
    stages = min(stages, len(costs))  # at least one node a stage
    cuts: list[int] = []
    for j in range(1, stages):
        # the stage ends after the node where the running total first reaches j / stages
        cut = int(np.searchsorted(cumulative, total * j / stages - 1e-9)) + 1
        cut = max(cut, cuts[-1] + 1 if cuts else 1)  # not empty
        cuts.append(min(cut, len(costs) - (stages - j)))  # a node left for each stage to come
    return cuts


def _value_info(name: str, shapes_and_types: tuple[dict, dict], helper: Any) -> Any:
    """A value_info for ``name``: its element type and channels (B, C, H, W), the batch and the
    spatial dimensions left free as in the whole graph."""
    shapes, types = shapes_and_types
    shape: list[int | None] = [None] * (len(shapes.get(name, [])) or 4)
    if len(shape) > 1 and shapes.get(name, [0, 0])[1]:
        shape[1] = shapes[name][1]
    return helper.make_tensor_value_info(name, types.get(name, 1), shape)
