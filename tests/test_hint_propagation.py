"""Hint propagation (networks.HintPropagation): a dab's colour spread over its shape, stopped by
lines; a U-Net that reads it; growing a trained generator with it (train.add_hint_propagation)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator, load_generator
from tests.test_hints import _drawing, _folder
from train.train import add_hint_propagation

BLUE = (-0.8, -0.4, 0.8)


def _boxes() -> torch.Tensor:
    """The three outlined boxes of test_hints, as one (1, 3, 256, 256) input without dabs."""
    inp, _ = _drawing()
    return inp[None].clone()


def _dab(x: torch.Tensor, y: int, x0: int, colour: tuple[float, ...], r: int = 6) -> None:
    x[0, :, y - r : y + r, x0 - r : x0 + r] = torch.tensor(colour)[:, None, None]


def _spread(x: torch.Tensor, steps: int = 48) -> torch.Tensor:
    with torch.no_grad():
        return networks.HintPropagation(steps)(x)[0]  # (4, H, W)


def test_no_dab_reaches_nothing() -> None:
    out = _spread(_boxes())
    assert out.shape == (4, 256, 256)
    assert torch.equal(out[3], torch.full((256, 256), -1.0))
    assert torch.equal(out[:3], torch.zeros(3, 256, 256))


def test_a_dab_fills_its_box_and_stops_at_the_outline() -> None:
    x = _boxes()
    _dab(x, 128, 44, BLUE)  # inside the left box (interior x in [11, 77), y in [43, 213))
    out = _spread(x)
    reached = out[3] > 0
    # Far from the dab, in the same box, near its corners: reached, with the dab's colour.
    for y, xx in ((60, 20), (200, 20), (60, 68), (200, 68)):
        assert reached[y, xx], (y, xx)
        assert torch.allclose(out[:3, y, xx], torch.tensor(BLUE), atol=1e-5)
    # The middle and right boxes and the paper around them: untouched.
    assert not reached[:, 85:].any()
    assert not reached[:30].any() and not reached[226:].any()


def test_a_grey_dab_fills_its_box_but_a_lines_grey_edge_starts_nothing() -> None:
    x = _boxes()
    # Soften the outlines as anti-aliasing does: a 1-px grey fringe on both sides of each line.
    dark = x[0].amin(0) < 0
    fringe = torch.nn.functional.max_pool2d(dark[None, None].float(), 3, 1, 1)[0, 0].bool()
    x[0, :, fringe & ~dark] = 0.5
    assert (_spread(x)[3] < 0).all(), "a line's grey edge started a spread"
    _dab(x, 128, 44, (0.3, 0.3, 0.3))  # a light grey dab (brightness 0.65) in the left box
    out = _spread(x)
    reached = out[3] > 0
    for y, xx in ((60, 20), (200, 68)):
        assert reached[y, xx] and torch.allclose(out[:3, y, xx], torch.full((3,), 0.3), atol=1e-5)
    assert not reached[:, 85:].any()
    # Uneven grey (a soft rim, a gradient) does not start it either.
    y = _boxes()
    ramp = torch.linspace(0.2, 0.7, 12)
    y[0, :, 122:134, 38:50] = ramp[None, None, :]
    assert (_spread(y)[3] < 0).all()


def test_colour_does_not_slip_through_a_diagonal_line() -> None:
    x = torch.ones(1, 3, 256, 256)
    for i in range(256):  # a 1-pixel diagonal from corner to corner
        x[0, :, i, i] = -1
    _dab(x, 200, 40, BLUE)  # below the diagonal
    reached = _spread(x, 96)[3] > 0
    assert reached[240, 10] and reached[250, 200]
    assert not reached[10, 240] and not reached[40, 200]


def test_steps_bound_how_far_colour_travels() -> None:
    x = torch.ones(1, 3, 256, 256)
    _dab(x, 8, 8, BLUE)  # a corner of an empty page: 4-px cells, the dab in cells 0-3
    near = _spread(x, 4)[3] > 0
    assert near[20, 20] and not near[100, 100]
    assert (_spread(x, 64)[3] > 0)[100, 100]


def test_two_dabs_in_two_boxes_keep_their_colours() -> None:
    x = _boxes()
    red = (0.8, -0.8, -0.8)
    _dab(x, 128, 44, BLUE)
    _dab(x, 128, 212, red)  # the right box
    out = _spread(x)
    assert torch.allclose(out[:3, 60, 20], torch.tensor(BLUE), atol=1e-5)
    assert torch.allclose(out[:3, 60, 200], torch.tensor(red), atol=1e-5)
    assert out[3, 60, 128] < 0  # the middle box has no dab


def test_a_dab_with_an_anti_aliased_rim_spreads_its_solid_colour() -> None:
    from train.hints import paint_dab

    # A dab as the canvas's brush draws it: solid in the middle, its rim fading into the paper.
    # The rim's pixels are lighter versions of the colour; taken as dabs they would hand the
    # shape a paler colour than the visitor chose (HintPropagation.SOLID keeps the solid one).
    inp, target = _drawing()
    x = inp[None].clone()
    paint_dab(x[0], target, (128, 44), 7.0, soft_edge=3.0)
    rim = x[0, :, 128, 44 + 8]
    assert (rim > target[:, 128, 44] + 0.1).any()  # the rim is lighter than the colour
    red = target[:, 128, 44]
    out = _spread(x)
    assert torch.allclose(out[:3, 200, 20], red, atol=0.05)  # far from the dab, in its box
    networks.HintPropagation.SOLID, solid = 0.0, networks.HintPropagation.SOLID
    try:  # the same with every coloured pixel a dab: visibly paler
        plain = _spread(x)
    finally:
        networks.HintPropagation.SOLID = solid
    assert (plain[:3, 200, 20] - red).abs().max() > 0.1


def test_dark_grey_and_black_marks_are_lines_not_dabs() -> None:
    for level in (-0.9, 0.1):  # black, and a grey darker than LINE: both read as lines
        x = _boxes()
        _dab(x, 128, 44, (level, level, level))
        assert (_spread(x)[3] < 0).all()


def test_a_unet_with_propagation_reads_rgb_and_has_weights_for_the_new_channels() -> None:
    g = networks.create_generator("unet_256", ngf=4, hint_propagation=8)
    assert networks.input_channels(g) == 3
    first = next(m for m in g.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == 7
    with torch.no_grad():
        assert g.eval()(torch.zeros(1, 3, 256, 256)).shape == (1, 3, 256, 256)
    with pytest.raises(ValueError, match="RGB"):
        networks.create_generator("unet_256", in_channels=1, hint_propagation=8)
    with pytest.raises(ValueError, match="at least 1"):
        networks.HintPropagation(0)


def test_growing_a_trained_generator_keeps_its_outputs_until_it_trains(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = Pix2PixGenerator("unet_256", {"ngf": 4}, {"hints": True, "input_kind": "edges"})
    networks.init_weights(g.net)
    grown = add_hint_propagation(g, 16)
    assert grown.network_kwargs["hint_propagation"] == 16 and grown.task.hints
    assert add_hint_propagation(grown, 16) is grown
    # Another length keeps every weight and changes only how far colour spreads.
    longer = add_hint_propagation(grown, 64)
    assert longer.network_kwargs["hint_propagation"] == 64
    assert [m.steps for m in longer.modules() if isinstance(m, networks.HintPropagation)] == [64]
    kept = grown.net.state_dict()
    assert all(torch.equal(v, kept[k]) for k, v in longer.net.state_dict().items())
    x = _boxes()
    _dab(x, 128, 44, BLUE)
    with torch.no_grad():
        assert torch.equal(g.eval()(x), grown.eval()(x))
    # It saves and loads like any generator: config.json rebuilds the propagation.
    grown.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["network"]["hint_propagation"] == 16
    again = load_generator(tmp_path / "m").eval()
    assert again.in_channels == 3
    with torch.no_grad():
        assert torch.equal(again(x), grown(x))
    resnet = Pix2PixGenerator("resnet_6blocks", {"ngf": 4})
    with pytest.raises(ValueError, match="U-Nets"):
        add_hint_propagation(resnet, 8)


def test_the_padded_rounds_give_the_onnx_rounds_values() -> None:
    # PyTorch runs the rounds on a state kept padded (fast under torch.compile), ONNX as one
    # depthwise convolution a round: the same sums in the same order.
    x = _boxes()
    _dab(x, 128, 44, BLUE)
    _dab(x, 60, 128, (0.8, -0.6, -0.6))
    hp = networks.HintPropagation(40)
    with torch.no_grad():
        assert hp(x)[0, 3].gt(0).float().mean() > 0.2
        seed = torch.zeros(1, 4, 64, 64)  # a source cell block and walls, as forward makes them
        seed[0, :, 10:20, 10:20] = torch.rand(4, 1, 1)
        gate = (torch.rand(1, 1, 64, 64) > 0.2).float()
        gate[..., 10:20, 10:20] = 0
        assert torch.allclose(hp._spread(seed, gate), hp._spread_onnx(seed, gate), atol=1e-6)


def test_a_drawing_without_dabs_skips_the_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a source every round leaves the all-zero state as it is, so none runs; with one
    # they all do. The ONNX graph has no such branch (test_the_onnx_export_... below).
    hp = networks.HintPropagation(24)
    rounds = []
    real = hp._spread
    monkeypatch.setattr(hp, "_spread", lambda seed, gate: rounds.append(1) or real(seed, gate))
    plain = _boxes()
    with torch.no_grad():
        out = hp(plain)
        assert not rounds
        assert torch.equal(out[0, 3], torch.full((256, 256), -1.0))
        assert torch.equal(out[0, :3], torch.zeros(3, 256, 256))
        dabbed = plain.clone()
        _dab(dabbed, 128, 44, BLUE)
        assert hp(dabbed)[0, 3].gt(0).any() and rounds == [1]
        # What all the rounds give (the ONNX export's path always runs them): the same.
        monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
        assert torch.equal(hp(plain), out)
        assert rounds == [1]


def test_eager_runs_stay_eager_while_another_thread_compiles(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # torch 2.14's is_compiling() flag is process-wide: while the app compiles a model in the
    # background it reads True on every thread. An eager run that took the compiled path's
    # torch.cond then compiled it on its own thread (a request stalled for 140 s in the app).
    hp = networks.HintPropagation(24)
    plain = _boxes()
    dabbed = plain.clone()
    _dab(dabbed, 128, 44, BLUE)
    with torch.no_grad():
        want = [hp(plain), hp(dabbed)]
        monkeypatch.setattr(torch.compiler, "_is_compiling_flag", True)
        assert torch.compiler.is_compiling()
        graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        got = [hp(plain), hp(dabbed)]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
def test_torch_export_traces_the_rounds_without_a_branch(strict: bool) -> None:
    # The ONNX exporter falls back to strict (dynamo) tracing, where is_in_onnx_export() reads
    # False; with dynamic shapes a torch.cond there failed (seen in the app's browser export).
    torch.manual_seed(0)
    g = networks.create_generator("unet_256", ngf=4, hint_propagation=12)
    networks.init_weights(g)
    g.eval()
    dim = torch.export.Dim
    shapes = {"x": {0: dim("batch", max=8), 2: dim("rows", max=8) * 256, 3: 256}}
    example = torch.cat([_boxes()] * 2, 2).expand(2, -1, -1, -1)  # no side of 1 or 256 to fix
    program = torch.export.export(g, (example,), strict=strict, dynamic_shapes=shapes)
    dabbed = _boxes()
    _dab(dabbed, 128, 44, BLUE)
    with torch.no_grad():
        for x in (_boxes(), dabbed, torch.cat([dabbed, _boxes()])):
            x = torch.cat([x, x.flip(2)], 2)  # 512 rows: the program guards against one row of 256
            assert torch.allclose(program.module()(x), g(x), atol=1e-5)


def test_a_reduced_precision_generator_finds_the_dabs_on_the_fp32_pixels() -> None:
    torch.manual_seed(0)
    g = networks.create_generator("unet_256", ngf=4, hint_propagation=48)
    networks.init_weights(g)
    assert networks.reads_fp32_input(g)
    assert not networks.reads_fp32_input(networks.create_generator("unet_256", ngf=4))
    x = _boxes()
    _dab(x, 128, 44, BLUE)
    # A light grey dab just under the paper's brightness (PAPER 0.9 in [0, 1] is 0.8 here):
    # bf16 (8 bits of mantissa) rounds 0.7995 to 0.8008, paper.
    _dab(x, 128, 210, (0.7995, 0.7995, 0.7995))
    hp = networks.HintPropagation(48)
    with torch.no_grad():
        want = hp(x)
        assert want[0, 3, 128, 210] > 0  # the grey dab spreads from the fp32 pixels
        got = hp(x.bfloat16())
        assert got.dtype == torch.bfloat16  # in the input's dtype, computed in fp32
        assert got[0, 3, 128, 210] < 0  # from bf16 pixels it is paper
        assert torch.equal(got, hp(x.bfloat16().float()).bfloat16())
        # A bf16 copy handed the fp32 image spreads exactly what the fp32 model spreads.
        half = networks.create_generator("unet_256", ngf=4, hint_propagation=48)
        half.load_state_dict(g.state_dict())
        half = half.to(torch.bfloat16).eval()
        seen = []
        half.hints.register_forward_hook(lambda m, i, o: seen.append(o))
        y = half(x)
        assert y.dtype == torch.bfloat16 and y.shape == (1, 3, 256, 256)
        assert torch.equal(seen[0], want)


def onnx_and_eager(g: Pix2PixGenerator, tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``g``'s ONNX export (ONNX Runtime) and ``g`` itself (the paper's test mode) on the
    boxes with a blue dab in the left one: (1, 3, 256, 256) each. Skips without onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    from pix2pix.export import export_onnx

    path = tmp_path / "g.onnx"
    export_onnx(g, path)
    x = _boxes()
    _dab(x, 128, 44, BLUE)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape[1] == 3
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad(), networks.eval_mode(g, input_stats=True, noise=None):
        want = g(x).numpy()
    return got, want


def test_the_onnx_export_spreads_hints_as_pytorch_does(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = Pix2PixGenerator("unet_256", {"ngf": 4, "hint_propagation": 12}, {"hints": True})
    networks.init_weights(g.net)
    got, want = onnx_and_eager(g, tmp_path)
    assert np.abs(got - want).max() < 1e-4


def test_training_with_hint_propagation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_train import run  # main() in this process, Accelerate's state reset after

    root = _folder(tmp_path / "data")
    common = [
        "--data", str(root), "--netG", "unet_128", "--ngf", "4", "--ndf", "4",
        "--load-size", "128", "--crop-size", "128", "--max-steps", "2", "--workers", "0",
        "--sample-every", "0", "--hints", "--mixed-precision", "no",
    ]  # fmt: skip
    assert run(*common, "--out", str(tmp_path / "a"), "--hint-propagation", "8") == 0
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["network"]["hint_propagation"] == 8
    assert "spread over their shapes (8 steps)" in config["task"]["notes"]
    # Fine-tuning a generator without it grows one; a resumed run keeps it.
    assert run(*common, "--out", str(tmp_path / "b")) == 0
    grown = tmp_path / "c"
    assert run(*common, "--out", str(grown), "--init-from", str(tmp_path / "b"),
               "--hint-propagation", "8", "--no-gan") == 0  # fmt: skip
    assert json.loads((grown / "config.json").read_text())["network"]["hint_propagation"] == 8
    assert run("--resume", grown, "--max-steps", "3") == 0
    assert load_generator(grown).network_kwargs["hint_propagation"] == 8
    # Given on resume, it is checked against the run (which has --hints), not the defaults.
    assert run("--resume", grown, "--max-steps", "3", "--hint-propagation", "8") == 0
    capsys.readouterr()
    assert run("--resume", grown, "--max-steps", "4", "--hint-propagation", "4") == 2
    assert "different --hint-propagation 4 (the checkpoint has 8)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hint-propagation", "8"], "needs --hints"),
        (["--hints", "--hint-propagation", "-1"], "0 or more"),
        (["--hints", "--hint-recolour", "2"], "between 0 and 1"),
        (["--hints", "--hint-recolour-region"], "give --hint-recolour SHARE too"),
    ],
)
def test_bad_hint_propagation_options_are_refused(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from train.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    assert message in capsys.readouterr().err


def test_the_compiled_input_layout_holds_the_same_values() -> None:
    # What a compiled bf16 channels-last generator reads (networks.compiled_export: the graph
    # inductor compiles) is the eager concatenation, value for value, laid out channels-last.
    hints = networks.HintPropagation(steps=8)
    x = torch.ones(2, 3, 64, 64)
    x[:, :, 20:23, :] = -1  # a line across
    x[0, :, 30:40, 30:40] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]  # a red dab
    x[1, :, 5:15, 5:15] = torch.tensor([-0.6, -0.6, 0.8])[:, None, None]  # a blue one
    want = torch.cat([x, hints(x)], 1).to(torch.bfloat16)
    with networks.compiled_export():
        got = hints.beside_channels_last(x, torch.bfloat16)
        near = networks._nearest(hints.cells(x), 4)  # a broadcast there, not interpolate
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=torch.channels_last) and not got.is_contiguous()
    assert torch.equal(near, hints(x))
    assert (hints(x)[:, 3] > 0).any()  # a dab's colour reached something
