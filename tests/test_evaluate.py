"""Evaluation: metric functions against hand-computed values, palettes, the segmenter, FID and the
``python -m train.evaluate`` command on a tiny labels|photo dataset made here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from pix2pix.hub import Pix2PixGenerator, save_generator
from train import evaluate, metrics
from train.segmentation import (
    SegmentationNet,
    evaluate_segmenter,
    load_segmenter,
    save_segmenter,
    train_segmenter,
)

ROOT = Path(__file__).resolve().parents[1]
SIZE = 32
PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
NAMES = ["background", "wall", "window"]
# The "photo" of each class: a distinct colour plus noise (and stripes on walls), so that a small
# segmenter learns it in a few dozen steps.
PHOTO_COLOURS = np.array([[200, 180, 150], [60, 110, 60], [70, 70, 170]], dtype=np.float32)


def _make_dataset(root: Path, splits: dict[str, int], seed: int = 0) -> Path:
    """Aligned A|B images: A = label map (rectangles in palette colours), B = its photo."""
    rng = np.random.default_rng(seed)
    for split, n in splits.items():
        folder = root / split
        folder.mkdir(parents=True)
        for i in range(n):
            labels = np.zeros((SIZE, SIZE), dtype=np.int64)
            for c in (1, 2, 1, 2):
                h, w = rng.integers(SIZE // 5, SIZE // 2, 2)
                y, x = rng.integers(0, SIZE - h), rng.integers(0, SIZE - w)
                labels[y : y + h, x : x + w] = c
            a = np.array(PALETTE, dtype=np.uint8)[labels]
            photo = PHOTO_COLOURS[labels] + rng.normal(0, 12, (SIZE, SIZE, 3))
            photo[::4] -= 25 * (labels[::4, :, None] == 1)
            b = np.clip(photo, 0, 255).astype(np.uint8)
            Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i:03d}.png")
    classes = {"class_names": NAMES, "palette": PALETTE}
    (root / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    return root


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    # These networks are tiny: on a busy 2-core machine, two intra-op threads waiting on each
    # other made the segmenter's training 10-30x slower than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dataset, a random labels -> photo generator and a segmenter trained on the real photos."""
    tmp = tmp_path_factory.mktemp("evaluate")
    data = _make_dataset(tmp / "data", {"train": 16, "val": 4, "test": 6})
    torch.manual_seed(0)
    task = {"input_kind": "labels", "palette": PALETTE, "class_names": NAMES}
    generator = save_generator(Pix2PixGenerator("unet_128", {"ngf": 4}, task), tmp / "generator")
    segmenter = tmp / "segmenter"
    train_segmenter(
        data,
        out=segmenter,
        steps=40,
        batch_size=4,
        size=SIZE,
        lr=3e-3,
        seed=0,
        device="cpu",
        width=8,
        progress=False,
    )
    return {"tmp": tmp, "data": data, "generator": generator, "segmenter": segmenter}


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision inception_v3 state dict with random weights (no download)."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
    path = tmp_path_factory.mktemp("inception") / "inception_v3.pth"
    torch.save(net.state_dict(), path)
    return path


# --------------------------------------------------------------------------------------------
# Pixel metrics
# --------------------------------------------------------------------------------------------


def test_l1_and_psnr_hand_computed() -> None:
    target = torch.zeros(2, 3, 4, 4)
    output = target.clone()
    output[0] += 0.5  # every value off by 0.5
    output[1, 0] = 1.0  # one channel of three off by 1: mean 1/3
    assert metrics.l1_error(output, target).tolist() == pytest.approx([0.5, 1 / 3])

    target = torch.full((1, 3, 8, 8), 100.0)
    output = target + 10  # MSE 100 on [0, 255]
    assert float(metrics.psnr(output, target)) == pytest.approx(10 * math.log10(255**2 / 100))
    assert float(metrics.psnr(target, target)) == math.inf
    with pytest.raises(ValueError, match="same shape"):
        metrics.psnr(output, target[:, :1])


def test_ssim_identity_constants_and_monotone_in_noise() -> None:
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(0, 255, (2, 3, 32, 32)))
    assert metrics.ssim(x, x).tolist() == pytest.approx([1.0, 1.0], abs=1e-12)

    # Constant images: variances and covariance vanish, SSIM = (2ab + C1) / (a^2 + b^2 + C1).
    a, b, c1 = 100.0, 150.0, (0.01 * 255) ** 2
    const = metrics.ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
    assert float(const) == pytest.approx((2 * a * b + c1) / (a**2 + b**2 + c1))

    noise = torch.from_numpy(rng.normal(0, 1, x.shape))
    scores = [float(metrics.ssim((x + s * noise).clamp(0, 255), x)[0]) for s in (5, 20, 60)]
    assert 1 > scores[0] > scores[1] > scores[2] > 0

    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(x[..., :8, :8], x[..., :8, :8])


def test_ssim_matches_the_definition_at_one_window() -> None:
    # An 11x11 image has exactly one valid window: compute Wang et al.'s formula by hand there.
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 255, (11, 11)), rng.uniform(0, 255, (11, 11))
    g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    expected = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    got = metrics.ssim(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])
    assert float(got) == pytest.approx(expected, rel=1e-9)


# --------------------------------------------------------------------------------------------
# Label maps and segmentation scores
# --------------------------------------------------------------------------------------------


def test_palette_indices_exact_and_nearest() -> None:
    pixels = torch.tensor(
        [[[0, 0, 0], [255, 0, 0], [0, 0, 255]], [[10, 5, 0], [200, 30, 40], [20, 20, 230]]]
    )
    indices, exact = metrics.palette_indices(pixels, PALETTE)
    assert indices.tolist() == [[0, 1, 2], [0, 1, 2]]
    assert exact.tolist() == [[True, True, True], [False, False, False]]
    # Equidistant from black and red: the lower class index wins.
    assert metrics.palette_indices(torch.tensor([[127.5, 0, 0]]), PALETTE)[0].tolist() == [0]
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        metrics.palette_indices(torch.zeros(2, 2), PALETTE)


def test_segmentation_scores_hand_computed_with_a_class_absent_from_the_truth() -> None:
    # Classes 0..3; class 3 never occurs in the ground truth but is predicted once.
    target = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 2]])
    pred = torch.tensor([[0, 0, 1, 1], [1, 3, 2, 0]])
    conf = metrics.confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[2, 1, 0, 0], [0, 2, 0, 1], [1, 0, 1, 0], [0, 0, 0, 0]]
    scores = metrics.segmentation_scores(conf)
    assert scores["pixel_accuracy"] == pytest.approx(5 / 8)
    # Per-class accuracy over the 3 classes present: 2/3, 2/3, 1/2.
    assert scores["mean_class_accuracy"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)
    # IoU = TP / (TP + FP + FN): class 0: 2/(3+1), class 1: 2/(3+1), class 2: 1/(2+0).
    assert scores["mean_class_iou"] == pytest.approx((2 / 4 + 2 / 4 + 1 / 2) / 3)
    assert scores["classes_present"] == 3
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        metrics.confusion_matrix(pred + 1, target, 4)


def test_accuracy() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 0.0], [0.0, 1.0, 0.0]])
    assert metrics.accuracy(logits, torch.tensor([0, 2, 0, 1])) == pytest.approx(0.75)


# --------------------------------------------------------------------------------------------
# FID
# --------------------------------------------------------------------------------------------


def test_frechet_distance_closed_forms() -> None:
    # 1-d Gaussians: (m1 - m2)^2 + (s1 - s2)^2.
    got = metrics.frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), [[9.0]])
    assert got == pytest.approx(4.0 + 1.0)
    # Diagonal covariances: sum over dimensions.
    mu1, mu2 = np.zeros(3), np.array([1.0, 0.0, 2.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    expected = 5.0 + (1 - 2) ** 2 + 0 + (3 - 1) ** 2
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)


def test_fid_low_rank_path_equals_sqrtm() -> None:
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(10, 32)), rng.normal(0.3, 1.5, size=(12, 32))
    via_sqrtm = metrics.frechet_distance(
        *metrics.feature_statistics(f1), *metrics.feature_statistics(f2)
    )
    assert metrics.fid_from_features(f1, f2) == pytest.approx(via_sqrtm, rel=1e-6)
    assert metrics.fid_from_features(f1, f1) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="N >= 2"):
        metrics.fid_from_features(f1[:1], f2)


def test_fid_with_inception_features(inception_weights: Path) -> None:
    model = evaluate.load_inception(inception_weights)
    torch.manual_seed(0)
    images = torch.rand(4, 3, SIZE, SIZE) * 2 - 1
    real = evaluate.inception_features(model, images)
    assert real.shape == (4, 2048)
    shifted = evaluate.inception_features(model, (images + 0.5).clamp(-1, 1))
    same = metrics.fid_from_features(real, real)
    moved = metrics.fid_from_features(real, shifted)
    assert moved > 0
    assert abs(same) < 1e-6 * moved


# --------------------------------------------------------------------------------------------
# Segmenter
# --------------------------------------------------------------------------------------------


def test_segmenter_learns_and_round_trips(workspace: dict[str, Path], tmp_path: Path) -> None:
    model = load_segmenter(workspace["segmenter"])
    assert model.palette == PALETTE and model.class_names == NAMES
    # Chance: always predicting the commonest class.
    train_scores = evaluate_segmenter(model, workspace["data"], split="train", size=SIZE)
    counts = np.zeros(3)
    for path in sorted((workspace["data"] / "train").iterdir()):
        a = np.asarray(Image.open(path))[:, :SIZE].reshape(-1, 3)
        counts += [(a == c).all(1).sum() for c in PALETTE]
    chance = counts.max() / counts.sum()
    assert train_scores["pixel_accuracy"] > max(0.85, chance + 0.2)
    assert model.metrics["val_split"] == "val"
    assert model.metrics["val_pixel_accuracy"] > max(0.8, chance + 0.15)

    x = torch.rand(2, 3, 40, 24) * 2 - 1  # any size: padded to a multiple of 16 inside
    assert model(x).shape == (2, 3, 40, 24)
    copy = load_segmenter(save_segmenter(model, tmp_path / "copy"))
    assert torch.equal(copy(x), model(x))
    (tmp_path / "copy" / "segmenter.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"segmenter\.safetensors"):
        load_segmenter(tmp_path / "copy")


def test_segmenter_training_needs_a_palette(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "data", {"train": 2})
    (data / "classes.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"classes\.json"):
        train_segmenter(data, out=None, steps=1, size=SIZE, device="cpu", progress=False)


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def test_cli_end_to_end_with_fcn_score(
    workspace: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv(evaluate.FID_ENV, raising=False)
    out = workspace["tmp"] / "eval"
    argv = ["--model", str(workspace["generator"]), "--data", str(workspace["data"])]
    argv += ["--size", str(SIZE), "--out", str(out), "--batch-size", "4"]
    argv += ["--segmenter", str(workspace["segmenter"])]
    assert evaluate.main(argv) == 0
    printed = capsys.readouterr().out
    assert "FCN per-pixel accuracy" in printed and "PSNR" in printed
    assert evaluate.NO_FID_WEIGHTS in printed

    results = json.loads((out / "metrics.json").read_text())
    assert results["model"] == str(workspace["generator"])
    assert (results["split"], results["count"], results["seed"]) == ("test", 6, None)
    assert results["direction"] == "AtoB" and results["size"] == SIZE
    assert results["settings"]["norm"] == "instance"
    assert set(results["metrics"]) == {
        "l1",
        "psnr_db",
        "ssim",
        "colourfulness_median",
        "target_colourfulness_median",
    }
    assert results["metrics"]["colourfulness_median"] >= 0
    assert 0 < results["metrics"]["l1"] < 2 and -1 < results["metrics"]["ssim"] < 1
    assert len(results["per_image"]) == 6
    fcn = results["fcn"]
    assert fcn["palette"] == "task.palette of the generator" and fcn["num_classes"] == 3
    assert fcn["label_pixels_off_palette"] == 0
    for key in ("pixel_accuracy", "mean_class_accuracy", "mean_class_iou"):
        # The real photos (the paper's "ground truth" row) beat a random generator.
        assert fcn["real"][key] > fcn["generated"][key] + 0.2
    assert fcn["real"]["pixel_accuracy"] > 0.8
    assert results["fid"] is None and results["fid_note"] == evaluate.NO_FID_WEIGHTS

    with Image.open(out / "examples.png") as grid:
        m = evaluate.MARGIN
        assert grid.size == (3 * SIZE + 4 * m, 6 * SIZE + 7 * m)


def test_cli_fid_from_the_environment_with_dropout_noise(
    workspace: dict[str, Path],
    inception_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(evaluate.FID_ENV, str(inception_weights))
    argv = ["--model", str(workspace["generator"]), "--data", str(workspace["data"])]
    argv += ["--size", str(SIZE), "--out", str(tmp_path), "--limit", "3", "--seed", "1"]
    assert evaluate.main(argv) == 0
    results = json.loads((tmp_path / "metrics.json").read_text())
    assert results["count"] == 3 and results["seed"] == 1
    assert results["settings"]["dropout"].startswith("on")
    assert results["fcn"] is None
    assert results["fid"] > 0 and str(inception_weights) in results["fid_note"]
    with Image.open(tmp_path / "examples.png") as grid:
        assert grid.size[1] == 3 * SIZE + 4 * evaluate.MARGIN


def test_bad_inputs_give_clear_errors(
    workspace: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["--model", str(workspace["generator"]), "--size", str(SIZE), "--out", str(tmp_path)]
    assert evaluate.main([*base, "--data", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert evaluate.main([*base, "--data", str(workspace["data"]), "--split", "holdout"]) == 2
    assert "split 'holdout' not found" in capsys.readouterr().err

    four = SegmentationNet(4, 4)
    save_segmenter(four, tmp_path / "four")
    argv = [*base, "--data", str(workspace["data"]), "--segmenter", str(tmp_path / "four")]
    assert evaluate.main(argv) == 2
    assert "predicts 4 classes but the palette" in capsys.readouterr().err

    argv = [*base, "--data", str(workspace["data"]), "--fid-weights", str(tmp_path / "no.pth")]
    assert evaluate.main(argv) == 2
    assert "Inception weights" in capsys.readouterr().err


def test_palette_sources_in_order(workspace: dict[str, Path], tmp_path: Path) -> None:
    data = workspace["data"]
    labelled = Pix2PixGenerator("unet_128", {"ngf": 4}, {"palette": PALETTE[::-1]})
    bare = Pix2PixGenerator("unet_128", {"ngf": 4})
    custom = tmp_path / "custom.json"
    custom.write_text(json.dumps({"palette": [[1, 2, 3], [4, 5, 6]]}))
    assert evaluate.resolve_palette(custom, bare, data) == ([[1, 2, 3], [4, 5, 6]], str(custom))
    assert evaluate.resolve_palette(workspace["generator"], bare, data)[0] == PALETTE
    assert evaluate.resolve_palette(None, labelled, data)[0] == PALETTE[::-1]
    assert evaluate.resolve_palette(None, bare, data) == (PALETTE, str(data / "classes.json"))
    seg = SegmentationNet(3, 4, palette=PALETTE)
    assert evaluate.resolve_palette(None, bare, tmp_path, seg)[0] == PALETTE
    with pytest.raises(ValueError, match="--palette-from"):
        evaluate.resolve_palette(None, bare, tmp_path)
    with pytest.raises(ValueError, match="class indices would not match"):
        evaluate.check_segmenter(seg, PALETTE[::-1], "test")


def test_a_module_in_training_gets_its_state_back(workspace: dict[str, Path]) -> None:
    generator = Pix2PixGenerator("unet_128", {"ngf": 4}).train()
    results = evaluate.evaluate(
        generator, workspace["data"], size=SIZE, limit=2, device="cpu", progress=False
    )
    assert results["count"] == 2 and results["model"] == "<Pix2PixGenerator>"
    assert generator.training
    assert all(p.requires_grad for p in generator.parameters())


def test_module_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "--segmenter" in result.stdout and "--fid-weights" in result.stdout


def test_fcn_score_runs_the_segmenter_at_its_own_size(workspace: dict[str, Path]) -> None:
    # Evaluating at twice the segmenter's training size: images and labels are brought back to
    # its size, so the real photos still segment as well as at their own size.
    results = evaluate.evaluate(
        workspace["generator"], workspace["data"], size=2 * SIZE, segmenter=workspace["segmenter"],
        progress=False,
    )  # fmt: skip
    assert results["fcn"]["segmenter_size"] == SIZE
    assert results["fcn"]["real"]["pixel_accuracy"] > 0.8


def test_seeded_metrics_do_not_depend_on_the_batch_size(workspace: dict[str, Path]) -> None:
    runs = [
        evaluate.evaluate(
            workspace["generator"],
            workspace["data"],
            size=SIZE,
            seed=5,
            batch_size=batch,
            device="cpu",
            progress=False,
        )
        for batch in (1, 4)
    ]
    one, four = runs[0]["per_image"], runs[1]["per_image"]
    assert [r["name"] for r in one] == [r["name"] for r in four]
    for a, b in zip(one, four, strict=True):
        assert a["l1"] == pytest.approx(b["l1"], abs=1e-4), (a, b)


def _fixed_output(colour: list[int] | None) -> torch.nn.Module:
    """A 1x1 convolution that copies its input (``None``) or paints every pixel ``colour``."""
    conv = torch.nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        if colour is None:
            conv.weight.copy_(torch.eye(3)[:, :, None, None])
            conv.bias.zero_()
        else:
            conv.weight.zero_()
            conv.bias.copy_(torch.tensor(colour, dtype=torch.float32) / 127.5 - 1)
    return conv


def test_label_scores_compare_output_classes_with_the_target_label_maps(
    workspace: dict[str, Path], tmp_path: Path
) -> None:
    # Label maps on both sides (A|A): copying the input is a perfect photo -> labels model;
    # painting everything class 1 is right exactly on class 1's pixels.
    data = tmp_path / "labels2labels"
    (data / "test").mkdir(parents=True)
    class_one = total = 0
    for path in sorted((workspace["data"] / "test").iterdir()):
        labels = np.asarray(Image.open(path))[:, :SIZE]
        Image.fromarray(np.concatenate([labels, labels], axis=1)).save(data / "test" / path.name)
        class_one += int((labels == PALETTE[1]).all(-1).sum())
        total += SIZE * SIZE
    (data / "classes.json").write_text(json.dumps({"class_names": NAMES, "palette": PALETTE}))
    common = {"size": SIZE, "device": "cpu", "progress": False, "label_scores": True}
    perfect = evaluate.evaluate(_fixed_output(None), data, **common)["label_scores"]
    assert perfect["pixel_accuracy"] == 1.0 and perfect["mean_class_iou"] == 1.0
    assert perfect["palette"] == str(data / "classes.json") and perfect["num_classes"] == 3
    flat = evaluate.evaluate(_fixed_output(PALETTE[1]), data, **common)["label_scores"]
    assert flat["pixel_accuracy"] == pytest.approx(class_one / total)
    assert flat["mean_class_accuracy"] == pytest.approx(1 / 3)  # all three classes present
    plain = evaluate.evaluate(_fixed_output(None), data, size=SIZE, device="cpu", progress=False)
    assert plain["label_scores"] is None
    assert "label map per-pixel accuracy" in evaluate.format_table(
        evaluate.evaluate(_fixed_output(None), data, **common)
    )
