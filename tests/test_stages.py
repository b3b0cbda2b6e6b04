"""Exported generators cut into stages (pix2pix/stages.py): chained in ONNX Runtime, the stages give
exactly the whole graph's output, for each generator family, with fp32 and fp16 weight storage; the
cuts share the convolutions' work out; no weight crosses a boundary; bad requests raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pix2pix import export, networks, stages
from pix2pix.hub import Pix2PixGenerator

onnx = pytest.importorskip("onnx", reason="onnx is in requirements.txt")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test dependency")


def _export(tmp_path, name: str, kwargs: dict, size: int, *, fp16: bool = False):
    torch.manual_seed(0)
    model = Pix2PixGenerator(name, kwargs)
    networks.init_weights(model)
    path = tmp_path / f"{name}-{fp16}.onnx"
    export.export_onnx(model.eval(), path, height=size, width=size, fp16=fp16)
    return onnx.load(str(path))


def _chain(parts, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the stages one after another, as the browser's worker does; every tensor by name."""
    tensors = {"input": x}
    for part in parts:
        session = ort.InferenceSession(part.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {i.name: tensors[i.name] for i in session.get_inputs()}
        names = [o.name for o in session.get_outputs()]
        tensors.update(zip(names, session.run(None, feeds), strict=True))
    return tensors


def _whole(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize(
    ("name", "kwargs", "size", "fp16"),
    [
        ("unet_256", {"ngf": 4}, 256, False),
        ("unet_256", {"ngf": 4}, 256, True),
        ("unet_128", {"ngf": 4, "norm": "batch"}, 128, False),
        ("resnet_6blocks", {"ngf": 4}, 64, False),
    ],
    ids=["unet256", "unet256-fp16", "unet128", "resnet6"],
)
def test_chained_stages_compute_the_whole_graph(tmp_path, name, kwargs, size, fp16) -> None:
    model = _export(tmp_path, name, kwargs, size, fp16=fp16)
    parts = stages.split_stages(model, 4, height=size, width=size)
    assert len(parts) == 4
    assert [p.metadata_props[-1].value for p in parts] == [f"{i}/4" for i in range(4)]
    # the model's own metadata travels with each stage
    keys = {p.key for p in model.metadata_props}
    assert all(keys <= {p.key for p in part.metadata_props} for part in parts)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    chained = _chain(parts, x)["output"]
    np.testing.assert_array_equal(chained, _whole(model, x))
    # other sizes and batches than the cost was computed at: the stages keep the graph's free dims
    y = np.random.default_rng(1).uniform(-1, 1, (1, 3, 2 * size, size)).astype(np.float32)
    np.testing.assert_array_equal(_chain(parts, y)["output"], _whole(model, y))


def test_no_weight_crosses_a_boundary(tmp_path) -> None:
    # fp16 storage: each weight is an fp16 initializer followed by a Cast; the Cast goes with the
    # stage that uses the weight, so a boundary carries activations only.
    model = _export(tmp_path, "unet_256", {"ngf": 4}, 256, fp16=True)
    weights = {t.name for t in model.graph.initializer}
    casts = {n.output[0] for n in model.graph.node if n.op_type == "Cast" and n.input[0] in weights}
    assert casts
    parts = stages.split_stages(model, 4)
    produced: set[str] = {"input"}
    for part in parts:
        inputs = {i.name for i in part.graph.input}
        assert not inputs & casts and not inputs & weights, inputs & (casts | weights)
        assert inputs <= produced, inputs - produced  # only what earlier stages made
        produced |= {o.name for o in part.graph.output}
    # Every weight is in a stage; one that layers in two stages share (the exporter merges equal
    # tensors, e.g. zero biases) is copied into both: small ones only, so the bytes barely grow.
    assert {t.name for p in parts for t in p.graph.initializer} == weights
    whole = sum(len(t.raw_data) for t in model.graph.initializer)
    cut = sum(len(t.raw_data) for p in parts for t in p.graph.initializer)
    assert whole <= cut <= 1.01 * whole, (whole, cut)


def test_stages_share_the_convolutions_work(tmp_path) -> None:
    model = _export(tmp_path, "unet_256", {"ngf": 4}, 256)
    info = stages._shapes_at(model, "input", 256, 256, onnx, onnx.shape_inference)
    cost = [sum(stages._macs(n, info) for n in p.graph.node) for p in stages.split_stages(model, 4)]
    share = np.array(cost) / sum(cost)
    # the U-Net's largest single layers hold ~16 % of the work each: whole nodes allow this much
    assert share.max() < 0.4 and share.min() > 0.1, share


def test_one_stage_and_more_stages_than_convolutions(tmp_path) -> None:
    model = _export(tmp_path, "unet_128", {"ngf": 4}, 128)
    (whole,) = stages.split_stages(model, 1, height=128, width=128)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32)
    np.testing.assert_array_equal(_chain([whole], x)["output"], _whole(model, x))
    # More stages than convolutions: still as many as asked, while there are nodes to give out.
    convs = sum(n.op_type in ("Conv", "ConvTranspose") for n in model.graph.node)
    parts = stages.split_stages(model, convs + 5, height=128, width=128)
    assert len(parts) == convs + 5
    np.testing.assert_array_equal(_chain(parts, x)["output"], _whole(model, x))
    nodes = len(model.graph.node)
    assert len(stages.split_stages(model, nodes + 10, height=128, width=128)) == nodes


@pytest.mark.parametrize(
    ("costs", "k", "cuts"),
    [
        ([100, 1, 1, 1], 4, [1, 2, 3]),  # one heavy node: the rest still make 3 stages
        ([1, 1, 1, 1, 1, 1, 1, 1], 4, [2, 4, 6]),
        ([0, 0, 0, 0], 2, [2]),  # no convolution: split by node count
        ([5, 5], 3, [1]),  # fewer nodes than stages
        ([5, 5, 5], 1, []),
    ],
)
def test_cut_points(costs, k, cuts) -> None:
    assert stages._cut_points(np.array(costs, dtype=np.float64), k) == cuts


def test_write_stages_writes_the_first_stage_last(tmp_path, monkeypatch) -> None:
    model = _export(tmp_path, "unet_128", {"ngf": 4}, 128)
    source = tmp_path / "whole.onnx"
    onnx.save(model, str(source))
    order = []
    saved = onnx.save
    monkeypatch.setattr(onnx, "save", lambda m, path: (order.append(path), saved(m, path)))
    targets = [tmp_path / f"s{i}.onnx" for i in range(3)]
    written = stages.write_stages(source, targets, height=128, width=128)
    assert written == targets and all(t.is_file() for t in targets)
    assert order[-1].endswith("s0.onnx.partial")  # its presence means the set is complete
    assert not list(tmp_path.glob("*.partial"))


def test_bad_requests_raise(tmp_path) -> None:
    model = _export(tmp_path, "unet_128", {"ngf": 4}, 128)
    with pytest.raises(ValueError, match="at least 1"):
        stages.split_stages(model, 0)
    with pytest.raises(ValueError, match="shapes"):
        stages.split_stages(model, 2, height=100, width=100)  # not a multiple of 128
    two = onnx.ModelProto()
    two.CopyFrom(model)
    extra = onnx.helper.make_tensor_value_info("other", onnx.TensorProto.FLOAT, [1])
    two.graph.input.append(extra)
    with pytest.raises(ValueError, match="one input"):
        stages.split_stages(two, 2)
