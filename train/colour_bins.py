"""Colour bins for a generator that commits to colours (``networks.ColourBins``).

Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016), section 2.1: instead of
regressing a colour, which for an uncertain shape lands on the median of the colours shapes like
it take, the network predicts a distribution over quantised colours, trained with a
cross-entropy whose classes are rebalanced by their rarity (section 2.2: weights proportional to
((1 - lambda) p + lambda / K) ** -1, lambda 0.5, normalised to a mean of 1 over the pixels).

Here the colours are full RGB (line art gives no lightness to keep), the palette K colours
fitted by k-means to the training targets' pixels, and a pixel's class its nearest palette
colour (hard assignment; the paper spreads it over 5 neighbours).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pix2pix import networks

REBALANCE = 0.5  # the paper's lambda: half the prior, half uniform


def fit_palette(
    pixels: torch.Tensor, bins: int, *, iterations: int = 30, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """K-means of ``pixels`` (N, 3) in [-1, 1] into ``bins`` colours.

    Returns ``(palette, weights)``: (K, 3) in [-1, 1], and (K,) the rebalancing weights of the
    pixels' classes (mean 1 over ``pixels``). Starts from k-means++ seeds drawn with ``seed``.
    Raises ``ValueError`` when there are fewer distinct pixels than bins.
    """
    pixels = pixels.float().reshape(-1, 3)
    if torch.unique(pixels, dim=0).shape[0] < bins:
        raise ValueError(f"fewer distinct target colours than --colour-bins {bins}")
    g = torch.Generator().manual_seed(seed)
    centres = pixels[torch.randint(len(pixels), (1,), generator=g)]
    for _ in range(bins - 1):  # k-means++: the next seed far from those chosen
        d = torch.cdist(pixels, centres).min(1).values ** 2
        centres = torch.cat([centres, pixels[torch.multinomial(d, 1, generator=g)]])
    for _ in range(iterations):
        nearest = torch.cdist(pixels, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, nearest, pixels)
        counts = torch.bincount(nearest, minlength=bins).unsqueeze(1)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    prior = torch.bincount(torch.cdist(pixels, centres).argmin(1), minlength=bins).float()
    prior = prior / prior.sum()
    weights = 1.0 / ((1 - REBALANCE) * prior + REBALANCE / bins)
    weights = weights / (prior * weights).sum()
    return centres, weights


def bins_of(generator: nn.Module) -> networks.ColourBins | None:
    """The ``ColourBins`` of ``generator``, or None where it regresses its colours."""
    return next((m for m in generator.modules() if isinstance(m, networks.ColourBins)), None)


def nearest_bin(target: torch.Tensor, palette: torch.Tensor) -> torch.Tensor:
    """Each pixel's nearest palette colour: (B, 3, H, W) in [-1, 1] -> (B, H, W) int64."""
    flat = target.float().permute(0, 2, 3, 1).reshape(-1, 3)
    index = torch.cdist(flat, palette.float()).argmin(1)
    return index.reshape(target.shape[0], *target.shape[2:])


def loss(
    heads: torch.Tensor, target: torch.Tensor, bins: networks.ColourBins, out_channels: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(l1, cross_entropy)`` of a generator's raw heads (training mode) against ``target``.

    ``heads``: (B, out_channels + K, H, W), the regressed colour then the logits. L1 trains the
    regressed colour (used where a hint reached); the rebalanced cross-entropy the logits.
    """
    rgb, logits = heads[:, :out_channels], heads[:, out_channels:]
    l1 = F.l1_loss(rgb, target)
    labels = nearest_bin(target, bins.palette)
    ce = F.cross_entropy(logits.float(), labels, weight=bins.weights.float())
    return l1, ce


def sample_pixels(dataset: torch.utils.data.Dataset, images: int, per_image: int, seed: int):
    """``per_image`` random target pixels from each of ``images`` evenly spaced examples.

    Returns (images x per_image, 3) in [-1, 1]; the dataset's items are dicts with "target".
    """
    g = torch.Generator().manual_seed(seed)
    step = max(1, len(dataset) // images)
    out = []
    for i in range(0, min(len(dataset), step * images), step):
        target = dataset[i]["target"].reshape(3, -1)
        out.append(target[:, torch.randint(target.shape[1], (per_image,), generator=g)].T)
    return torch.cat(out)
