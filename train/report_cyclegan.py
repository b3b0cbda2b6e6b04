"""docs/RESULTS.md's CycleGAN section: unpaired against paired training on the same test pairs.

    python -m train.report_cyclegan --data data/facades --segmenter runs/segmenter \\
        --model "CycleGAN (unpaired)=runs/facades-cyclegan" \\
        --model "pix2pix (paired)=runs/facades128-pix2pix,runs/facades128-pix2pix-back" \\
        --model "L1 only (paired)=runs/facades128-l1,runs/facades128-l1-back"

The protocol of the CycleGAN paper (Zhu et al. 2017, section 5.1.4, Tables 1 and 2) on a dataset
whose test split has pairs: labels -> photo is scored by the FCN-score (a segmenter trained on real
photos labels the generated photos, compared with the input label maps; ``train.evaluate``), and
photo -> labels by the classes of the generated label maps against the real ones
(``train.evaluate --label-scores``). Each ``--model`` is ``LABEL=SOURCE`` for a CycleGAN source
(both directions) or ``LABEL=A_TO_B_SOURCE,B_TO_A_SOURCE`` for two paired generators. Writes
``docs/results/cyclegan-labels2photo.jpg``, ``docs/results/cyclegan-photo2labels.jpg`` and the
section between ``<!-- cyclegan:begin -->`` and ``<!-- cyclegan:end -->``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw

from pix2pix.hub import Pix2PixGenerator, holds_both_directions, load_generator
from pix2pix.inference import Translator
from train import sysinfo
from train.data import PairedDataset
from train.evaluate import evaluate
from train.report_colour import replace_section

SCORES = ("pixel_accuracy", "mean_class_accuracy", "mean_class_iou")
GRID_ROWS = 4
SIDE, PAD, HEAD = 128, 4, 20


def generators(source: str) -> tuple[Pix2PixGenerator, Pix2PixGenerator]:
    """(A -> B, B -> A) of ``SOURCE`` (a CycleGAN source) or ``A_SOURCE,B_SOURCE``."""
    if "," in source:
        forward, back = (load_generator(s.strip()) for s in source.split(",", 1))
    elif holds_both_directions(source):
        forward, back = (load_generator(source, direction=d) for d in ("AtoB", "BtoA"))
    else:
        raise ValueError(f"{source} holds one generator: give A_TO_B_SOURCE,B_TO_A_SOURCE")
    return forward, back


def score(
    label: str, pair: tuple[Pix2PixGenerator, Pix2PixGenerator], args: argparse.Namespace
) -> dict[str, Any]:
    """Both directions of one model on the test split."""
    common = {"size": args.size, "device": "cpu", "precision": "fp32", "progress": False}
    there = evaluate(pair[0], args.data, direction="AtoB", segmenter=args.segmenter, **common)
    back = evaluate(pair[1], args.data, direction="BtoA", label_scores=True, **common)
    print(f"{label}: labels -> photo {there['fcn']['generated']}, photo -> labels "
          f"{ {k: back['label_scores'][k] for k in SCORES} }")  # fmt: skip
    return {"labels2photo": there, "photo2labels": back}


def grid(columns: list[tuple[str, list[Image.Image]]], path: Path) -> None:
    """Columns of images under their titles (one row per test input)."""
    rows = len(columns[0][1])
    width = len(columns) * (SIDE + PAD) + PAD
    out = Image.new("RGB", (width, HEAD + rows * (SIDE + PAD) + PAD), "white")
    draw = ImageDraw.Draw(out)
    for c, (title, images) in enumerate(columns):
        x = PAD + c * (SIDE + PAD)
        draw.text((x + 2, 4), title, fill="black")
        for r, image in enumerate(images):
            out.paste(image.convert("RGB").resize((SIDE, SIDE)), (x, HEAD + PAD + r * (SIDE + PAD)))
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, quality=90)


def grids(models: dict[str, tuple[Pix2PixGenerator, Pix2PixGenerator]], args: argparse.Namespace):
    """labels | each model's photo (and a CycleGAN's cycle back) | real photo; and the other way."""
    shown: dict[str, list[tuple[str, list[Image.Image]]]] = {}
    for direction, (source, target) in (("AtoB", ("labels", "real photo")),
                                        ("BtoA", ("photo", "real labels"))):  # fmt: skip
        data = PairedDataset(args.data, split="test", direction=direction, train=False,
                             load_size=args.size, crop_size=args.size)  # fmt: skip
        items = [data[i] for i in range(GRID_ROWS)]
        inputs = torch.stack([it["input"] for it in items])
        columns = [(source, _pils(inputs))]
        for label, pair in models.items():
            forward, back = pair if direction == "AtoB" else pair[::-1]
            outputs = Translator(forward, device="cpu", precision="fp32", backend="torch").run(
                inputs, seed=None
            )
            columns.append((label, outputs))
            if forward.task.method == "cyclegan":
                cycle = Translator(back, device="cpu", precision="fp32", backend="torch")
                columns.append(("cycle back F(G(x))", cycle(outputs)))
        columns.append((target, _pils(torch.stack([it["target"] for it in items]))))
        shown[direction] = columns
    grid(shown["AtoB"], args.figures / "cyclegan-labels2photo.jpg")
    grid(shown["BtoA"], args.figures / "cyclegan-photo2labels.jpg")


def _pils(batch: torch.Tensor) -> list[Image.Image]:
    pixels = ((batch.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)
    return [Image.fromarray(p.numpy(), "RGB") for p in pixels]


def _machine() -> str:
    m = sysinfo.machine()
    return f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}"


def _seconds(runs: Path, source: str) -> str:
    total = 0
    for part in source.split(","):
        name = Path(part.strip()).name
        path = runs / name / "seconds.txt"
        if not path.is_file():
            return "n/a"
        total += int(path.read_text().split()[0])
    return f"{total / 60:.1f} min"


def markdown(results: dict[str, dict], sources: dict[str, str], args: argparse.Namespace) -> str:
    """The section's text: the setting, one table, the grids."""
    f = "{:.3f}".format
    lines = [
        "## CycleGAN (unpaired) against pix2pix (paired), labels <-> facade photos",
        "",
        f"Machine: {_machine()}. Recipe: `train/recipes/cyclegan_facades.sh`.",
        "",
        "The CycleGAN paper's protocol (section 5.1.4) on data that has pairs: CycleGAN trained on "
        "the synthetic facades' training split with its pairs broken (`train.datasets.unpaired`: "
        "each side renamed by its own permutation; the trainer draws a random photo for each "
        "label map), pix2pix and L1 only trained on the pairs, all scored on the same "
        f"{results[next(iter(results))]['labels2photo']['count']} paired test images at "
        f"{args.size} px. Same budget for every model: 6000 steps of batch 1 (15 epochs), "
        "a 70x70 PatchGAN (ndf 16) where there is a discriminator, generators of about the "
        "same size (ResNet-6 ngf 32: 2.0 M parameters per direction; unet_128 ngf 16: 2.6 M).",
        "",
        "labels -> photo: FCN-score (the segmenter of the patch-size study, trained on real "
        "photos, labels the generated photos; compared with the input label maps). "
        "photo -> labels: each generated pixel takes the nearest palette colour's class, "
        "compared with the real label map (the paper's Table 2).",
        "",
        "| model | labels -> photo: per-pixel acc. | per-class acc. | class IoU "
        "| photo -> labels: per-pixel acc. | per-class acc. | class IoU | training wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, found in results.items():
        fcn = found["labels2photo"]["fcn"]["generated"]
        back = found["photo2labels"]["label_scores"]
        lines.append(
            f"| {label} | " + " | ".join(f(fcn[k]) for k in SCORES) + " | "
            + " | ".join(f(back[k]) for k in SCORES) + f" | {_seconds(args.runs, sources[label])} |"
        )  # fmt: skip
    real = next(iter(results.values()))["labels2photo"]["fcn"]["real"]
    lines.append(
        "| real test photos (FCN-score's upper bound) | "
        + " | ".join(f(real[k]) for k in SCORES)
        + " | | | | |"
    )
    lines += [
        "",
        "Training wall times: the 2-core CPU above, one thread per run, while other runs and work "
        "shared the machine; what it took, not a benchmark.",
        "",
        "labels -> photo (label map | each model, with CycleGAN's cycle back to labels | real "
        "photo):",
        "",
        "![labels to photo](results/cyclegan-labels2photo.jpg)",
        "",
        "photo -> labels (photo | each model, with CycleGAN's cycle back to a photo | real "
        "labels):",
        "",
        "![photo to labels](results/cyclegan-photo2labels.jpg)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.report_cyclegan``; returns the exit status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="a paired dataset (its test split)")
    p.add_argument("--segmenter", type=Path, required=True, help="for the FCN-score")
    p.add_argument("--model", action="append", required=True, metavar="LABEL=SOURCE[,SOURCE]")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--runs", type=Path, default=Path("runs"), help="where seconds.txt files are")
    p.add_argument("--results", type=Path, default=Path("docs/RESULTS.md"))
    p.add_argument("--figures", type=Path, default=Path("docs/results"))
    args = p.parse_args(argv)
    sources = dict(m.split("=", 1) for m in args.model)
    models = {label: generators(source) for label, source in sources.items()}
    results = {label: score(label, pair, args) for label, pair in models.items()}
    grids(models, args)
    replace_section(args.results, markdown(results, sources, args), name="cyclegan")
    print(f"wrote the CycleGAN section of {args.results} and its grids in {args.figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
