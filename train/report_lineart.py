"""The line-art -> colour section of docs/RESULTS.md: test metrics, curves, grids, doodles.

    python -m train.report_lineart --runs runs --data data/openmoji --shipped 8000 \\
        --doodles test-artifacts/doodles

Reads the runs of ``train/recipes/openmoji.sh`` (their ``snapshots/`` and ``curve-val.json``),
evaluates the compared generators on the test split (``train.evaluate``: dropout off, per-image
statistics), measures how freehand doodles are coloured (:func:`doodle_scores`), draws the grids
into ``docs/results/`` and replaces the text between the ``lineart`` markers of docs/RESULTS.md.
The doodle drawings come from the browser test (``tests/test_lineart_browser.py``), which draws
them with the mouse on the app's canvas and saves each drawing and the output it got.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from pix2pix.imageio import read_image
from train import metrics
from train.datasets.openmoji import HOLDOUT
from train.doodles import DOODLES, draw_doodle

BEGIN, END = "<!-- lineart:begin -->", "<!-- lineart:end -->"
RUNS = {
    "lineart-l1": "L1 only (baseline)",
    "lineart-gan10": "cGAN + 10 L1",
    "lineart-gan100": "cGAN + 100 L1 (the paper's weights)",
}


TEMPLATE = """\
## Line art → colour (OpenMoji only): the previous default model (sessions 5-7)

Trained here with `bash train/recipes/openmoji.sh` on OpenMoji's line art paired with its colour
version (OpenMoji (openmoji.org), CC BY-SA 4.0; the weights are shared under the same licence).
Three runs share everything (unet_256 ngf 16, 70x70 PatchGAN ndf 16, 256-px crops of 286 px,
mirroring, Adam 2e-4 / (0.5, 0.999), batch 1, width-augmented training pairs) except the loss.
Figures: the test split (emoji never trained on, {test_count} drawings), dropout off, each image's
own statistics. Colourfulness is Hasler and Suesstrunk's (2003) M, median over images; the
bundled model reaches {ratio:.0%} of the targets' median. All runs are compared at step {budget}
(the GAN runs were stopped there; the L1 run went on to the end of its schedule).

{test_table}

Held-out curves (val split, every 1000 steps; `python -m train.curves`). The bundled model is the
snapshot with the lowest val L1 among those whose colourfulness reaches 85% of the targets'
median: {shipped_run} at step {shipped}. Both GAN runs swing between vivid fills (mostly yellow,
OpenMoji's commonest fill) and nearly white ones from one snapshot to the next, and the lighter
L1 weight swings further; that is why snapshots are chosen on held-out metrics, not taken last.

{curve_table}

![Test split: input, L1 only, cGAN + 10 L1, bundled model, target](results/lineart-test.jpg)

### Freehand doodles drawn with the mouse in the browser

Drawn stroke by stroke on the app's canvas by `tests/test_lineart_browser.py` (Playwright,
Chromium), not taken from any dataset; each output is what the app showed. *Lines kept*: share of
the drawing's line pixels still dark; *inside filled*: share of the pixels the lines enclose that
were painted; *outside painted*: the same outside the drawing (lower is cleaner).

{doodle_table}

![Doodles drawn in the browser and the bundled model's outputs](results/lineart-doodles.jpg)

### Does the line-width augmentation help on doodles?

The same ten doodles drawn with PIL at three line widths through the cGAN + 10 L1 model trained
with the width / gap augmentation and without it (the same run otherwise, same step). Each cell:
inside filled / outside painted / lines kept / colourfulness, means over the doodles.

{aug_table}
"""


def snapshot(runs: Path, name: str, step: int) -> Path:
    """The generator snapshot of run ``name`` at ``step``."""
    path = runs / name / "snapshots" / f"step-{step:09d}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    return path


def doodle_scores(drawing: Image.Image, output: Image.Image) -> dict[str, float]:
    """How a line drawing was coloured, with no target to compare with.

    Lines are the drawing's dark pixels; *inside* is what the lines enclose (not reachable from the
    border without crossing a line), *outside* the rest, each without a 4-px band along the lines.
    Returns ``lines_kept`` (fraction of line pixels still dark), ``fill`` (fraction of inside
    pixels painted, i.e. not near-white), ``leak`` (the same outside) and ``colourfulness``.
    """
    a = np.asarray(drawing.convert("L"))
    b = np.asarray(output.convert("RGB").resize(drawing.size)).astype(np.int16)
    lines = (a < 128).astype(np.uint8)
    band = cv2.dilate(lines, np.ones((9, 9), np.uint8)).astype(bool)
    reach = np.pad(1 - lines, 1, constant_values=1).astype(np.uint8)
    mask = np.zeros((reach.shape[0] + 2, reach.shape[1] + 2), np.uint8)
    cv2.floodFill(reach, mask, (0, 0), 2)
    outside = reach[1:-1, 1:-1] == 2
    inside = ~outside & ~band
    outside &= ~band
    painted = b.min(axis=2) < 215
    tensor = torch.from_numpy(b).permute(2, 0, 1)[None].float()
    return {
        "lines_kept": float((b.max(axis=2)[lines.astype(bool)] < 110).mean()),
        "fill": float(painted[inside].mean()) if inside.any() else float("nan"),
        "leak": float(painted[outside].mean()) if outside.any() else float("nan"),
        "colourfulness": float(metrics.colourfulness(tensor)[0]),
    }


def grid(rows: list[list[Image.Image]], header: list[str], cell: int = 160) -> Image.Image:
    """A labelled grid: one row per list of images, a caption per column."""
    pad, top = 4, 22
    cols = len(header)
    out = Image.new("RGB", (cols * (cell + pad) + pad, top + len(rows) * (cell + pad)), "white")
    draw = ImageDraw.Draw(out)
    for c, text in enumerate(header):
        draw.text((pad + c * (cell + pad) + 4, 5), text, fill="black")
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            out.paste(
                img.convert("RGB").resize((cell, cell)),
                (pad + c * (cell + pad), top + r * (cell + pad)),
            )
    return out


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _fmt(m: dict[str, Any], target: bool = False) -> list[str]:
    return [
        f"{m['l1']:.4f}",
        f"{m['psnr_db']:.2f}",
        f"{m['ssim']:.4f}",
        f"{m['colourfulness_median']:.1f}",
        f"{m['colourfulness_median'] / m['target_colourfulness_median']:.0%}",
    ]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.report_lineart``; returns the exit status."""
    from pix2pix.hub import load_generator
    from pix2pix.inference import Translator
    from train.evaluate import evaluate

    p = argparse.ArgumentParser(
        prog="python -m train.report_lineart", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--data", type=Path, default=Path("data/openmoji"))
    p.add_argument("--budget", type=int, required=True, help="step at which all runs are compared")
    p.add_argument("--shipped-run", default="lineart-gan100", help="run of the bundled model")
    p.add_argument("--shipped", type=int, required=True, help="step of the bundled model")
    p.add_argument("--noaug", type=int, default=None, help="step of lineart-gan10-noaug to compare")
    p.add_argument("--doodles", type=Path, default=Path("test-artifacts/doodles"))
    p.add_argument("--results", type=Path, default=Path("docs/RESULTS.md"))
    args = p.parse_args(argv)
    img_dir = args.results.parent / "results"
    img_dir.mkdir(parents=True, exist_ok=True)

    def ev(path: Path) -> dict[str, Any]:
        return evaluate(path, args.data, split="test", progress=False)["metrics"]

    # 1. Test split at the same budget, and the shipped snapshot.
    compared = {name: snapshot(args.runs, name, args.budget) for name in RUNS}
    results = {name: ev(path) for name, path in compared.items()}
    shipped_path = snapshot(args.runs, args.shipped_run, args.shipped)
    shipped = ev(shipped_path)
    target_median = shipped["target_colourfulness_median"]
    head = ["model", "L1 ↓", "PSNR (dB) ↑", "SSIM ↑", "colourfulness (median)", "of targets'"]
    rows = [[f"{RUNS[n]}, step {args.budget}", *_fmt(m)] for n, m in results.items()]
    rows.append(
        [f"{RUNS[args.shipped_run]}, step {args.shipped} (**the bundled model**)", *_fmt(shipped)]
    )
    rows.append(["targets (OpenMoji colour)", "", "", "", f"{target_median:.1f}", "100%"])
    test_table = _table(head, rows)

    # 2. Held-out curves.
    curves = {}
    for name in RUNS:
        f = args.runs / name / "curve-val.json"
        if f.is_file():
            curves[name] = {e["step"]: e for e in json.loads(f.read_text())}
    steps = sorted(set().union(*[c.keys() for c in curves.values()])) if curves else []
    curve_rows = []
    for s in steps:
        if s % 1000 and s != steps[-1]:
            continue
        row = [str(s)]
        for name in RUNS:
            e = curves.get(name, {}).get(s)
            row.append(f"{e['l1']:.4f} / {e['colourfulness_median']:.1f}" if e else "")
        curve_rows.append(row)
    curve_table = _table(["step", *[f"{RUNS[n]}: L1 / colourfulness" for n in RUNS]], curve_rows)

    # 3. Test grid: the held-out drawings (cats, shoes, a bag, a house...).
    translators = {n: Translator(load_generator(p)) for n, p in compared.items()}
    translators["shipped"] = Translator(load_generator(shipped_path))
    rows_img = []
    for code in HOLDOUT:
        a = read_image(args.data / "test" / "A" / f"{code}.png")
        b = read_image(args.data / "test" / "B" / f"{code}.png")
        outs = [translators[n](a) for n in ("lineart-l1", "lineart-gan10", "shipped")]
        rows_img.append([a, *outs, b])
    header = ["input (test split)", "L1 only", "cGAN + 10 L1", "bundled model", "target"]
    grid(rows_img, header).save(img_dir / "lineart-test.jpg", quality=88)

    # 4. Doodles drawn in the browser test.
    doodle_md = "No doodles found: run `tests/test_lineart_browser.py` first."
    drawn = sorted(args.doodles.glob("*-input.png"))
    if drawn:
        rows_img, scores = [], []
        for f in drawn:
            name = f.name.removesuffix("-input.png")
            a = read_image(f)
            out = read_image(args.doodles / f"{name}-output.png")
            rows_img.append([a, out])
            scores.append([name, *[f"{v:.2f}" if k != "colourfulness" else f"{v:.1f}"
                                   for k, v in doodle_scores(a, out).items()]])  # fmt: skip
        pairs = [
            rows_img[i] + (rows_img[i + 1] if i + 1 < len(rows_img) else [])
            for i in range(0, len(rows_img), 2)
        ]
        grid(pairs, ["drawing", "output", "drawing", "output"]).save(
            img_dir / "lineart-doodles.jpg", quality=88
        )
        doodle_md = _table(
            ["doodle", "lines kept", "inside filled", "outside painted", "colourfulness"], scores
        )

    # 5. Augmentation: doodles drawn with thin, medium and thick lines, with and without it.
    aug_md = "Not measured in this run (no --noaug step given)."
    if args.noaug is not None:
        with_aug = Translator(load_generator(snapshot(args.runs, "lineart-gan10", args.noaug)))
        without = Translator(load_generator(snapshot(args.runs, "lineart-gan10-noaug", args.noaug)))
        aug_rows = []
        for width in (3, 7, 11):
            row = [f"{width} px"]
            for model in (with_aug, without):
                s = [doodle_scores(d, model(d)) for d in
                     (draw_doodle(st, 256, width) for st in DOODLES.values())]  # fmt: skip
                row.append(" / ".join(
                    f"{np.nanmean([x[k] for x in s]):.2f}" for k in ("fill", "leak", "lines_kept")
                ) + f" / {np.mean([x['colourfulness'] for x in s]):.1f}")  # fmt: skip
            aug_rows.append(row)
        t_aug = ev(snapshot(args.runs, "lineart-gan10", args.noaug))
        t_no = ev(snapshot(args.runs, "lineart-gan10-noaug", args.noaug))
        aug_rows.append(["test split (L1 / colourfulness)",
                         f"{t_aug['l1']:.4f} / {t_aug['colourfulness_median']:.1f}",
                         f"{t_no['l1']:.4f} / {t_no['colourfulness_median']:.1f}"])  # fmt: skip
        aug_md = _table(
            ["doodle line width", f"with augmentation (step {args.noaug})", "without"], aug_rows
        )

    text = TEMPLATE.format(
        budget=args.budget,
        shipped=args.shipped,
        shipped_run=args.shipped_run,
        test_count=len(list((args.data / "test" / "A").glob("*.png"))),
        test_table=test_table,
        curve_table=curve_table,
        doodle_table=doodle_md,
        aug_table=aug_md,
        ratio=shipped["colourfulness_median"] / target_median,
    )
    results_md = args.results.read_text(encoding="utf-8") if args.results.is_file() else ""
    if BEGIN in results_md and END in results_md:
        before, rest = results_md.split(BEGIN, 1)
        results_md = before + BEGIN + "\n" + text + "\n" + END + rest.split(END, 1)[1]
    else:
        results_md += "\n" + BEGIN + "\n" + text + "\n" + END + "\n"
    args.results.write_text(results_md, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
