"""Training precision: ``--mixed-precision auto`` picks bf16 + channels-last only where bf16 is
native, and there a short run's losses track fp32."""

from __future__ import annotations

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from torch import nn

from pix2pix import backends
from train import train as T
from train.optim import ChannelsLastAdam


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


def _adam_pair(params: list[torch.Tensor]) -> tuple[torch.optim.Adam, torch.optim.Adam, list, list]:
    """The project's Adam and PyTorch's fused Adam, each over its own copy of ``params``."""
    ours = [nn.Parameter(p.clone(memory_format=torch.preserve_format)) for p in params]
    theirs = [nn.Parameter(p.clone(memory_format=torch.preserve_format)) for p in params]
    betas = (0.5, 0.999)
    return (
        T.adam(ours, lr=2e-4, betas=betas),
        torch.optim.Adam(theirs, lr=2e-4, betas=betas, fused=True),
        ours,
        theirs,
    )


def test_adam_updates_channels_last_weights_bit_for_bit_like_fused_adam() -> None:
    g = torch.Generator().manual_seed(0)
    cl = torch.channels_last
    params = [
        torch.randn(32, 16, 4, 4, generator=g).contiguous(memory_format=cl),  # conv weight
        torch.randn(16, 8, 4, 4, generator=g).contiguous(memory_format=cl),  # grads come NCHW
        torch.randn(16, generator=g),  # a bias
        torch.randn(8, 1, 4, 4, generator=g).contiguous(memory_format=cl),  # both layouts at once
    ]
    ours, theirs, p_ours, p_theirs = _adam_pair(params)
    assert isinstance(ours, ChannelsLastAdam)
    for _ in range(4):
        for a, b in zip(p_ours, p_theirs, strict=True):
            grad = torch.randn(a.shape, generator=g)
            if a.dim() == 4 and a.shape[0] != 16:
                grad = grad.contiguous(memory_format=cl)
            a.grad, b.grad = grad.clone(memory_format=torch.preserve_format), grad.clone()
        ours.step()
        theirs.step()
    for a, b in zip(p_ours, p_theirs, strict=True):
        assert torch.equal(a, b)
        assert a.stride() == b.stride()  # still in its own layout
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(ours.state[a][key], theirs.state[b][key]), key
    # One checkpoint format: each optimizer's state loads into the other.
    torch.optim.Adam(p_theirs, lr=2e-4, fused=True).load_state_dict(ours.state_dict())
    T.adam(p_ours, lr=2e-4, betas=(0.5, 0.999)).load_state_dict(theirs.state_dict())


def test_adam_copies_no_channels_last_weight() -> None:
    # What the wrapper is for: PyTorch's fused kernel copies each tensor that is not contiguous
    # in the NCHW sense (and copies it back); given the dense views it copies none.
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(64, 32, 4, 4, generator=g).contiguous(memory_format=torch.channels_last)]
    ours, theirs, p_ours, p_theirs = _adam_pair(weights)
    for p in p_ours + p_theirs:
        p.grad = torch.ones_like(p)

    def clones(optimizer: torch.optim.Optimizer) -> int:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            optimizer.step()
        return sum(e.name == "aten::clone" for e in prof.events())

    assert clones(theirs) > 0  # the copies exist without the wrapper
    assert clones(ours) == 0


def test_d_input_under_autocast_gives_d_the_values_it_gave_before() -> None:
    # D's input is concatenated in autocast's dtype; D's first convolution used to cast the
    # fp32 concatenation itself. Same logits, bit for bit.
    args = T.parse_args(["--data", "d", "--out", "o", "--ndf", "8"])
    torch.manual_seed(0)
    D = T.build_discriminator(args, 3, 3).to(memory_format=torch.channels_last)
    inp = torch.rand(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    fake = (torch.rand(2, 3, 64, 64) * 2 - 1).to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        new = D(T._d_input(inp, fake, True))
        old = D(torch.cat([inp, fake], 1))
        assert T._d_input(inp, fake, True).dtype == torch.bfloat16
    assert torch.equal(new, old)
    assert T._d_input(inp, fake.float(), True).dtype == torch.float32  # no autocast: as it was
