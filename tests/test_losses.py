"""GAN and L1 losses."""

from __future__ import annotations

import math

import pytest
import torch

from pix2pix import losses


def test_vanilla_losses_are_cross_entropy_on_logits() -> None:
    zero = torch.zeros(2, 1, 4, 4)
    # sigmoid(0) = 0.5: each side costs log 2; D's loss is halved.
    assert losses.discriminator_loss(zero, zero).item() == pytest.approx(math.log(2))
    assert losses.generator_gan_loss(zero).item() == pytest.approx(math.log(2))
    confident = losses.discriminator_loss(
        torch.full((1, 1, 2, 2), 20.0), torch.full((1, 1, 2, 2), -20.0)
    )
    assert confident.item() < 1e-6


def test_lsgan_losses_are_squared_errors() -> None:
    real, fake = torch.full((1, 1, 3, 3), 0.5), torch.full((1, 1, 3, 3), 0.25)
    assert losses.discriminator_loss(real, fake, "lsgan").item() == pytest.approx(
        0.5 * (0.25 + 0.0625)
    )
    assert losses.generator_gan_loss(fake, "lsgan").item() == pytest.approx(0.5625)


def test_generator_loss_falls_as_fakes_look_real() -> None:
    for mode in losses.GAN_MODES:
        worse = losses.generator_gan_loss(torch.full((1, 1, 2, 2), -2.0), mode)
        better = losses.generator_gan_loss(torch.full((1, 1, 2, 2), 0.9), mode)
        assert better < worse


def test_l1_and_unknown_mode() -> None:
    assert losses.l1_loss(torch.zeros(4), torch.tensor([1.0, -1.0, 2.0, 0.0])).item() == 1.0
    with pytest.raises(ValueError, match="unknown GAN mode 'wgan'"):
        losses.generator_gan_loss(torch.zeros(1), "wgan")
