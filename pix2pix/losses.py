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
    """Mean absolute error between the generated image and the target: a 0-d tensor.

    ``output`` and ``target`` have one shape, e.g. (B, C, H, W), any floating dtypes; the error is
    computed in fp32 or wider (bf16 / fp16 inputs are widened first, as autocast does for
    ``F.l1_loss``). The value is ``F.l1_loss``'s; written as the sum over the count, its gradient
    keeps ``output``'s memory layout. ``F.l1_loss``'s backward makes an NCHW gradient, so for a
    channels-last output (bf16 training) each elementwise step of it mixed two layouts, about 7x
    slower: 4 ms of a 70 ms training step at ngf 16, batch 4, on 2 CPU cores (issue 22).
    """
    dtype = torch.promote_types(torch.promote_types(output.dtype, target.dtype), torch.float32)
    error = (output.to(dtype) - target.to(dtype)).abs()
    return error.sum() / error.numel()
