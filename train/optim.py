"""The optimizer of every training run: Adam, with PyTorch's fused kernel where it has one.

Both the pix2pix recipe (Isola et al. 2017, section 3.3) and CycleGAN's (Zhu et al. 2017, section
7.1) use Adam with lr 2e-4 and betas (0.5, 0.999); ``train.train`` builds it through ``adam``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def _dense_view(t: torch.Tensor) -> torch.Tensor | None:
    """A contiguous view of a 4-D channels-last tensor's memory, (N, H, W, C); None for any
    tensor already contiguous or in another layout."""
    if (
        t.dim() == 4
        and t.is_contiguous(memory_format=torch.channels_last)
        and not t.is_contiguous()
    ):
        return t.permute(0, 2, 3, 1)
    return None


class ChannelsLastAdam(torch.optim.Adam):
    """``torch.optim.Adam(fused=True)`` that hands its fused kernel each channels-last parameter
    (with its gradient and moments) as the contiguous view of the same memory.

    The CPU kernel makes a contiguous copy of every tensor that is not contiguous in the default
    (NCHW) sense, and copies the results back: for the channels-last weights of bf16 training
    that was 61 ms of a 670 ms step (the paper's unet_256 at ngf 64, batch 4, 2-core CPU; issue
    22). Adam is elementwise, so the update is the same, bit for bit, in either layout. A
    parameter whose gradient or moments are laid out otherwise is passed as it is. The state
    (``exp_avg``, ``exp_avg_sq``, ``step``) and ``state_dict`` are ``torch.optim.Adam``'s.
    """

    def _init_group(self, group: dict[str, Any], params: list, grads: list, *rest: list) -> bool:
        has_complex = super()._init_group(group, params, grads, *rest)
        exp_avgs, exp_avg_sqs, max_exp_avg_sqs = rest[0], rest[1], rest[2]
        lists = [params, grads, exp_avgs, exp_avg_sqs]
        if max_exp_avg_sqs:
            lists.append(max_exp_avg_sqs)
        for i in range(len(params)):
            views = [_dense_view(lst[i]) for lst in lists]
            if all(v is not None for v in views):
                for lst, view in zip(lists, views, strict=True):
                    lst[i] = view
        return has_complex


def adam(
    params: Iterable[torch.nn.Parameter], *, lr: float, betas: tuple[float, float]
) -> torch.optim.Adam:
    """Adam with PyTorch's fused kernel where it has one for these parameters, else the loop.

    The same update; the fused step does in one pass what the loop does in ~10 kernels per
    tensor (measured on 2 CPU cores: 85 -> 81 ms per batch-1 training step, see PERFORMANCE.md),
    and ``ChannelsLastAdam`` spares it copies of channels-last weights.
    """
    params = list(params)
    try:
        return ChannelsLastAdam(params, lr=lr, betas=betas, fused=True)
    except (RuntimeError, ValueError):  # no fused kernel for this device or PyTorch
        return torch.optim.Adam(params, lr=lr, betas=betas)
