"""Colour bins (networks.ColourBins, train.colour_bins): a generator that commits to colours where
no hint reached and keeps a dab's regressed colour where one did; the palette fitted to the
targets, the rebalanced loss, growing a trained generator, training, saving and the ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator, load_generator
from tests.test_hint_propagation import BLUE, _boxes, _dab, onnx_and_eager
from tests.test_hints import _folder
from train import colour_bins
from train.train import add_colour_bins

RED, GREEN, WHITE = (0.9, -0.8, -0.8), (-0.8, 0.7, -0.8), (1.0, 1.0, 1.0)


def _pixels() -> torch.Tensor:
    """600 white, 300 red and 100 green pixels, each jittered by up to 0.02."""
    g = torch.Generator().manual_seed(0)
    parts = [torch.tensor(c).repeat(n, 1) for c, n in ((WHITE, 600), (RED, 300), (GREEN, 100))]
    return torch.cat(parts) + (torch.rand(1000, 3, generator=g) - 0.5) * 0.04


def test_the_palette_finds_the_target_colours_and_weights_rare_ones_up() -> None:
    pixels = _pixels()
    palette, weights = colour_bins.fit_palette(pixels, 3)
    order = [int(torch.cdist(torch.tensor([c]), palette).argmin()) for c in (WHITE, RED, GREEN)]
    assert sorted(order) == [0, 1, 2]
    assert torch.allclose(palette[order], torch.tensor([WHITE, RED, GREEN]), atol=0.02)
    w = weights[order]
    assert w[0] < w[1] < w[2]  # the rarer the colour, the more its pixels weigh
    labels = colour_bins.nearest_bin(pixels.T.reshape(1, 3, 1, 1000), palette)
    assert torch.isclose(weights[labels].mean(), torch.tensor(1.0), atol=1e-4)
    # The paper's rebalancing: 1 / (0.5 p + 0.5 / K), normalised.
    p = torch.tensor([0.6, 0.3, 0.1])
    want = 1 / (0.5 * p + 0.5 / 3)
    assert torch.allclose(w, want / (p * want).sum(), atol=1e-4)
    with pytest.raises(ValueError, match="fewer distinct"):
        colour_bins.fit_palette(torch.tensor([WHITE, RED]).repeat(10, 1), 3)


def test_the_annealed_mean_commits_to_the_likeliest_colour() -> None:
    bins = networks.ColourBins(3, 8)
    bins.palette.copy_(torch.tensor([WHITE, RED, GREEN]))
    assert bins(torch.zeros(1, 8, 2, 2)).shape == (1, 3, 2, 2)  # logits at the features' size

    def decode(*logit: float) -> torch.Tensor:  # one colour's logits everywhere: (3,)
        out = bins.decode(torch.tensor(logit)[None, :, None, None].repeat(1, 1, 2, 2))
        assert out.shape == (1, 3, 4, 4)  # decoded, then upsampled x2
        return out[0, :, 1, 2]

    # Red e^3 times as likely as each other colour: e^7.9 after the temperature.
    assert torch.allclose(decode(0, 3, 0), torch.tensor(RED), atol=0.002)
    assert torch.allclose(decode(0, 0, 0), torch.tensor([WHITE, RED, GREEN]).mean(0), atol=1e-6)
    # A slight preference is sharpened (T = 0.38) but not made a hard choice.
    green = decode(0, 0, 0.2)[1]
    assert torch.tensor(GREEN)[1] > green > torch.tensor([WHITE, RED, GREEN]).mean(0)[1]
    with pytest.raises(ValueError, match="at least 2"):
        networks.ColourBins(1, 8)


def _generator(bins: int = 3) -> Pix2PixGenerator:
    torch.manual_seed(0)
    kwargs = {"ngf": 4, "hint_propagation": 48, "dropout": False}
    g = Pix2PixGenerator("unet_256", kwargs, {"hints": True, "input_kind": "edges"})
    networks.init_weights(g.net)
    return g


def test_a_reached_shape_keeps_the_regressed_colour_and_the_rest_commits(tmp_path: Path) -> None:
    g = _generator()
    grown = add_colour_bins(g, 3)
    assert add_colour_bins(grown, 3) is grown
    grown.net.bins.palette.copy_(torch.tensor([WHITE, RED, GREEN]))
    x = _boxes()
    _dab(x, 128, 44, BLUE)  # the left box
    with torch.no_grad():
        reach = networks.HintPropagation(48)(x)[0, 3]
        with networks.eval_mode(g.net, input_stats=True, noise=None):
            before = g(x)
        logits = []
        hook = grown.net.bins.register_forward_hook(lambda m, i, o: logits.append(o))
        with networks.eval_mode(grown.net, input_stats=True, noise=None):
            after = grown(x)
        hook.remove()
        heads = grown.net.train()(x)  # batch 1: its statistics are the image's own, as above
    assert after.shape == (1, 3, 256, 256) and heads.shape == (1, 6, 256, 256)
    reached = reach > 0
    lines = x[0].amax(0) < 0.2  # value below 0.6 in [0, 1]: the drawing's lines
    free = ~reached & (x[0].amax(0) > 0.8)  # paper and undabbed shapes (value above 0.9)
    assert reached.sum() > 1000 and free.sum() > 1000 and lines.sum() > 500
    # Where the dab's colour reached, and on the lines: the regressed colour, which is g's.
    for where in (reached, lines):
        assert torch.allclose(after[0][:, where], before[0][:, where], atol=1e-5)
        assert torch.allclose(heads[0, :3][:, where], before[0][:, where], atol=1e-5)
    # Elsewhere: the palette's annealed mean of the new head's logits.
    assert logits[0].shape == (1, 3, 128, 128)  # at half the output's resolution
    committed = grown.net.bins.decode(logits[0])[0]
    assert torch.allclose(after[0][:, free], committed[:, free], atol=1e-5)
    assert not torch.allclose(after[0][:, free], before[0][:, free], atol=0.05)
    # It saves and loads like any generator, its palette in the weights.
    grown.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["network"]["colour_bins"] == 3
    again = load_generator(tmp_path / "m")
    assert torch.equal(again.net.bins.palette, grown.net.bins.palette)
    with torch.no_grad(), networks.eval_mode(again.net, input_stats=True, noise=None):
        assert torch.allclose(again(x), after, atol=1e-6)
    with pytest.raises(ValueError, match="already has 3"):
        add_colour_bins(grown, 4)
    plain = Pix2PixGenerator("unet_256", {"ngf": 4})
    with pytest.raises(ValueError, match="hint propagation"):
        add_colour_bins(plain, 3)
    with pytest.raises(ValueError, match="needs hint_propagation"):
        networks.create_generator("unet_256", ngf=4, colour_bins=3)
    with pytest.raises(ValueError, match="an RGB output"):
        networks.create_generator(
            "unet_256", ngf=4, out_channels=1, hint_propagation=8, colour_bins=3
        )


def test_the_loss_trains_the_regressed_colour_by_l1_and_the_logits_by_class(tmp_path: Path) -> None:
    bins = networks.ColourBins(3, 8)
    bins.palette.copy_(torch.tensor([WHITE, RED, GREEN]))
    bins.weights.copy_(torch.tensor([0.5, 1.0, 2.0]))
    target = torch.tensor(RED)[None, :, None, None].repeat(1, 1, 4, 4)
    target[:, :, :2] = torch.tensor(GREEN)[None, :, None, None]
    heads = torch.zeros(1, 6, 4, 4)
    heads[:, :3] = target
    heads[:, 3 + 1, 2:] = 5.0  # right where red is
    heads[:, 3 + 0, :2] = 5.0  # wrong (white) where green is
    l1, ce = colour_bins.loss(heads, target, bins)
    assert l1 == 0
    wrong = torch.nn.functional.cross_entropy(torch.tensor([[5.0, 0, 0]]), torch.tensor([2]))
    right = torch.nn.functional.cross_entropy(torch.tensor([[0, 5.0, 0]]), torch.tensor([1]))
    # Mean over pixels weighted by their class: green pixels weigh 2, red ones 1.
    assert torch.isclose(ce, (8 * 2 * wrong + 8 * 1 * right) / (8 * 2 + 8 * 1), atol=1e-5)


def test_training_with_colour_bins_fits_a_palette_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_train import run, summary

    root = _folder(tmp_path / "data")
    common = [
        "--data", str(root), "--netG", "unet_128", "--ngf", "4", "--load-size", "128",
        "--crop-size", "128", "--workers", "0", "--sample-every", "0", "--hints",
        "--hint-propagation", "8", "--no-gan", "--mixed-precision", "no",
    ]  # fmt: skip
    assert run(*common, "--out", tmp_path / "a", "--max-steps", "1") == 0
    capsys.readouterr()
    out = tmp_path / "b"
    assert run(*common, "--out", out, "--init-from", tmp_path / "a", "--colour-bins", "3",
               "--max-steps", "2") == 0  # fmt: skip
    g = load_generator(out)
    assert g.network_kwargs["colour_bins"] == 3
    palette = g.net.bins.palette.clone()
    assert palette.abs().sum() > 0  # fitted to the targets' pixels, not left at 0
    assert (palette >= -1).all() and (palette <= 1).all()
    assert "colour bins: 3 colours fitted to 1600 target pixels of 4 examples" in (
        capsys.readouterr().out
    )
    assert "G_CE" in json.dumps(summary(out))
    notes = json.loads((out / "config.json").read_text())["task"]["notes"]
    assert "cross-entropy of 3 colour bins" in notes
    # Resumed with only the run's own options, or the same --colour-bins again: the run's
    # --no-gan and --hint-propagation count; another count is refused, named.
    assert run("--resume", out, "--max-steps", "3", "--colour-bins", "3") == 0
    assert torch.equal(load_generator(out).net.bins.palette, palette)  # kept, not refitted
    capsys.readouterr()
    assert run("--resume", out, "--max-steps", "4", "--colour-bins", "5") == 2
    assert "different --colour-bins 5 (the checkpoint has 3)" in capsys.readouterr().err
    fresh = tmp_path / "c"
    assert run(*common, "--out", fresh, "--colour-bins", "3", "--max-steps", "1") == 0
    assert load_generator(fresh).net.bins.palette.abs().sum() > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hints", "--hint-propagation", "8", "--colour-bins", "3"], "needs --no-gan too"),
        (["--hints", "--no-gan", "--colour-bins", "3"], "needs --hint-propagation STEPS too"),
        (["--colour-bins", "3"], "needs --no-gan, --hint-propagation STEPS, --hints too"),
        (["--hints", "--hint-propagation", "8", "--no-gan", "--colour-bins", "1"], "at least 2"),
        (["--colour-bins", "-2"], "0 (none) or at least 2"),
    ],
)
def test_bad_colour_bin_options_are_refused(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from train.train import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    assert message in capsys.readouterr().err


def test_the_onnx_export_commits_as_pytorch_does(tmp_path: Path) -> None:
    g = add_colour_bins(_generator(), 3)
    g.net.bins.palette.copy_(torch.tensor([WHITE, RED, GREEN]))
    got, want = onnx_and_eager(g, tmp_path)
    assert got.shape == (1, 3, 256, 256)
    assert np.abs(got - want).max() < 1e-4
