"""Training precision: ``--mixed-precision auto`` picks bf16 + channels-last only where bf16 is
native, and there a short run's losses track fp32."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed

from pix2pix import backends
from train import train as T


def test_auto_resolves_by_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(backends, "native_bf16", lambda: True)
    assert T.resolve_mixed_precision("auto")[0] == "bf16"
    monkeypatch.setattr(backends, "native_bf16", lambda: False)
    precision, why = T.resolve_mixed_precision("auto")
    assert precision == "no" and "no native bf16" in why
    assert T.resolve_mixed_precision("fp16") == ("fp16", "as asked")
    with pytest.raises(ValueError, match="unknown mixed precision 'fp8'"):
        T.resolve_mixed_precision("fp8")
    assert T.parse_args(["--data", "d", "--out", "o"]).mixed_precision == "auto"


def _losses(mode: str, steps: int) -> list[dict[str, float]]:
    """``steps`` training steps of a tiny pix2pix on fixed batches, in ``mode``."""
    args = T.parse_args(
        ["--data", "d", "--out", "o", "--netG", "unet_128", "--ngf", "8", "--ndf", "8", "--cpu"]
    )
    args.channels_last = mode == "bf16"
    try:
        accelerator = Accelerator(mixed_precision=mode, cpu=True)
        set_seed(0)
        G = T.build_generator(args)
        set_seed(1)
        D = T.build_discriminator(args, 3, 3)
        if args.channels_last:
            G.to(memory_format=torch.channels_last)
            D.to(memory_format=torch.channels_last)
        opt_G = T.adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_D = T.adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        G, D, opt_G, opt_D = accelerator.prepare(G, D, opt_G, opt_D)
        nets = T.Nets(G, opt_G, D, accelerator.unwrap_model(D), opt_D)
        data = torch.Generator().manual_seed(2)
        target = torch.rand(2, 3, 128, 128, generator=data) * 2 - 1
        batch = {"input": -target.flip(-1), "target": target}  # a learnable mapping
        set_seed(3)
        return [
            {k: float(v) for k, v in T.train_step(batch, nets, accelerator, args).items()}
            for _ in range(steps)
        ]
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


@pytest.mark.skipif(
    not backends.native_bf16(),
    reason=f"this CPU has no native bf16 (flags: {backends.cpu_info()['flags']}); "
    "--mixed-precision auto trains in fp32 here, so there is no bf16 path to check",
)
def test_bf16_channels_last_training_tracks_fp32() -> None:
    assert T.resolve_mixed_precision("auto", cpu=True)[0] == "bf16"
    fp32, bf16 = _losses("no", 8), _losses("bf16", 8)
    print("fp32 G_L1:", [round(s["G_L1"], 4) for s in fp32])
    print("bf16 G_L1:", [round(s["G_L1"], 4) for s in bf16])
    for a, b in zip(fp32, bf16, strict=True):
        for key in a:
            assert abs(a[key] - b[key]) <= 0.05 * abs(a[key]) + 0.02, (key, a[key], b[key])
    assert bf16[-1]["G_L1"] < bf16[0]["G_L1"]  # it learns
