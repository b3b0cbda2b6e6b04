"""CPU inference with convolution weights packed once into oneDNN's own layout.

PyTorch's eager CPU convolution hands each call's weights to oneDNN in PyTorch's layout, and
oneDNN reorders them into its blocked layout every time; for the transposed convolutions of a
U-Net's decoder that reorder costs more than the arithmetic (the paper's generator: 118 of 170 ms
per 256x256 frame go to its eight transposed convolutions). ``packed_copy`` builds a twin of a
model whose convolutions keep their weights packed, per input shape, and reuse them on every call;
the results are those of the eager convolutions up to float rounding (max difference ~1e-5).

The twin shares every parameter and buffer with the original: nothing is copied but the module
objects, and a weight changed in place (an optimizer step, a ``load_state_dict``) is packed again
on the next call. Anything the packed kernels cannot serve (gradients, other dtypes or devices, a
oneDNN error) runs through the ordinary convolution instead, and so does a layer whose packed
kernel, checked against the ordinary one on the first call at each input shape, disagrees.
"""

from __future__ import annotations

import copy
import itertools
import logging
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

SHAPES_PER_LAYER = 4  # packed weights kept per layer, one per input shape (least recently used out)
NARROW = 4  # transposed convolutions with at most this many outputs run as a GEMM + overlap-add


def available() -> bool:
    """Whether this PyTorch build has oneDNN with the packed-weight convolution kernels."""
    ops = getattr(torch.ops, "mkldnn", None)
    needed = (
        "_reorder_convolution_weight",
        "_reorder_convolution_transpose_weight",
        "_convolution_pointwise",
        "_convolution_transpose_pointwise",
    )
    try:
        return torch.backends.mkldnn.is_available() and all(hasattr(ops, op) for op in needed)
    except (AttributeError, RuntimeError):
        return False


class PackedConv(nn.Module):
    """A ``Conv2d`` or ``ConvTranspose2d`` (zero padding) running on packed oneDNN weights."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d) -> None:
        super().__init__()
        self.conv = conv  # shared with the original model; the fallback path
        self.transposed = isinstance(conv, nn.ConvTranspose2d)
        # A generator's last layer (3 outputs for RGB) is slow in oneDNN's transposed kernel,
        # which vectorises over output channels: one matrix product for every kernel tap, then
        # an overlap-add (F.fold), is about twice as fast (PERFORMANCE.md, attempt 10).
        self.narrow = (
            self.transposed
            and conv.out_channels <= NARROW
            and conv.groups == 1
            and tuple(conv.output_padding) == (0, 0)
        )
        # The geometry as the oneDNN ops take it, converted once instead of on every call.
        self._padding, self._stride = list(conv.padding), list(conv.stride)
        self._dilation = list(conv.dilation)
        self._output_padding = list(getattr(conv, "output_padding", (0, 0)))
        self._packed: OrderedDict[tuple[int, ...], torch.Tensor] = OrderedDict()
        self._version: tuple[int, int] | None = None
        self.failed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.conv.weight
        if self.failed or not _servable(x, weight):
            return self.conv(x)
        try:
            packed, fresh = self._weights_for(x.shape)
            y = self._run(x, packed)
        except RuntimeError as error:  # an unsupported case in this oneDNN build
            return self._give_up(x, str(error))
        if fresh:  # the first call at a shape checks the packed kernel against the eager one
            expected = self.conv(x)
            scale = max(1.0, float(expected.abs().max()))
            if not torch.allclose(y, expected, rtol=1e-3, atol=1e-4 * scale):
                error = float((y - expected).abs().max())
                return self._give_up(x, f"differs from the eager convolution by {error:.3g}")
        return y

    def _give_up(self, x: torch.Tensor, why: str) -> torch.Tensor:
        """Use the eager convolution from now on, and say why once."""
        log.warning("oneDNN packed convolution %s; using the eager one", why)
        self.failed = True
        self._packed.clear()
        return self.conv(x)

    def _weights_for(self, shape: torch.Size) -> tuple[torch.Tensor, bool]:
        """The weights packed for inputs of ``shape``, and whether they were packed just now."""
        weight = self.conv.weight
        version = (weight._version, weight.data_ptr())
        if version != self._version:  # changed in place since packing
            self._packed.clear()
            self._version = version
        key = tuple(shape)
        packed = self._packed.get(key)
        if packed is not None:
            self._packed.move_to_end(key)
            return packed, False
        packed = self._pack(weight.detach(), list(key))
        self._packed[key] = packed
        if len(self._packed) > SHAPES_PER_LAYER:
            self._packed.popitem(last=False)
        return packed, True

    def _pack(self, weight: torch.Tensor, input_size: list[int]) -> torch.Tensor:
        c, mkldnn = self.conv, torch.ops.mkldnn
        if self.narrow:  # (C_in, C_out, kh, kw) -> (C_out * kh * kw, C_in), fold's column order
            return weight.reshape(weight.shape[0], -1).t().contiguous()
        if self.transposed:
            return mkldnn._reorder_convolution_transpose_weight(
                weight, self._padding, self._output_padding, self._stride, self._dilation,
                c.groups, input_size,
            )  # fmt: skip
        return mkldnn._reorder_convolution_weight(
            weight, self._padding, self._stride, self._dilation, c.groups, input_size
        )

    def _run(self, x: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        c, mkldnn = self.conv, torch.ops.mkldnn
        bias = None if c.bias is None else c.bias.detach()
        if self.narrow:
            return self._gemm_fold(x, packed, bias)
        if self.transposed:
            return mkldnn._convolution_transpose_pointwise(
                x, packed, bias, self._padding, self._output_padding, self._stride,
                self._dilation, c.groups, "none", [], "",
            )  # fmt: skip
        return mkldnn._convolution_pointwise(
            x, packed, bias, self._padding, self._stride, self._dilation, c.groups,
            "none", [], "",
        )  # fmt: skip

    def _gemm_fold(
        self, x: torch.Tensor, columns: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        c = self.conv
        n, _, height, width = x.shape
        size = [
            (side - 1) * s - 2 * p + d * (k - 1) + 1
            for side, s, p, d, k in zip(
                (height, width), c.stride, c.padding, c.dilation, c.kernel_size, strict=True
            )
        ]
        blocks = torch.matmul(columns, x.reshape(n, x.shape[1], height * width))
        y = F.fold(
            blocks, size, c.kernel_size, dilation=c.dilation, padding=c.padding, stride=c.stride
        )
        return y if bias is None else y + bias.view(1, -1, 1, 1)


def _servable(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Inference on fp32 CPU tensors of one 4-D layout: what the packed kernels are used for."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() == 4
        and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    )


def _packable(module: nn.Module) -> bool:
    # Exact types only: a subclass may compute something else in its forward.
    return (
        type(module) in (nn.Conv2d, nn.ConvTranspose2d)
        and module.padding_mode == "zeros"
        and not isinstance(module.padding, str)  # "same" / "valid": left to PyTorch
    )


def packed_copy(model: nn.Module) -> nn.Module:
    """A twin of ``model`` (sharing its parameters and buffers) with packed convolutions.

    Every ``nn.Conv2d`` / ``nn.ConvTranspose2d`` with zero padding is wrapped in ``PackedConv``;
    everything else is the same code on the same tensors. Returns ``model`` itself when this
    PyTorch has no oneDNN.
    """
    if not available():
        return model
    shared = itertools.chain(model.parameters(), model.buffers())
    twin = copy.deepcopy(model, memo={id(t): t for t in shared})
    for parent in list(twin.modules()):
        for name, child in list(parent.named_children()):
            if _packable(child):
                setattr(parent, name, PackedConv(child))
    return twin


def packed_convolutions(model: nn.Module) -> list[PackedConv]:
    """The packed convolutions of a ``packed_copy`` (empty for an unpacked model)."""
    return [m for m in model.modules() if isinstance(m, PackedConv)]


__all__ = ["PackedConv", "available", "packed_convolutions", "packed_copy"]
