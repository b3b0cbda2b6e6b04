"""CycleGAN's objective for the trainer: the generator and discriminator pairs, the history pool
and one training step (Zhu, Park, Isola, Efros: *Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks*, ICCV 2017).

    python -m train.train --model cyclegan --data horse2zebra --out runs/h2z
    python -m train.train --model cyclegan --data-a photos/ --data-b paintings/ --out runs/p2p
    python -m train.cyclegan --data horse2zebra --out runs/h2z     # the same as --model cyclegan

Everything else (Accelerate, checkpoints, schedules, logging, samples, the model card, the push)
is ``train.train``'s. Names: ``AtoB`` is the reference's G_A (A -> B) and ``BtoA`` its G_B; a
discriminator is named by the domain it judges, so ``D.B`` is the reference's D_A (real B against
``AtoB``'s outputs) and ``D.A`` its D_B. Loss names follow the domains too: ``cycle_A`` is
|BtoA(AtoB(a)) - a|, ``idt_B`` is |AtoB(b) - b| (the reference's loss_idt_A).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch
from accelerate import Accelerator
from torch import nn

from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator
from pix2pix.losses import discriminator_loss, generator_gan_loss, l1_loss

# What --model cyclegan changes in the defaults of options not given (the paper's Sec. 4 and
# Appendix 7.2; the reference's cycle_gan_model.py): ResNet generators with instance norm and no
# dropout, the least-squares GAN loss. ResNet-6 for crops of 128 px and less, else ResNet-9.
DEFAULTS = {"norm": "instance", "no_dropout": True, "gan_mode": "lsgan", "unconditional": True}
# pix2pix-only options refused with --model cyclegan, and why.
NOT_FOR_CYCLEGAN = {
    "direction": "both directions are trained",
    "format": "unpaired folders have one layout",
    "hints": "colour hints need paired targets",
    "no_gan": "CycleGAN needs its discriminators",
    "lambda_l1": "there is no paired target; see --lambda-cycle and --lambda-identity",
    "init_from": "fine-tuning starts from one generator, CycleGAN needs two",
}


def default_generator(crop_size: int) -> str:
    """The paper's generator for a crop size: 6 residual blocks up to 128 px, 9 above."""
    return "resnet_6blocks" if crop_size <= 128 else "resnet_9blocks"


def reverse_args(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` for the B -> A generator: input and output channels swapped."""
    return argparse.Namespace(
        **{**vars(args), "in_channels": args.out_channels, "out_channels": args.in_channels}
    )


class GeneratorPair(nn.Module):
    """The two generators, called together so that one (DDP-wrapped) forward covers both.

    ``architecture``, ``network_kwargs``, channels and size limits are those of ``AtoB`` (the
    trainer's size checks and config read them); ``BtoA`` has the channels swapped.
    """

    def __init__(self, a_to_b: Pix2PixGenerator, b_to_a: Pix2PixGenerator) -> None:
        super().__init__()
        self.AtoB = a_to_b
        self.BtoA = b_to_a

    @property
    def architecture(self) -> str:
        return self.AtoB.architecture

    @property
    def network_kwargs(self) -> dict[str, Any]:
        return self.AtoB.network_kwargs

    @property
    def in_channels(self) -> int:
        return self.AtoB.in_channels

    @property
    def out_channels(self) -> int:
        return self.AtoB.out_channels

    @property
    def size_multiple(self) -> int:
        return self.AtoB.size_multiple

    def forward(
        self, real_a: torch.Tensor, real_b: torch.Tensor, *, identity: bool = True
    ) -> dict[str, torch.Tensor]:
        """Translations, reconstructions and (with ``identity``) identity mappings, (B, C, H, W)
        each in [-1, 1]: ``fake_b`` = AtoB(a), ``rec_a`` = BtoA(fake_b), ``fake_a``, ``rec_b``,
        ``idt_b`` = AtoB(b), ``idt_a`` = BtoA(a)."""
        fake_b = self.AtoB(real_a)
        fake_a = self.BtoA(real_b)
        out = {"fake_b": fake_b, "rec_a": self.BtoA(fake_b), "fake_a": fake_a}
        out["rec_b"] = self.AtoB(fake_a)
        if identity:  # needs as many channels in A as in B
            out["idt_b"] = self.AtoB(real_b)
            out["idt_a"] = self.BtoA(real_a)
        return out


class DiscriminatorPair(nn.Module):
    """``A`` judges domain A images (the reference's D_B), ``B`` domain B (its D_A)."""

    def __init__(self, judge_a: nn.Module, judge_b: nn.Module) -> None:
        super().__init__()
        self.A = judge_a
        self.B = judge_b

    def forward(
        self, images_a: torch.Tensor, images_b: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch logits (B, 1, h, w) of ``A`` on ``images_a`` and of ``B`` on ``images_b``."""
        return self.A(images_a), self.B(images_b)


class ImagePool:
    """A history of generated images that D also learns from (Shrivastava et al. 2017; the
    CycleGAN paper's Sec. 4, a buffer of 50; the reference's ``util/image_pool.py``).

    Until ``size`` images are stored, each queried image is stored and returned. Then each one,
    with probability 1/2, replaces a stored image drawn uniformly, and the stored one is
    returned in its place; otherwise it is returned as it is. ``size=0`` returns the images.
    Draws come from the pool's own generator (seeded), and :meth:`state_dict` holds it with the
    images, so a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, size: int, seed: int) -> None:
        if size < 0:
            raise ValueError(f"the pool size must not be negative, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) images in, (B, C, H, W) out: each the image itself or a stored one."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i])
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """The stored images (on the CPU) and the generator's state: tensors only."""
        stored = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": stored, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        """Undo :meth:`state_dict`, with the images on ``device``."""
        self.images = list(state["images"].to(device)) if state["images"].numel() else []
        self.generator.set_state(state["rng"])


def generator_losses(
    D: DiscriminatorPair,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    out: dict[str, torch.Tensor],
    *,
    mode: str,
    lambda_cycle: float,
    lambda_identity: float,
) -> dict[str, torch.Tensor]:
    """G's losses (the paper's Eq. 3 with the identity term of Sec. 5.2): each generator's GAN
    loss, ``lambda_cycle`` x the two cycle L1s and ``lambda_identity x lambda_cycle`` x the two
    identity L1s (none when ``lambda_identity`` is 0); ``G`` is their sum."""
    judged_a, judged_b = D(out["fake_a"], out["fake_b"])
    losses = {
        "G_AtoB": generator_gan_loss(judged_b, mode),
        "G_BtoA": generator_gan_loss(judged_a, mode),
        "cycle_A": l1_loss(out["rec_a"], real_a),
        "cycle_B": l1_loss(out["rec_b"], real_b),
    }
    total = losses["G_AtoB"] + losses["G_BtoA"]
    total = total + lambda_cycle * (losses["cycle_A"] + losses["cycle_B"])
    if lambda_identity > 0:
        losses["idt_A"] = l1_loss(out["idt_a"], real_a)
        losses["idt_B"] = l1_loss(out["idt_b"], real_b)
        total = total + lambda_identity * lambda_cycle * (losses["idt_A"] + losses["idt_B"])
    losses["G"] = total
    return losses


def discriminator_losses(
    D: nn.Module,
    real_a: torch.Tensor,
    real_b: torch.Tensor,
    fake_a: torch.Tensor,
    fake_b: torch.Tensor,
    *,
    mode: str,
) -> dict[str, torch.Tensor]:
    """Each discriminator's halved GAN loss on real images against (pooled) fakes; ``D``: sum."""
    fake_logits = D(fake_a.detach(), fake_b.detach())
    real_logits = D(real_a, real_b)
    loss_a = discriminator_loss(real_logits[0], fake_logits[0], mode)
    loss_b = discriminator_loss(real_logits[1], fake_logits[1], mode)
    return {"D_A": loss_a, "D_B": loss_b, "D": loss_a + loss_b}


def train_step(
    batch: dict[str, Any],
    nets: Any,
    accelerator: Accelerator,
    args: argparse.Namespace,
    *,
    pools: dict[str, ImagePool],
) -> dict[str, torch.Tensor]:
    """One step of the reference's ``optimize_parameters``: update both generators (through
    the discriminators, which take no gradient), then both discriminators on pooled fakes.

    ``nets``: ``train.train.Nets`` holding a :class:`GeneratorPair` and a
    :class:`DiscriminatorPair`; ``pools``: ``{"A": ..., "B": ...}``. Returns detached losses.
    """
    real_a, real_b = batch["A"], batch["B"]
    if getattr(args, "channels_last", False):
        real_a = real_a.contiguous(memory_format=torch.channels_last)
        real_b = real_b.contiguous(memory_format=torch.channels_last)
    with accelerator.autocast():
        out = nets.G(real_a, real_b, identity=args.lambda_identity > 0)
    nets.D_plain.requires_grad_(False)
    with accelerator.autocast():
        g = generator_losses(
            nets.D_plain,
            real_a,
            real_b,
            out,
            mode=args.gan_mode,
            lambda_cycle=args.lambda_cycle,
            lambda_identity=args.lambda_identity,
        )
    nets.opt_G.zero_grad(set_to_none=True)
    accelerator.backward(g["G"])
    nets.opt_G.step()

    nets.D_plain.requires_grad_(True)
    fake_a = pools["A"].query(out["fake_a"])
    fake_b = pools["B"].query(out["fake_b"])
    with accelerator.autocast():
        d = discriminator_losses(nets.D, real_a, real_b, fake_a, fake_b, mode=args.gan_mode)
    nets.opt_D.zero_grad(set_to_none=True)
    accelerator.backward(d["D"])
    nets.opt_D.step()
    return {k: v.detach() for k, v in {**g, **d}.items()}


def _to_rgb01(x: torch.Tensor) -> torch.Tensor:
    x = x.float().clamp(-1, 1) * 0.5 + 0.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def sample_grid(G: GeneratorPair, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
    """A (3, H, W) image in [0, 1]: rows A | A -> B | A -> B -> A, then B | B -> A | B -> A -> B,
    in the paper's test mode (each image's own statistics, no dropout)."""
    from torchvision.utils import make_grid

    with networks.eval_mode(G, input_stats=True, noise=None):
        fake_b, fake_a = G.AtoB(images_a), G.BtoA(images_b)
        rows_a = [images_a, fake_b, G.BtoA(fake_b)]
        rows_b = [images_b, fake_a, G.AtoB(fake_a)]
    rows = torch.cat([torch.stack([_to_rgb01(x) for x in r], 1) for r in (rows_a, rows_b)])
    return make_grid(rows.flatten(0, 1).cpu(), nrow=3, padding=2, pad_value=1.0)


def recipe(args: argparse.Namespace, G: GeneratorPair, processes: str) -> str:
    """The model card's sentence on how it was trained (the trainer appends steps and changes);
    ``processes``: how many trained, as the card says it ('1 process', '2 processes')."""
    identity = (
        f" + {args.lambda_identity:g} x {args.lambda_cycle:g} x identity L1"
        if args.lambda_identity > 0
        else ""
    )
    return (
        f"Trained with pix2pix-train --model cyclegan: two {G.architecture} generators, two "
        f"{args.patch}x{args.patch} discriminators (ndf {args.ndf}), {args.gan_mode} GAN + "
        f"{args.lambda_cycle:g} x cycle L1{identity}, a history of {args.pool_size} generated "
        f"images per discriminator; Adam lr {args.lr:g}, betas ({args.beta1:g}, 0.999), batch "
        f"{args.batch_size} x {processes}"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m train.cyclegan ...``: ``pix2pix-train --model cyclegan ...``."""
    from train.train import main as train_main

    argv = list(sys.argv[1:] if argv is None else argv)
    return train_main(["--model", "cyclegan", *argv])


if __name__ == "__main__":
    sys.exit(main())
