"""Regenerate docs/RESULTS.md: the paper's evaluation protocol applied to the bundled models.

    python -m train.report --segmenter runs/segmenter --classifier runs/classifier

For the facades patch-size study (the paper's Table 3 / Figure 6) every shipped variant is scored
on the test split with L1 / PSNR / SSIM and the FCN-score (a segmenter trained on the real training
photos labels the generated photos), plus the row for the real test photos. The sketch model is
scored with a product classifier trained on real photos (the classification analogue). Images:
one grid with all variants on the same test inputs, and one grid per variant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from train import sysinfo
from train.evaluate import evaluate

FACADES = (
    ("facades-patch1", "1x1 PixelGAN"),
    ("facades-patch16", "16x16 PatchGAN"),
    ("facades-patch70", "70x70 PatchGAN"),
    ("facades-patch286", "286x286 ImageGAN"),
    ("facades-l1", "L1 only"),
)
GRID_ROWS = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--facades", type=Path, default=Path("data/facades"))
    p.add_argument("--fashion", type=Path, default=Path("data/fashion"))
    p.add_argument("--segmenter", type=Path, required=True)
    p.add_argument("--classifier", type=Path, required=True)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="training logs and timings")
    p.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"))
    p.add_argument("--work", type=Path, default=Path("runs/evaluations"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Evaluate everything and write the report."""
    args = parse_args(argv)
    images = args.out.parent / "results"
    images.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    facades = {}
    for name, label in FACADES:
        work = args.work / name
        facades[name] = evaluate(
            args.checkpoints / name,
            args.facades,
            split="test",
            size=256,
            out=work,
            segmenter=args.segmenter,
            seed=None,
        )
        _jpeg(work / "examples.png", images / f"{name}.jpg")
        print(f"{label}: done")
    _study_grid(args, images / "facades-study.jpg")

    sketch_work = args.work / "sketch2product"
    sketch = evaluate(
        args.checkpoints / "sketch2product",
        args.fashion,
        split="test",
        size=64,
        out=sketch_work,
        classifier=args.classifier,
        seed=None,
    )
    _jpeg(sketch_work / "examples.png", images / "sketch2product.jpg")

    args.out.write_text(_markdown(args, facades, sketch), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def _study_grid(args: argparse.Namespace, path: Path) -> None:
    """Rows: test inputs; columns: label map, each variant's output, the real photo."""
    from pix2pix import Translator, load_generator
    from train.data import PairedDataset

    data = PairedDataset(args.facades, split="test", train=False, load_size=256, crop_size=256)
    items = [data[i] for i in range(GRID_ROWS)]
    inputs = torch.stack([it["input"] for it in items])
    columns = [[_pil(t) for t in inputs]]
    for name, _ in FACADES:
        translate = Translator(
            load_generator(args.checkpoints / name), device="cpu", precision="fp32"
        )
        columns.append(translate.run(inputs, seed=None))
    columns.append([_pil(it["target"]) for it in items])
    titles = ["labels", *(label for _, label in FACADES), "real photo"]
    side, pad, head = 256, 4, 22
    grid = Image.new(
        "RGB", (len(columns) * (side + pad) + pad, head + GRID_ROWS * (side + pad) + pad), "white"
    )
    draw = ImageDraw.Draw(grid)
    for c, (title, column) in enumerate(zip(titles, columns, strict=True)):
        x = pad + c * (side + pad)
        draw.text((x + 4, 5), title, fill="black")
        for r, image in enumerate(column):
            grid.paste(image, (x, head + pad + r * (side + pad)))
    grid.save(path, quality=90)


def _jpeg(png: Path, jpg: Path) -> None:
    with Image.open(png) as image:
        image.convert("RGB").save(jpg, quality=90)


def _pil(t: torch.Tensor) -> Image.Image:
    return Image.fromarray(
        ((t.permute(1, 2, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    )


def _seconds(runs: Path, name: str) -> str:
    path = runs / name / "seconds.txt"
    return f"{int(path.read_text()) / 60:.1f} min" if path.is_file() else "n/a"


def _markdown(args: argparse.Namespace, facades: dict, sketch: dict) -> str:
    seg = json.loads((args.segmenter / "segmenter.json").read_text())
    clf = json.loads((args.classifier / "classifier.json").read_text())
    any_run = next(iter(facades.values()))
    rows = []
    for name, label in FACADES:
        r = facades[name]
        f, m = r["fcn"]["generated"], r["metrics"]
        rows.append(
            f"| {label} | {f['pixel_accuracy']:.3f} | {f['mean_class_accuracy']:.3f} | "
            f"{f['mean_class_iou']:.3f} | {m['l1']:.3f} | {m['ssim']:.3f} | {_seconds(args.runs, name)} |"
        )
    real = any_run["fcn"]["real"]
    iou = {label: facades[name]["fcn"]["generated"]["mean_class_iou"] for name, label in FACADES}
    l1 = {label: facades[name]["metrics"]["l1"] for name, label in FACADES}
    best_iou, best_l1 = max(iou, key=iou.get), min(l1, key=l1.get)
    reading = (
        f"Highest class IoU: {best_iou} ({iou[best_iou]:.3f}; real photos {real['mean_class_iou']:.3f}). "
        f"Lowest L1: {best_l1} ({l1[best_l1]:.3f}). The spread of class IoU across variants is "
        f"{max(iou.values()) - min(iou.values()):.3f} on {any_run['count']} test images, with a segmenter "
        f"that itself reaches {real['pixel_accuracy']:.3f} per-pixel accuracy on real photos: read the "
        "FCN-score differences with that resolution in mind, next to the images."
    )
    rows.append(
        f"| Ground truth (real test photos) | {real['pixel_accuracy']:.3f} | "
        f"{real['mean_class_accuracy']:.3f} | {real['mean_class_iou']:.3f} | 0 | 1 | |"
    )
    cls, sm = sketch["classification"], sketch["metrics"]
    m = sysinfo.machine()
    machine = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}"
    return f"""# Results: the paper's evaluation protocol on the bundled models

Everything here is regenerated by one command (after `bash train/recipes/bundled.sh`, which
makes the data, trains every model, the segmenter and the classifier):

```bash
.venv/bin/python -m train.report --segmenter runs/segmenter --classifier runs/classifier
```

Evaluation settings: test split, dropout off (`seed=None`), BatchNorm on each image's own
statistics (the paper's test mode), fp32 on the CPU ({machine}). Training seeds: 0 everywhere.

## Facades: discriminator receptive field (the paper's Table 3, Figure 6)

Data: {any_run["count"]} test pairs of the procedural CMP-style facades dataset
(`python -m train.datasets.synthetic_facades --out data/facades --seed 0`: 400 train / 100 val /
100 test, 12 classes). All five generators share the architecture (`unet_256`, ngf 16), data,
schedule (10 epochs = 4000 steps of batch 1, LR decayed linearly over the last 5) and seed; they
differ only in the discriminator (ndf 16), or have none (L1 only). lambda_L1 = 100 throughout.

FCN-score: a segmentation network ({seg.get("num_classes", 12)} classes, `train/segmentation.py`)
trained on the real training photos -> label maps labels the generated photos; its own scores on
real photos are the "Ground truth" row. Per-class accuracy and class IoU are means over the
classes present in the ground truth.

| Discriminator receptive field | Per-pixel acc. | Per-class acc. | Class IoU | L1 | SSIM | training wall time |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{reading}

Training wall times are on the 2-core CPU named above with two runs sharing it (one thread
each, the recipe's schedule), while other work also ran; they are what it took, not a benchmark.
The runs without a discriminator or with the cheaper ones are faster.

![All variants on the same test inputs](results/facades-study.jpg)

Per variant (rows: label map | output | real photo):
{chr(10).join(f"- {label}: ![{label}](results/{name}.jpg)" for name, label in FACADES)}

## Sketch to product (Fashion-MNIST shoes and bags)

Data: Fashion-MNIST test photos of sandals, sneakers, bags and ankle boots ({sketch["count"]}
images, upsampled to 64 px); inputs are their edge maps from `pix2pix.edges`. The classifier
(`train/classifier.py`, trained on the real training photos; {clf["test_accuracy_real"]:.3f}
accuracy on the real test photos at its own evaluation) classifies the generated images.

| | Classifier accuracy | L1 | PSNR (dB) | SSIM |
|---|---|---|---|---|
| Generated from edges | {cls["generated_accuracy"]:.3f} | {sm["l1"]:.3f} | {sm["psnr_db"]:.2f} | {sm["ssim"]:.3f} |
| Real test photos | {cls["real_accuracy"]:.3f} | 0 | inf | 1 |

Training: `unet` with 6 levels, ngf 32, 70x70 PatchGAN (ndf 32), batch 4, 3000 steps
({_seconds(args.runs, "sketch2product")} on the CPU).

![Sketch to product examples](results/sketch2product.jpg)

## Metric definitions

{chr(10).join(f"- **{k}**: {v}" for k, v in any_run["definitions"].items())}
"""


if __name__ == "__main__":
    raise SystemExit(main())
