"""Translator: every input kind, any size, batches, seeds, norm modes, threads, bad input."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Translator, networks
from pix2pix.hub import Pix2PixGenerator
from pix2pix.inference import pad_to_multiple, resolve_precision, to_tensor


@pytest.fixture(scope="module")
def model() -> Pix2PixGenerator:
    torch.manual_seed(0)
    m = Pix2PixGenerator("unet_128", {"ngf": 4})
    networks.init_weights(m.net)
    m.train()
    with torch.no_grad():  # give BatchNorm running statistics that differ from any one image
        m(torch.rand(4, 3, 128, 128) * 3 - 2)
    return m.eval()


@pytest.fixture
def translate(model: Pix2PixGenerator) -> Translator:
    return Translator(model, device="cpu", precision="fp32")


def _rgb(h: int = 96, w: int = 160, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_output_is_rgb_of_the_input_size(translate: Translator) -> None:
    for h, w in [(128, 128), (96, 160), (1, 1), (300, 129), (17, 5)]:
        out = translate(Image.fromarray(_rgb(h, w)))
        assert out.mode == "RGB" and out.size == (w, h)


def test_padding_keeps_the_image_centred(translate: Translator) -> None:
    x = torch.rand(1, 3, 100, 60)
    padded = pad_to_multiple(x, 128)
    assert padded.shape[-2:] == (128, 128)
    assert torch.equal(padded[..., 14:114, 34:94], x)
    tiny = pad_to_multiple(torch.rand(1, 3, 10, 10), 128)  # too small to reflect: replicated
    assert tiny.shape[-2:] == (128, 128)
    exact = x[..., :64, :32]
    assert pad_to_multiple(exact, 32) is exact


MODES = ["L", "LA", "RGB", "RGBA", "P", "I;16", "I", "1", "CMYK", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_pil_mode(translate: Translator, mode: str) -> None:
    base = Image.fromarray(_rgb(64, 80))
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        assert image.mode == "I;16"
    elif mode == "F":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.float32) / 255)
    else:
        image = base.convert(mode)
    out = translate(image)
    assert out.size == (80, 64) and out.mode == "RGB"


def test_grey_inputs_agree_across_representations(translate: Translator) -> None:
    grey = np.asarray(Image.fromarray(_rgb(64, 64)).convert("L"))
    as_l = np.asarray(translate(Image.fromarray(grey)))
    as_16 = np.asarray(translate(Image.fromarray(grey.astype(np.uint16) * 257)))
    as_float = np.asarray(translate(grey.astype(np.float32) / 255))
    as_rgb = np.asarray(translate(np.stack([grey] * 3, axis=-1)))
    as_i = np.asarray(translate(Image.fromarray(grey).convert("I")))  # Pillow's 0..255 scale
    as_i16_in_i = np.asarray(translate(Image.fromarray(grey.astype(np.int32) * 257, "I")))
    as_f255 = np.asarray(translate(Image.fromarray(grey).convert("F")))
    as_f01 = np.asarray(translate(Image.fromarray(grey.astype(np.float32) / 255, "F")))
    for other in (as_16, as_float, as_rgb, as_i, as_i16_in_i, as_f255, as_f01):
        assert np.abs(other.astype(int) - as_l).max() <= 1


def test_transparency_is_composited_onto_white() -> None:
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent black
    rgba[0, 0] = [0, 0, 0, 255]
    t = to_tensor(Image.fromarray(rgba, "RGBA"))
    assert t[:, 0, 0].tolist() == [-1.0, -1.0, -1.0]
    assert torch.all(t[:, 1:, :] == 1.0)
    la = to_tensor(np.dstack([np.zeros((4, 4)), np.zeros((4, 4))]).astype(np.uint8))
    assert torch.all(la == 1.0)


@pytest.mark.parametrize(
    "array",
    [
        np.zeros((32, 48), np.uint8),
        np.zeros((32, 48, 1), np.uint8),
        np.zeros((32, 48, 2), np.uint8),
        np.zeros((32, 48, 3), np.uint16),
        np.zeros((32, 48, 4), np.uint8),
        np.ones((32, 48, 3), np.float64),
        np.ones((32, 48), bool),
    ],
    ids=["HW", "HW1", "HW2", "u16", "rgba", "f64", "bool"],
)
def test_numpy_inputs(translate: Translator, array: np.ndarray) -> None:
    assert translate(array).size == (48, 32)


def test_batches_equal_single_images(translate: Translator) -> None:
    images = [Image.fromarray(_rgb(96, 160, s)) for s in range(3)] + [Image.fromarray(_rgb(50, 50))]
    batch = translate(images)
    assert isinstance(batch, list) and len(batch) == 4
    for image, out in zip(images, batch, strict=True):
        assert np.abs(np.asarray(out, dtype=int) - np.asarray(translate(image))).max() <= 1


def test_seed_none_is_deterministic_and_seeds_vary_reproducibly(model: Pix2PixGenerator) -> None:
    image = _rgb(128, 128)
    fixed = Translator(model, device="cpu", precision="fp32")
    assert np.array_equal(np.asarray(fixed(image)), np.asarray(fixed(image)))
    seeded = Translator(model, device="cpu", precision="fp32", seed=3)
    a, b = np.asarray(seeded(image)), np.asarray(seeded(image))
    assert np.array_equal(a, b)
    other = np.asarray(seeded(image, seed=4))
    assert not np.array_equal(a, other)
    assert not np.array_equal(a, np.asarray(fixed(image)))
    assert np.array_equal(np.asarray(fixed(image, seed=3)), a)
    state = torch.random.get_rng_state()
    seeded(image)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is left alone


def test_norm_modes_differ_and_never_change_the_model(model: Pix2PixGenerator) -> None:
    stored = {k: v.clone() for k, v in model.state_dict().items()}
    image = _rgb(128, 128)
    instance = np.asarray(Translator(model, device="cpu", norm="instance")(image), dtype=int)
    running = np.asarray(Translator(model, device="cpu", norm="running")(image), dtype=int)
    assert np.abs(instance - running).mean() > 1
    assert all(torch.equal(stored[k], v) for k, v in model.state_dict().items())
    assert not model.training


def test_concurrent_calls_from_threads_agree(translate: Translator) -> None:
    image = _rgb(128, 128)
    expected = np.asarray(translate(image))
    seeded = np.asarray(translate(image, seed=9))
    results: list[bool] = []

    def work(i: int) -> None:
        for _ in range(3):
            if i % 2:
                results.append(np.array_equal(np.asarray(translate(image, seed=9)), seeded))
            else:
                results.append(np.array_equal(np.asarray(translate(image)), expected))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 12


def test_one_channel_networks(translate: Translator) -> None:
    m = Pix2PixGenerator("unet_128", {"ngf": 4, "in_channels": 1, "out_channels": 1})
    out = Translator(m, device="cpu")(_rgb(64, 64))
    assert out.mode == "RGB"
    arr = np.asarray(out)
    assert np.array_equal(arr[..., 0], arr[..., 1])


def test_bf16_precision_runs_close_to_fp32(model: Pix2PixGenerator) -> None:
    image = _rgb(128, 128)
    fp32 = np.asarray(Translator(model, device="cpu", precision="fp32")(image), dtype=int)
    bf16 = np.asarray(Translator(model, device="cpu", precision="bf16")(image), dtype=int)
    assert np.abs(fp32 - bf16).mean() < 4


def test_precision_resolution() -> None:
    assert resolve_precision("auto", torch.device("cuda")) == torch.float16
    assert resolve_precision("fp32", torch.device("cuda")) == torch.float32
    assert resolve_precision("auto", torch.device("mps")) == torch.float32
    assert resolve_precision("auto", torch.device("cpu")) in (torch.float32, torch.bfloat16)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))


def test_precision_auto_on_the_cpu_follows_its_bf16_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    # One decision for inference, the backends and training (pix2pix.backends.native_bf16): plain
    # AVX512 emulates bf16 (PyTorch's own check says yes there), so fp32 is the faster choice.
    from pix2pix import backends

    cpu = torch.device("cpu")
    for native, dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(backends, "native_bf16", lambda native=native: native)
        assert resolve_precision("auto", cpu) == dtype, f"native bf16 {native}"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "H, W > 0"),
        (np.zeros((4, 4, 5), np.uint8), r"got shape \(4, 4, 5\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), r"got shape \(2, 4, 4, 3\)"),
        (np.full((4, 4), 2.0), r"values in \[0, 1\]; found \[2, 2\]"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.zeros((4, 4), np.int64), "unsupported array dtype int64"),
        ("no-such-image.png", "the image 'no-such-image.png' does not exist"),
        ([3.5], "expected an image file path, a PIL image or a numpy array, got float"),
    ],
)
def test_bad_inputs_raise_clear_errors(translate: Translator, bad: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        translate(bad)


def test_bad_options_raise() -> None:
    m = Pix2PixGenerator("unet_128", {"ngf": 4})
    with pytest.raises(ValueError, match="unknown norm mode 'batch'"):
        Translator(m, norm="batch")


def test_a_half_precision_model_is_upcast_once_and_translates(model: Pix2PixGenerator) -> None:
    half = copy.deepcopy(model).half()
    translate = Translator(half, device="cpu", precision="fp32")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    image = Image.fromarray(_rgb(128, 128))
    reference = Translator(model, device="cpu", precision="fp32")(image)
    got = np.asarray(translate(image), np.int16)
    assert np.abs(got - np.asarray(reference, np.int16)).max() <= 8  # fp16-rounded weights


# --------------------------------------------------------------------------------------------
# Every generator family at every size; seeded variations independent of the batch
# --------------------------------------------------------------------------------------------

FAMILIES = [
    ("unet_256", {"ngf": 2}),
    ("unet_128", {"ngf": 2}),
    ("encoder_decoder", {"ngf": 2}),
    ("resnet_6blocks", {"ngf": 2}),
    ("resnet_9blocks", {"ngf": 2, "padding": "zero"}),
    ("resnet_6blocks", {"ngf": 2, "padding": "replicate"}),
    ("huggan_unet", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), FAMILIES, ids=lambda v: str(v))
def test_every_generator_takes_every_size_down_to_1x1(name: str, kwargs: dict) -> None:
    model = Pix2PixGenerator(name, kwargs)
    for backend in ("eager", "auto"):
        translate = Translator(model, device="cpu", precision="fp32", backend=backend)
        for h, w in [(1, 1), (4, 4), (2, 7), (5, 3), (9, 1), (12, 8)]:
            out = translate(np.full((h, w, 3), 200, np.uint8))
            assert out.size == (w, h), (name, backend, (h, w))
            seeded = translate(np.full((h, w, 3), 200, np.uint8), seed=1)
            assert seeded.size == (w, h)


def test_padding_reaches_the_minimum_side() -> None:
    x = torch.rand(1, 3, 4, 1)
    padded = pad_to_multiple(x, 4, minimum=8)
    assert padded.shape[-2:] == (8, 8)
    assert torch.equal(padded[..., 2:6, 3:4], x)
    assert pad_to_multiple(torch.rand(1, 3, 12, 16), 4, minimum=8).shape[-2:] == (12, 16)


def test_seeded_variation_does_not_depend_on_the_batch(translate: Translator) -> None:
    images = [Image.fromarray(_rgb(64, 48, seed=i)) for i in range(4)]
    images.insert(2, Image.fromarray(_rgb(30, 20, seed=9)))  # another size: a batch of its own
    batch = translate(images, seed=7)
    for image, out in zip(images, batch, strict=True):
        alone = translate(image, seed=7)
        assert np.array_equal(np.asarray(out), np.asarray(alone))
    assert not np.array_equal(np.asarray(batch[0]), np.asarray(translate(images[0])))
    # One seed per image, as the evaluation uses them: each equals its image run alone.
    tensors = torch.stack([to_tensor(image) for image in images[:2]])
    per_image = translate.run(tensors, seed=[3, 4])
    assert np.array_equal(np.asarray(per_image[1]), np.asarray(translate(images[1], seed=4)))
    with pytest.raises(ValueError, match="1 seeds for a batch of 2"):
        translate.run(tensors, seed=[3])
