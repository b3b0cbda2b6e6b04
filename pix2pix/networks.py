"""pix2pix networks: U-Net, encoder-decoder, ResNet generators; PixelGAN/PatchGAN discriminators.

Module structure, parameter names, shapes and bias rules follow the reference PyTorch
implementation (junyanz/pytorch-CycleGAN-and-pix2pix), so its checkpoints load with
``strict=True``. ``HugGANUNet`` matches the ``GeneratorUNet`` of the 2022 HugGAN community models.

This module holds ``nn.Module``s and the registry only; it imports nothing else from the project.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# "instance_affine": InstanceNorm with a learned scale and shift, as many CycleGAN codebases other
# than the reference use (the reference's own "instance" has none).
NORMS = ("batch", "instance", "instance_affine", "none")


class BatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that, in eval mode, can normalise by each input's own statistics.

    The paper (and the reference's default test mode) runs BatchNorm in train mode on a batch of
    one at test time, i.e. each image is normalised by its own per-channel statistics. Setting
    ``use_input_stats`` does exactly that, per image even in a batch, without touching the stored
    running statistics. State-dict keys are those of ``nn.BatchNorm2d``.
    """

    use_input_stats: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.use_input_stats:
            return super().forward(x)
        if x.shape[0] == 1:  # the same statistics; batch_norm's kernel is the faster one here
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


class Dropout(nn.Dropout):
    """``nn.Dropout`` that can stay on in eval mode, drawing its masks from a given generator.

    pix2pix uses dropout as its noise z, also at test time. A ``torch.Generator`` makes the
    variations reproducible without touching the global RNG. A list of generators, one per image
    of the batch, draws each image's mask from its own: an image then gets the same mask whatever
    else shares its batch.

    In training on the CPU with the paper's p = 0.5, the mask comes from random bits
    (``_fair_coin_noise``), not from ``F.dropout``'s one draw per element; the same distribution.
    """

    generator: torch.Generator | Sequence[torch.Generator] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and _fair_coin_applies(x, self.p, self.inplace):
            return x * _fair_coin_noise(x)
        if self.training or self.generator is None:
            return super().forward(x)
        keep = 1.0 - self.p
        if isinstance(self.generator, torch.Generator):
            mask = _bernoulli(x.shape, keep, self.generator)
        else:
            if len(self.generator) != x.shape[0]:
                raise ValueError(
                    f"{len(self.generator)} noise generators for a batch of {x.shape[0]}"
                )
            mask = torch.stack([_bernoulli(x.shape[1:], keep, g) for g in self.generator])
        return x * mask.to(device=x.device, dtype=x.dtype) / keep


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)


def _fair_coin_applies(x: torch.Tensor, p: float, inplace: bool) -> bool:
    # The reference's p = 0.5 on the CPU, where PyTorch's mask (bernoulli_) draws one number per
    # element: ten times the cost of this mask on a 2-core AMD EPYC, 1-5 ms of a training step
    # (PERFORMANCE.md, entry 46). CUDA's fused dropout kernel is left as it is.
    return p == 0.5 and not inplace and x.device.type == "cpu" and x.numel() % 8 == 0


def _fair_coin_noise(x: torch.Tensor) -> torch.Tensor:
    """Dropout's noise for p = 0.5 in training: 0 or 2 per element, each with probability 1/2,
    in ``x``'s dtype and memory layout. Every bit of ``numel / 8`` uniform random bytes (the
    global CPU generator, so ``torch.manual_seed`` and a checkpoint's RNG state govern it) decides
    one element; the expectation is 1, as ``F.dropout``'s.
    """
    n = x.numel()
    if torch.compiler.is_compiling():  # dynamo traces neither random_ nor out= / as_strided
        return _fair_coin_noise_traceable(x)
    draws = torch.empty(n // 8, dtype=torch.uint8).random_(0, 256)
    mask = torch.empty_like(x, dtype=torch.uint8)  # dense, in x's layout
    bits = mask.as_strided((n // 8, 8), (8, 1))  # its storage in memory order
    torch.bitwise_right_shift(draws.unsqueeze(1), _BIT_SHIFTS, out=bits)
    bits.bitwise_and_(1)
    return mask.to(x.dtype).mul_(2)


def _fair_coin_noise_traceable(x: torch.Tensor) -> torch.Tensor:
    """:func:`_fair_coin_noise` in ops ``torch.compile`` keeps in one graph, with static or
    dynamic shapes: the same bytes from the same generator state (``randint`` draws as
    ``random_`` does), so the same mask for contiguous and channels-last inputs (other layouts:
    the bits in logical order, not memory order)."""
    draws = torch.randint(0, 256, (x.numel() // 8,), dtype=torch.uint8)
    bits = torch.bitwise_and(draws.unsqueeze(1) >> _BIT_SHIFTS, 1)  # (numel / 8, 8)
    channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not x.is_contiguous():
        n, c, h, w = x.shape
        mask = bits.reshape(n, h, w, c).permute(0, 3, 1, 2)
    else:
        mask = bits.reshape(x.shape)
    return mask.to(x.dtype).mul(2)


def _bernoulli(shape: torch.Size, keep: float, generator: torch.Generator) -> torch.Tensor:
    # Drawn on the generator's device, then moved: CPU generators also serve CUDA models.
    mask = torch.empty(shape, device=generator.device)
    return mask.bernoulli_(keep, generator=generator)


class Identity(nn.Module):
    """Placeholder for ``norm="none"``; keeps the reference's layer indices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Resolve a norm name to a layer factory, with the reference's settings."""
    if norm == "batch":
        return lambda c: BatchNorm2d(c, affine=True, track_running_stats=True)
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if norm == "instance_affine":
        return lambda c: nn.InstanceNorm2d(c, affine=True, track_running_stats=False)
    if norm == "none":
        return lambda c: Identity()
    raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")


def _uses_bias(norm: str) -> bool:
    # The reference gives convolutions a bias only before InstanceNorm: BatchNorm's shift makes
    # it redundant, and its `norm="none"` path (a plain function, not InstanceNorm) also gets none.
    # Codebases with affine InstanceNorm keep the convolutions' bias too.
    return norm in ("instance", "instance_affine")


# --------------------------------------------------------------------------------------------
# U-Net and encoder-decoder
# --------------------------------------------------------------------------------------------


class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down, the inner levels, up; the input is concatenated to the output.

    With ``skip=False`` the concatenation is dropped and the up-convolution takes only the inner
    features: the paper's encoder-decoder ablation.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        *,
        input_nc: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
        skip: bool = True,
    ) -> None:
        super().__init__()
        self.outermost = outermost
        self.skip = skip
        make_norm = norm_layer(norm)
        bias = _uses_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        up_in = inner_nc if innermost or not skip else inner_nc * 2

        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            upconv = nn.ConvTranspose2d(up_in, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(up_in, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, uprelu, upconv, make_norm(outer_nc)]
        else:
            upconv = nn.ConvTranspose2d(up_in, outer_nc, 4, stride=2, padding=1, bias=bias)
            layers = [downrelu, downconv, make_norm(inner_nc), submodule, uprelu, upconv]
            layers.append(make_norm(outer_nc))
            if dropout:
                layers.append(Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost or not self.skip:
            return self.model(x)
        inner = self.model(x)
        if inner.requires_grad and not _tracing():
            return _SkipConcat.apply(x, inner)  # (B, outer_nc + outer_nc, H, W)
        return torch.cat([x, inner], 1)  # (B, outer_nc + outer_nc, H, W)


class _SkipConcat(torch.autograd.Function):
    """``torch.cat([x, y], 1)`` whose backward hands each part a channels-last gradient of its
    own where the output's gradient is channels-last, instead of a channel slice of it.

    A BatchNorm's backward on such a slice (a strided view, not channels-last contiguous) takes a
    slow path: 7-12x its time on a contiguous gradient at 4x64x128x128 and 4x128x64x64 on the
    CPU, in fp32 and bf16 alike (PERFORMANCE, entry 41). Each U-Net level's up-path ends in a
    BatchNorm whose output goes into this concatenation. Values are those of ``torch.cat``'s
    backward; contiguous (NCHW) gradients are passed on as views, as it does.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ctx.split = x.shape[1]
        return torch.cat([x, y], 1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = grad[:, : ctx.split], grad[:, ctx.split :]
        if grad.is_contiguous() or not grad.is_contiguous(memory_format=torch.channels_last):
            return parts
        return tuple(p.contiguous(memory_format=torch.channels_last) for p in parts)


class HintPropagation(nn.Module):
    """Spread the colour of each hint dab over its shape, stopping at the drawing's lines.

    The input is a line drawing with optional colour dabs: (B, 3, H, W) in [-1, 1], sides
    multiples of ``scale``. Lines are dark pixels without colour; dabs are pixels with colour
    (max - min over RGB above ``CHROMA`` in [0, 1] units) whose colour is solid: at least
    ``SOLID`` times the largest chroma within one cell of them, so a dab's anti-aliased rim, its
    colour faded into the paper, neither starts nor pales the spread. A grey dab (no colour,
    lighter than a line, darker than ``PAPER``) counts only where it fills whole cells evenly
    (every pixel grey, their brightness within ``GREY_FLAT``): the grey anti-aliased edge of a
    line is never that wide, as a dab is. On a grid ``scale`` times coarser, a cell is a wall
    when any of its pixels is a line, and a hint source, of its dab pixels' mean colour, when at
    least a quarter of its pixels are dab pixels. For ``steps``
    rounds each free cell takes the mean colour of the reached cells among itself and its four
    neighbours (4-connectivity: a diagonal line is a wall too), so colour flows up to ``steps``
    cells along paths between lines and never through one. Where two dabs share a shape their
    colours blend where they meet. A drawing without a source skips the rounds, which would leave
    its all-zero state as it is (under ``torch.compile`` or ``compiled_export`` a ``torch.cond``
    chooses per call, and ``compiled_export`` may hand the rounds to a native kernel; an exported
    graph for ONNX always runs them).

    Returns (B, 4, H, W) in [-1, 1], in the input's dtype (computed in fp32 whatever that is):
    the spread colour (0 where none reached) and the reach (1 reached, -1 not), upsampled by
    nearest neighbour. It has no weights, so a generator that concatenates it to its input still
    reads one RGB image and still exports to ONNX. The generator learns how far to trust it (a
    gap in a line lets colour through). The idea of handing the network the user's hints as
    extra channels is Zhang et al., "Real-Time User-Guided Image Colorization with Learned Deep
    Priors" (SIGGRAPH 2017); the geodesic spreading is ours.
    """

    CHROMA = 0.15  # colour (max - min of RGB, in [0, 1]) above which a pixel is a dab
    LINE = 0.6  # colourless pixels darker than this (max of RGB, in [0, 1]) are lines
    # Dab pixels with less chroma than SOLID x the most in their cell and its 8 neighbours are a
    # dab's anti-aliased rim (its colour faded into the paper): they neither make a cell a
    # source nor colour it, so a shape takes the dab's solid colour, not a paler one.
    SOLID = 0.9
    PAPER = 0.9  # colourless pixels brighter than this (max of RGB, in [0, 1]) are paper
    GREY_FLAT = 0.06  # a grey dab's cell: brightness within this (max - min, in [0, 1])
    channels = 4

    def __init__(self, steps: int = 64, scale: int = 4) -> None:
        super().__init__()
        if steps < 1 or scale < 1:
            raise ValueError(f"steps and scale must be at least 1, got {steps} and {scale}")
        self.steps = steps
        self.scale = scale

    def cells(self, x: torch.Tensor) -> torch.Tensor:
        """What ``forward`` returns before its upsampling: (B, 4, H / scale, W / scale) in
        [-1, 1], fp32."""
        if x.dtype != torch.float32 or not x.is_contiguous():
            # In fp32 whatever the generator's precision: bf16 pixels cross the thresholds
            # below (PSNR 16-18 dB against fp32 on noise), and 96 rounds in bf16 are slower on
            # the CPU than in fp32 (PERFORMANCE, entry 36).
            x = x.float().contiguous()
        rgb = (x[:, :3] + 1) / 2  # (B, 3, H, W) in [0, 1]
        bright = rgb.amax(1, keepdim=True)
        chroma = bright - rgb.amin(1, keepdim=True)
        dab = (chroma > self.CHROMA).to(x.dtype)  # (B, 1, H, W)
        line = ((bright < self.LINE) & (chroma <= self.CHROMA)).to(x.dtype)
        s = self.scale
        free = 1 - F.max_pool2d(line, s)  # (B, 1, H/s, W/s): 0 on walls
        if self.SOLID > 0:  # keep the solid dab pixels: chroma near the most around them
            near = F.max_pool2d(F.max_pool2d(chroma * dab, s), 3, stride=1, padding=1)
            dab = dab * (chroma >= self.SOLID * _nearest(near, s)).to(x.dtype)
        # Grey dabs: colourless pixels between a line and the paper, in cells they fill evenly.
        grey = (chroma <= self.CHROMA) & (bright >= self.LINE) & (bright <= self.PAPER)
        grey = grey.to(x.dtype)
        spread = F.max_pool2d(bright, s) + F.max_pool2d(-bright, s)  # (B, 1, h, w)
        even = ((F.avg_pool2d(grey, s) > 0.999) & (spread <= self.GREY_FLAT)).to(x.dtype)
        dab = dab + grey * _nearest(even, s)  # disjoint: no colour in grey
        share = F.avg_pool2d(dab, s)
        source = (share >= 0.25).to(x.dtype) * free
        colour = F.avg_pool2d(rgb * dab, s) / share.clamp(min=1e-6)  # the solid dab pixels' mean
        seed = torch.cat([colour * source, source], 1)  # (B, 4, h, w): colour x reach, reach
        gate = free * (1 - source)  # cells that take their neighbours' colour
        # Any export gets the rounds without a branch, as ONNX runs them best.
        if _exporting():
            state = self._spread_onnx(seed, gate)
        elif torch.jit.is_tracing():
            state = self._spread(seed, gate)
        elif _compiling_here():  # both branches compiled, chosen per call
            # (is_compiling() would not do: torch 2.14 sets it for the whole process while any
            # thread compiles, and an eager torch.cond then compiles itself on the caller's
            # thread; is_dynamo_compiling() is False outside dynamo's own tracing.)
            # Flat operands: inductor may lay the 4-channel seed out channels-last, which the
            # branch's graph does not expect (torch 2.14); a 1-D tensor has one layout.
            # The branch closes over sizes only: a tensor in its closure becomes an operand,
            # which torch.export refuses as a possible alias of the output.
            # A native kernel given to compiled_export runs the rounds as one call.
            seed_shape, gate_shape = tuple(seed.shape), tuple(gate.shape)
            native = getattr(_for_inductor, "spread", None)

            def spread_flat(seed_flat: torch.Tensor, gate_flat: torch.Tensor) -> torch.Tensor:
                seed, gate = seed_flat.view(seed_shape), gate_flat.view(gate_shape)
                if native is not None:
                    return native(seed, gate, self.steps).reshape(-1)
                return self._spread(seed, gate).reshape(-1)

            operands = (seed.reshape(-1), gate.reshape(-1))
            state = torch.cond(source.any(), spread_flat, _no_spread, operands).view(seed.shape)
        elif source.any():
            state = self._spread(seed, gate)
        else:  # no dab: every round would leave the all-zero seed as it is
            state = seed
        reach = state[:, 3:]
        return torch.cat([(state[:, :3] * 2 - reach), reach * 2 - 1], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(self.cells(x), scale_factor=self.scale, mode="nearest")
        return out if out.dtype == x.dtype else out.to(x.dtype)

    def beside_channels_last(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``torch.cat([x, self(x)], 1).to(dtype)`` in the channels-last layout, its values
        exactly: (B, 3 + 4, H, W), strides of channels-last. For a compiled generator whose first
        convolution reads channels-last (the bf16 channels-last candidate): upsampling the cells
        and interleaving the channels in that order is one pass that inductor vectorises, 0.15
        against 0.40 ms at 256 px on 2 cores (PERFORMANCE, entry 38)."""
        cells = self.cells(x).permute(0, 2, 3, 1)  # (B, h, w, 4)
        b, h, w, c = cells.shape
        s = self.scale
        up = cells[:, :, None, :, None].expand(b, h, s, w, s, c).reshape(b, h * s, w * s, c)
        both = torch.cat([x.permute(0, 2, 3, 1), up.to(x.dtype)], -1).to(dtype)
        return both.permute(0, 3, 1, 2)

    def _spread(self, seed: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The rounds on a state kept padded by one zero cell, so a cell's four neighbours are
        plain shifted views (no bounds to check): ``torch.compile`` turns each round into two
        vectorised loops, 2x faster than padding anew inside each sum (PERFORMANCE, entry 36);
        eager is unchanged. Values are those of ``_spread_onnx`` (sums in the same order)."""
        state = F.pad(seed, (1, 1, 1, 1))
        for _ in range(self.steps):
            total = state[:, :, 1:-1, 1:-1] + state[:, :, :-2, 1:-1] + state[:, :, 2:, 1:-1]
            total = total + state[:, :, 1:-1, :-2] + state[:, :, 1:-1, 2:]
            # Reached cells: their reached neighbours' mean colour, reach 1; the others stay 0.
            state = F.pad(total * (gate / total[:, 3:].clamp(min=1.0)) + seed, (1, 1, 1, 1))
        return state[:, :, 1:-1, 1:-1]

    def _spread_onnx(self, seed: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        """The rounds as ONNX runs them best: the sum over each cell and its 4 neighbours as one
        depthwise convolution (one node: 20% faster than shifted views in onnxruntime-web;
        PyTorch's CPU depthwise convolution is 6x slower than views on these small grids)."""
        plus = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]], dtype=seed.dtype)
        plus = plus.to(seed.device).expand(4, 1, 3, 3)
        state = seed
        for _ in range(self.steps):
            total = F.conv2d(state, plus, padding=1, groups=4)
            state = total * (gate / total[:, 3:].clamp(min=1.0)) + seed
        return state


class ColourBins(nn.Module):
    """A head of K logits over a palette of colours, and their decoding into one colour.

    Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016), section 2.1: the network
    predicts a distribution over quantised colours instead of regressing one, and the output is
    the mean of the palette under that distribution sharpened by a temperature (0.38 there:
    between the mean, which is dull where the colour is uncertain, and the mode, which is not
    smooth). Here the palette is K full colours (lightness too: line art gives no lightness),
    fitted to the training targets (``train.colour_bins``) and kept as a buffer in the weights.

    The logits come from the U-Net's last features, at half the output's resolution, by one
    1x1 convolution, and are decoded there; the colour is upsampled bilinearly (x2). In the
    browser (onnxruntime-web, WASM) that costs 20% more time than the generator without it; a
    head at full resolution cost 85%, the same head decoded after upsampling its logits 55%.

    ``palette``: (K, 3) in [-1, 1]. ``weights``: (K,) the training loss's class rebalancing
    (kept with the model so a resumed run uses the same; inference ignores it).
    """

    TEMPERATURE = 0.38

    def __init__(self, bins: int, features: int) -> None:
        super().__init__()
        if bins < 2:
            raise ValueError(f"colour_bins must be at least 2, got {bins}")
        self.head = nn.Conv2d(features, bins, kernel_size=1)
        self.register_buffer("palette", torch.zeros(bins, 3))
        self.register_buffer("weights", torch.ones(bins))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, features, h, w) -> logits (B, K, h, w)."""
        return self.head(features)

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, h, w) -> the annealed mean (B, 3, 2h, 2w) in [-1, 1], logits' dtype:
        decoded at the logits' resolution, then upsampled bilinearly."""
        p = torch.softmax(logits / self.TEMPERATURE, dim=1)
        # The mean of the palette under p: a 1x1 convolution, (3, K, 1, 1) weights.
        colour = F.conv2d(p, self.palette.to(p.dtype).T[:, :, None, None])
        return F.interpolate(colour, scale_factor=2, mode="bilinear")


def _nearest(x: torch.Tensor, scale: int) -> torch.Tensor:
    """``F.interpolate(x, scale_factor=scale)`` (nearest), (B, C, h, w) -> (B, C, h s, w s).

    Under ``torch.compile`` as a broadcast and a reshape, the same values: inductor reads each
    cell once per row instead of gathering every pixel through float indices (the preparing
    kernel of a hint propagation at 256 px: PERFORMANCE, entry 38). Eager and exported graphs
    keep ``F.interpolate`` (one ``Resize`` node in ONNX)."""
    if _compiling_here():
        b, c, h, w = x.shape
        return (
            x[:, :, :, None, :, None]
            .expand(b, c, h, scale, w, scale)
            .reshape(b, c, h * scale, w * scale)
        )
    return F.interpolate(x, scale_factor=scale)


def _tracing() -> bool:
    """Whether a tracer records this call (dynamo, an export, TorchScript's tracer): a graph
    gets plain operations, not an autograd Function."""
    return (
        torch.compiler.is_dynamo_compiling()
        or torch.compiler.is_exporting()
        or torch.onnx.is_in_onnx_export()
        or torch.jit.is_tracing()
    )


def _exporting() -> bool:
    """Whether an export traces (``torch.export``, or the ONNX exporter, whose strict tracing
    reads ``is_in_onnx_export()`` as False) for a graph that runs elsewhere (ONNX), not one
    that inductor compiles here (``compiled_export``)."""
    exporting = torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()
    return exporting and not getattr(_for_inductor, "on", False)


def _compiling_here() -> bool:
    """Whether inductor compiles what is traced now for this machine: ``torch.compile``, or a
    ``torch.export`` inside ``compiled_export``."""
    if getattr(_for_inductor, "on", False):
        return True
    return torch.compiler.is_dynamo_compiling() and not _exporting()


_for_inductor = threading.local()


@contextlib.contextmanager
def compiled_export(
    spread: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None,
) -> Iterator[None]:
    """Within it (this thread), a ``torch.export`` of a generator traces the graph that
    ``torch.compile`` would (a ``torch.cond`` that skips the hint propagation's rounds without a
    dab, the channels-last input), for AOTInductor; outside it an export traces the graph ONNX
    runs best.

    ``spread``: an operator that computes ``HintPropagation._spread(seed, gate)`` with the given
    number of rounds, values identical, skipping them for an image without a source (the
    compiled candidates pass ``pix2pix.hint_spread``'s native kernel): the ``torch.cond``'s
    branch for a drawing with a dab then traces one call of it instead of the rounds."""
    before = getattr(_for_inductor, "on", False), getattr(_for_inductor, "spread", None)
    _for_inductor.on, _for_inductor.spread = True, spread
    try:
        yield
    finally:
        _for_inductor.on, _for_inductor.spread = before


def _no_spread(seed: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``HintPropagation._spread`` of a seed without sources: the seed (all zeros), as a new
    tensor (``torch.cond``'s branches may not return their inputs). Any shape."""
    return torch.zeros_like(seed)


class UnetGenerator(nn.Module):
    """U-Net generator: ``num_downs`` stride-2 levels, skips between layer i and n - i.

    Sides must be multiples of ``2 ** num_downs`` (256 for ``unet_256``); ``size_multiple`` says so.
    With ``hint_propagation`` > 0 the input also goes through a ``HintPropagation`` of that many
    steps whose 4 channels join the image's: the first convolution then takes ``in_channels + 4``
    while the generator still reads ``in_channels`` (``input_channels`` says so).

    With ``colour_bins`` K > 0 (needs ``hint_propagation`` and an RGB output) a second head
    (``ColourBins``) reads the last features: K logits over a palette. The output is the
    regressed colour (the usual head) where a hint's colour reached (the propagation's reach) or
    the input is dark (the drawing's lines: value below ``HintPropagation.LINE``, blending to
    none at its ``PAPER``), and the palette's annealed mean elsewhere: a dab's exact colour
    where the visitor gave one, crisp lines, and a committed colour where the network has to
    choose. Eval mode returns (B, out_channels, H, W) in [-1, 1]; training mode
    (``self.training``) the raw heads instead, (B, out_channels + K, H, W): the regressed
    colour, then the logits, for the loss (L1 on the first, rebalanced cross-entropy on the
    second).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        skip: bool = True,
        hint_propagation: int = 0,
        colour_bins: int = 0,
    ) -> None:
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        if hint_propagation and in_channels != 3:
            raise ValueError(f"hint_propagation needs an RGB input, got in_channels={in_channels}")
        if colour_bins and (not hint_propagation or out_channels != 3):
            raise ValueError(
                "colour_bins needs hint_propagation (its reach picks the head) and an RGB output"
            )
        self.size_multiple = 2**num_downs
        self.input_channels = in_channels
        self.hints = HintPropagation(hint_propagation) if hint_propagation else None
        first_in = in_channels + (HintPropagation.channels if self.hints is not None else 0)
        common = {"norm": norm, "skip": skip}
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, **common)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(
                ngf * 8, ngf * 8, submodule=block, dropout=dropout, **common
            )
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **common)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **common)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **common)
        self.model = UnetSkipConnectionBlock(
            out_channels, ngf, input_nc=first_in, submodule=block, outermost=True, **common
        )
        features = ngf * 2 if skip else ngf  # what the outermost up-convolution reads
        self.bins = ColourBins(colour_bins, features) if colour_bins else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hints is None:
            return self.model(x)
        # A reduced-precision copy is handed the image in fp32 (``reads_fp32_input``): the
        # dabs are found on the pixels as drawn, and the U-Net computes in its own dtype.
        weight = getattr(self.model.model[0], "weight", x)
        dtype = weight.dtype
        if (
            _compiling_here()
            and weight.is_contiguous(memory_format=torch.channels_last)
            and not weight.is_contiguous()
        ):
            x = self.hints.beside_channels_last(x, dtype)
        else:
            x = torch.cat([x, self.hints(x)], 1)  # (B, in_channels + 4, H, W): colour, reach
            if x.dtype != dtype:
                x = x.to(dtype)
        if self.bins is None:
            return self.model(x)
        down, inner, relu, up, tanh = self.model.model
        features = relu(inner(down(x)))  # (B, 2 ngf, H / 2, W / 2)
        rgb, logits = tanh(up(features)), self.bins(features)
        if self.training:  # the logits at the output's resolution, for the loss
            return torch.cat([rgb, F.interpolate(logits, scale_factor=2, mode="bilinear")], 1)
        committed = self.bins.decode(logits)
        reached = (x[:, -1:] + 1) * 0.5  # 1 where a hint's colour reached, else 0
        value = (x[:, :3].amax(1, keepdim=True) + 1) * 0.5  # the drawing's, in [0, 1]
        paper, line = HintPropagation.PAPER, HintPropagation.LINE
        line = ((paper - value) / (paper - line)).clamp(0, 1)
        regressed = torch.maximum(reached, line)
        return committed + regressed * (rgb - committed)


# --------------------------------------------------------------------------------------------
# ResNet generator (the reference's CycleGAN generator; also usable for pix2pix)
# --------------------------------------------------------------------------------------------

PADDINGS = ("reflect", "replicate", "zero")


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, dim: int, *, padding: str, norm: str, dropout: bool) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _uses_bias(norm)

        def pad() -> tuple[list[nn.Module], int]:
            if padding == "reflect":
                return [nn.ReflectionPad2d(1)], 0
            if padding == "replicate":
                return [nn.ReplicationPad2d(1)], 0
            if padding == "zero":
                return [], 1
            raise ValueError(f"unknown padding {padding!r}; expected one of {PADDINGS}")

        layers, p = pad()
        layers += [nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(dim), nn.ReLU(True)]
        if dropout:
            layers.append(Dropout(0.5))
        more, p = pad()
        layers += [*more, nn.Conv2d(dim, dim, 3, padding=p, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """Two stride-2 downsamplings, ``n_blocks`` residual blocks, two upsamplings."""

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        n_blocks: int = 9,
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _uses_bias(norm)
        self.size_multiple = 4
        # Reflection padding needs a side of 2 after both halvings (and 4 at full size).
        self.min_size = 8
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, padding=0, bias=bias),
            make_norm(ngf),
            nn.ReLU(True),
        ]
        for i in range(2):
            c = ngf * 2**i
            layers += [
                nn.Conv2d(c, c * 2, kernel_size=3, stride=2, padding=1, bias=bias),
                make_norm(c * 2),
                nn.ReLU(True),
            ]
        layers += [
            ResnetBlock(ngf * 4, padding=padding, norm=norm, dropout=dropout)
            for _ in range(n_blocks)
        ]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [
                nn.ConvTranspose2d(
                    c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=bias
                ),
                make_norm(c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


# --------------------------------------------------------------------------------------------
# The HugGAN community GeneratorUNet
# --------------------------------------------------------------------------------------------


class _HugGANDown(nn.Module):
    def __init__(self, in_size: int, out_size: int, *, normalize: bool, dropout: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_size, out_size, 4, 2, 1, bias=False)]
        if normalize:
            layers.append(nn.InstanceNorm2d(out_size))
        layers.append(nn.LeakyReLU(0.2))
        if dropout:
            layers.append(Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _HugGANUp(nn.Module):
    def __init__(self, in_size: int, out_size: int, *, dropout: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_size, out_size, 4, 2, 1, bias=False),
            nn.InstanceNorm2d(out_size),
            nn.ReLU(inplace=True),
        ]
        if dropout:
            layers.append(Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.model(x), skip), 1)


class HugGANUNet(nn.Module):
    """The ``GeneratorUNet`` of the HugGAN pix2pix models (huggan/pix2pix-edge2shoes and others).

    Fixed width (64 features at the top), InstanceNorm without affine parameters, dropout 0.5 in
    the four deepest levels, and an upsample + pad + 4x4 convolution head instead of a transposed
    convolution.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3) -> None:
        super().__init__()
        self.size_multiple = 256
        widths = [64, 128, 256, 512, 512, 512, 512, 512]
        ins = [in_channels, *widths[:-1]]
        for i, (cin, cout) in enumerate(zip(ins, widths, strict=True), start=1):
            normalize = i not in (1, 8)
            down = _HugGANDown(cin, cout, normalize=normalize, dropout=i >= 4)
            self.add_module(f"down{i}", down)
        ups = [(512, 512), (1024, 512), (1024, 512), (1024, 512), (1024, 256), (512, 128)]
        ups.append((256, 64))
        for i, (cin, cout) in enumerate(ups, start=1):
            self.add_module(f"up{i}", _HugGANUp(cin, cout, dropout=i <= 4))
        self.final = nn.Sequential(
            nn.Upsample(scale_factor=2),
            nn.ZeroPad2d((1, 0, 1, 0)),
            nn.Conv2d(128, out_channels, 4, padding=1),
            nn.Tanh(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i in range(1, 9):
            x = getattr(self, f"down{i}")(x)
            skips.append(x)  # d1 (B, 64, H/2, W/2) ... d8 (B, 512, H/256, W/256)
        for i in range(1, 8):
            x = getattr(self, f"up{i}")(x, skips[7 - i])
        return self.final(x)  # (B, out, H, W)


# --------------------------------------------------------------------------------------------
# Discriminators
# --------------------------------------------------------------------------------------------


class NLayerDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` stride-2 4x4 convolutions, then two stride-1 ones; outputs logits.

    Receptive field on its input: 16 px for ``n_layers=1``, 70 for 3, 286 for 5.
    """

    def __init__(
        self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, norm: str = "batch"
    ) -> None:
        super().__init__()
        make_norm = norm_layer(norm)
        bias = _uses_bias(norm)
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, ndf, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, True),
        ]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                make_norm(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(ndf * mult, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        """Receptive field of one output logit, in input pixels."""
        return receptive_field(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)  # (B, 1, h, w) logits, one per patch


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convolutions only, one logit per pixel."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        bias = _uses_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, kernel_size=1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=bias),
            norm_layer(norm)(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=bias),
        )

    @property
    def receptive_field(self) -> int:
        """Receptive field of one output logit, in input pixels."""
        return receptive_field(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 1, H, W) logits, one per pixel


def receptive_field(module: nn.Module) -> int:
    """Receptive field of a feed-forward stack of convolutions and pools, from its layers.

    Walks the modules in registration order (the order they run in for the discriminators here):
    each layer widens the field by ``(kernel - 1) * dilation * jump`` and multiplies the jump by
    its stride.
    """
    field, jump = 1, 1
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d | nn.AvgPool2d):
            k, s, d = (_first(getattr(layer, a, 1)) for a in ("kernel_size", "stride", "dilation"))
            field += (k - 1) * d * jump
            jump *= s
    return field


def _first(v: int | tuple[int, ...]) -> int:
    return v[0] if isinstance(v, tuple) else int(v)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def _unet(depth: int | None, skip: bool = True) -> Callable[..., nn.Module]:
    # depth=None: the generic entry, which takes num_downs (checkpoints of other depths).
    def build(
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = True,
        num_downs: int | None = depth,
        hint_propagation: int = 0,
        colour_bins: int = 0,
    ) -> nn.Module:
        if num_downs is None:
            raise ValueError("this generator needs num_downs (the number of stride-2 levels)")
        return UnetGenerator(
            in_channels,
            out_channels,
            num_downs,
            ngf,
            norm,
            dropout,
            skip,
            hint_propagation,
            colour_bins,
        )

    return build


def _resnet(blocks: int | None) -> Callable[..., nn.Module]:
    def build(
        *,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: str = "batch",
        dropout: bool = False,
        padding: str = "reflect",
        n_blocks: int | None = blocks,
    ) -> nn.Module:
        if n_blocks is None:
            raise ValueError("this generator needs n_blocks (the number of residual blocks)")
        return ResnetGenerator(in_channels, out_channels, ngf, norm, dropout, n_blocks, padding)

    return build


def _huggan(*, in_channels: int = 3, out_channels: int = 3) -> nn.Module:
    return HugGANUNet(in_channels, out_channels)


GENERATORS: dict[str, Callable[..., nn.Module]] = {
    "unet_256": _unet(8),
    "unet_128": _unet(7),
    "encoder_decoder": _unet(8, skip=False),
    "encoder_decoder_128": _unet(7, skip=False),
    "unet": _unet(None),
    "encoder_decoder_n": _unet(None, skip=False),
    "resnet_6blocks": _resnet(6),
    "resnet_9blocks": _resnet(9),
    "resnet": _resnet(None),
    "huggan_unet": _huggan,
}

PATCH_SIZES = (1, 16, 70, 286)
_PATCH_LAYERS = {16: 1, 70: 3, 286: 5}


def create_generator(name: str, **kwargs: object) -> nn.Module:
    """Build a generator by registry name, e.g. ``create_generator("unet_256", ngf=64)``."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; valid names: {', '.join(GENERATORS)}")
    return GENERATORS[name](**kwargs)


def create_discriminator(
    patch: int, *, in_channels: int = 6, ndf: int = 64, norm: str = "batch"
) -> nn.Module:
    """Build the discriminator whose receptive field is ``patch`` pixels: 1, 16, 70 or 286."""
    if patch == 1:
        return PixelDiscriminator(in_channels, ndf, norm)
    if patch in _PATCH_LAYERS:
        return NLayerDiscriminator(in_channels, ndf, _PATCH_LAYERS[patch], norm)
    raise ValueError(f"unknown discriminator patch size {patch!r}; valid sizes: {PATCH_SIZES}")


def init_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The paper's initialisation: conv weights ~ N(0, std), biases 0, norm scales ~ N(1, std)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def size_multiple(generator: nn.Module) -> int:
    """The multiple that input sides must have for ``generator`` (1 when unknown)."""
    for m in generator.modules():
        if hasattr(m, "size_multiple"):
            return int(m.size_multiple)
    return 1


def input_channels(generator: nn.Module) -> int:
    """The channels ``generator`` reads: its ``input_channels``, else its first conv's."""
    for m in generator.modules():
        if hasattr(m, "input_channels"):
            return int(m.input_channels)
    return int(next(m for m in generator.modules() if isinstance(m, nn.Conv2d)).in_channels)


def reads_fp32_input(generator: nn.Module) -> bool:
    """Whether ``generator`` should be handed its input in fp32 even when its weights are bf16 or
    fp16: a ``HintPropagation`` finds dabs, lines and grey cells by thresholds on the pixels, and
    bf16 (8 bits of mantissa, coarser than 8-bit pixels near 1) moves pixels across them."""
    return any(isinstance(m, HintPropagation) for m in generator.modules())


def min_size(generator: nn.Module) -> int:
    """The smallest side ``generator`` takes (its padding layers need room); 1 when any fits."""
    for m in generator.modules():
        if hasattr(m, "min_size"):
            return int(m.min_size)
    return 1


@contextlib.contextmanager
def eval_mode(
    generator: nn.Module,
    *,
    input_stats: bool,
    noise: torch.Generator | Sequence[torch.Generator] | None,
) -> Iterator[nn.Module]:
    """Run ``generator`` in eval mode with the paper's test-time options, then restore it.

    ``input_stats``: BatchNorm layers normalise each image by its own statistics (running
    statistics are neither used nor changed). ``noise``: dropout stays on, its masks drawn from
    this generator (or one generator per image of the batch); ``None`` turns dropout off. Not
    re-entrant for one model: callers that share a model between threads hold a lock around it.
    """
    modules = list(generator.modules())
    training = [m for m in modules if m.training]  # restored as they were, mixed modes too
    for m in training:
        m.training = False
    norms = [m for m in modules if isinstance(m, BatchNorm2d)]
    drops = [m for m in modules if isinstance(m, Dropout)]
    for m in norms:
        m.use_input_stats = input_stats
    for m in drops:
        m.generator = noise
    try:
        yield generator
    finally:
        for m in norms:
            m.use_input_stats = False
        for m in drops:
            m.generator = None
        for m in training:
            m.training = True
