"""Every architecture in the registry: shapes, bias rules, receptive fields, test-time modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pix2pix import networks
from pix2pix.networks import create_discriminator, create_generator

TINY = {"ngf": 4}
GENERATOR_CASES = [
    ("unet_256", 256, TINY),
    ("unet_128", 128, TINY),
    ("encoder_decoder", 256, TINY),
    ("encoder_decoder_128", 128, TINY),
    ("unet", 64, {"ngf": 4, "num_downs": 6}),
    ("encoder_decoder_n", 64, {"ngf": 4, "num_downs": 6}),
    ("resnet_6blocks", 64, TINY),
    ("resnet_9blocks", 64, TINY),
    ("resnet", 64, {"ngf": 4, "n_blocks": 2}),
    ("huggan_unet", 256, {}),
]


@pytest.mark.parametrize(("name", "side", "kwargs"), GENERATOR_CASES)
@pytest.mark.parametrize("channels", [(3, 3), (1, 2)])
def test_generator_shapes(name: str, side: int, kwargs: dict, channels: tuple) -> None:
    cin, cout = channels
    g = create_generator(name, in_channels=cin, out_channels=cout, **kwargs).eval()
    with torch.no_grad():
        y = g(torch.rand(2, cin, side, side) * 2 - 1)
    assert y.shape == (2, cout, side, side)
    assert y.abs().max() <= 1.0  # tanh output
    assert side % networks.size_multiple(g) == 0


def test_every_registered_generator_is_covered() -> None:
    assert {case[0] for case in GENERATOR_CASES} == set(networks.GENERATORS)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown generator 'unet_512'.*unet_256.*resnet_9blocks"):
        create_generator("unet_512")
    with pytest.raises(ValueError, match=r"unknown discriminator patch size 32.*1, 16, 70, 286"):
        create_discriminator(32)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        create_generator("unet_256", norm="group")


@pytest.mark.parametrize(("patch", "out_side"), [(1, 256), (16, 126), (70, 30), (286, 6)])
def test_discriminator_receptive_fields(patch: int, out_side: int) -> None:
    d = create_discriminator(patch, in_channels=6, ndf=4)
    assert d.receptive_field == patch == networks.receptive_field(d)
    with torch.no_grad():
        y = d(torch.randn(1, 6, 256, 256))
    assert y.shape == (1, 1, out_side, out_side)


@pytest.mark.parametrize("patch", [16, 70, 286])
def test_receptive_field_is_the_real_dependency_region(patch: int) -> None:
    # Measure it: the gradient of the centre logit is non-zero on exactly a patch-wide window.
    d = create_discriminator(patch, in_channels=1, ndf=2, norm="none")
    nn.init.constant_(d.model[0].weight, 0.1)
    for m in d.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 0.1)
    x = torch.zeros(1, 1, 320, 320, requires_grad=True)
    y = d(x)
    y[0, 0, y.shape[2] // 2, y.shape[3] // 2].backward()
    rows = (x.grad[0, 0].abs().sum(1) > 0).nonzero()
    assert rows.max() - rows.min() + 1 == patch


def test_pixel_discriminator_sees_single_pixels() -> None:
    d = create_discriminator(1, in_channels=6, ndf=4).eval()
    x = torch.randn(1, 6, 32, 32)
    x2 = x.clone()
    x2[..., 5, 7] += 1
    with torch.no_grad():
        changed = (d(x) != d(x2))[0, 0].nonzero().tolist()
    assert changed == [[5, 7]]


def _convs(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]


@pytest.mark.parametrize(
    ("norm", "inner_bias"), [("batch", False), ("instance", True), ("none", False)]
)
def test_unet_bias_rules_match_the_reference(norm: str, inner_bias: bool) -> None:
    g = create_generator("unet_256", ngf=4, norm=norm)
    convs = _convs(g)
    outer_down = g.model.model[0]
    outer_up = g.model.model[3]
    assert outer_down.bias is None if not inner_bias else outer_down.bias is not None
    assert outer_up.bias is not None  # the last layer always has a bias
    inner = [c for c in convs if c is not outer_down and c is not outer_up]
    assert all((c.bias is not None) == inner_bias for c in inner)


def test_unet_state_dict_keys_follow_the_reference_scheme() -> None:
    keys = set(create_generator("unet_256", ngf=4).state_dict())
    assert "model.model.0.weight" in keys
    assert "model.model.3.bias" in keys
    assert "model.model.1.model.2.running_mean" in keys  # BatchNorm of the second level
    deepest = "model.model.1" + ".model.3" * 6 + ".model.1.weight"  # the innermost down conv
    assert deepest in keys
    innermost_up = "model.model.1" + ".model.3" * 7 + ".weight"  # innermost: [relu, down, relu, up]
    assert innermost_up in keys
    assert not any(k.startswith("model.model.1" + ".model.3" * 7 + ".model") for k in keys)


def test_encoder_decoder_has_no_skips() -> None:
    g = create_generator("encoder_decoder", ngf=4)
    assert g.model.model[3].in_channels == 4  # U-Net: 8 (its own features + the skip)
    u = create_generator("unet_256", ngf=4)
    assert u.model.model[3].in_channels == 8
    assert sum(p.numel() for p in g.parameters()) < sum(p.numel() for p in u.parameters())


def test_huggan_keys_match_the_published_list(golden_dir) -> None:
    expected = [
        line.split(",")[0]
        for line in (golden_dir / "huggan_generator_unet.keys.txt").read_text().splitlines()
        if line
    ]
    assert list(create_generator("huggan_unet").state_dict()) == expected


def test_init_weights_follows_the_paper() -> None:
    g = networks.init_weights(create_generator("unet_256", ngf=16))
    weights = torch.cat([c.weight.flatten() for c in _convs(g)])
    assert abs(weights.mean().item()) < 2e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.05)
    scales = torch.cat([m.weight for m in g.modules() if isinstance(m, nn.BatchNorm2d)])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.01)
    assert all(c.bias is None or not c.bias.any() for c in _convs(g))


def test_eval_mode_uses_input_statistics_without_touching_running_stats() -> None:
    g = create_generator("unet_128", ngf=4)
    g.train()
    with torch.no_grad():
        g(torch.randn(2, 3, 128, 128))  # give the running stats non-trivial values
    state = {k: v.clone() for k, v in g.state_dict().items()}
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad(), networks.eval_mode(g, input_stats=True, noise=None):
        batched = g(x)
        singles = torch.cat([g(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, singles, atol=1e-5)  # per-image statistics, even in a batch
    with torch.no_grad():
        g.eval()
        running = g(x)
    assert not torch.allclose(batched, running, atol=1e-3)
    assert all(torch.equal(state[k], v) for k, v in g.state_dict().items())
    assert g.training is False


def test_eval_mode_noise_is_seeded_and_restored() -> None:
    g = create_generator("unet_128", ngf=4).eval()
    x = torch.randn(1, 3, 128, 128)

    def run(seed: int | None) -> torch.Tensor:
        noise = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad(), networks.eval_mode(g, input_stats=True, noise=noise):
            return g(x)

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))
    assert torch.equal(run(None), run(None))
    assert not torch.equal(run(None), run(1))
    assert all(m.generator is None for m in g.modules() if isinstance(m, networks.Dropout))


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
def test_the_skip_concatenation_hands_batchnorm_a_gradient_in_its_layout(layout: str) -> None:
    # A U-Net level's up-path ends in a BatchNorm whose output is concatenated with the skip. In
    # channels-last training (bf16) the concatenation's backward gave it a channel slice of the
    # gradient, on which BatchNorm's backward is 7-12x slower (PERFORMANCE, entry 41); each part
    # now gets a channels-last copy. The values are those of torch.cat's backward.
    fmt = getattr(torch, f"{layout}_format" if layout == "contiguous" else layout)
    seen: list[tuple[bool, bool]] = []

    def shapes(g: torch.Tensor) -> None:
        seen.append((g.is_contiguous(), g.is_contiguous(memory_format=torch.channels_last)))

    grads = {}
    for how in ("cat", "skip"):
        torch.manual_seed(0)
        x = torch.randn(2, 3, 8, 8).contiguous(memory_format=fmt).requires_grad_(True)
        y = torch.randn(2, 5, 8, 8).contiguous(memory_format=fmt).requires_grad_(True)
        x.register_hook(shapes)
        y.register_hook(shapes)
        out = torch.cat([x, y], 1) if how == "cat" else networks._SkipConcat.apply(x, y)
        out.backward(torch.randn_like(out))  # randn_like keeps the output's layout
        grads[how] = (x.grad, y.grad)
    assert all(torch.equal(a, b) for a, b in zip(grads["cat"], grads["skip"], strict=True))
    if layout == "channels_last":  # torch.cat's slices, then our channels-last parts
        assert seen == [(False, False)] * 2 + [(False, True)] * 2
    else:  # plain slices both times
        assert seen == [(False, False)] * 4


def test_a_channels_last_unet_trains_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # The U-Net's skip concatenation (above) changes where gradients live, not their values.
    torch.manual_seed(1)
    g = networks.create_generator("unet_128", ngf=8).to(memory_format=torch.channels_last)
    networks.init_weights(g)
    x = torch.randn(2, 3, 128, 128).contiguous(memory_format=torch.channels_last)

    def grads() -> list[torch.Tensor]:
        g.zero_grad()
        torch.manual_seed(2)  # the same dropout masks
        g(x).square().mean().backward()
        return [p.grad.clone() for p in g.parameters()]

    calls, apply = [], networks._SkipConcat.apply
    monkeypatch.setattr(networks._SkipConcat, "apply", lambda *a: calls.append(1) or apply(*a))
    ours = grads()
    assert len(calls) == 6  # every level but the outermost of unet_128's seven
    monkeypatch.setattr(networks.UnetSkipConnectionBlock, "forward", _plain_forward)
    plain = grads()
    for a, b in zip(ours, plain, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def _plain_forward(self: networks.UnetSkipConnectionBlock, x: torch.Tensor) -> torch.Tensor:
    if self.outermost or not self.skip:
        return self.model(x)
    return torch.cat([x, self.model(x)], 1)


@pytest.mark.parametrize(
    ("layout", "dtype"),
    [("contiguous", torch.float32), ("channels_last", torch.float32), ("channels_last", "bf16")],
)
def test_training_dropout_draws_fair_coins_in_the_inputs_layout(layout: str, dtype) -> None:
    # Training dropout at p = 0.5 on the CPU takes its mask from random bits (PERFORMANCE,
    # entry 46): each element kept, times 2, or zeroed, with probability 1/2 each, independently.
    dtype = torch.bfloat16 if dtype == "bf16" else dtype
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    torch.manual_seed(0)
    drop = networks.Dropout(0.5).train()
    x = torch.rand(4, 64, 16, 16, dtype=dtype).add_(0.5).contiguous(memory_format=fmt)
    x.requires_grad_(True)
    y = drop(x)
    assert y.dtype == dtype and y.is_contiguous(memory_format=fmt)
    noise = (y / x).detach().float()
    assert set(noise.unique().tolist()) == {0.0, 2.0}
    kept = (noise == 2).flatten()
    n = kept.numel()  # 65536: a fair coin's share lies within 0.5 +- 0.006 (3 sigma)
    assert abs(kept.float().mean().item() - 0.5) < 0.006
    # Each of a byte's 8 bits is a fair coin of its own: neither stuck nor tied to its neighbour.
    per_bit = kept.view(n // 8, 8).float().mean(0)
    assert (per_bit - 0.5).abs().max().item() < 0.02
    same = (kept[1:] == kept[:-1]).float().mean().item()
    assert abs(same - 0.5) < 0.01
    y.backward(torch.ones_like(y))  # the gradient goes through the same mask
    assert torch.equal(x.grad.float(), noise)


def test_training_dropout_follows_the_global_seed() -> None:
    drop = networks.Dropout(0.5).train()
    x = torch.ones(2, 8, 4, 4)

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return drop(x)

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    torch.manual_seed(0)
    first, second = drop(x), drop(x)
    assert not torch.equal(first, second)  # a fresh mask at every call


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_compiled_training_dropout_is_one_graph_with_the_eager_masks(layout: str) -> None:
    # `--compile on` compiles the U-Net with its dropout layers; a graph break there (random_ and
    # out= are not traced) split G into a graph per level. Traced, the mask is drawn from the same
    # bytes of the same generator (inductor's fallback_random, as the trainer compiles).
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    drop = networks.Dropout(0.5).train()
    x = torch.rand(2, 16, 8, 4).add_(0.5).contiguous(memory_format=fmt)
    torch._dynamo.reset()
    compiled = torch.compile(drop, fullgraph=True, options={"fallback_random": True})
    torch.manual_seed(7)
    ours = compiled(x)
    torch.manual_seed(7)
    eager = drop(x)
    assert torch.equal(ours, eager) and ours.is_contiguous(memory_format=fmt)
    assert not torch.equal(compiled(x), eager)  # the generator moved on: a fresh mask


def test_compiled_training_dropout_with_dynamic_shapes_and_both_layouts() -> None:
    # A user's own torch.compile (dynamic shapes by default after a recompile): a new layout and
    # a new size recompile without a graph break, the masks still those of eager mode.
    drop = networks.Dropout(0.5).train()
    torch._dynamo.reset()
    compiled = torch.compile(drop, fullgraph=True, dynamic=True, options={"fallback_random": True})
    for shape, fmt in [((2, 16, 8, 4), torch.contiguous_format),
                       ((2, 16, 8, 4), torch.channels_last),
                       ((3, 8, 6, 4), torch.channels_last)]:  # fmt: skip
        x = torch.rand(shape).add_(0.5).contiguous(memory_format=fmt)
        torch.manual_seed(3)
        ours = compiled(x)
        torch.manual_seed(3)
        assert torch.equal(ours, drop(x)) and ours.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize(("p", "shape"), [(0.3, (4, 64, 16, 16)), (0.5, (3, 5, 7))])
def test_other_dropout_rates_and_odd_sizes_use_pytorchs_dropout(p: float, shape: tuple) -> None:
    drop = networks.Dropout(p).train()
    x = torch.ones(shape)
    torch.manual_seed(0)
    ours = drop(x)
    torch.manual_seed(0)
    assert torch.equal(ours, F.dropout(x, p, True))
