"""Loss functions of pix2pix: the conditional GAN terms for D and G, and L1. Pure functions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

GAN_MODES = ("vanilla", "lsgan")


def _against(logits: torch.Tensor, real: bool, mode: str) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if mode == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN mode {mode!r}; expected one of {GAN_MODES}")


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mode: str = "vanilla"
) -> torch.Tensor:
    """D's loss: real patches towards 1, fake towards 0, halved as in the paper.

    The halving slows D relative to G. ``vanilla`` is the cross-entropy of the original GAN on
    logits; ``lsgan`` the least-squares loss (Mao et al. 2017).
    """
    return 0.5 * (_against(real_logits, True, mode) + _against(fake_logits, False, mode))


def generator_gan_loss(fake_logits: torch.Tensor, mode: str = "vanilla") -> torch.Tensor:
    """G's adversarial loss, the non-saturating form: push D's verdict on fakes towards real."""
    return _against(fake_logits, True, mode)


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the generated image and the target."""
    return F.l1_loss(output, target)
