"""Packed oneDNN convolutions (same results as eager, shared weights, fallbacks); requests that
read no tensor value back before their one transfer."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pix2pix import Translator, networks, onednn
from pix2pix.hub import Pix2PixGenerator

needs_onednn = pytest.mark.skipif(not onednn.available(), reason="PyTorch built without oneDNN")

ARCHITECTURES = [
    ("unet_256", {"ngf": 8}, (2, 3, 256, 512)),
    ("unet", {"num_downs": 5, "ngf": 8, "norm": "instance"}, (1, 3, 96, 64)),
    ("encoder_decoder_128", {"ngf": 8}, (1, 3, 128, 128)),
    ("resnet_6blocks", {"ngf": 8, "padding": "zero"}, (1, 3, 68, 52)),
    ("resnet_9blocks", {"ngf": 8}, (2, 3, 64, 64)),
    ("huggan_unet", {}, (1, 3, 256, 256)),
]


def _model(name: str, kwargs: dict) -> nn.Module:
    torch.manual_seed(0)
    return networks.init_weights(networks.create_generator(name, **kwargs)).eval()


def _forward(model: nn.Module, x: torch.Tensor, input_stats: bool = True) -> torch.Tensor:
    with networks.eval_mode(model, input_stats=input_stats, noise=None), torch.inference_mode():
        return model(x)


@needs_onednn
@pytest.mark.parametrize(("name", "kwargs", "shape"), ARCHITECTURES)
def test_packed_twin_matches_the_eager_model(name: str, kwargs: dict, shape: tuple) -> None:
    model = _model(name, kwargs)
    twin = onednn.packed_copy(model)
    x = torch.rand(shape) * 2 - 1
    packed = onednn.packed_convolutions(twin)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(packed) == len(convs)  # every convolution of these generators is packed
    for input_stats in (True, False):
        expected, got = _forward(model, x, input_stats), _forward(twin, x, input_stats)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()
    assert not any(p.failed for p in packed)  # the packed kernels ran, no fallback


@needs_onednn
def test_twin_shares_parameters_and_buffers_and_repacks_after_a_change() -> None:
    model = _model("unet_128", {"ngf": 4})
    twin = onednn.packed_copy(model)
    ours = {id(t) for t in [*model.parameters(), *model.buffers()]}
    theirs = {id(t) for t in [*twin.parameters(), *twin.buffers()]}
    assert ours == theirs  # not a copy: no extra memory, no stale weights
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    before = _forward(twin, x)
    with torch.no_grad():  # what an optimizer step or load_state_dict does: an in-place change
        for p in model.parameters():
            p.mul_(1.5)
    after, expected = _forward(twin, x), _forward(model, x)
    assert not torch.allclose(after, before, atol=1e-3)
    assert torch.allclose(after, expected, atol=1e-4)


@needs_onednn
def test_gradients_and_other_dtypes_use_the_ordinary_convolution() -> None:
    conv = nn.ConvTranspose2d(4, 3, 4, 2, 1)
    packed = onednn.PackedConv(conv)
    x = torch.rand(1, 4, 8, 8, requires_grad=True)
    y = packed(x)
    y.sum().backward()  # autograd goes through the eager convolution
    assert x.grad is not None and conv.weight.grad is not None
    assert not packed._packed  # nothing was packed for a gradient call
    with torch.inference_mode():
        half = packed.to(torch.bfloat16)(x.detach().to(torch.bfloat16))
    assert half.dtype == torch.bfloat16 and not packed._packed


@needs_onednn
@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "stride", "padding", "dilation", "shape"),
    [
        (128, 3, 4, 2, 1, 1, (1, 128, 16, 16)),  # a U-Net's last layer
        (8, 1, 4, 2, 1, 1, (3, 8, 7, 9)),
        (6, 4, 3, 1, 1, 1, (2, 6, 5, 4)),
        (5, 2, 5, 3, 2, 2, (1, 5, 6, 11)),
    ],
)
def test_narrow_transposed_convolutions_run_as_gemm_and_fold(
    cin: int, cout: int, kernel: int, stride: int, padding: int, dilation: int, shape: tuple
) -> None:
    torch.manual_seed(0)
    conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding, dilation=dilation)
    packed = onednn.PackedConv(conv)
    assert packed.narrow
    x = torch.randn(shape)
    with torch.inference_mode():
        for _ in range(2):  # the checked first call, then the cached one
            got, expected = packed(x), conv(x)
            assert got.shape == expected.shape
            assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert not packed.failed


def test_string_padding_is_left_to_pytorch() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), nn.Conv2d(4, 4, 3, padding=1))
    twin = onednn.packed_copy(model)
    assert isinstance(twin[0], nn.Conv2d)
    assert isinstance(twin[1], onednn.PackedConv) or not onednn.available()
    x = torch.rand(1, 3, 9, 9)
    with torch.inference_mode():
        assert torch.allclose(twin(x), model(x), atol=1e-5)


@needs_onednn
def test_packed_weights_per_shape_are_bounded() -> None:
    conv = nn.Conv2d(3, 4, 3, padding=1)
    packed = onednn.PackedConv(conv)
    with torch.inference_mode():
        for size in range(8, 8 + onednn.SHAPES_PER_LAYER + 3):
            x = torch.rand(1, 3, size, size)
            assert torch.allclose(packed(x), conv(x), atol=1e-5)
    assert len(packed._packed) == onednn.SHAPES_PER_LAYER


def _raises(self: onednn.PackedConv, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("could not create a primitive")


def _off_by_a_little(
    self: onednn.PackedConv, x: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    return _RIGHT_RUN(self, x, weights) + 0.01


_RIGHT_RUN = onednn.PackedConv._run


@needs_onednn
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (_raises, "could not create a primitive"),  # an unsupported case in some oneDNN build
        (_off_by_a_little, "differs from the eager convolution by 0.01"),  # caught on 1st call
    ],
)
@pytest.mark.parametrize("layer", [nn.Conv2d, nn.ConvTranspose2d])
def test_a_faulty_kernel_falls_back_to_eager_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: object,
    message: str,
    layer: type[nn.Module],
) -> None:
    conv = layer(3, 4, 4, 2, 1)
    packed = onednn.PackedConv(conv)
    monkeypatch.setattr(onednn.PackedConv, "_run", fault)
    x = torch.rand(1, 3, 16, 16)
    with caplog.at_level(logging.WARNING, logger="pix2pix.onednn"), torch.inference_mode():
        assert torch.equal(packed(x), conv(x))
        assert packed.failed
        assert torch.equal(packed(x), conv(x))  # and stays on the eager path
    assert message in caplog.text


def _paper_mode_model() -> Pix2PixGenerator:
    torch.manual_seed(0)
    model = Pix2PixGenerator("unet_256", {"ngf": 8, "dropout": True})
    networks.init_weights(model.net)
    return model.eval()


def test_translator_picks_the_packed_path_on_cpu_fp32_with_the_same_images() -> None:
    model = _paper_mode_model()
    auto = Translator(model, device="cpu", precision="fp32", backend="torch")
    eager = Translator(model, device="cpu", precision="fp32", backend="eager")
    assert eager.backend == "eager" and eager.net is model
    assert auto.backend == ("onednn" if onednn.available() else "eager")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 300, 3), np.uint8))
    for seed in (None, 3):  # dropout noise too: the twin's Dropout layers draw the same masks
        a = np.asarray(auto(image, seed=seed), np.int16)
        b = np.asarray(eager(image, seed=seed), np.int16)
        assert np.abs(a - b).max() <= 1  # float rounding at most moves a value across .5
    assert not model.training  # the shared model was left as it was


def test_translator_backend_errors_name_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _paper_mode_model()
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'"):
        Translator(model, device="cpu", backend="tensorrt")
    with pytest.raises(ValueError, match="precision fp32"):
        Translator(model, device="cpu", precision="bf16", backend="onednn")
    monkeypatch.setattr(onednn, "available", lambda: False)
    assert Translator(model, device="cpu", precision="fp32", backend="torch").backend == "eager"
    with pytest.raises(ValueError, match="oneDNN False"):
        Translator(model, device="cpu", precision="fp32", backend="onednn")


def test_eval_mode_restores_mixed_training_states() -> None:
    model = _model("unet_128", {"ngf": 4})
    model.train()
    frozen = next(m for m in model.modules() if isinstance(m, networks.BatchNorm2d))
    frozen.eval()  # e.g. a fine-tuning run with one normalisation layer frozen
    before = {name: m.training for name, m in model.named_modules()}
    with networks.eval_mode(model, input_stats=True, noise=None):
        assert not any(m.training for m in model.modules())
    assert {name: m.training for name, m in model.named_modules()} == before


class _ValueReads(TorchDispatchMode):
    """Records the ops that read a tensor's value back to Python (a host sync on a GPU)."""

    READS = ("_local_scalar_dense", "nonzero", "is_nonzero", "equal")

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        if func.__name__.split(".")[0] in self.READS:
            self.reads.append(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("backend", ["auto", "torch", "eager"])
def test_a_request_reads_no_tensor_value_before_the_final_transfer(backend: str) -> None:
    # The GPU path runs this same code: a read of a value inside it would be a host sync per
    # read; the only transfer is the uint8 result (``.cpu().numpy()``, not an aten op on CPU).
    translate = Translator(_paper_mode_model(), device="cpu", precision="fp32", backend=backend)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (256, 256, 3), np.uint8))
    translate(image, seed=1)  # first call: the packed path checks each layer once (reads values)
    translate(image, seed=None)  # and "auto" measures its candidates (reads values)
    for seed in (None, 2):
        with _ValueReads() as mode:
            translate(image, seed=seed)
        assert mode.ops > 50  # the mode saw the network run
        assert mode.reads == []
