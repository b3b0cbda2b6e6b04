"""Evaluate a generator on a dataset split: L1, PSNR, SSIM, FCN-score and FID.

    python -m train.evaluate --model SOURCE --data DIR [--split test] [--direction AtoB|BtoA]
        [--size 256] [--out DIR] [--segmenter DIR] [--label-scores]
        [--palette-from MODEL|classes.json]
        [--fid-weights PATH] [--seed N] [--limit N] [--batch-size 8] [--device D]
        [--precision fp32]

``--direction`` defaults to the generator's ``task.direction``; ``--fid-weights`` to
``$PIX2PIX_FID_WEIGHTS``.

The generator runs through :class:`pix2pix.inference.Translator` with the paper's test-time
options (normalisation by each image's own statistics; dropout off unless ``--seed`` is given), on
the split's inputs resized to ``--size`` (``PairedDataset(train=False)``). Its outputs are the
8-bit images a user would save, and are measured against the targets:

- L1: mean |output - target| over pixels and channels, in [-1, 1] units (the paper's L1 figures);
  averaged over images.
- PSNR: 10 log10(255^2 / MSE) per image with MSE over pixels and channels on [0, 255]; the mean of
  the per-image values, in dB.
- SSIM: Wang et al. (2004): 11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, no
  padding; computed on each RGB channel separately and averaged over channels, pixels and images.
- FCN-score (``--segmenter``, the protocol of the paper's Tables 1-3): a segmenter trained on real
  photos (``python -m train.segmentation``) labels the generated photos; its predictions are
  compared with the input label maps, whose colours become class indices through a palette (a
  colour not in the palette takes the nearest palette colour). One confusion matrix over the split
  gives per-pixel accuracy, per-class accuracy and class IoU, each class mean taken over the classes
  present in the ground truth. The same figures for the real target photos are the upper bound
  (the paper's "ground truth" row).
- Label scores (``--label-scores``, for generators whose outputs are label maps: photo ->
  labels, the CycleGAN paper's Table 2 protocol): each output pixel and each target pixel takes
  the class of the nearest palette colour; one confusion matrix over the split gives the same
  three figures as the FCN-score, output against target label map.
- FID (Inception weights given): Fréchet distance between the 2048-d pool3 features of
  torchvision's ``inception_v3`` on generated and real target images resized to 299x299.

Writes ``OUT/metrics.json`` and ``OUT/examples.png`` (rows input | output | target).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Subset

from train import metrics
from train.classifier import load_classifier
from train.classifier import tensor_input as classifier_input
from train.segmentation import (
    CLASSES_NAME,
    SegmentationNet,
    as_rgb,
    label_indices,
    load_segmenter,
    read_classes,
    to_pixels,
)

FID_ENV = "PIX2PIX_FID_WEIGHTS"
NO_FID_WEIGHTS = "no Inception weights: set --fid-weights or PIX2PIX_FID_WEIGHTS"
INCEPTION_SIZE = 299
EXAMPLE_ROWS = 8
MARGIN = 4  # pixels of white around and between the cells of examples.png
_ROWS = ("generated", "real")  # FCN-score and FID are computed for both

DEFINITIONS = {
    "l1": "mean |output - target| over pixels, channels and images, images in [-1, 1]",
    "psnr_db": "mean over images of 10 log10(255^2 / MSE), MSE over pixels and channels on "
    "[0, 255]; null means infinite (identical images)",
    "ssim": "Wang et al. 2004, 11x11 Gaussian window sigma 1.5, K1 0.01, K2 0.03, L 255, valid "
    "region; per RGB channel, averaged over channels, pixels and images",
    "colourfulness_median": "median over images of Hasler and Suesstrunk's (2003) M = "
    "sqrt(var(rg) + var(yb)) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), rg = R - G, yb = (R + G)/2 - B, "
    "over all pixels on [0, 255]; target_colourfulness_median: the same of the targets",
    "pixel_accuracy": "correct pixels / all pixels, over the split",
    "mean_class_accuracy": "mean over ground-truth classes present of correct / class pixels",
    "mean_class_iou": "mean over ground-truth classes present of TP / (TP + FP + FN)",
    "fid": "||mu_g - mu_r||^2 + Tr(S_g + S_r - 2 (S_g S_r)^(1/2)) of Inception-v3 pool3 "
    "features (2048-d) of generated and real target images at 299x299",
}


# --------------------------------------------------------------------------------------------
# Inception features for FID
# --------------------------------------------------------------------------------------------


def load_inception(path: str | os.PathLike, device: torch.device | None = None) -> nn.Module:
    """torchvision's ``inception_v3`` with a state dict from ``path``; returns a module mapping
    (B, 3, 299, 299) images in [-1, 1] to (B, 2048) pool3 features, in eval mode."""
    import torchvision

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Inception weights {path} do not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors come in many types; the reason is passed on
        raise ValueError(
            f"{path}: not a readable torch state dict ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(state, dict) or "fc.weight" not in state:
        raise ValueError(f"{path}: not a torchvision inception_v3 state dict (no 'fc.weight')")
    # transform_input=False: torchvision's transform_input maps ImageNet-normalised input to
    # [-1, 1], which is the range our images are already in.
    model = torchvision.models.inception_v3(
        weights=None,
        aux_logits=any(k.startswith("AuxLogits.") for k in state),
        init_weights=False,
        transform_input=False,
        num_classes=int(state["fc.weight"].shape[0]),
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not fit torchvision's inception_v3 ({e})") from e
    model.fc = nn.Identity()  # the pooled, flattened 2048-d features come out instead of logits
    model.eval()
    if device is not None:
        model.to(device)
    return model


@torch.no_grad()
def inception_features(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """(B, 2048) float64 pool3 features of (B, C, H, W) images in [-1, 1]."""
    device = next(model.parameters()).device
    x = as_rgb(images).to(device, torch.float32)
    x = F.interpolate(
        x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
    )
    return model(x).double().cpu().numpy()


# --------------------------------------------------------------------------------------------
# Palettes
# --------------------------------------------------------------------------------------------


def resolve_palette(
    palette_from: str | os.PathLike | None,
    generator: nn.Module,
    data_root: Path,
    segmenter: SegmentationNet | None = None,
) -> tuple[list[list[int]], str]:
    """The label palette and where it came from.

    In order: ``palette_from`` (a ``classes.json``, a folder holding one, or a generator source
    whose task has a palette); the generator's ``task.palette``; ``DATA/classes.json``; the
    palette saved with the segmenter.
    """
    if palette_from is not None:
        path = Path(palette_from).expanduser()
        if (
            path.is_dir()
            and (path / CLASSES_NAME).is_file()
            and not (path / "config.json").exists()
        ):
            path = path / CLASSES_NAME
        if path.is_file() and path.suffix.lower() == ".json":
            return read_classes(path)[0], str(path)
        from pix2pix.hub import load_generator

        task = load_generator(palette_from).task
        if not task.palette:
            raise ValueError(f"--palette-from {palette_from}: that generator's task has no palette")
        return task.palette, f"task.palette of {palette_from}"
    task = getattr(generator, "task", None)
    if task is not None and task.palette:
        return task.palette, "task.palette of the generator"
    if (data_root / CLASSES_NAME).is_file():
        return read_classes(data_root / CLASSES_NAME)[0], str(data_root / CLASSES_NAME)
    if segmenter is not None and segmenter.palette:
        return segmenter.palette, "palette saved with the segmenter"
    raise ValueError(
        "FCN-score needs a label palette and none was found: the generator's task has none, "
        f"{data_root / CLASSES_NAME} does not exist and the segmenter has none; pass "
        "--palette-from MODEL|classes.json"
    )


def check_segmenter(segmenter: SegmentationNet, palette: list[list[int]], where: str) -> None:
    """Raise if the segmenter's classes cannot be the palette's classes."""
    if segmenter.num_classes != len(palette):
        raise ValueError(
            f"the segmenter predicts {segmenter.num_classes} classes but the palette ({where}) "
            f"has {len(palette)} colours; use a segmenter trained on this dataset's classes"
        )
    if segmenter.palette is not None and [list(c) for c in palette] != segmenter.palette:
        raise ValueError(
            f"the segmenter was trained with the palette {segmenter.palette} but the labels use "
            f"{palette} ({where}); class indices would not match"
        )


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(
    model: str | os.PathLike | nn.Module,
    data: str | os.PathLike,
    *,
    split: str = "test",
    direction: str | None = None,
    size: int = 256,
    out: str | os.PathLike | None = None,
    segmenter: str | os.PathLike | None = None,
    classifier: str | os.PathLike | None = None,
    palette_from: str | os.PathLike | None = None,
    label_scores: bool = False,
    fid_weights: str | os.PathLike | None = None,
    seed: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a generator (a source for ``load_generator`` or a module) on a split.

    Returns the results that ``OUT/metrics.json`` holds; writes it and ``OUT/examples.png`` when
    ``out`` is given. ``direction=None`` takes the generator's ``task.direction``. ``seed=None``
    runs with dropout off; an integer turns dropout on, image ``i`` of the split drawing its masks
    from ``seed + i`` (the same whatever the batch size).
    ``fid_weights=None`` skips FID (the CLI also reads ``PIX2PIX_FID_WEIGHTS``).
    """
    from tqdm.auto import tqdm

    from pix2pix.hub import load_generator
    from pix2pix.inference import Translator
    from train.data import PairedDataset

    if size < 1 or batch_size < 1 or (limit is not None and limit < 1):
        raise ValueError(
            f"size, batch_size and limit must be positive, got {size}, {batch_size}, {limit}"
        )
    started = time.perf_counter()
    if isinstance(model, nn.Module):
        label, generator = f"<{type(model).__name__}>", model
        device = device if device is not None else next(model.parameters()).device
    else:
        label, generator = str(model), load_generator(model)
    task = getattr(generator, "task", None)
    direction = direction or (task.direction if task is not None else "AtoB")
    # Translator puts the model in eval mode and freezes its parameters: a network passed in
    # while it is being trained gets its mode and requires_grad flags back afterwards.
    with _restored_afterwards(generator):
        translator = Translator(
            generator,
            device=device,
            precision=precision,
            norm="instance",
            seed=seed,
            backend="torch",  # weights change between evaluations: measuring would not pay
        )
        dataset = PairedDataset(
            data,
            split=split,
            direction=direction,
            train=False,
            load_size=size,
            crop_size=size,
            in_channels=translator.in_channels,
            out_channels=getattr(generator, "out_channels", 3),
        )
        summary = dataset.summary()
        data_root = dataset.spec.root
        if limit is not None:
            dataset = Subset(dataset, range(min(limit, len(dataset))))
        count = len(dataset)

        seg = palette = palette_where = None
        if segmenter is not None:
            seg, palette, palette_where = _fcn_setup(
                segmenter, palette_from, generator, data_root, translator.device
            )
        label_palette = label_where = None
        if label_scores:
            label_palette, label_where = resolve_palette(palette_from, generator, data_root)
        label_confusion = torch.zeros(len(label_palette or ()), len(label_palette or ()))
        label_confusion = label_confusion.long()
        clf = clf_config = None
        if classifier is not None:
            clf, clf_config = load_classifier(classifier)
            class_of = _class_labels(data_root, split, clf_config["classes"])
        correct = dict.fromkeys(_ROWS, 0)
        num_classes = seg.num_classes if seg is not None else 0
        # The segmenter sees images at the size it was trained at (labels resized nearest).
        seg_size = int(seg.metrics.get("train", {}).get("size") or size) if seg else size
        confusion = {k: torch.zeros(num_classes, num_classes, dtype=torch.long) for k in _ROWS}
        off_palette = 0
        inception = load_inception(fid_weights, translator.device) if fid_weights else None
        features: dict[str, list[np.ndarray]] = {k: [] for k in _ROWS}

        per_image: list[dict[str, Any]] = []
        examples: list[tuple[Image.Image, Image.Image, Image.Image]] = []
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
        bar = tqdm(total=count, desc="evaluating", unit="img", disable=not progress)
        for batch in loader:
            inputs, targets = batch["input"], batch["target"]
            # Image i of the split gets seed + i, whatever the batch size.
            first = len(per_image)
            noise = None if seed is None else [seed + first + i for i in range(len(inputs))]
            generated_pil = translator.run(inputs, seed=noise)
            generated = torch.stack([_pil_to_tensor(p) for p in generated_pil])
            generated = generated[:, : targets.shape[1]]  # a 1-channel target: compare one channel
            l1 = metrics.l1_error(generated, targets)
            psnr = metrics.psnr(_to_255(generated), _to_255(targets))
            ssim = metrics.ssim(_to_255(generated), _to_255(targets))
            colour = [metrics.colourfulness(as_rgb(_to_255(x))) for x in (generated, targets)]
            for i, name in enumerate(batch["name"]):
                per_image.append(
                    {
                        "name": name,
                        "l1": float(l1[i]),
                        "psnr_db": float(psnr[i]),
                        "ssim": float(ssim[i]),
                        "colourfulness": float(colour[0][i]),
                        "target_colourfulness": float(colour[1][i]),
                    }
                )

            if seg is not None:
                labels, exact = label_indices(inputs, palette)
                off_palette += int((~exact).sum())
                labels = _resize_labels(labels, seg_size)
                with torch.no_grad():
                    for key, images in (("generated", generated), ("real", targets)):
                        x = _resize_images(as_rgb(images), seg_size)
                        pred = seg(x.to(translator.device)).argmax(1).cpu()
                        confusion[key] += metrics.confusion_matrix(pred, labels, num_classes)
            if label_palette is not None:
                predicted, _ = label_indices(as_rgb(generated), label_palette)
                truth, _ = label_indices(as_rgb(targets), label_palette)
                label_confusion += metrics.confusion_matrix(predicted, truth, len(label_palette))
            if clf is not None:
                truth = torch.tensor([class_of[name] for name in batch["name"]])
                with torch.no_grad():
                    for key, images in (("generated", generated), ("real", targets)):
                        pred = clf(classifier_input(images, clf_config["size"])).argmax(1)
                        correct[key] += int((pred == truth).sum())
            if inception is not None:
                features["generated"].append(inception_features(inception, generated))
                features["real"].append(inception_features(inception, targets))

            for i in range(min(len(generated_pil), EXAMPLE_ROWS - len(examples))):
                examples.append(
                    (_tensor_to_pil(inputs[i]), generated_pil[i], _tensor_to_pil(targets[i]))
                )
            bar.update(len(inputs))
        bar.close()

    results: dict[str, Any] = {
        "model": label,
        "data": str(data_root),
        "split": split,
        "count": count,
        "seed": seed,
        "direction": direction,
        "size": size,
        "settings": {
            "norm": "instance",
            "dropout": "off" if seed is None else "on, masks of image i from seed + i",
            "precision": precision,
            "device": str(translator.device),
            "batch_size": batch_size,
            "limit": limit,
        },
        "dataset": summary,
        "metrics": {
            "l1": _mean(r["l1"] for r in per_image),
            "psnr_db": _mean(r["psnr_db"] for r in per_image),
            "ssim": _mean(r["ssim"] for r in per_image),
            "colourfulness_median": _median(r["colourfulness"] for r in per_image),
            "target_colourfulness_median": _median(r["target_colourfulness"] for r in per_image),
        },
    }
    if seg is not None:
        results["fcn"] = {
            "segmenter": str(segmenter),
            "segmenter_val": {k: v for k, v in seg.metrics.items() if k.startswith("val_")},
            "palette": palette_where,
            "num_classes": num_classes,
            "segmenter_size": seg_size,
            "labels": f"the input side ({'A' if direction == 'AtoB' else 'B'}) of the dataset",
            "label_pixels_off_palette": off_palette / (count * size * size),
            "generated": metrics.segmentation_scores(confusion["generated"]),
            "real": metrics.segmentation_scores(confusion["real"]),
        }
    else:
        results["fcn"] = None
        results["fcn_note"] = "skipped: no --segmenter given"
    results["label_scores"] = None
    if label_palette is not None:
        results["label_scores"] = {
            "palette": label_where,
            "num_classes": len(label_palette),
            "labels": f"the target side ({'B' if direction == 'AtoB' else 'A'}) of the dataset",
            **metrics.segmentation_scores(label_confusion),
        }
    results["classification"] = None
    if clf is not None:
        results["classification"] = {
            "classifier": str(classifier),
            "classes": clf_config["classes"],
            "generated_accuracy": correct["generated"] / count,
            "real_accuracy": correct["real"] / count,
        }
    results["fid"], results["fid_note"] = None, NO_FID_WEIGHTS
    if inception is not None:
        results["fid"], results["fid_note"] = _fid(features, fid_weights)
    results["definitions"] = DEFINITIONS
    results["seconds"] = round(time.perf_counter() - started, 2)
    results["per_image"] = per_image

    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_finite_or_none(results), indent=2, allow_nan=False)
        (out / "metrics.json").write_text(text + "\n", encoding="utf-8")
        examples_grid(examples).save(out / "examples.png")
    return results


def _resize_labels(labels: torch.Tensor, side: int) -> torch.Tensor:
    if labels.shape[-1] == side and labels.shape[-2] == side:
        return labels
    resized = F.interpolate(labels[:, None].float(), size=(side, side), mode="nearest")
    return resized[:, 0].long()


def _resize_images(images: torch.Tensor, side: int) -> torch.Tensor:
    if images.shape[-1] == side and images.shape[-2] == side:
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", antialias=True)


def _class_labels(root: Path, split: str, classes: list[str]) -> dict[str, int]:
    """File stem -> class index, from the ``labels.json`` of a classification export."""
    path = root / "labels.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --classifier needs the labels of each photo")
    labels = json.loads(path.read_text())["labels"]
    out = {}
    for name, label in labels.items():
        folder, _, file = name.partition("/")
        if folder == split:
            if label not in classes:
                raise ValueError(f"{name} is a {label!r}, a class the classifier does not know")
            out[Path(file).stem] = classes.index(label)
    return out


def _fcn_setup(
    segmenter: str | os.PathLike,
    palette_from: str | os.PathLike | None,
    generator: nn.Module,
    data_root: Path,
    device: torch.device,
) -> tuple[SegmentationNet, list[list[int]], str]:
    task = getattr(generator, "task", None)
    if task is not None and task.input_kind not in (None, "labels"):
        raise ValueError(
            f"FCN-score scores labels -> photo generators; this one's input is {task.input_kind!r}"
        )
    seg = load_segmenter(segmenter, device=device)
    palette, where = resolve_palette(palette_from, generator, data_root, seg)
    check_segmenter(seg, palette, where)
    return seg, palette, where


def _fid(
    features: dict[str, list[np.ndarray]], weights: str | os.PathLike
) -> tuple[float | None, str]:
    """FID of generated against real features, and a note on how far to trust it."""
    generated, real = np.concatenate(features["generated"]), np.concatenate(features["real"])
    count, dims = real.shape
    if count < 2:
        return None, f"skipped: FID needs at least 2 images, the split has {count}"
    note = f"Inception weights {weights}"
    if count <= dims:
        note += (
            f"; {count} images <= {dims} feature dimensions: the covariances are rank-deficient "
            "and FID is biased upwards, compare only at equal counts"
        )
    return metrics.fid_from_features(generated, real), note


@contextlib.contextmanager
def _restored_afterwards(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    grads = [p.requires_grad for p in module.parameters()]
    try:
        yield
    finally:
        module.train(was_training)
        for p, flag in zip(module.parameters(), grads, strict=True):
            p.requires_grad_(flag)


def examples_grid(
    rows: list[tuple[Image.Image, Image.Image, Image.Image]], margin: int = MARGIN
) -> Image.Image:
    """One row per example, columns input | output | target, on white with ``margin`` pixels."""
    if not rows:
        raise ValueError("no examples to draw")
    width, height = rows[0][0].size
    grid = Image.new(
        "RGB",
        (3 * width + 4 * margin, len(rows) * height + (len(rows) + 1) * margin),
        (255, 255, 255),
    )
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            grid.paste(
                cell.convert("RGB"), (margin + c * (width + margin), margin + r * (height + margin))
            )
    return grid


# The three segmentation scores, in the paper's order (Table 1's columns).
SCORE_NAMES = (
    ("pixel_accuracy", "per-pixel accuracy"),
    ("mean_class_accuracy", "per-class accuracy"),
    ("mean_class_iou", "class IoU"),
)


def format_table(results: dict[str, Any]) -> str:
    """The results as a plain-text table."""
    m = results["metrics"]
    lines = [
        f"{results['model']} on {results['data']} [{results['split']}]: {results['count']} "
        f"images at {results['size']} px, {results['direction']}, seed {results['seed']}",
        f"{'metric':<40}{'generated':>12}{'real photo':>12}",
        f"{'L1 (mean abs. error, [-1, 1] units)':<40}{m['l1']:>12.4f}",
        f"{'PSNR (dB, on [0, 255])':<40}{m['psnr_db']:>12.2f}",
        f"{'SSIM (Gaussian 11x11, RGB mean)':<40}{m['ssim']:>12.4f}",
        f"{'colourfulness (median, Hasler-Suesstrunk)':<40}"
        f"{m['colourfulness_median']:>12.2f}{m['target_colourfulness_median']:>12.2f}",
    ]
    fcn = results["fcn"]
    if fcn is None:
        lines.append(f"FCN-score {results['fcn_note']}")
    scores = results.get("label_scores")
    for prefix, columns in (
        ("FCN", None if fcn is None else (fcn["generated"], fcn["real"])),
        ("label map", None if scores is None else (scores,)),
    ):
        for key, what in SCORE_NAMES:
            if columns is not None:
                name = f"{prefix} {what}"
                lines.append(f"{name:<40}" + "".join(f"{c[key]:>12.4f}" for c in columns))
    cls = results.get("classification")
    if cls is not None:
        name = "classifier accuracy"
        lines.append(f"{name:<40}{cls['generated_accuracy']:>12.4f}{cls['real_accuracy']:>12.4f}")
    if results["fid"] is not None:
        lines.append(f"{'FID (Inception-v3 pool3)':<40}{results['fid']:>12.2f}")
    lines.append(f"FID: {results['fid_note']}")
    return "\n".join(lines)


def _pil_to_tensor(img: Image.Image) -> torch.Tensor:
    array = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def _tensor_to_pil(img: torch.Tensor) -> Image.Image:
    pixels = to_pixels(as_rgb(img[None]))[0].to(torch.uint8).numpy()
    return Image.fromarray(pixels, "RGB")


def _to_255(images: torch.Tensor) -> torch.Tensor:
    # Dataset tensors are uint8 / 127.5 - 1; rounding undoes the float error of that division.
    return ((images.double() + 1) * 127.5).round()


def _mean(values: Any) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def _median(values: Any) -> float:
    return float(np.median(list(values)))


def _finite_or_none(value: Any) -> Any:
    """JSON has no inf or NaN: those become null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(v) for v in value]
    return value


def _default_out(model: str, split: str) -> Path:
    name = re.sub(r"[^\w.-]+", "_", Path(model.rstrip("/")).name or model).strip("_") or "model"
    return Path("evaluations") / f"{name}_{split}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model", required=True, help="Hub repo id[@rev], folder, weight file or URL")
    p.add_argument("--data", required=True, type=Path, help="dataset root (train/data.py layouts)")
    p.add_argument("--split", default="test")
    p.add_argument(
        "--direction", choices=("AtoB", "BtoA"), default=None, help="default: the model's task"
    )
    p.add_argument("--size", type=int, default=256, help="images are resized to SIZE x SIZE")
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default: evaluations/MODEL_SPLIT)"
    )
    p.add_argument("--segmenter", default=None, help="segmenter folder for FCN-score")
    p.add_argument(
        "--classifier",
        default=None,
        help="classifier folder (train.classifier): its accuracy on generated images",
    )
    p.add_argument(
        "--palette-from", default=None, help="classes.json or a generator with task.palette"
    )
    p.add_argument(
        "--label-scores",
        action="store_true",
        help="the outputs are label maps (photo -> labels): score their classes against the "
        "targets' through the palette",
    )
    p.add_argument(
        "--fid-weights", default=None, help=f"inception_v3 state dict (default: ${FID_ENV})"
    )
    p.add_argument("--seed", type=int, default=None, help="dropout noise seed (default: off)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: best)")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="fp32")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.evaluate``; returns the exit status."""
    args = parse_args(argv)
    out = args.out or _default_out(args.model, args.split)
    fid_weights = args.fid_weights or os.environ.get(FID_ENV) or None
    try:
        results = evaluate(
            args.model,
            args.data,
            split=args.split,
            direction=args.direction,
            size=args.size,
            out=out,
            segmenter=args.segmenter,
            classifier=args.classifier,
            palette_from=args.palette_from,
            label_scores=args.label_scores,
            fid_weights=fid_weights,
            seed=args.seed,
            limit=args.limit,
            batch_size=args.batch_size,
            device=args.device,
            precision=args.precision,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(f"wrote {out / 'metrics.json'} and {out / 'examples.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
