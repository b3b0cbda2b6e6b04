"""The paths only a CUDA GPU takes: the fp16 channels-last and CUDA-graph candidates, ``auto``'s
choice among them, dropout noise drawn on the device, weights kept resident with one host
transfer each way per request, a model exported from GPU weights, and training with Accelerate in
fp32 / bf16 / fp16.

Skipped, with the reason, where there is no CUDA GPU (CI has none). Run on a GPU machine:
``python -m pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Translator, load_generator, networks
from pix2pix.hub import Pix2PixGenerator
from pix2pix.inference import to_tensor

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; none here (run on a GPU machine)"
)

REPO = Path(__file__).resolve().parents[1]
CUDA_BACKENDS = ("eager-fp32", "cuda-fp16-channels-last", "cuda-graph-fp16")  # what auto measures
EXPLICIT = ("eager", "cuda-fp16-channels-last", "cuda-graph-fp16")  # Translator(backend=...)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("PIX2PIX_BACKENDS", raising=False)  # conftest limits it to CPU paths


def _model(ngf: int = 16, seed: int = 0) -> Pix2PixGenerator:
    """unet_256 with the paper's batch norm and dropout; weights N(0, 0.02)."""
    torch.manual_seed(seed)
    model = Pix2PixGenerator("unet_256", {"ngf": ngf, "norm": "batch", "dropout": True})
    networks.init_weights(model.net)
    return model.eval()


def _images(count: int, side: int = 256) -> list[Image.Image]:
    """Smooth random images with some edges: structure for the network to respond to."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        img = np.array(coarse.resize((side, side), Image.BICUBIC))
        img[side // 4 : side // 2, side // 3 : 2 * side // 3] = 255
        out.append(Image.fromarray(img))
    return out


def _psnr_255(a: Image.Image, b: Image.Image) -> float:
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _cpu_reference(model: Pix2PixGenerator, images: list[Image.Image]) -> list[Image.Image]:
    import copy

    # fp32 on every CPU: precision "auto" would run bf16 on one with AMX / AVX512-BF16.
    return Translator(copy.deepcopy(model), device="cpu", backend="eager", precision="fp32")(images)


@pytest.mark.parametrize("backend", EXPLICIT)
def test_each_cuda_backend_matches_fp32_on_the_cpu(backend: str) -> None:
    model = _model()
    images = _images(2)
    reference = _cpu_reference(model, images)
    translate = Translator(model, device="cuda", backend=backend)
    assert translate.backend == backend
    for got, want in zip(translate(images), reference, strict=True):
        assert got.size == want.size
        # fp32 on CUDA uses TF32 convolutions by default; fp16 rounds more: 40 dB is the bar
        # backends.MIN_PSNR sets for every candidate.
        assert _psnr_255(got, want) >= 40, backend
        diff = np.abs(np.asarray(got, int) - np.asarray(want, int))
        assert np.percentile(diff, 99) <= 3, backend


def test_auto_measures_the_cuda_candidates_and_caches_the_choice() -> None:
    model = _model()
    images = _images(1)
    reference = _cpu_reference(model, images)
    first = Translator(model, device="cuda")
    got = first(images)[0]
    assert first.backend in CUDA_BACKENDS
    assert first.choice is not None and not first.choice.cached
    measured = {m.name: m for m in first.choice.measurements}
    assert set(measured) == set(CUDA_BACKENDS), first.backend_reason
    for m in measured.values():
        assert m.status == "ok" and m.p50_ms > 0, (m.name, m.note)
    assert _psnr_255(got, reference[0]) >= 40

    again = Translator(model, device="cuda")
    assert _psnr_255(again(images)[0], got) >= 50  # the same path, read from the cache
    assert again.choice is not None and again.choice.cached
    assert again.backend == first.backend


def test_cuda_graph_replays_its_shape_and_runs_other_shapes_eagerly() -> None:
    model = _model()
    translate = Translator(model, device="cuda", backend="cuda-graph-fp16")
    square, wide = _images(1)[0], _images(1, side=512)[0].crop((0, 0, 512, 256))
    for image in (square, wide, square):  # captured shape, another shape, the captured again
        got = translate(image)
        assert got.size == image.size
        assert _psnr_255(got, _cpu_reference(model, [image])[0]) >= 40
    batch = translate(_images(3))  # batch 3: not the captured batch 1 either
    for got, want in zip(batch, _cpu_reference(model, _images(3)), strict=True):
        assert _psnr_255(got, want) >= 40


def test_seeded_dropout_on_cuda_is_reproducible_and_per_image() -> None:
    translate = Translator(_model(), device="cuda")
    a, b = _images(2)
    one = np.asarray(translate(a, seed=1), int)
    assert np.abs(one - np.asarray(translate(a, seed=1), int)).max() <= 1  # reproducible
    assert np.abs(one - np.asarray(translate(a, seed=2), int)).mean() > 1  # another variation
    batch = translate.run(torch.stack([to_tensor(a), to_tensor(b)]), seed=[1, 5])
    # Its variation ignores its batch mates (a batch normalises per image with another kernel).
    assert np.abs(np.asarray(batch[0], int) - one).max() <= 2


def _copies(fn) -> tuple[int, int]:
    """Host -> device and device -> host copies the CUDA profiler sees during ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    return sum("HtoD" in n for n in names), sum("DtoH" in n for n in names)


@pytest.mark.parametrize("backend", ["auto", *EXPLICIT])
def test_weights_stay_on_the_gpu_one_transfer_each_way_per_request(backend: str) -> None:
    translate = Translator(_model(), device="cuda", backend=backend)
    image = _images(1)[0]
    translate(image)  # the first call measures (auto) or warms up
    assert all(p.device.type == "cuda" for p in translate.model.parameters())
    for _ in range(3):
        translate(image)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(5):
        translate(image)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= before + (1 << 20)  # nothing piles up per request
    assert _copies(lambda: translate(image)) == (1, 1), translate.backend


def test_two_threads_share_a_cuda_translator() -> None:
    translate = Translator(_model(), device="cuda")
    images = _images(2)
    expected = [np.asarray(translate(im)) for im in images]
    errors: list[str] = []

    def work(i: int) -> None:
        for _ in range(5):
            got = np.asarray(translate(images[i]))
            if np.abs(got.astype(int) - expected[i]).max() > 1:
                errors.append(f"thread {i}: output changed")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_bundled_model_on_cuda_matches_the_cpu() -> None:
    model = load_generator(REPO / "checkpoints" / "facades-patch70")
    image = Image.open(next((REPO / "examples" / "facades").glob("*.png"))).convert("RGB")
    want = Translator(load_generator(REPO / "checkpoints" / "facades-patch70"), device="cpu",
                      backend="eager", precision="fp32")(image)  # fmt: skip
    got = Translator(model, device="cuda")(image)
    assert _psnr_255(got, want) >= 40


def test_export_from_gpu_weights(tmp_path: Path) -> None:
    from pix2pix import export

    model = _model(ngf=8).to("cuda")
    report = export.export_onnx(model, tmp_path / "g.onnx")
    assert report.passed and report.max_abs_diff <= 1e-3


@pytest.mark.parametrize("precision", ["no", "bf16", "fp16"])
def test_training_on_the_gpu(precision: str, tmp_path: Path) -> None:
    from accelerate.state import AcceleratorState, GradientState

    from tests.test_train import write_aligned
    from train.train import main, resolve_mixed_precision

    data = tmp_path / "data"
    write_aligned(data / "train", 4)
    out = tmp_path / "run"
    argv = ["--data", data, "--out", out, "--netG", "unet_128", "--ngf", "8", "--ndf", "8",
            "--load-size", "136", "--crop-size", "128", "--max-steps", "6", "--batch-size", "2",
            "--workers", "0", "--sample-every", "0", "--log-every", "1",
            "--mixed-precision", precision]  # fmt: skip
    try:
        assert main([str(a) for a in argv]) == 0
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    import json

    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 6 and summary["images"] == 12
    losses = summary["losses"]
    assert losses and all(np.isfinite(v) for v in losses.values()), losses
    model = load_generator(out)  # saved as fp32 on the CPU, loadable anywhere
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert resolve_mixed_precision("auto")[0] in ("bf16", "no")
