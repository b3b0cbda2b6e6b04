"""Train a pix2pix generator on your own paired images, or CycleGAN on unpaired ones.

    python -m train.train --data DIR --out DIR [options]
    python -m train.train --model cyclegan --data DIR --out DIR [options]   # trainA/ trainB/ ...
    python -m train.train --model cyclegan --data-a DIR --data-b DIR --out DIR [options]
    accelerate launch --multi_gpu --num_processes 2 -m train.train --data DIR --out DIR [options]
    python -m train.train --resume OUT          # continue a stopped run exactly where it stopped

The paper's recipe (Isola et al. 2017): per step, G translates the input; D is updated on
(input, target) pairs against (input, G's output) pairs with the halved GAN loss; G is updated on
the non-saturating GAN loss plus lambda x L1. Adam (lr 2e-4, betas 0.5 / 0.999) for both, weights
drawn from N(0, 0.02), the learning rate constant for ``--epochs`` and then decayed linearly over
``--epochs-decay`` (per epoch, as the reference implementation's ``linear`` policy).

Accelerate owns devices, processes (DDP) and mixed precision. Runs are reproducible from
``--seed``: the data order is a permutation seeded per epoch, each example's crop and flip are
seeded by (seed, epoch, index) whichever process or worker loads it, and dropout draws from the
process's torch RNG, whose state is checkpointed. A resumed run therefore sees the same batches,
crops and dropout masks as one that was never stopped.

Outputs in ``--out``: the generator in the Hub format (``config.json``, ``model.safetensors``,
model card ``README.md``; load it with ``pix2pix.load_generator(OUT)``), ``checkpoint/``,
``samples/`` (input | output | target rows), ``logs/`` (TensorBoard) and ``train_summary.json``.

CycleGAN (``--model cyclegan``, Zhu et al. 2017) runs in this same loop: what differs, its two
generator and discriminator pairs, its losses, history pools and step, is in ``train.cyclegan``.
Its checkpoint holds both pairs (``generator.safetensors`` / ``discriminator.safetensors``), and
the pools with their RNG states sit with each process's RNG states; the output folder holds the
A -> B generator and, in ``BtoA/``, the B -> A one.

Several processes on CPUs: ``accelerate launch --multi_gpu --num_processes N ... --cpu`` (DDP
over gloo). ``accelerate launch --cpu --num_processes N`` starts a single process unless an MPI
hostfile is given; the startup line says the world size.
"""

from __future__ import annotations

import argparse
import copy
import functools
import inspect
import json
import multiprocessing
import os
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from pix2pix import networks
from pix2pix.allocator import keep_freed_memory
from pix2pix.hub import (
    INPUT_KINDS,
    Pix2PixGenerator,
    TaskInfo,
    load_generator,
    push_generator,
    save_generator,
)
from pix2pix.losses import GAN_MODES, discriminator_loss, generator_gan_loss, l1_loss
from train import checkpoint as ckpt
from train import colour_bins, cyclegan
from train.data import (
    CACHE_CHOICES,
    CACHE_SHARE,
    DIRECTIONS,
    FORMATS,
    PairedDataset,
    UnpairedDataset,
    available_memory,
    available_splits,
    unpaired_folders,
    unpaired_splits,
)
from train.hints import DabSpec
from train.layout import (
    CHANNELS_LAST_CHOICES,
    cache_key,
    cached_times,
    resolve_channels_last,
    time_layouts,
)
from train.optim import adam

# Generic registry entries need extra arguments (num_downs, n_blocks) that the CLI does not take.
GENERATOR_NAMES = tuple(
    n for n in networks.GENERATORS if n not in ("unet", "encoder_decoder_n", "resnet")
)
# --colour-bins: the palette is fitted to this many target pixels of this many examples.
PALETTE_IMAGES, PALETTE_PIXELS = 500, 400
# Options a resumed run cannot change: they fix the weights' shapes or the meaning of the saved
# position in the data.
FIXED_ON_RESUME = (
    "netG",
    "num_downs",
    "ngf",
    "ndf",
    "norm",
    "no_dropout",
    "hint_propagation",
    "colour_bins",
    "patch",
    "no_gan",
    "unconditional",
    "in_channels",
    "out_channels",
    "init_from",
    "batch_size",
    "seed",
    # What the examples are: which side is the input, and how the folder is read.
    "direction",
    "format",
    # CycleGAN: which objective, and the pools' size (their saved contents depend on it).
    "model",
    "pool_size",
)
# Options that change how a resumed run trains from its step on, exactly as a fresh run with them
# would train at that step (the LR and betas are recomputed after the optimizer state is loaded);
# the model card lists such changes with the step they took effect at.
RECIPE_OPTIONS = (
    "data",
    "lr",
    "beta1",
    "epochs",
    "epochs_decay",
    "lambda_l1",
    "lambda_colour_bins",
    "gan_mode",
    "load_size",
    "crop_size",
    "no_flip",
    "mixed_precision",
    "hints",
    "hint_none_share",
    "hint_max_dabs",
    "hint_soft_edge",
    "hint_recolour",
    "hint_recolour_grey",
    "hint_recolour_region",
    "data_a",
    "data_b",
    "lambda_cycle",
    "lambda_identity",
)
# Options that say where, how long, how often or what to write, not how to train: they apply
# to a resumed run as given, and the model card does not list their changes.
RUN_OPTIONS = (
    "resume",
    "out",
    "max_steps",
    "save_every",
    "sample_every",
    "log_every",
    "cpu",
    "workers",
    "compile",
    "channels_last",
    "cache_images",
    "push_to_hub",
    "input_kind",
    "input_kind_b",
    "dataset",
    "notes",
    "domain_a",
    "domain_b",
)
SAMPLE_COUNT = 4  # rows in a sample grid
SUMMARY_NAME = "train_summary.json"


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative None and False."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The ``pix2pix-train`` argument parser."""
    p = argparse.ArgumentParser(
        prog="pix2pix-train",
        description="Train a pix2pix generator (Isola et al. 2017) on paired images, or "
        "CycleGAN (Zhu et al. 2017) on unpaired ones (--model cyclegan).",
        formatter_class=_HelpFormatter,
    )
    run = p.add_argument_group("run")
    run.add_argument(
        "--model",
        choices=("pix2pix", "cyclegan"),
        default="pix2pix",
        help="pix2pix: paired images; cyclegan: unpaired (defaults then: resnet_9blocks, or "
        "resnet_6blocks for crops up to 128 px, instance norm, no dropout, lsgan)",
    )
    run.add_argument("--data", type=Path, help="dataset folder (required unless --resume)")
    run.add_argument("--out", type=Path, help="output folder (required unless --resume)")
    run.add_argument("--resume", type=Path, help="continue the run whose output folder this is")
    run.add_argument("--max-steps", type=int, help="stop after this many steps in total")
    run.add_argument("--save-every", type=int, default=1000, help="checkpoint period in steps")
    run.add_argument(
        "--sample-every",
        type=int,
        default=500,
        help="sample-grid period in steps; 0: only the grid at the end",
    )
    run.add_argument("--log-every", type=int, default=50, help="logging period in steps")
    run.add_argument("--seed", type=int, default=0, help="seeds weights, data order and dropout")
    run.add_argument(
        "--mixed-precision",
        choices=MIXED_PRECISIONS,
        default="auto",
        help="via Accelerate; auto: bf16 (with channels-last tensors) where the CPU or GPU "
        "computes bf16 natively, else no (fp32)",
    )
    run.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="off",
        help="torch.compile G and D for the training step (inductor; needs a C++ compiler on "
        "CPUs, else it trains uncompiled with a warning). The same training up to rounding. Off "
        "by default: on a 2-core CPU with native bf16 it made bf16 steps 10%% slower to 8%% "
        "faster (ngf 16 and 64) and fp32 ones 22%% slower to 16%% faster, and the first step "
        "of a run compiles for 10-120 s (a few seconds once inductor's on-disk cache holds the "
        "graphs)",
    )
    run.add_argument(
        "--channels-last",
        choices=CHANNELS_LAST_CHOICES,
        default="auto",
        help="keep the networks and batches channels-last (NHWC). auto: on under bf16; for fp32 "
        "on the CPU, on when a step of this run's networks, timed both ways before training "
        "(uncompiled; about 11 s at ngf 64 on 2 cores), is at least 5%% faster channels-last, "
        "the answer kept for later runs of the same shape on this machine; off on a GPU in "
        "fp32/fp16. The same training up to rounding",
    )
    run.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is there")
    run.add_argument("--push-to-hub", metavar="REPO", help="upload the final model to this repo")

    data = p.add_argument_group("data")
    data.add_argument("--direction", choices=DIRECTIONS, default="AtoB", help="A->B or B->A")
    data.add_argument(
        "--data-a", type=Path, help="cyclegan: a folder of domain A images (with --data-b)"
    )
    data.add_argument(
        "--data-b", type=Path, help="cyclegan: a folder of domain B images (any count, any names)"
    )
    data.add_argument("--format", choices=FORMATS, help="dataset layout (default: detected)")
    data.add_argument("--load-size", type=int, default=286, help="resize to this, then crop")
    data.add_argument("--crop-size", type=int, default=256, help="side of the training crops")
    data.add_argument("--no-flip", action="store_true", help="no random horizontal flips")
    data.add_argument("--in-channels", type=int, choices=(1, 3), default=3, help="G's input")
    data.add_argument("--out-channels", type=int, choices=(1, 3), default=3, help="G's output")
    data.add_argument(
        "--hints",
        action="store_true",
        help="colour hints: draw random dabs of the target's colours onto the inputs (line art "
        "to colour; train.hints), and record in the model's config that it takes them",
    )
    data.add_argument(
        "--hint-none-share",
        type=float,
        default=DabSpec().none_share,
        help="with --hints, the share of examples that get no dab (keeps the no-hint default good)",
    )
    data.add_argument(
        "--hint-max-dabs",
        type=int,
        default=DabSpec().max_dabs,
        help="with --hints, an example with dabs gets 1 to this many (uniformly)",
    )
    data.add_argument(
        "--hint-soft-edge",
        type=float,
        default=DabSpec().soft_edge,
        metavar="PX",
        help="with --hints, each dab's rim fades into the drawing over up to PX pixels at 256 px, "
        "as the canvas's anti-aliased brush draws it (0: hard edges)",
    )
    data.add_argument(
        "--hint-recolour",
        type=float,
        default=DabSpec().recolour,
        metavar="SHARE",
        help="with --hints, this share of the dabs get a random colour, and their shapes in the "
        "target the same colour, so that G learns to follow a dab that disagrees with what the "
        "concept usually looks like (0: every dab has the target's colour)",
    )
    data.add_argument(
        "--hint-recolour-grey",
        type=float,
        default=DabSpec().recolour_grey,
        metavar="SHARE",
        help="with --hint-recolour, this share of the random colours are greys (lighter than a "
        "line, darker than the paper: networks.HintPropagation spreads such dabs too)",
    )
    data.add_argument(
        "--hint-recolour-region",
        action="store_true",
        help="with --hint-recolour, fill the dab's whole closed shape of the line art (gaps up to "
        "6 px closed) with its colour in the target, as a visitor's dab asks, instead of only the "
        "target's connected pixels of the colour under the dab",
    )
    data.add_argument(
        "--hint-propagation",
        type=int,
        default=0,
        metavar="STEPS",
        help="U-Nets with --hints: give G the dabs' colours spread over their shapes up to the "
        "lines (networks.HintPropagation, STEPS rounds at quarter scale; 64 spans 256 px) as 4 "
        "more input channels. With --init-from a generator without it, the new channels' "
        "weights start at 0, so training starts from that generator's outputs. 0: none",
    )
    data.add_argument(
        "--cache-images",
        choices=CACHE_CHOICES,
        default="auto",
        help="keep the training images decoded and resized to --load-size in memory (uint8), "
        "decoded once before training; crops, flips and hints are still drawn per step. auto: "
        f"when they fit in {CACHE_SHARE * 100:.0f}%% of the memory available",
    )
    data.add_argument(
        "--workers",
        type=int,
        help="DataLoader workers per process, kept from one epoch to the next (default: min(4, "
        "CPUs per process - 1))",
    )

    model = p.add_argument_group("model")
    model.add_argument("--netG", choices=GENERATOR_NAMES, default="unet_256", help="generator")
    model.add_argument(
        "--num-downs",
        type=int,
        help="U-Net depth other than the name's (unet_256: 8, unet_128: 7); 6 fits 64 px",
    )
    model.add_argument("--ngf", type=int, default=64, help="G's width")
    model.add_argument("--ndf", type=int, default=64, help="D's width")
    model.add_argument("--norm", choices=networks.NORMS, default="batch", help="G's and D's")
    model.add_argument("--no-dropout", action="store_true", help="G without dropout")
    model.add_argument(
        "--patch", type=int, choices=networks.PATCH_SIZES, default=70, help="D's receptive field"
    )
    model.add_argument(
        "--colour-bins",
        type=int,
        default=0,
        metavar="K",
        help="U-Nets with --hint-propagation and --no-gan: a second head of K logits over a "
        "palette fitted to the targets (networks.ColourBins, Zhang et al. 2016): G commits to "
        "colours where no hint reached instead of painting the median colour. With --init-from "
        "a generator without it, the regressed head keeps its weights. 0: none",
    )
    model.add_argument("--gan-mode", choices=GAN_MODES, default="vanilla", help="GAN loss")
    model.add_argument("--no-gan", action="store_true", help="L1 only: no discriminator")
    model.add_argument(
        "--unconditional", action="store_true", help="D sees the output only, not the input"
    )
    model.add_argument(
        "--init-from",
        metavar="SOURCE",
        help="fine-tune this generator (Hub id, folder, file, URL); its architecture is used",
    )

    optim = p.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=1, help="per process")
    optim.add_argument("--lambda-l1", type=float, default=100.0, help="weight of the L1 term")
    optim.add_argument(
        "--lambda-colour-bins",
        type=float,
        default=10.0,
        help="weight of the colour bins' rebalanced cross-entropy (with --colour-bins)",
    )
    optim.add_argument("--lr", type=float, default=2e-4, help="Adam's initial learning rate")
    optim.add_argument("--beta1", type=float, default=0.5, help="Adam's beta1 (beta2: 0.999)")
    optim.add_argument("--epochs", type=int, default=100, help="epochs at the initial LR")
    optim.add_argument("--epochs-decay", type=int, default=100, help="epochs of linear decay")
    optim.add_argument(
        "--lambda-cycle", type=float, default=10.0, help="cyclegan: weight of the cycle L1 terms"
    )
    optim.add_argument(
        "--lambda-identity",
        type=float,
        default=0.5,
        help="cyclegan: identity L1 weight, times --lambda-cycle (0: none)",
    )
    optim.add_argument(
        "--pool-size", type=int, default=50, help="cyclegan: generated images each D revisits"
    )

    card = p.add_argument_group("model card")
    card.add_argument("--input-kind", choices=INPUT_KINDS, help="what the inputs are")
    card.add_argument(
        "--input-kind-b",
        choices=INPUT_KINDS,
        help="cyclegan: what domain B's images are, the B -> A generator's input (default: photo)",
    )
    card.add_argument("--dataset", help="dataset name (default: the data folder's name)")
    card.add_argument("--notes", default=None, help="free text for the model card")
    card.add_argument("--domain-a", help="cyclegan: name of domain A (default: from the folders)")
    card.add_argument("--domain-b", help="cyclegan: name of domain B (default: from the folders)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line; ``args.given`` names the options that were given explicitly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # argparse only fills in defaults for attributes the namespace lacks, so parsing into a
    # namespace pre-filled with a sentinel tells given options from defaults.
    unset = object()
    probe = parser.parse_args(argv, argparse.Namespace(**dict.fromkeys(vars(args), unset)))
    args.given = sorted(k for k, v in vars(probe).items() if v is not unset)
    cycle = args.model == "cyclegan"
    if (args.data_a is None) != (args.data_b is None):
        parser.error("--data-a and --data-b go together: one folder per domain")
    if args.data_a is not None and (not cycle or args.data is not None):
        parser.error("--data-a and --data-b are for --model cyclegan, instead of --data")
    if args.resume is None and ((args.data is None and args.data_a is None) or args.out is None):
        parser.error("--data and --out are required (unless --resume continues a run)")
    if cycle:
        _cyclegan_options(parser, args)
    for name in ("batch_size", "crop_size", "load_size", "ngf", "ndf", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("epochs", "epochs_decay", "save_every", "sample_every"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    if args.epochs + args.epochs_decay < 1:
        parser.error("--epochs plus --epochs-decay must be at least 1")
    if args.max_steps is not None and args.max_steps < 0:
        parser.error("--max-steps must not be negative")
    if args.workers is not None and args.workers < 0:
        parser.error("--workers must not be negative")
    if not 0 <= args.hint_none_share <= 1:
        parser.error("--hint-none-share must be between 0 and 1")
    if args.hint_max_dabs < 1:
        parser.error("--hint-max-dabs must be at least 1")
    if args.hint_soft_edge < 0:
        parser.error(f"--hint-soft-edge must be 0 or more pixels, got {args.hint_soft_edge}")
    if not 0 <= args.hint_recolour <= 1:
        parser.error(f"--hint-recolour must be between 0 and 1, got {args.hint_recolour}")
    if not 0 <= args.hint_recolour_grey <= 1:
        parser.error(f"--hint-recolour-grey must be between 0 and 1, got {args.hint_recolour_grey}")
    if args.hint_propagation < 0:
        parser.error(f"--hint-propagation must be 0 or more steps, got {args.hint_propagation}")
    if args.colour_bins < 0 or args.colour_bins == 1:
        parser.error(f"--colour-bins must be 0 (none) or at least 2, got {args.colour_bins}")
    # A resumed run takes the options not given from its checkpoint: checked after that.
    if args.resume is None and (problem := combination_problem(args)):
        parser.error(problem)
    return args


def combination_problem(args: argparse.Namespace) -> str | None:
    """The first option that needs another one it does not have, as a message; else None."""
    if (args.hint_recolour_grey or args.hint_recolour_region) and not args.hint_recolour:
        return (
            "--hint-recolour-grey and --hint-recolour-region shape --hint-recolour's "
            "colours: give --hint-recolour SHARE too"
        )
    if args.colour_bins:  # every option it lacks, in one message
        needed = (("--no-gan", args.no_gan), ("--hint-propagation STEPS", args.hint_propagation),
                  ("--hints", args.hints))  # fmt: skip
        missing = [option for option, given in needed if not given]
        if missing:
            return (
                f"--colour-bins needs {', '.join(missing)} too (it trains with L1 and "
                "cross-entropy, no discriminator; the hint propagation's reach picks each "
                "pixel's head)"
            )
    if args.hint_propagation and not args.hints:
        return "--hint-propagation spreads colour hints: it needs --hints"
    return None


def _cyclegan_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse pix2pix-only options and give the ones not given CycleGAN's defaults."""
    refused = [k for k in cyclegan.NOT_FOR_CYCLEGAN if k in args.given]
    if refused:
        parser.error(
            "--model cyclegan does not take "
            + "; ".join(
                f"--{k.replace('_', '-')} ({cyclegan.NOT_FOR_CYCLEGAN[k]})" for k in refused
            )
        )
    for key, value in cyclegan.DEFAULTS.items():
        if key not in args.given:
            setattr(args, key, value)
    if "netG" not in args.given:
        args.netG = cyclegan.default_generator(args.crop_size)
    if args.pool_size < 0:
        parser.error("--pool-size must not be negative")
    if args.lambda_identity > 0 and args.in_channels != args.out_channels:
        parser.error(
            "--lambda-identity needs as many channels in A as in B (the identity term feeds B "
            "to the A -> B generator); pass --lambda-identity 0"
        )


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``pix2pix-train``; returns the exit status."""
    args = parse_args(argv)
    args.malloc = keep_freed_memory()  # this process trains: reuse freed memory, step after step
    try:
        train(args)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------------------------
# Data order and augmentation, reproducible across resumes, processes and workers
# --------------------------------------------------------------------------------------------


def derive_seed(*parts: int) -> int:
    """A well-mixed 64-bit seed from several integers (seed, epoch, index, ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1, dtype=np.uint64)[0])


class EpochShuffle(Sampler[tuple[int, int]]):
    """A permutation of the dataset seeded by (seed, epoch); yields ``(epoch, index)`` keys.

    It has no ``generator`` attribute on purpose: Accelerate would otherwise re-seed it from
    process 0 at every epoch. Every process draws the same permutation and Accelerate gives each
    its own share of the batches.
    """

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of this epoch (Accelerate's loaders call this too)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = torch.Generator().manual_seed(derive_seed(self.seed, self.epoch))
        for index in torch.randperm(self.size, generator=rng).tolist():
            yield self.epoch, index


class SeededItems(Dataset):
    """Loads ``(epoch, index)`` keys with torch's RNG seeded from (seed, epoch, index).

    The random crop and flip of an example then depend on nothing else: not on which process or
    DataLoader worker loads it, nor on what ran before. The caller's RNG state is left untouched.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone: torch.manual_seed would also reseed CUDA's, and with it
            # the dropout masks of a run on the GPU (and cost ~1 ms an item).
            torch.default_generator.manual_seed(derive_seed(self.seed, epoch, index))
            return self.dataset[index]


def warmup_steps(steps: int) -> int:
    """How many of a run's first ``steps`` the steady images/s leaves out: a fifth, at most 20,
    and 0 for runs of fewer than 5 steps (then there is no steady figure)."""
    return min(20, steps // 5)


def _synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock time covers it (CUDA is async)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lr_factor(epoch: int, epochs: int, epochs_decay: int) -> float:
    """The reference's ``linear`` policy: 1 for ``epochs`` epochs, then linearly towards 0."""
    return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)


# --------------------------------------------------------------------------------------------
# Losses of one step (pure functions of the networks and the batch)
# --------------------------------------------------------------------------------------------


def _d_input(inp: torch.Tensor, out: torch.Tensor, conditional: bool) -> torch.Tensor:
    """D's input, (B, C_in + C_out, H, W) or ``out`` alone, in autocast's dtype where autocast is
    on: D's first layer is a convolution, which would cast it to that dtype anyway, so the values
    are the same, without concatenating in fp32 first (the input is fp32, G's output bf16) and
    casting that: 1.5-3 % of a bf16 training step on a 2-core CPU (issue 22, PERFORMANCE.md)."""
    device = out.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        inp, out = inp.to(dtype), out.to(dtype)
    return torch.cat([inp, out], 1) if conditional else out


def discriminator_step_loss(
    D: nn.Module,
    inp: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str,
    conditional: bool,
) -> torch.Tensor:
    """D's loss: (input, target) pairs towards real, (input, G's detached output) towards fake."""
    fake_logits = D(_d_input(inp, fake.detach(), conditional))
    real_logits = D(_d_input(inp, target, conditional))
    return discriminator_loss(real_logits, fake_logits, mode)


def generator_step_loss(
    D: nn.Module | None,
    inp: torch.Tensor,
    fake: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str,
    lambda_l1: float,
    conditional: bool,
    bins: networks.ColourBins | None = None,
    lambda_bins: float = 0.0,
) -> dict[str, torch.Tensor]:
    """G's loss: the GAN term through D (none when D is None) plus ``lambda_l1`` times L1.

    A generator with colour bins (``bins``; its training-mode output is its raw heads, D None):
    ``lambda_l1`` times L1 on the regressed colour plus ``lambda_bins`` times the rebalanced
    cross-entropy of its logits (``train.colour_bins.loss``).
    """
    if bins is not None:
        l1, ce = colour_bins.loss(fake, target, bins, target.shape[1])
        return {"G_L1": l1, "G_CE": ce, "G": lambda_l1 * l1 + lambda_bins * ce}
    l1 = l1_loss(fake, target)
    if D is None:
        return {"G_L1": l1, "G": lambda_l1 * l1}
    gan = generator_gan_loss(D(_d_input(inp, fake, conditional)), mode)
    return {"G_GAN": gan, "G_L1": l1, "G": gan + lambda_l1 * l1}


@dataclass
class Nets:
    """The networks and optimizers of a run, as prepared by Accelerate."""

    G: nn.Module
    opt_G: torch.optim.Optimizer
    D: nn.Module | None = None  # possibly DDP-wrapped: used for D's own update
    D_plain: nn.Module | None = None  # unwrapped: G's update goes through D without syncing it
    opt_D: torch.optim.Optimizer | None = None
    bins: networks.ColourBins | None = None  # G's colour bins (palette, class weights), if any


MIXED_PRECISIONS = ("auto", "no", "bf16", "fp16")


def resolve_mixed_precision(choice: str, *, cpu: bool = False) -> tuple[str, str]:
    """Accelerate's ``mixed_precision`` for ``choice`` on this machine, and why.

    ``auto``: ``bf16`` on a CUDA GPU that supports it, or on a CPU with native bf16
    (``avx512_bf16`` / ``amx_bf16``, ``pix2pix.backends.native_bf16``); else ``no`` (fp32).
    Plain AVX2 / AVX512 CPUs emulate bf16 and train slower with it. Other choices pass through.
    """
    if choice not in MIXED_PRECISIONS:
        raise ValueError(f"unknown mixed precision {choice!r}; expected one of {MIXED_PRECISIONS}")
    if choice != "auto":
        return choice, "as asked"
    if torch.cuda.is_available() and not cpu:
        if torch.cuda.is_bf16_supported():
            return "bf16", f"auto: {torch.cuda.get_device_name()} computes bf16"
        return "no", f"auto: {torch.cuda.get_device_name()} has no bf16"
    from pix2pix.backends import avx512_off, cpu_info, native_bf16

    flags = ", ".join(cpu_info()["flags"]) or "none known"
    if native_bf16():
        return "bf16", f"auto: the CPU computes bf16 natively ({flags})"
    off = f"; AVX-512 switched off: {avx512_off()}" if avx512_off() else ""
    return "no", f"auto: the CPU has no native bf16 (flags: {flags}{off}), fp32 is faster"


COMPILE_CHOICES = ("off", "on")


def resolve_compile(
    choice: str, *, device: torch.device, default: bool = False
) -> tuple[bool, str]:
    """Whether to ``torch.compile`` the training step's networks, and why.

    ``on`` is turned down, with a warning, where inductor cannot build its kernels: no C++
    compiler (CPU) or no Triton (GPU). Off by default: on the one machine measured (2-core AMD
    EPYC with native bf16, ``python -m bench.training``) it made bf16 steps 0-18 % faster than
    eager (ngf 16 and 64) until eager's skip concatenation handed BatchNorm channels-last
    gradients, and 10 % slower to 8 % faster since (PERFORMANCE, entries 41, 45 and 48, sessions
    17 to 20); fp32 steps 22 % slower to 16 % faster; and a run's first step compiles for 10-120 s
    (a few seconds when inductor's on-disk cache holds the graphs). ``default``: ``choice`` was
    not given, so the reason for ``off`` says it is the default rather than "as asked". Raises
    ``ValueError`` for an unknown ``choice``.
    """
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"unknown compile choice {choice!r}; expected one of {COMPILE_CHOICES}")
    if choice == "off":
        return False, "the default; --compile on to compile" if default else "as asked"
    problem = compiler_problem(device)
    if problem is not None:
        warnings.warn(
            f"training without torch.compile: {problem}. Training is the same, only slower; "
            "pass --compile off to silence this",
            stacklevel=2,
        )
        return False, problem
    return True, "as asked"


def compiler_problem(device: torch.device) -> str | None:
    """Why inductor could not build kernels for ``device`` here, or None when nothing is missing
    (it needs a C++ compiler for CPU kernels and Triton for GPU ones)."""
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "Triton is not installed (inductor's GPU kernels)"
    try:
        from torch._inductor import cpp_builder, exc
    except ImportError as e:  # a PyTorch without inductor
        return f"torch._inductor is missing ({e})"
    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        return "no C++ compiler found (inductor's CPU kernels need one: install g++, or set CXX)"
    except AttributeError:  # another PyTorch's internals: let torch.compile find out itself
        return None
    return None


def recipe_optimizers(
    G: nn.Module, D: nn.Module | None, args: argparse.Namespace
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer | None]:
    """The recipe's Adam for G and for D (None without D): ``--lr``, betas (``--beta1``, 0.999)."""
    betas = (args.beta1, 0.999)
    opt_G = adam(G.parameters(), lr=args.lr, betas=betas)
    return opt_G, adam(D.parameters(), lr=args.lr, betas=betas) if D is not None else None


def _layout_key(
    G: nn.Module, D: nn.Module | None, args: argparse.Namespace, device: torch.device, world: int
) -> str:
    """``train.layout.cache_key`` of this run's step: the networks' structure (their reprs name
    every layer and its sizes), the batch, the precision and the number of processes."""
    return cache_key(
        device,
        generator=repr(G),
        discriminator=repr(D),
        batch=[args.batch_size, G.in_channels, G.out_channels, args.crop_size],
        precision=args.mixed_precision,
        model=getattr(args, "model", "pix2pix"),
        world=world,
    )


def _time_layouts(
    G: nn.Module,
    D: nn.Module | None,
    args: argparse.Namespace,
    accelerator: Accelerator,
    cycle: bool,
) -> dict[bool, float]:
    """Seconds of one training step in each layout (``train.layout.time_layouts``): the run's own
    step on one copy of G and D with their own optimizers (and, for CycleGAN, pools), turned from
    one layout to the other between steps, on a random batch of the run's shape, so that the
    run's networks and random streams stay as they were. Uncompiled, whatever ``--compile``."""
    device = accelerator.device
    side, n = args.crop_size, args.batch_size
    draws = torch.Generator().manual_seed(0)  # not the global stream, which dropout draws from

    def images(channels: int) -> torch.Tensor:
        return (torch.rand(n, channels, side, side, generator=draws) * 2 - 1).to(device)

    batch = {
        ("A" if cycle else "input"): images(G.in_channels),
        ("B" if cycle else "target"): images(G.out_channels),
    }
    step_fn: Any = train_step
    if cycle:
        pools = {k: cyclegan.ImagePool(args.pool_size, seed) for seed, k in enumerate("AB")}
        step_fn = functools.partial(cyclegan.train_step, pools=pools)
    G2 = copy.deepcopy(G).to(device)
    D2 = copy.deepcopy(D).to(device) if D is not None else None
    opt_G, opt_D = recipe_optimizers(G2, D2, args)
    nets = Nets(G2, opt_G, D2, D2, opt_D)
    if not cycle:
        nets.bins = colour_bins.bins_of(G2)
    trial_args = argparse.Namespace(**vars(args))

    def convert(channels_last: bool) -> None:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        trial_args.channels_last = channels_last
        for net in (G2, D2):
            if net is not None:
                net.to(memory_format=fmt)  # the same parameters: the optimizers keep them
        for opt in (nets.opt_G, nets.opt_D):  # Adam's moments follow their weights' layout
            for state in opt.state.values() if opt is not None else ():
                for k, v in state.items():
                    if torch.is_tensor(v) and v.dim() == 4:
                        state[k] = v.contiguous(memory_format=fmt)

    def step() -> None:
        step_fn(batch, nets, accelerator, trial_args)
        _synchronize(device)

    accelerator.print("timing a training step channels-last and NCHW (--channels-last auto)")
    with torch.random.fork_rng(devices=[]):
        return time_layouts(step, convert)


def _choose_layout(
    G: nn.Module,
    D: nn.Module | None,
    args: argparse.Namespace,
    accelerator: Accelerator,
    cycle: bool,
    resume: ckpt.Checkpoint | None,
) -> str:
    """Resolve ``--channels-last`` (``train.layout``) on the first process, which alone times the
    step when ``auto`` needs it, and hand its answer to the others; sets ``args.channels_last``
    and returns the reason for the log. A resumed run keeps its layout unless its precision
    changed now, when the layout is chosen for the new precision as in a fresh run."""
    choice = getattr(args, "channels_last", "auto")
    saved = resume.config.get("args", {}) if resume is not None else {}
    if isinstance(choice, bool) and saved.get("mixed_precision") != args.mixed_precision:
        choice = "auto"
    device, world = accelerator.device, accelerator.num_processes
    label = (
        f"{getattr(args, 'model', 'pix2pix')} {G.architecture} ngf {args.ngf} ndf {args.ndf}, "
        f"batch {args.batch_size} of {args.crop_size} px, "
        f"{'fp32' if args.mixed_precision == 'no' else args.mixed_precision}, "
        f"{processes(world)}, {count(torch.get_num_threads(), 'thread')}"
    )
    answer: list[Any] = [None, None]
    if accelerator.is_main_process:
        answer = list(
            resolve_channels_last(
                choice,
                precision=args.mixed_precision,
                device=device,
                measure=lambda: cached_times(
                    _layout_key(G, D, args, device, world),
                    lambda: _time_layouts(G, D, args, accelerator, cycle),
                    label=label,
                ),
            )
        )
    if world > 1:
        broadcast_object_list(answer, from_process=0)
    args.channels_last, reason = answer
    before = saved.get("channels_last")
    if isinstance(before, bool) and before != args.channels_last:
        reason += f"; the run so far was {'channels-last' if before else 'NCHW'}"
    return reason


def compile_nets(nets: Nets) -> Nets:
    """``nets`` with G and D run through ``torch.compile``: the same modules and optimizers
    underneath, so the state dicts saved (of the unwrapped modules) keep their keys.

    Shapes are static (the last, smaller batch of an epoch compiles once more rather than making
    every step's graph dynamic), and random ops run as in eager mode, so a compiled step draws
    the same dropout masks from the same RNG state as an uncompiled one.
    """

    def compiled(module: nn.Module) -> nn.Module:
        return torch.compile(module, dynamic=False, options={"fallback_random": True})

    D_plain = compiled(nets.D_plain) if nets.D_plain is not None else None
    # D is D_plain unless DDP wraps it (several processes): then both are compiled.
    D = D_plain if nets.D is None or nets.D is nets.D_plain else compiled(nets.D)
    return Nets(compiled(nets.G), nets.opt_G, D, D_plain, nets.opt_D, nets.bins)


def train_step(
    batch: dict[str, Any], nets: Nets, accelerator: Accelerator, args: argparse.Namespace
) -> dict[str, torch.Tensor]:
    """One step of the paper's recipe: update D, then G; returns the detached losses."""
    inp, target = batch["input"], batch["target"]
    if getattr(args, "channels_last", False):  # bf16 convolutions are fastest in NHWC
        inp = inp.contiguous(memory_format=torch.channels_last)
        target = target.contiguous(memory_format=torch.channels_last)
    conditional = not args.unconditional
    with accelerator.autocast():
        fake = nets.G(inp)
    losses: dict[str, torch.Tensor] = {}

    if nets.D is not None:
        nets.D_plain.requires_grad_(True)
        with accelerator.autocast():
            loss_d = discriminator_step_loss(
                nets.D, inp, fake, target, mode=args.gan_mode, conditional=conditional
            )
        nets.opt_D.zero_grad(set_to_none=True)
        accelerator.backward(loss_d)
        nets.opt_D.step()
        # G's update needs gradients through D, not for it; calling the unwrapped D keeps DDP
        # from waiting for gradients that never come.
        nets.D_plain.requires_grad_(False)
        losses["D"] = loss_d.detach()

    with accelerator.autocast():
        g = generator_step_loss(
            nets.D_plain,
            inp,
            fake,
            target,
            mode=args.gan_mode,
            lambda_l1=args.lambda_l1,
            conditional=conditional,
            bins=nets.bins,
            lambda_bins=getattr(args, "lambda_colour_bins", 0.0),
        )
    nets.opt_G.zero_grad(set_to_none=True)
    accelerator.backward(g["G"])
    nets.opt_G.step()
    losses.update({k: v.detach() for k, v in g.items()})
    return losses


# --------------------------------------------------------------------------------------------
# Building the run
# --------------------------------------------------------------------------------------------


def build_generator(args: argparse.Namespace) -> Pix2PixGenerator:
    """A fresh generator from the options, initialised N(0, 0.02)."""
    factory = networks.GENERATORS[args.netG]
    options = {
        "in_channels": args.in_channels,
        "out_channels": args.out_channels,
        "ngf": args.ngf,
        "norm": args.norm,
        "dropout": not args.no_dropout,
    }
    if getattr(args, "hint_propagation", 0):
        options["hint_propagation"] = args.hint_propagation
    if getattr(args, "colour_bins", 0):
        options["colour_bins"] = args.colour_bins
    name = args.netG
    if args.num_downs is not None:
        # Other depths (e.g. 6 levels for 64 px images) use the registry's generic entries.
        if not name.startswith(("unet", "encoder_decoder")):
            raise ValueError(f"--num-downs applies to U-Nets and encoder-decoders, not {name!r}")
        name = "unet" if name.startswith("unet") else "encoder_decoder_n"
        options["num_downs"] = args.num_downs
        factory = networks.GENERATORS[name]
    accepted = inspect.signature(factory).parameters
    if "hint_propagation" in options and "hint_propagation" not in accepted:
        raise ValueError(f"--hint-propagation applies to U-Nets, not {name!r}")
    network = {k: v for k, v in options.items() if k in accepted}
    model = Pix2PixGenerator(name, network)
    networks.init_weights(model.net)
    return model


def add_hint_propagation(G: Pix2PixGenerator, steps: int) -> Pix2PixGenerator:
    """``G`` rebuilt with a ``HintPropagation`` of ``steps``.

    Where ``G`` has none, the first convolution's weights for the 4 new channels are 0 and every
    other weight is ``G``'s, so the outputs are unchanged until training uses the new channels.
    Where ``G`` has one of another length, the weights are kept as they are (the propagation has
    none): colour then spreads that many steps instead, farther or less far over large shapes.
    Raises ``ValueError`` where ``G`` is not a U-Net.
    """
    current = G.network_kwargs.get("hint_propagation", 0)
    if current == steps:
        return G
    factory = networks.GENERATORS[G.architecture]
    if "hint_propagation" not in inspect.signature(factory).parameters:
        raise ValueError(f"--hint-propagation applies to U-Nets, not {G.architecture!r}")
    grown = Pix2PixGenerator(
        G.architecture, {**G.network_kwargs, "hint_propagation": steps}, asdict(G.task)
    )
    state = G.net.state_dict()
    for key, value in grown.net.state_dict().items():
        # The first conv: (ngf, C, 4, 4) -> (ngf, C + 4, 4, 4), the new input channels' weights 0.
        extra = value.shape[1] - state[key].shape[1] if value.ndim == 4 else 0
        if extra:
            state[key] = torch.nn.functional.pad(state[key], (0, 0, 0, 0, 0, extra))
    grown.net.load_state_dict(state, strict=True)
    return grown


def add_colour_bins(G: Pix2PixGenerator, bins: int) -> Pix2PixGenerator:
    """``G`` rebuilt with ``bins`` colour bins (``networks.ColourBins``), its palette unset.

    Every weight of ``G`` is kept; the new head's start N(0, 0.02) with bias 0. ``train`` fits
    the palette to the data. Raises ``ValueError`` where ``G`` already has colour bins of
    another count, or is not a U-Net with a hint propagation.
    """
    current = G.network_kwargs.get("colour_bins", 0)
    if current == bins:
        return G
    if current:
        raise ValueError(f"{G.architecture} already has {current} colour bins, not {bins}")
    if not G.network_kwargs.get("hint_propagation"):
        raise ValueError("--colour-bins needs a generator with a hint propagation")
    grown = Pix2PixGenerator(
        G.architecture, {**G.network_kwargs, "colour_bins": bins}, asdict(G.task)
    )
    with torch.random.fork_rng():  # the same new head every time, the caller's RNG untouched
        torch.manual_seed(0)
        networks.init_weights(grown.net.bins)
    state = {**grown.net.state_dict(), **G.net.state_dict()}
    grown.net.load_state_dict(state, strict=True)
    return grown


def _cyclegan_generators(
    args: argparse.Namespace, resume: ckpt.Checkpoint | None
) -> cyclegan.GeneratorPair:
    """CycleGAN's A -> B and B -> A generators: from the checkpoint's config, or the options."""
    if resume is not None:
        specs = (resume.config["generator"], resume.config["reverse_generator"])
        return cyclegan.GeneratorPair(
            *(Pix2PixGenerator(s["architecture"], s["network"]) for s in specs)
        )
    set_seed(args.seed)  # the same initial weights on every process
    return cyclegan.GeneratorPair(
        build_generator(args), build_generator(cyclegan.reverse_args(args))
    )


def _unpaired_dataset(
    args: argparse.Namespace,
    channels: tuple[int, int],
    split: str,
    *,
    train: bool = False,
    cache: str = "off",
    cache_budget: int | None = None,
) -> UnpairedDataset:
    """CycleGAN's images of ``split``: from ``--data-a`` / ``--data-b`` (any split), or the
    ``--data`` folder's (``trainA`` / ``trainB``, ...). ``train=False``: resized to the crop."""
    if args.data is not None:
        folders = unpaired_folders(args.data, split)
    else:
        folders = (args.data_a, args.data_b)
    return UnpairedDataset(
        *folders,
        load_size=args.load_size if train else args.crop_size,
        crop_size=args.crop_size,
        flip=train and not args.no_flip,
        train=train,
        a_channels=channels[0],
        b_channels=channels[1],
        cache=cache,
        cache_budget=cache_budget,
    )


def _domain_names(args: argparse.Namespace) -> list[str]:
    """Names of domains A and B: as given, else the folders' (``--data-a`` / ``--data-b``), else
    the dataset's ``X2Y`` name split (``horse2zebra``), else ``A`` and ``B``."""
    if args.data is not None:
        parts = Path(args.data).resolve().name.split("2")
        guessed = parts if len(parts) == 2 and all(parts) else ["A", "B"]
    else:
        guessed = [Path(args.data_a).resolve().name, Path(args.data_b).resolve().name]
    return [args.domain_a or guessed[0], args.domain_b or guessed[1]]


def build_discriminator(args: argparse.Namespace, in_ch: int, out_ch: int) -> nn.Module:
    """D for the options: conditional on the input unless ``--unconditional``."""
    d_in = out_ch if args.unconditional else in_ch + out_ch
    D = networks.create_discriminator(args.patch, in_channels=d_in, ndf=args.ndf, norm=args.norm)
    return networks.init_weights(D)


def check_sizes(G: Pix2PixGenerator, D: nn.Module | None, args: argparse.Namespace) -> None:
    """Fail before training when the crop size does not fit G or D, saying what would."""
    crop = args.crop_size
    multiple = G.size_multiple
    smallest = networks.min_size(G)
    if crop % multiple or crop < smallest:
        need = f"multiples of {multiple}" if crop % multiple else f"at least {smallest} pixels"
        fixes = ["use such a crop size"]
        if G.architecture.startswith(("unet", "encoder_decoder")):
            # The deepest U-Net that fits: 2**depth divides the crop (e.g. 6 levels for 64 px).
            depth = max((d for d in range(1, 9) if crop % 2**d == 0), default=0)
            if depth and (args.init_from or args.resume):
                fixes.append(
                    f"or start a new run with --num-downs {depth} (this run's generator is fixed)"
                )
            elif depth:
                fixes.append(f"or add --num-downs {depth} (a U-Net that halves {depth} times fits)")
        fixes.append("or a generator that halves less (unet_128: 128, resnet_*: 4)")
        raise ValueError(
            f"--crop-size {crop} does not fit {G.architecture}: it halves its input "
            f"{int(np.log2(multiple))} times, so sides must be {need}; {', '.join(fixes)}"
        )
    if D is None:
        return
    d_in = next(m for m in D.modules() if isinstance(m, nn.Conv2d)).in_channels
    was_training = D.training
    D.eval()
    try:
        with torch.no_grad():
            logits = D(torch.zeros(1, d_in, crop, crop))
        problem = None if logits.numel() else "it gives no output"
    except RuntimeError as e:
        problem = str(e).splitlines()[0]
    finally:
        D.train(was_training)
    if problem:
        raise ValueError(
            f"--crop-size {crop} is too small for the {args.patch}x{args.patch} discriminator "
            f"({problem}); use larger crops or a smaller --patch"
        )


def default_workers(num_processes: int) -> int:
    """DataLoader workers per process: up to 4, leaving each process a core of its own."""
    return min(4, max(0, (os.cpu_count() or 1) // num_processes - 1))


def cache_budget(workers: int, local_processes: int) -> int | None:
    """Bytes each process's image cache may take: ``CACHE_SHARE`` of the memory available
    (None: unknown), split between the training processes on this machine and, where DataLoader
    workers start by spawning rather than forking (macOS, Windows), their copies too."""
    available = available_memory()
    if available is None:
        return None
    forked = multiprocessing.get_start_method() == "fork"
    copies = max(1, local_processes) * (1 if forked else 1 + workers)
    return int(CACHE_SHARE * available) // copies


def _resolve_resume(args: argparse.Namespace) -> ckpt.Checkpoint:
    """Load the checkpoint of ``--resume`` and fill the options not given from its config."""
    folder = ckpt.find_checkpoint(args.resume)
    if folder is None:
        raise FileNotFoundError(
            f"--resume {args.resume}: no training checkpoint there (expected "
            f"{Path(args.resume) / ckpt.CHECKPOINT_DIR}/step-*/); start a new run without --resume"
        )
    state = ckpt.load_checkpoint(folder)
    saved = state.config.get("args", {})
    conflicts = [
        f"--{k.replace('_', '-')} {getattr(args, k)!r} (the checkpoint has {saved.get(k)!r})"
        for k in FIXED_ON_RESUME
        if k in args.given and _jsonable(getattr(args, k)) != saved.get(k)
    ]
    if conflicts:
        raise ValueError(
            f"cannot resume {folder} with different {', '.join(conflicts)}: these fix the "
            "networks or the position in the data. Drop them to continue the run as it was, or "
            "start a new run in another --out"
        )
    changed = {
        k: [saved.get(k), _jsonable(getattr(args, k))]
        for k in RECIPE_OPTIONS
        if k in args.given and k in saved and _jsonable(getattr(args, k)) != saved.get(k)
    }
    if changed:
        entry = {"step": state.step, "options": changed}
        args.changes = [*state.config.get("changes", []), entry]
    else:
        args.changes = list(state.config.get("changes", []))
    for key, value in saved.items():
        if key in vars(args) and key not in args.given and key not in ("resume", "given"):
            setattr(args, key, value)
    for key in ("data", "out", "data_a", "data_b"):
        if isinstance(getattr(args, key, None), str):
            setattr(args, key, Path(getattr(args, key)))
    if "out" not in args.given:
        # Checkpoints live in OUT/checkpoint/step-*/: continue in the folder they were found in.
        args.out = folder.parent.parent if folder.parent.name == ckpt.CHECKPOINT_DIR else args.out
    if problem := combination_problem(args):  # the run's options with the ones given now
        raise ValueError(f"--resume {args.resume}: {problem}")
    return state


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _run_config(args: argparse.Namespace) -> dict[str, Any]:
    skip = ("given", "resume", "changes", "malloc")  # malloc: this process's, not the recipe
    return {k: _jsonable(v) for k, v in sorted(vars(args).items()) if k not in skip}


def apply_optimizer_options(
    optimizers: list[torch.optim.Optimizer],
    schedulers: list[Any],
    args: argparse.Namespace,
    epoch: int,
) -> None:
    """Set LR and betas from the options, as a fresh run would have them at ``epoch``.

    A loaded optimizer state carries the saved run's LR, initial LR and betas, and a loaded
    scheduler its base LRs; the LR of the current epoch would only follow a changed schedule at
    the next epoch boundary (a finished run resumed with more epochs trained a whole epoch at
    LR 0). Adam's moment estimates and the step count stay as saved.
    """
    factor = max(0.0, lr_factor(epoch, args.epochs, args.epochs_decay))
    for optimizer, scheduler in zip(optimizers, schedulers, strict=True):
        for group in optimizer.param_groups:
            group["initial_lr"] = args.lr
            group["lr"] = args.lr * factor
            group["betas"] = (args.beta1, 0.999)
        scheduler.base_lrs = [args.lr] * len(optimizer.param_groups)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


# --------------------------------------------------------------------------------------------
# Samples and evaluation (main process, paper's test mode: per-image statistics, no dropout)
# --------------------------------------------------------------------------------------------


def _to_rgb01(x: torch.Tensor) -> torch.Tensor:
    x = x.float().clamp(-1, 1) * 0.5 + 0.5
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


@torch.no_grad()
def sample_grid(G: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A (3, H, W) image in [0, 1]: one row per example, input | output | target."""
    from torchvision.utils import make_grid

    with networks.eval_mode(G, input_stats=True, noise=None):
        outputs = G(inputs)
    rows = torch.stack([_to_rgb01(inputs), _to_rgb01(outputs), _to_rgb01(targets)], 1)
    return make_grid(rows.flatten(0, 1).cpu(), nrow=3, padding=2, pad_value=1.0)


@torch.no_grad()
def evaluate_l1(G: nn.Module, dataset: Dataset, device: torch.device, batch_size: int) -> float:
    """Mean L1 between G's outputs and the targets of ``dataset``, in the [-1, 1] range."""
    total, count = 0.0, 0
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with networks.eval_mode(G, input_stats=True, noise=None):
        for batch in loader:
            inp, target = batch["input"].to(device), batch["target"].to(device)
            n = inp.shape[0]
            total += l1_loss(G(inp).float(), target).item() * n
            count += n
    return total / max(count, 1)


def _eval_dataset(args: argparse.Namespace, split: str, channels: tuple[int, int]) -> Dataset:
    return PairedDataset(
        args.data,
        split=split,
        direction=args.direction,
        format=args.format,
        crop_size=args.crop_size,
        load_size=args.crop_size,
        train=False,
        in_channels=channels[0],
        out_channels=channels[1],
    )


def _sample_batch(
    args: argparse.Namespace, channels: tuple[int, int], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (inputs, targets) for the sample grids: the first val images, else train images.

    CycleGAN: (A images, B images), the first of the test split, else of the train split.
    """
    if getattr(args, "model", "pix2pix") == "cyclegan":
        splits = unpaired_splits(args.data) if args.data is not None else []
        shown = _unpaired_dataset(args, channels, "test" if "test" in splits else "train")
        images_a, images_b = (
            torch.stack([shown[i][k] for i in range(min(SAMPLE_COUNT, len(files)))])
            for k, files in zip("AB", shown.files, strict=True)
        )
        return images_a.to(device), images_b.to(device)
    split = "val" if "val" in available_splits(args.data) else "train"
    shown = _eval_dataset(args, split, channels)
    items = [shown[i] for i in range(min(SAMPLE_COUNT, len(shown)))]
    inputs, targets = (torch.stack([it[k] for it in items]) for k in ("input", "target"))
    return inputs.to(device), targets.to(device)


def _open_tensorboard(log_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("note: tensorboard is not installed, so no TensorBoard logs are written")
        return None
    return SummaryWriter(str(log_dir))


def _describe(options: dict[str, list[Any]]) -> str:
    """``--lr 0.0002 -> 0.001, --epochs 1 -> 2`` for a dict of ``name: [old, new]``."""
    return ", ".join(f"--{k.replace('_', '-')} {old} -> {new}" for k, (old, new) in options.items())


def _objective(args: argparse.Namespace, D: nn.Module | None) -> str:
    if D is not None:
        return f"{args.patch}x{args.patch} D, {args.gan_mode} GAN"
    bins = getattr(args, "colour_bins", 0)
    return f"L1 + cross-entropy of {bins} colour bins" if bins else "L1 only"


def count(n: float, word: str, plural: str | None = None) -> str:
    """'1 step', '3 steps', '0.333 epochs', '2 processes': ``n`` (an int as it is, else 3
    significant digits) and ``word``, in the plural (``plural``, else ``word`` + 's') unless ``n``
    is 1."""
    value = str(n) if isinstance(n, int) else f"{n:.3g}"
    return f"{value} {word if n == 1 else plural or word + 's'}"


def processes(n: int) -> str:
    """'1 process', '2 processes'."""
    return count(n, "process", "processes")


def _schedule(args: argparse.Namespace, steps: int, steps_per_epoch: int) -> str:
    """'120 steps (1.5 epochs) of a schedule of 100 + 100 decay epochs', in the singular where
    a count is 1."""
    return (
        f"{count(steps, 'step')} ({count(steps / max(steps_per_epoch, 1), 'epoch')}) of a "
        f"schedule of {args.epochs} + {count(args.epochs_decay, 'decay epoch')}"
    )


def _recipe(
    args: argparse.Namespace, G: Pix2PixGenerator, steps: int, world: int, steps_per_epoch: int
) -> str:
    if isinstance(G, cyclegan.GeneratorPair):
        text = (
            f"{cyclegan.recipe(args, G, processes(world))}; "
            f"{_schedule(args, steps, steps_per_epoch)}; "
            f"{args.crop_size} px crops of {args.load_size} px"
            f"{', no flips' if args.no_flip else ', random flips'}; mixed precision "
            f"{args.mixed_precision}; seed {args.seed}."
        )
        for change in getattr(args, "changes", []):
            text += f" Resumed at step {change['step']} with {_describe(change['options'])}."
        return text + (f"\n\n{args.notes}" if args.notes else "")
    if args.no_gan:
        loss = "L1 only (no discriminator)"
        if getattr(args, "colour_bins", 0):
            loss = (
                f"{args.lambda_l1:g} x L1 on the regressed colour + "
                f"{args.lambda_colour_bins:g} x the rebalanced cross-entropy of {args.colour_bins} "
                "colour bins (no discriminator)"
            )
    else:
        kind = "unconditional" if args.unconditional else "conditional"
        loss = (
            f"{kind} {args.gan_mode} GAN with a {args.patch}x{args.patch} discriminator "
            f"(ndf {args.ndf}) + {args.lambda_l1:g} x L1"
        )
    crops = f"{args.crop_size} px crops of {args.load_size} px"
    crops += ", no flips" if args.no_flip else ", random flips"
    if getattr(args, "hints", False):
        crops += (
            f", colour-hint dabs sampled from the target (none for {args.hint_none_share:.0%} of "
            f"examples, else 1 to {getattr(args, 'hint_max_dabs', DabSpec().max_dabs)})"
        )
        if getattr(args, "hint_soft_edge", 0):
            crops += f", their rims fading over up to {args.hint_soft_edge:g} px"
        if getattr(args, "hint_recolour", 0):
            crops += (
                f", {args.hint_recolour:.0%} of them in a random colour, their shapes in the "
                "target recoloured to match"
            )
            if getattr(args, "hint_recolour_grey", 0):
                crops += f" ({args.hint_recolour_grey:.0%} of those colours greys)"
            if getattr(args, "hint_recolour_region", False):
                crops += " (each dab's whole closed shape, flat)"
        if getattr(args, "hint_propagation", 0):
            crops += (
                f", the dabs' colours spread over their shapes ({args.hint_propagation} steps) "
                "as 4 more input channels"
            )
    text = (
        f"Trained with pix2pix-train: {G.architecture}, {loss}; Adam lr {args.lr:g}, betas "
        f"({args.beta1:g}, 0.999), batch {args.batch_size} x {processes(world)}; "
        f"{_schedule(args, steps, steps_per_epoch)}; {crops}; "
        f"mixed precision {args.mixed_precision}; direction {args.direction}; seed {args.seed}."
    )
    if args.init_from:
        text += f" Fine-tuned from {args.init_from}."
    for change in getattr(args, "changes", []):
        text += (
            f" Resumed at step {change['step']} with {_describe(change['options'])}; the "
            "earlier values applied before that step."
        )
    return text + (f"\n\n{args.notes}" if args.notes else "")


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train as the options say; returns the run summary (also written to train_summary.json)."""
    resume = _resolve_resume(args) if args.resume is not None else None
    out = Path(args.out)
    if resume is None and (found := ckpt.find_checkpoint(out)) is not None:
        raise ValueError(
            f"{out} already holds a training checkpoint ({found}); continue that run with "
            f"--resume {out}, or pass another --out"
        )
    args.mixed_precision, precision_reason = resolve_mixed_precision(
        args.mixed_precision, cpu=args.cpu
    )
    if resume is not None and "mixed_precision" not in args.given:  # the checkpoint's, resolved
        precision_reason = "as in the run resumed"
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        cpu=args.cpu,
        step_scheduler_with_optimizer=False,  # the LR changes per epoch, not per step
    )
    world, rank = accelerator.num_processes, accelerator.process_index
    is_main = accelerator.is_main_process
    workers = default_workers(world) if args.workers is None else args.workers
    cache = getattr(args, "cache_images", "off")
    budget = None
    if cache == "auto":
        budget = cache_budget(workers, int(os.environ.get("LOCAL_WORLD_SIZE", world)))

    # The generator: from the checkpoint's config, --init-from, or the options.
    cycle = getattr(args, "model", "pix2pix") == "cyclegan"
    base_task: dict[str, Any] = {}
    if cycle:
        G = _cyclegan_generators(args, resume)
    elif resume is not None:
        spec = resume.config["generator"]
        base_task = resume.config.get("base_task", {})
        G = Pix2PixGenerator(spec["architecture"], spec["network"])
    elif args.init_from:
        G = load_generator(args.init_from)
        if getattr(args, "hint_propagation", 0):
            G = add_hint_propagation(G, args.hint_propagation)
        if getattr(args, "colour_bins", 0):
            G = add_colour_bins(G, args.colour_bins)
        base_task = asdict(G.task)
        G.task = TaskInfo()
        accelerator.print(
            f"fine-tuning {args.init_from}: {G.architecture} {G.network_kwargs} "
            "(--netG, --ngf, --norm and --no-dropout do not apply)"
        )
    else:
        set_seed(args.seed)  # the same initial weights on every process
        G = build_generator(args)
    G.train()
    channels = (G.in_channels, G.out_channels)

    if cycle:
        dataset = _unpaired_dataset(
            args, channels, "train", train=True, cache=cache, cache_budget=budget
        )
    else:
        dataset = PairedDataset(
            args.data,
            split="train",
            direction=args.direction,
            format=args.format,
            load_size=args.load_size,
            crop_size=args.crop_size,
            flip=not args.no_flip,
            train=True,
            in_channels=channels[0],
            out_channels=channels[1],
            hints=DabSpec(
                none_share=args.hint_none_share,
                max_dabs=getattr(args, "hint_max_dabs", DabSpec().max_dabs),
                soft_edge=getattr(args, "hint_soft_edge", DabSpec().soft_edge),
                recolour=getattr(args, "hint_recolour", DabSpec().recolour),
                recolour_grey=getattr(args, "hint_recolour_grey", DabSpec().recolour_grey),
                recolour_region=getattr(args, "hint_recolour_region", False),
            )
            if getattr(args, "hints", False)
            else None,
            cache=cache,
            cache_budget=budget,
        )
    if resume is not None:
        _check_resumable(resume, dataset_size=len(dataset), world=world)
    bins = None if cycle else colour_bins.bins_of(G)
    if resume is None and bins is not None and not bins.palette.any():  # a new head
        # Before set_seed below, so the draws here leave the run's random stream as it was. A
        # resumed run loads its palette with the weights.
        pixels = colour_bins.sample_pixels(dataset, PALETTE_IMAGES, PALETTE_PIXELS, args.seed)
        palette, weights = colour_bins.fit_palette(pixels, len(bins.palette), seed=args.seed)
        bins.palette.copy_(palette)
        bins.weights.copy_(weights)
        accelerator.print(
            f"colour bins: {len(palette)} colours fitted to {len(pixels)} target pixels of "
            f"{len(pixels) // PALETTE_PIXELS} examples; class weights "
            f"{weights.min():.2f}-{weights.max():.2f}"
        )

    D = None
    if cycle:  # D.A judges domain A images, D.B domain B (the reference's D_B and D_A)
        set_seed(args.seed + 1)
        D = cyclegan.DiscriminatorPair(
            build_discriminator(args, 0, channels[0]), build_discriminator(args, 0, channels[1])
        )
        check_sizes(G.AtoB, D.B, args)
    elif not args.no_gan:
        set_seed(args.seed + 1)
        D = build_discriminator(args, *channels)
    if not cycle:
        check_sizes(G, D, args)
    set_seed(args.seed, device_specific=True)  # dropout masks differ between processes
    step_fn = train_step
    pools: dict[str, cyclegan.ImagePool] = {}
    if cycle:  # each process keeps its own pools, with their own draws
        pools = {
            k: cyclegan.ImagePool(args.pool_size, derive_seed(args.seed, rank, i))
            for i, k in enumerate("AB")
        }
        step_fn = functools.partial(cyclegan.train_step, pools=pools)

    opt_G, opt_D = recipe_optimizers(G, D, args)

    def decay(epoch: int) -> float:
        return lr_factor(epoch, args.epochs, args.epochs_decay)

    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt_G, decay)]
    if opt_D is not None:
        schedulers.append(torch.optim.lr_scheduler.LambdaLR(opt_D, decay))

    sampler = EpochShuffle(len(dataset), args.seed)
    loader = DataLoader(
        SeededItems(dataset, args.seed),
        batch_sampler=BatchSampler(sampler, args.batch_size, drop_last=False),
        num_workers=workers,
        # Worker seeds come from here, not from the global RNG that dropout draws from.
        generator=torch.Generator().manual_seed(args.seed),
        pin_memory=accelerator.device.type == "cuda",
        # The same workers from epoch to epoch: starting them again at every epoch cost more than
        # an epoch's loading on small datasets. Every item is seeded by its (epoch, index) key
        # (SeededItems), so the batches are the same either way.
        persistent_workers=workers > 0,
    )
    layout_reason = _choose_layout(G, D, args, accelerator, cycle, resume)
    if args.channels_last:  # parameters keep their identity: the optimizers still hold them
        G.to(memory_format=torch.channels_last)
        if D is not None:
            D.to(memory_format=torch.channels_last)
    if D is not None:
        G, D, opt_G, opt_D, loader = accelerator.prepare(G, D, opt_G, opt_D, loader)
    else:
        G, opt_G, loader = accelerator.prepare(G, opt_G, loader)
    G_plain: Pix2PixGenerator = accelerator.unwrap_model(G)
    D_plain = accelerator.unwrap_model(D) if D is not None else None
    nets = Nets(G, opt_G, D, D_plain, opt_D, colour_bins.bins_of(G_plain))

    steps_per_epoch = len(loader)
    total_steps = steps_per_epoch * (args.epochs + args.epochs_decay)
    if args.max_steps is not None:
        total_steps = min(total_steps, args.max_steps)

    step = epoch = batch_in_epoch = images = 0
    if resume is not None:
        step, epoch, batch_in_epoch, images = _load_state(resume, nets, schedulers, accelerator)
        for key, pool in pools.items():
            pool.load_state_dict(resume.state["processes"][rank]["pools"][key], accelerator.device)
        optimizers = [o for o in (nets.opt_G, nets.opt_D) if o is not None]
        apply_optimizer_options(optimizers, schedulers, args, epoch)
        accelerator.print(f"resuming {resume.folder} at step {step} (epoch {epoch + 1})")
        if args.changes and args.changes[-1]["step"] == step:
            accelerator.print(f"from step {step} on: {_describe(args.changes[-1]['options'])}")
    # Resolved here, not stored in args: the option as given is what a resumed run inherits.
    compiled, compile_reason = resolve_compile(
        getattr(args, "compile", "off"),
        device=accelerator.device,
        default="compile" not in getattr(args, "given", ()),
    )
    if compiled:  # after loading: the compiled wrappers' own state dicts prefix the keys
        nets = compile_nets(nets)

    config = {
        "args": _run_config(args),
        "generator": {"architecture": G_plain.architecture, "network": G_plain.network_kwargs},
        **(
            {
                "reverse_generator": {
                    "architecture": G_plain.architecture,
                    "network": G_plain.BtoA.network_kwargs,
                }
            }
            if cycle
            else {}
        ),
        "base_task": base_task,
        "world_size": world,
        "dataset_size": len(dataset),
        "steps_per_epoch": steps_per_epoch,
        "changes": getattr(args, "changes", []),
    }
    writer = samples = None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        writer = _open_tensorboard(out / "logs")
        samples = _sample_batch(args, channels, accelerator.device)
    accelerator.print(dataset.summary())
    if getattr(args, "malloc", None):
        accelerator.print(args.malloc)
    accelerator.print(
        f"training {'CycleGAN, two ' if cycle else ''}{G_plain.architecture} "
        f"({_objective(args, D)}) "
        f"on {processes(world)}, device {accelerator.device}, "
        f"mixed precision {args.mixed_precision} ({precision_reason}), "
        f"{'channels-last' if args.channels_last else 'NCHW'} ({layout_reason}), torch.compile "
        f"{'on' if compiled else 'off'} ({compile_reason}): "
        f"{count(steps_per_epoch, 'step')} per epoch of batch {args.batch_size} per process, "
        f"{count(total_steps, 'step')} in all; "
        f"{count(workers, 'data worker')}"
    )

    def save() -> None:
        mine = {"rng": ckpt.capture_rng_state(), "images": images}
        if pools:
            mine["pools"] = {k: pool.state_dict() for k, pool in pools.items()}
        per_process = gather_object([mine])
        if is_main:
            state = {
                "step": step,
                "epoch": epoch,
                "batch_in_epoch": batch_in_epoch,
                "optimizer_G": nets.opt_G.state_dict(),
                "optimizer_D": nets.opt_D.state_dict() if nets.opt_D is not None else None,
                "schedulers": [s.state_dict() for s in schedulers],
                "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
                "processes": per_process,
            }
            weights = {"generator": G_plain.state_dict()}
            if D_plain is not None:
                weights["discriminator"] = D_plain.state_dict()
            ckpt.save_checkpoint(
                out / ckpt.CHECKPOINT_DIR, step, weights=weights, state=state, config=config
            )
        accelerator.wait_for_everyone()

    if resume is not None:
        # Last of all, so that nothing above can shift the RNG streams of the resumed run.
        ckpt.restore_rng_state(resume.state["processes"][rank]["rng"])

    bar = tqdm(
        total=total_steps,
        initial=step,
        desc="train",
        unit="step",
        dynamic_ncols=True,
        disable=not accelerator.is_local_main_process,
    )
    first_images, started = images, time.perf_counter()
    # The steady rate leaves out the first steps (CUDA context, cuDNN's algorithm search, the
    # allocator's first blocks), which dominate a short run on a GPU.
    warmup = warmup_steps(total_steps - step)
    warm_at = step + warmup
    warm: tuple[float, int] | None = None
    first_step_at = step + 1
    first_step_seconds = None  # includes compiling, with --compile
    last_losses: dict[str, float] = {}
    while step < total_steps:
        epoch_loader = loader
        if batch_in_epoch:
            epoch_loader = accelerator.skip_first_batches(loader, batch_in_epoch)
        epoch_loader.set_epoch(epoch)
        sampler.set_epoch(epoch)  # also where Accelerate's wrappers do not reach it
        for batch in epoch_loader:
            losses = step_fn(batch, nets, accelerator, args)
            step += 1
            batch_in_epoch += 1
            images += batch["A" if cycle else "input"].shape[0]
            if batch_in_epoch == steps_per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
                for scheduler in schedulers:
                    scheduler.step()
            bar.update(1)
            if step == first_step_at:
                _synchronize(accelerator.device)
                first_step_seconds = round(time.perf_counter() - started, 3)
            if step == warm_at:
                _synchronize(accelerator.device)
                warm = (time.perf_counter(), images)

            if step % args.log_every == 0 or step == total_steps:
                names = sorted(losses)
                means = accelerator.reduce(torch.stack([losses[k] for k in names]), "mean")
                last_losses = dict(zip(names, means.float().tolist(), strict=True))
                bar.set_postfix({k: f"{v:.3f}" for k, v in last_losses.items()}, refresh=False)
                if writer is not None:
                    for k, v in last_losses.items():
                        writer.add_scalar(f"loss/{k}", v, step)
                    writer.add_scalar("lr", nets.opt_G.param_groups[0]["lr"], step)
            if is_main and args.sample_every and step % args.sample_every == 0:
                _write_samples(G_plain, samples, out, step, writer)
            if args.save_every and step % args.save_every == 0:
                save()
            if step >= total_steps:
                break
    bar.close()
    _synchronize(accelerator.device)
    finished = time.perf_counter()
    seconds = finished - started
    steady = (finished - warm[0], images - warm[1]) if warm and finished > warm[0] else None
    save()

    counts = gather_object([(images, images - first_images, steady)])
    per_process_images = [c[0] for c in counts]
    done_images = sum(per_process_images)
    new_images = sum(c[1] for c in counts)
    steady_rate = None
    if all(c[2] for c in counts):  # images of all processes over the slowest one's time
        steady_rate = round(sum(c[2][1] for c in counts) / max(c[2][0] for c in counts), 3)
    summary: dict[str, Any] = {
        "steps": step,
        "epochs": step / steps_per_epoch,
        "world_size": world,
        "images": done_images,
        "images_per_process": per_process_images,
        "seconds": round(seconds, 3),
        "images_per_second": round(new_images / seconds, 3) if seconds > 0 else None,
        "steady_images_per_second": steady_rate,
        "warmup_steps": warmup,
        "first_step_seconds": first_step_seconds,
        "compiled": compiled,
        "channels_last": args.channels_last,
        "data": dataset.summary(),
        "losses": last_losses,
        "model": str(out),
    }
    if is_main:
        summary.update(
            _finish(args, G_plain, base_task, samples, (step, steps_per_epoch), world, out, writer)
        )
        (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        rate = summary["images_per_second"]
        print(
            f"done: {count(step, 'step')}, {count(done_images, 'image')} on {processes(world)}, "
            f"{rate if rate is not None else 'n/a'} images/s; model saved to {out}"
            + (f" and pushed to {summary['pushed_to']}" if summary.get("pushed_to") else "")
        )
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return summary


def _check_resumable(resume: ckpt.Checkpoint, *, dataset_size: int, world: int) -> None:
    saved_size = resume.config.get("dataset_size")
    if saved_size != dataset_size:
        raise ValueError(
            f"cannot resume {resume.folder}: the dataset now has {dataset_size} usable examples, "
            f"the run was trained on {saved_size}, so its position in the epoch means nothing"
        )
    saved_world = resume.config.get("world_size")
    if saved_world != world:
        run = resume.folder.parent.parent  # OUT/checkpoint/step-N
        if saved_world == 1:
            how = f"python -m train.train --resume {run}"
        else:  # on CPUs too: without --multi_gpu accelerate starts one process
            how = (
                f"accelerate launch --multi_gpu --num_processes {saved_world} -m train.train "
                f"--resume {run}, with --cpu after it on a CPU machine"
            )
        raise ValueError(
            f"cannot resume {resume.folder} on {processes(world)}: it was trained on "
            f"{processes(saved_world)}, and the batches each process sees depend on that; "
            f"launch it on {saved_world} as it was: {how}"
        )


def _load_state(
    resume: ckpt.Checkpoint, nets: Nets, schedulers: list[Any], accelerator: Accelerator
) -> tuple[int, int, int, int]:
    """Load weights and optimizer, scheduler and scaler states; returns the saved position."""
    state = resume.state
    accelerator.unwrap_model(nets.G).load_state_dict(resume.weights["generator"], strict=True)
    nets.opt_G.load_state_dict(state["optimizer_G"])
    if nets.D is not None:
        if "discriminator" not in resume.weights or state["optimizer_D"] is None:
            raise ValueError(f"{resume.folder} holds no discriminator (an L1-only run)")
        nets.D_plain.load_state_dict(resume.weights["discriminator"], strict=True)
        nets.opt_D.load_state_dict(state["optimizer_D"])
    for scheduler, saved in zip(schedulers, state["schedulers"], strict=True):
        scheduler.load_state_dict(saved)
    if accelerator.scaler is not None and state.get("scaler"):
        accelerator.scaler.load_state_dict(state["scaler"])
    images = int(state["processes"][accelerator.process_index]["images"])
    return int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"]), images


def _write_samples(
    G: nn.Module, samples: tuple[torch.Tensor, torch.Tensor], out: Path, step: int, writer: Any
) -> None:
    from torchvision.utils import save_image

    if isinstance(G, cyclegan.GeneratorPair):
        grid = cyclegan.sample_grid(G, *samples)
    else:
        grid = sample_grid(G, *samples)
    folder = out / "samples"
    folder.mkdir(parents=True, exist_ok=True)
    save_image(grid, folder / f"step_{step:08d}.png")
    if writer is not None:
        writer.add_image("samples", grid, step)


def _finish(
    args: argparse.Namespace,
    G: Pix2PixGenerator,
    base_task: dict[str, Any],
    samples: tuple[torch.Tensor, torch.Tensor] | None,
    steps: tuple[int, int],
    world: int,
    out: Path,
    writer: Any,
) -> dict[str, Any]:
    """Main process, after training: evaluate, write the model, the last samples, push.

    ``steps``: (steps done, steps per epoch).
    """
    step, steps_per_epoch = steps
    device = next(G.parameters()).device
    metrics: dict[str, float] = {"steps": step}
    cycle = isinstance(G, cyclegan.GeneratorPair)
    if not cycle and "val" in available_splits(args.data):
        val = _eval_dataset(args, "val", (G.in_channels, G.out_channels))
        metrics["val_l1"] = evaluate_l1(G, val, device, args.batch_size)
    if samples is not None:
        _write_samples(G, samples, out, step, writer)
    if writer is not None:
        for k, v in metrics.items():
            writer.add_scalar(f"final/{k}", v, step)
        writer.close()

    task = {**base_task, "source": None}
    if cycle:
        domains = _domain_names(args)
        name = Path(args.data).resolve().name if args.data is not None else "2".join(domains)
        task.update(method="cyclegan", domains=domains, dataset=name)
    else:
        task.update(dataset=Path(args.data).resolve().name)
    task.update(
        direction=args.direction,
        train_size=args.crop_size,
        patch=None if args.no_gan else args.patch,
        dataset=args.dataset or base_task.get("dataset") or task["dataset"],
        notes=_recipe(args, G, step, world, steps_per_epoch),
        metrics=metrics,
    )
    if cycle:
        # Each generator's input is its own domain's: labels -> photo takes label maps, and the
        # way back takes photos. A label palette (classes.json beside either folder) serves both:
        # the input of one and the output of the other.
        labels = next((found for root in _data_roots(args) if (found := _label_classes(root))), {})
        kinds = {"AtoB": args.input_kind, "BtoA": getattr(args, "input_kind_b", None) or "photo"}
        for direction, generator in (("AtoB", G.AtoB), ("BtoA", G.BtoA)):
            kind = {"input_kind": kinds[direction]} if kinds[direction] else {}
            generator.task = TaskInfo.from_dict({**task, **labels, **kind, "direction": direction})
        save_generator(G.AtoB, out, repo_id=args.push_to_hub, reverse=G.BtoA)
        result: dict[str, Any] = {"metrics": metrics}
        if args.push_to_hub:
            result["pushed_to"] = push_generator(G.AtoB, args.push_to_hub, reverse=G.BtoA)
        return result
    if args.input_kind:
        task["input_kind"] = args.input_kind
    if getattr(args, "hints", False):
        task["hints"] = True
    task.update(_label_classes(Path(args.data)))
    G.task = TaskInfo.from_dict(task)
    save_generator(G, out, repo_id=args.push_to_hub)
    result: dict[str, Any] = {"metrics": metrics}
    if args.push_to_hub:
        result["pushed_to"] = push_generator(G, args.push_to_hub)
    return result


def _data_roots(args: argparse.Namespace) -> list[Path]:
    """Where a run's dataset-wide files may be: ``--data``, else the folders above ``--data-a``
    and ``--data-b`` (the reference layout's root)."""
    if args.data is not None:
        return [Path(args.data)]
    return list(dict.fromkeys(Path(d).resolve().parent for d in (args.data_a, args.data_b) if d))


def _label_classes(data: Path) -> dict[str, Any]:
    """Palette and class names from the dataset's ``classes.json``, when it has one."""
    path = data / "classes.json"
    if not path.is_file():
        return {}
    classes = json.loads(path.read_text())
    names = classes.get("class_names") or classes.get("names")
    return {"palette": classes.get("palette"), "class_names": names}


if __name__ == "__main__":
    sys.exit(main())
