"""ONNX export: every generator family round-trips through ONNX Runtime at two sizes in the paper's
test mode; fp16 weights, running statistics, metadata, a failing check and the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pix2pix import export, networks
from pix2pix.hub import Pix2PixGenerator, save_generator

onnx = pytest.importorskip("onnx", reason="onnx is in requirements.txt")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a test dependency")

# (registry name, kwargs, two check shapes (B, H, W) at the network's multiple)
FAMILIES = [
    ("unet", {"num_downs": 6, "ngf": 4, "norm": "batch"}, [(1, 64, 128), (3, 192, 64)]),
    ("unet", {"num_downs": 5, "ngf": 4, "norm": "instance"}, [(1, 64, 96), (2, 128, 32)]),
    ("unet", {"num_downs": 5, "ngf": 4, "norm": "none"}, [(1, 64, 96), (2, 32, 160)]),
    ("encoder_decoder_n", {"num_downs": 5, "ngf": 4}, [(1, 64, 64), (2, 96, 32)]),
    ("resnet_6blocks", {"ngf": 4, "padding": "zero"}, [(1, 36, 52), (2, 64, 20)]),
    ("resnet_9blocks", {"ngf": 4}, [(1, 36, 52), (2, 64, 20)]),
    ("huggan_unet", {}, [(1, 256, 256), (2, 256, 512)]),
]


def _generator(name: str, kwargs: dict, task: dict | None = None) -> Pix2PixGenerator:
    torch.manual_seed(0)
    model = Pix2PixGenerator(name, kwargs, task)
    networks.init_weights(model)
    # Running statistics far from each image's own, so the two test modes give different results.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _reference(model: nn.Module, x: torch.Tensor, *, input_stats: bool) -> np.ndarray:
    """What ``Translator`` computes: eval mode, dropout off, the chosen statistics."""
    with networks.eval_mode(model, input_stats=input_stats, noise=None), torch.inference_mode():
        return model(x).numpy()


def _run(path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.numpy()})[0]


def _op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize(
    ("name", "kwargs", "sizes"), FAMILIES, ids=[f"{n}-{k.get('norm', '')}" for n, k, _ in FAMILIES]
)
def test_every_family_round_trips_in_test_mode_at_two_sizes(
    tmp_path, name: str, kwargs: dict, sizes: list
) -> None:
    model = _generator(name, kwargs)
    path = tmp_path / "g.onnx"
    report = export.export_onnx(model, path, height=sizes[0][1], width=sizes[0][2])
    assert report.passed and report.max_abs_diff <= 1e-3 and path.is_file()
    ops = _op_types(path)
    assert "Dropout" not in ops  # noise off
    assert "BatchNormalization" not in ops  # each image's own statistics, not running ones
    if kwargs.get("norm", "batch") == "batch" and name != "huggan_unet":
        assert "InstanceNormalization" in ops

    generator = torch.Generator().manual_seed(1)
    for batch, height, width in sizes:  # one graph, dynamic batch and sides
        x = torch.rand(batch, model.in_channels, height, width, generator=generator) * 2 - 1
        got, expected = _run(path, x), _reference(model, x, input_stats=True)
        assert got.shape == expected.shape == (batch, 3, height, width)
        assert np.abs(got - expected).max() <= 1e-3


def test_running_statistics_export_differs_from_the_paper_mode(tmp_path) -> None:
    model = _generator("unet", {"num_downs": 5, "ngf": 4, "norm": "batch"})
    running = export.export_onnx(model, tmp_path / "r.onnx", height=64, width=64, norm="running")
    # Fixed statistics: the exporter folds BatchNorm into the convolutions.
    assert "InstanceNormalization" not in _op_types(running.path)
    x = torch.rand(2, 3, 64, 96) * 2 - 1
    got = _run(running.path, x)
    assert np.abs(got - _reference(model, x, input_stats=False)).max() <= 1e-3
    # What a naive eval() export gives is far from the paper's per-image statistics.
    assert np.abs(got - _reference(model, x, input_stats=True)).max() > 0.05


def test_fp16_weights_halve_the_file_and_keep_45_db(tmp_path) -> None:
    model = _generator("unet", {"num_downs": 6, "ngf": 8, "norm": "batch"})
    full = export.export_onnx(model, tmp_path / "fp32.onnx", height=64, width=64)
    half = export.export_onnx(model, tmp_path / "fp16.onnx", height=64, width=64, fp16=True)
    assert half.passed and half.psnr_db >= 45
    assert half.size_bytes < 0.6 * full.size_bytes
    graph = onnx.load(str(half.path)).graph
    weights = [i for i in graph.initializer if len(i.dims) == 4]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    casts = [n for n in graph.node if n.op_type == "Cast"]
    assert len(casts) >= len(weights)  # fp32 arithmetic: each weight cast back once
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = torch.rand(1, 3, 128, 64) * 2 - 1
    error = _run(half.path, x) - _reference(model, x, input_stats=True)
    assert 10 * math.log10(4 / float((error**2).mean())) >= 45
    assert export.read_metadata(half.path)["weights"] == "fp16"


def test_task_metadata_goes_into_the_file(tmp_path) -> None:
    task = {
        "input_kind": "labels",
        "train_size": 256,
        "palette": [[0, 0, 0], [255, 0, 0], [0, 0, 255]],
        "class_names": ["background", "wall", "window"],
        "license": "CC-BY-4.0",
        "dataset": "facades",
    }
    model = _generator("unet", {"num_downs": 5, "ngf": 4}, task)
    path = tmp_path / "m.onnx"
    extra = {"notes": "hello", "dataset": "x"}
    export.export_onnx(model, path, height=32, width=32, metadata=extra)
    meta = export.read_metadata(path)
    for key in ("input_kind", "train_size", "palette", "class_names", "license"):
        assert meta[key] == task[key]
    assert meta["dataset"] == "x" and meta["notes"] == "hello"  # explicit metadata wins
    assert meta["architecture"] == "unet" and meta["network"]["num_downs"] == 5
    assert meta["size_multiple"] == 32 and meta["norm"] == "instance"
    assert meta["weights"] == "fp32" and meta["in_channels"] == 3
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]


class _DiffersWhenExported(nn.Module):
    """Computes something else while being exported: the check must catch it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(self.conv(x))
        return -y if torch.compiler.is_exporting() else y


def test_a_failing_check_raises_and_leaves_no_file(tmp_path, monkeypatch, capsys) -> None:
    path = tmp_path / "bad.onnx"
    with pytest.raises(export.ExportCheckError, match="disagrees with PyTorch") as info:
        export.export_onnx(_DiffersWhenExported(), path, height=16, width=16)
    assert not path.exists()
    assert not info.value.report.passed and info.value.report.max_abs_diff > 1e-3
    # The command line says so and exits non-zero.
    monkeypatch.setattr("pix2pix.hub.load_generator", lambda *a, **k: _DiffersWhenExported())
    assert export.main(["anything", str(path), "--height", "16", "--width", "16"]) == 1
    assert "disagrees with PyTorch" in capsys.readouterr().err and not path.exists()


def test_command_line_exports_checks_and_prints_the_difference(tmp_path, capsys) -> None:
    model = _generator("unet", {"num_downs": 5, "ngf": 4}, {"input_kind": "edges"})
    save_generator(model, tmp_path / "model")
    out = tmp_path / "out" / "model.onnx"
    args = [str(tmp_path / "model"), str(out), "--fp16", "--height", "64", "--width", "32"]
    assert export.main(args) == 0
    printed = capsys.readouterr().out
    assert "largest difference" in printed and "passed" in printed
    assert "1x3x64x32" in printed  # the sizes asked for
    assert export.read_metadata(out)["input_kind"] == "edges"
    # Without sizes, the check runs at the model's training size.
    task = {"input_kind": "edges", "train_size": 96}
    small = _generator("unet", {"num_downs": 5, "ngf": 4}, task)
    save_generator(small, tmp_path / "small")
    assert export.main([str(tmp_path / "small"), str(tmp_path / "small.onnx")]) == 0
    assert "on 1x3x96x96" in capsys.readouterr().out

    assert export.main([str(tmp_path / "missing"), str(tmp_path / "x.onnx")]) == 2
    assert export.main([str(tmp_path / "model"), str(tmp_path / "x.txt")]) == 2
    assert "error:" in capsys.readouterr().err


def _file_opset(path) -> int:
    return next(o.version for o in onnx.load(str(path)).opset_import if o.domain in ("", "ai.onnx"))


def test_an_opset_that_cannot_be_written_is_refused_naming_the_lowest(tmp_path, capsys) -> None:
    # torch's exporter writes opset 18 and converts down only as far as the model's ops allow;
    # below that it kept 18, and the report and the command line still said the opset asked for.
    model = _generator("unet", {"num_downs": 5, "ngf": 4})
    path = tmp_path / "low.onnx"
    with pytest.raises(ValueError, match=r"opset 11 cannot be written") as info:
        export.export_onnx(model, path, height=64, width=64, opset=11)
    assert not path.exists()
    lowest = int(info.value.args[0].split("lowest it writes for this model is opset ")[1][:2])
    assert 11 < lowest < 18
    report = export.export_onnx(model, path, height=64, width=64, opset=lowest, check=False)
    assert report.opset == _file_opset(path) == lowest  # the file's own opset
    newest = onnx.defs.onnx_opset_version()
    with pytest.raises(ValueError, match=f"newest opset this onnx knows is {newest}"):
        export.export_onnx(model, path, opset=newest + 1)

    # The command line: the lowest really is the lowest (one below is refused), exit status 2.
    save_generator(model, tmp_path / "model")
    out = tmp_path / "cli.onnx"
    assert export.main([str(tmp_path / "model"), str(out), "--opset", str(lowest - 1)]) == 2
    err = capsys.readouterr().err
    assert f"opset {lowest - 1} cannot be written" in err and f"--opset {lowest}" in err
    assert not out.exists()
