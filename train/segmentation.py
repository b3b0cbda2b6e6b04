"""A small segmentation network for FCN-score evaluation: photo -> per-pixel class logits.

The paper scores labels -> photo generators by how well an off-the-shelf semantic segmenter
(FCN-8s trained on real Cityscapes photos) recovers the input labels from the generated photos.
This module trains a small stand-in on the *real* photos of an aligned labels|photo dataset, so
that any such dataset (e.g. the synthetic facades) can be scored the same way:

    python -m train.segmentation --data DIR --out DIR --steps 2000

The label maps are RGB images whose colours come from a palette: ``classes.json`` in the data
root (``{"class_names": [...], "palette": [[r, g, b], ...]}``) or ``--classes``. A pixel whose
colour is not in the palette (resampling, JPEG) takes the nearest palette colour.

A saved segmenter is a folder with ``segmenter.json`` (constructor arguments, palette, training
settings and validation scores) and ``segmenter.safetensors``; :func:`load_segmenter` rebuilds it
without options and loads the weights strictly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from pix2pix.files import save_safetensors
from train import metrics

CONFIG_NAME = "segmenter.json"
WEIGHTS_NAME = "segmenter.safetensors"
FORMAT = "pix2pix-studio-segmenter"
CLASSES_NAME = "classes.json"


def _block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class SegmentationNet(nn.Module):
    """Encoder-decoder FCN with skip connections (a small U-Net): (B, 3, H, W) -> (B, K, H, W).

    Four stride-2 levels; inputs of any size are padded to a multiple of 16 and the logits cropped
    back. ``palette`` and ``class_names`` are metadata saved with the weights so that evaluation
    can check that its label colours mean the same classes.
    """

    levels = 4

    def __init__(
        self,
        num_classes: int,
        width: int = 32,
        *,
        palette: Sequence[Sequence[int]] | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes!r}")
        if palette is not None and len(palette) != num_classes:
            raise ValueError(f"palette has {len(palette)} colours for {num_classes} classes")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for {num_classes} classes")
        self.num_classes = num_classes
        self.width = width
        self.palette = [list(map(int, c)) for c in palette] if palette is not None else None
        self.class_names = list(class_names) if class_names is not None else None
        self.metrics: dict[str, Any] = {}  # filled by training, saved beside the weights

        chans = [width, 2 * width, 4 * width, 8 * width, 8 * width]
        self.stem = _block(3, chans[0])
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1]) for i in range(self.levels))
        self.up = nn.ModuleList(
            _block(chans[i + 1] + chans[i], chans[i]) for i in reversed(range(self.levels))
        )
        self.head = nn.Conv2d(chans[0], num_classes, 1)

    def config(self) -> dict[str, Any]:
        """The JSON-serialisable constructor arguments."""
        return {
            "num_classes": self.num_classes,
            "width": self.width,
            "palette": self.palette,
            "class_names": self.class_names,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        multiple = 2**self.levels
        pad_h, pad_w = -height % multiple, -width % multiple
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        skips = [self.stem(x)]  # (B, w, H, W)
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))  # (B, c_i, H/2^i, W/2^i)
        y = skips.pop()  # (B, 8w, H/16, W/16)
        for block in self.up:
            skip = skips.pop()
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], dim=1))
        return self.head(y)[..., :height, :width]  # (B, K, H, W)


def save_segmenter(model: SegmentationNet, directory: str | os.PathLike) -> Path:
    """Write ``segmenter.json`` (config, metrics) and ``segmenter.safetensors`` into a folder."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_safetensors(state, directory / WEIGHTS_NAME, metadata={"format": "pt"})
    config = {"format": FORMAT, "config": model.config(), "metrics": model.metrics}
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


def load_segmenter(
    source: str | os.PathLike, *, device: str | torch.device | None = None
) -> SegmentationNet:
    """Load a segmenter folder written by :func:`save_segmenter`, strictly, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"segmenter {folder} is not a folder; expected one holding {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (written by python -m train.segmentation)"
        )
    missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"segmenter folder {folder} lacks {', '.join(missing)}")
    try:
        saved = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{folder / CONFIG_NAME}: not a readable JSON file ({e})") from e
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{folder / CONFIG_NAME}: not a segmenter config (format != {FORMAT!r})")
    try:
        model = SegmentationNet(**saved["config"])
    except (KeyError, TypeError) as e:
        raise ValueError(f"{folder / CONFIG_NAME}: bad segmenter config ({e})") from e
    model.load_state_dict(load_file(str(folder / WEIGHTS_NAME)), strict=True)
    model.metrics = dict(saved.get("metrics") or {})
    model.eval()
    if device is not None:
        model.to(device)
    return model


# --------------------------------------------------------------------------------------------
# Label maps
# --------------------------------------------------------------------------------------------


def read_classes(path: str | os.PathLike) -> tuple[list[list[int]], list[str] | None]:
    """Read a ``classes.json``: ``{"class_names": [...], "palette": [[r, g, b], ...]}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e})") from e
    palette = data.get("palette") if isinstance(data, dict) else None
    if not palette or not all(
        isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) for v in c) for c in palette
    ):
        raise ValueError(f"{path}: needs a 'palette' list of [r, g, b] integer colours")
    names = data.get("class_names")
    if names is not None and len(names) != len(palette):
        raise ValueError(f"{path}: {len(names)} class_names for {len(palette)} palette colours")
    return palette, names


def to_pixels(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) float values 0..255 (rounded)."""
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1)


def label_indices(
    label_images: torch.Tensor, palette: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class indices (B, H, W) of label maps (B, 3, H, W) in [-1, 1], and which were exact."""
    if label_images.shape[1] != 3:
        raise ValueError(
            f"label maps must be RGB images, got {label_images.shape[1]} channels; the colours "
            "of a palette cannot be read from grayscale"
        )
    return metrics.palette_indices(to_pixels(label_images), palette)


def as_rgb(images: torch.Tensor) -> torch.Tensor:
    """Repeat a single channel to three; RGB passes through."""
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


# --------------------------------------------------------------------------------------------
# Training and validation
# --------------------------------------------------------------------------------------------


def _loader(
    data_dir: str | os.PathLike,
    *,
    split: str,
    direction: str,
    size: int,
    batch_size: int,
    train: bool,
    workers: int,
) -> DataLoader:
    from train.data import PairedDataset

    # load_size == crop_size: no scale jitter, so label maps stored at ``size`` are never
    # resampled (resampling blends colours at class borders); flips are the only augmentation.
    dataset = PairedDataset(
        data_dir,
        split=split,
        direction=direction,
        train=train,
        load_size=size,
        crop_size=size,
        flip=train,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) >= batch_size,
        num_workers=workers,
    )


def _forever(loader: DataLoader) -> Iterator[dict[str, Any]]:
    while True:
        yield from loader


@torch.no_grad()
def evaluate_segmenter(
    model: SegmentationNet,
    data_dir: str | os.PathLike,
    *,
    split: str,
    palette: Sequence[Sequence[int]] | None = None,
    direction: str = "AtoB",
    size: int = 256,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Segmentation scores of ``model`` on the real photos of a split (the labels are the input
    side of ``direction``): pixel accuracy, mean class accuracy, mean class IoU."""
    palette = palette if palette is not None else model.palette
    if palette is None:
        raise ValueError("no palette: pass palette= or use a segmenter saved with one")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    confusion = torch.zeros(model.num_classes, model.num_classes, dtype=torch.long)
    loader = _loader(
        data_dir,
        split=split,
        direction=direction,
        size=size,
        batch_size=batch_size,
        train=False,
        workers=0,
    )
    for batch in loader:
        labels, _ = label_indices(batch["input"], palette)
        pred = model(as_rgb(batch["target"]).to(device)).argmax(1).cpu()
        confusion += metrics.confusion_matrix(pred, labels, model.num_classes)
    model.train(was_training)
    return metrics.segmentation_scores(confusion)


def train_segmenter(
    data_dir: str | os.PathLike,
    *,
    out: str | os.PathLike | None,
    classes_json: str | os.PathLike | None = None,
    steps: int = 2000,
    batch_size: int = 8,
    size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    width: int = 32,
    direction: str = "AtoB",
    workers: int = 0,
    progress: bool = True,
) -> SegmentationNet:
    """Train a :class:`SegmentationNet` on real photos -> label maps of an aligned dataset.

    With ``direction="AtoB"`` A is the label map and B the photo (as for a labels -> photo
    generator). Adam with a cosine-decayed learning rate and per-pixel cross-entropy. At the end
    the scores on the ``val`` split (or ``test`` when there is no ``val``) are stored in
    ``model.metrics``; the model is saved to ``out`` when given. Returns it in eval mode.
    """
    from tqdm.auto import tqdm

    from pix2pix.inference import best_device
    from train.data import available_splits

    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {data_dir} does not exist")
    classes_path = Path(classes_json) if classes_json is not None else data_dir / CLASSES_NAME
    if not classes_path.is_file():
        raise FileNotFoundError(
            f"no class palette: {classes_path} does not exist. Put a classes.json "
            '({"class_names": [...], "palette": [[r, g, b], ...]}) in the data root or pass '
            "classes_json= / --classes"
        )
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps!r}")
    palette, names = read_classes(classes_path)
    device = torch.device(device) if device is not None else best_device()

    torch.manual_seed(seed)
    model = SegmentationNet(len(palette), width, palette=palette, class_names=names).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    loader = _loader(
        data_dir,
        split="train",
        direction=direction,
        size=size,
        batch_size=batch_size,
        train=True,
        workers=workers,
    )
    batches = _forever(loader)
    model.train()
    bar = tqdm(range(steps), desc="segmenter", unit="step", disable=not progress)
    off_palette = total = 0
    for _ in bar:
        batch = next(batches)
        labels, exact = label_indices(batch["input"], palette)
        off_palette += int((~exact).sum())
        total += exact.numel()
        logits = model(as_rgb(batch["target"]).to(device))
        loss = F.cross_entropy(logits, labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()

    splits = available_splits(data_dir)
    val_split = next((s for s in ("val", "test") if s in splits), None)
    model.metrics = {
        "train": {
            "steps": steps,
            "batch_size": batch_size,
            "size": size,
            "lr": lr,
            "seed": seed,
            "direction": direction,
            "data": str(data_dir),
            "classes": str(classes_path),
            "label_pixels_off_palette": off_palette / max(total, 1),
        },
        "val_split": val_split,
    }
    if val_split is not None:
        scores = evaluate_segmenter(
            model, data_dir, split=val_split, direction=direction, size=size, device=device
        )
        model.metrics.update({f"val_{k}": v for k, v in scores.items()})
    else:
        model.metrics["val_note"] = f"no val/ or test/ split in {data_dir}: not validated"
    if out is not None:
        save_segmenter(model, out)
    return model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    p = argparse.ArgumentParser(
        prog="python -m train.segmentation", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--data", required=True, type=Path, help="aligned labels|photo dataset root")
    p.add_argument("--out", required=True, type=Path, help="folder for the saved segmenter")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--classes", type=Path, default=None, help="classes.json (default: DATA's)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=32, help="channels of the first level")
    p.add_argument(
        "--direction", choices=("AtoB", "BtoA"), default="AtoB", help="AtoB: A is the label map"
    )
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m train.segmentation``; returns the exit status."""
    args = parse_args(argv)
    try:
        model = train_segmenter(
            args.data,
            out=args.out,
            classes_json=args.classes,
            steps=args.steps,
            batch_size=args.batch_size,
            size=args.size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            width=args.width,
            direction=args.direction,
            workers=args.workers,
        )
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = model.metrics
    if m.get("val_split"):
        print(
            f"{m['val_split']} split: pixel accuracy {m['val_pixel_accuracy']:.4f}, mean class "
            f"accuracy {m['val_mean_class_accuracy']:.4f}, mean class IoU "
            f"{m['val_mean_class_iou']:.4f}"
        )
    else:
        print(m["val_note"])
    print(f"saved to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
