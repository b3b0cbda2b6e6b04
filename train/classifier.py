"""A small product classifier, the classification analogue of the paper's FCN-score.

Trained on real photos (Fashion-MNIST products, exported by ``train.datasets.fashion_mnist``), it
is then asked to classify *generated* images: the closer its accuracy on them comes to its
accuracy on the real test photos, the more the generated images look like the real class.

    python -m train.classifier --data data/fashion --out runs/classifier --steps 1500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from pix2pix import imageio
from pix2pix.files import save_safetensors

WEIGHTS = "classifier.safetensors"
CONFIG = "classifier.json"


class ProductClassifier(nn.Module):
    """Four conv blocks (conv-BN-ReLU, stride-2 pooling), global average pooling, a linear head."""

    def __init__(self, num_classes: int, width: int = 32, in_channels: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(4):
            out = width * 2 ** min(i, 2)
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))  # (B, classes) logits


def to_input(images: list[Image.Image], size: int) -> torch.Tensor:
    """PIL images (of one size) -> (B, 1, size, size) greyscale in [-1, 1]."""
    arrays = [np.asarray(im.convert("L"), np.float32) for im in images]
    grey = torch.from_numpy(np.stack(arrays))[:, None] / 127.5 - 1
    return resize(grey, size)


def tensor_input(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3 or 1, H, W) images in [-1, 1] -> the classifier's (B, 1, size, size) input."""
    if images.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=images.dtype).view(1, 3, 1, 1)
        images = (images * weights).sum(1, keepdim=True)
    return resize(images, size)


def resize(grey: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased bicubic resize; one function for training and evaluation inputs alike."""
    if grey.shape[-1] == size and grey.shape[-2] == size:
        return grey
    out = F.interpolate(
        grey, size=(size, size), mode="bicubic", antialias=True, align_corners=False
    )
    return out.clamp(-1, 1)


def read_image(path: Path) -> Image.Image:
    """Decode a file as every entry point does (``pix2pix.imageio``), as 8-bit grayscale."""
    return imageio.read_image(path).convert("L")


def load_labelled(data: Path, split: str) -> tuple[list[Path], list[str], list[int]]:
    """Files of ``split`` with their class indices, from ``labels.json`` of the export."""
    meta = json.loads((data / "labels.json").read_text())
    classes = meta["classes"]
    items = sorted(
        (name, label) for name, label in meta["labels"].items() if name.startswith(f"{split}/")
    )
    if not items:
        raise ValueError(f"{data}: no labelled files in split {split!r}")
    return [data / n for n, _ in items], classes, [classes.index(c) for _, c in items]


def save_classifier(model: ProductClassifier, out: Path, config: dict) -> None:
    """Write weights (safetensors) and config (JSON) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors({k: v.contiguous() for k, v in model.state_dict().items()}, out / WEIGHTS)
    (out / CONFIG).write_text(json.dumps(config, indent=2))


def load_classifier(folder: str | Path) -> tuple[ProductClassifier, dict]:
    """Load a classifier saved by :func:`save_classifier`, strictly, in eval mode."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG).read_text())
    model = ProductClassifier(len(config["classes"]), config["width"])
    model.load_state_dict(load_file(str(folder / WEIGHTS)), strict=True)
    return model.eval(), config


@torch.no_grad()
def predict(
    model: nn.Module, images: list[Image.Image], size: int, batch: int = 256
) -> torch.Tensor:
    """Predicted class indices of ``images``."""
    model.eval()
    out = [
        model(to_input(images[i : i + batch], size)).argmax(1) for i in range(0, len(images), batch)
    ]
    return torch.cat(out)


def train(
    data: Path, out: Path, *, steps: int, batch_size: int, width: int, size: int, seed: int
) -> dict:
    """Train on the ``train`` split, report accuracy on ``test``; returns the saved config."""
    torch.manual_seed(seed)
    paths, classes, labels = load_labelled(data, "train")
    x = to_input([read_image(p) for p in paths], size)
    y = torch.tensor(labels)
    model = ProductClassifier(len(classes), width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    start = time.perf_counter()
    bar = tqdm(range(steps), desc="classifier")
    for _ in bar:
        idx = torch.randint(len(x), (batch_size,))
        batch = x[idx]
        flip = torch.rand(batch_size) < 0.5  # products face either way
        batch[flip] = batch[flip].flip(-1)
        loss = F.cross_entropy(model.train()(batch), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    test_paths, _, test_labels = load_labelled(data, "test")
    predicted = predict(model, [read_image(p) for p in test_paths], size)
    accuracy = (predicted == torch.tensor(test_labels)).float().mean().item()
    config = {
        "classes": classes,
        "width": width,
        "size": size,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "test_accuracy_real": accuracy,
        "train_seconds": round(time.perf_counter() - start, 1),
    }
    save_classifier(model, out, config)
    return config


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data", type=Path, required=True, help="folder from train.datasets.fashion_mnist"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--size", type=int, default=32, help="side the photos are classified at")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    config = train(
        args.data,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        width=args.width,
        size=args.size,
        seed=args.seed,
    )
    print(f"test accuracy on real photos: {config['test_accuracy_real']:.4f}; saved to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
