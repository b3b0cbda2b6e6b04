"""Image-translation metrics as pure functions: no files, no models, no global state.

Conventions used throughout (``train/evaluate.py`` reports these figures):

- Images are float tensors (B, C, H, W). ``l1_error`` takes them in the networks' [-1, 1] range, as
  the paper's L1 figures do; ``psnr`` and ``ssim`` take them in [0, 255] (``data_range=255``).
- Per-image values are returned as (B,) tensors; the caller averages over the dataset.
- Segmentation scores (FCN-score, Isola et al. 2017, Tables 1-3) are computed from one confusion
  matrix summed over the whole dataset, rows = ground-truth class, columns = predicted class, as in
  the Cityscapes evaluation the paper used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


# --------------------------------------------------------------------------------------------
# Pixel errors
# --------------------------------------------------------------------------------------------


def l1_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per image, in the units of the inputs ([-1, 1] for the paper's L1)."""
    _check_pair(output, target)
    return (output.double() - target.double()).abs().flatten(1).mean(1)


def psnr(output: torch.Tensor, target: torch.Tensor, *, data_range: float = 255.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image in dB: ``10 log10(data_range^2 / MSE)``.

    MSE is the mean over channels and pixels; identical images give ``inf``.
    """
    _check_pair(output, target)
    mse = (output.double() - target.double()).square().flatten(1).mean(1)
    return 10.0 * torch.log10(data_range**2 / mse)


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """Colourfulness M of Hasler and Suesstrunk (2003) per image, for RGB in [0, 255].

    With rg = R - G and yb = (R + G) / 2 - B over all pixels,
    ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)`` (population
    statistics). Grey images score 0; their paper rates about 33 "moderately" and 59 "highly"
    colourful. Takes (B, 3, H, W); returns (B,) float64. Raises ValueError for other shapes.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) RGB images, got shape {tuple(images.shape)}")
    r, g, b = images.double().flatten(2).unbind(1)  # each (B, H*W)
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    return spread + 0.3 * (rg.mean(1).square() + yb.mean(1).square()).sqrt()


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``size`` taps (float64), centred on the middle tap."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"window size must be a positive odd number, got {size!r}")
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(
    output: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 255.0,
    window: int = SSIM_WINDOW,
    sigma: float = SSIM_SIGMA,
    k1: float = SSIM_K1,
    k2: float = SSIM_K2,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), averaged over channels and pixels.

    Local means, variances and covariance are weighted by a ``window`` x ``window`` Gaussian of
    standard deviation ``sigma``, computed only where the window fits inside the image (no
    padding, like the authors' ``ssim.m``); C1 = (k1 L)^2 and C2 = (k2 L)^2 with L = ``data_range``.
    Each channel is scored on its own and the SSIM maps of all channels are averaged.
    """
    _check_pair(output, target)
    height, width = output.shape[-2:]
    if height < window or width < window:
        raise ValueError(
            f"SSIM needs images of at least {window}x{window} pixels, got {height}x{width}"
        )
    x, y = output.double(), target.double()
    channels = x.shape[1]
    g = gaussian_window(window, sigma).to(x.device)
    kernel_h = g.view(1, 1, 1, window).repeat(channels, 1, 1, 1)
    kernel_v = g.view(1, 1, window, 1).repeat(channels, 1, 1, 1)

    def blur(img: torch.Tensor) -> torch.Tensor:
        # Separable Gaussian; groups=channels keeps the channels apart.
        return F.conv2d(F.conv2d(img, kernel_h, groups=channels), kernel_v, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim_map.flatten(1).mean(1)


def _check_pair(output: torch.Tensor, target: torch.Tensor) -> None:
    if output.shape != target.shape or output.dim() != 4:
        raise ValueError(
            f"expected two (B, C, H, W) tensors of the same shape, got {tuple(output.shape)} and "
            f"{tuple(target.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Label maps and segmentation scores
# --------------------------------------------------------------------------------------------


def palette_indices(
    pixels: torch.Tensor, palette: Sequence[Sequence[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class index of each RGB pixel: the palette colour nearest to it (squared RGB distance).

    ``pixels``: (..., 3) values in 0..255. Returns ``(indices, exact)``, both of shape (...):
    ``exact`` is True where the pixel's colour is in the palette. Pixels that are not (JPEG noise,
    resampled borders) take the nearest colour; ties go to the lower class index.
    """
    if pixels.shape[-1] != 3:
        raise ValueError(f"expected RGB pixels of shape (..., 3), got {tuple(pixels.shape)}")
    colours = torch.as_tensor(palette, dtype=torch.float32, device=pixels.device)
    if colours.dim() != 2 or colours.shape[1] != 3 or len(colours) == 0:
        raise ValueError(
            f"palette must be a non-empty list of [r, g, b], got shape {colours.shape}"
        )
    flat = pixels.reshape(-1, 3).float()
    distance = torch.cdist(flat, colours, compute_mode="donot_use_mm_for_euclid_dist")
    nearest, indices = distance.min(dim=1)
    shape = pixels.shape[:-1]
    return indices.reshape(shape), (nearest == 0).reshape(shape)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts: entry [i, j] is the number of pixels of true class i predicted as j."""
    if pred.shape != target.shape:
        raise ValueError(
            f"prediction and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}"
        )
    pred, target = pred.reshape(-1).long(), target.reshape(-1).long()
    for name, values in (("prediction", pred), ("target", target)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(
                f"{name} holds class indices outside 0..{num_classes - 1}: "
                f"[{int(values.min())}, {int(values.max())}]"
            )
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, float]:
    """FCN-score figures from a confusion matrix (rows = truth, columns = prediction).

    - ``pixel_accuracy``: correct pixels / all pixels.
    - ``mean_class_accuracy``: mean over the classes present in the ground truth of
      (pixels of the class predicted as it) / (pixels of the class).
    - ``mean_class_iou``: mean over the classes present in the ground truth of
      TP / (TP + FP + FN). A class absent from the ground truth is left out of both means even if
      it is predicted; those pixels still count as misses of the classes they truly belong to.
    """
    conf = confusion.double()
    true_positive = conf.diagonal()
    per_truth = conf.sum(1)
    per_pred = conf.sum(0)
    total = conf.sum()
    if total == 0:
        raise ValueError("empty confusion matrix: no pixels were scored")
    present = per_truth > 0
    class_acc = true_positive[present] / per_truth[present]
    iou = true_positive[present] / (per_truth + per_pred - true_positive)[present]
    return {
        "pixel_accuracy": float(true_positive.sum() / total),
        "mean_class_accuracy": float(class_acc.mean()),
        "mean_class_iou": float(iou.mean()),
        "classes_present": int(present.sum()),
    }


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of samples whose arg-max over dimension 1 of ``logits`` equals ``labels``."""
    if logits.dim() < 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected logits (N, K, ...) and labels (N, ...), got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if labels.numel() == 0:
        raise ValueError("no samples to score")
    return float((logits.argmax(1) == labels).double().mean())


# --------------------------------------------------------------------------------------------
# Fréchet Inception Distance
# --------------------------------------------------------------------------------------------


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N, D) features with N >= 2, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), the Fréchet distance of two Gaussians.

    The matrix square root is ``scipy.linalg.sqrtm``; its real part is kept (round-off leaves tiny
    imaginary parts). When it fails on a singular product, ``eps`` is added to both diagonals.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(
            f"mismatched statistics: means {mu1.shape}, {mu2.shape}; covariances "
            f"{sigma1.shape}, {sigma2.shape}"
        )
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(root).all():
        offset = eps * np.eye(len(mu1))
        root = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(np.real(root))
    return float(diff @ diff + trace)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two sets of (N, D) features (N >= 2 each).

    With fewer samples than dimensions (the usual case for a test split and 2048-d pool3
    features) the covariances have rank < N, and Tr (S1 S2)^(1/2) equals exactly the nuclear norm
    of A2 A1^T / sqrt((N1 - 1)(N2 - 1)), where A are the centred features: the non-zero eigenvalues
    of S1 S2 = A1^T A1 A2^T A2 / c are those of (A2 A1^T)^T (A2 A1^T) / c. That costs an N1 x N2
    SVD instead of a D x D ``sqrtm`` (seconds to tens of seconds at D = 2048). Larger sets use
    :func:`frechet_distance`.
    """
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    mu1, sigma1 = feature_statistics(f1)
    mu2, sigma2 = feature_statistics(f2)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature sizes differ: {f1.shape[1]} vs {f2.shape[1]}")
    dims = f1.shape[1]
    if max(len(f1), len(f2)) > dims:
        return frechet_distance(mu1, sigma1, mu2, sigma2)
    a1, a2 = f1 - mu1, f2 - mu2
    scale = np.sqrt((len(f1) - 1) * (len(f2) - 1))
    trace_root = np.linalg.svd(a2 @ a1.T, compute_uv=False).sum() / scale
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)
