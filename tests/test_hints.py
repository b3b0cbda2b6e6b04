"""Colour-hint dabs sampled from the target (train/hints.py) and their use in training data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from train.data import PairedDataset
from train.hints import SAME_COLOUR, DabSpec, line_mask, paint_dab, sample_dabs

COLOURS = {"red": (0.8, -0.8, -0.8), "green": (-0.8, 0.6, -0.8), "blue": (-0.8, -0.6, 0.8)}


def _drawing(side: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Three boxes side by side, outlined in black (3 px); red, green, blue in the target."""
    inp = torch.ones(3, side, side)
    target = torch.ones(3, side, side)
    third = side // 3
    for k, colour in enumerate(COLOURS.values()):
        x0, x1 = k * third + 8, (k + 1) * third - 8
        y0, y1 = 40, side - 40
        target[:, y0:y1, x0:x1] = torch.tensor(colour)[:, None, None]
        for t in (inp, target):  # the outline, in both
            t[:, y0 : y0 + 3, x0:x1] = -1
            t[:, y1 - 3 : y1, x0:x1] = -1
            t[:, y0:y1, x0 : x0 + 3] = -1
            t[:, y0:y1, x1 - 3 : x1] = -1
    return inp, target


def test_dabs_take_the_targets_colour_and_never_cover_lines() -> None:
    inp, target = _drawing()
    lines = line_mask(inp)
    spec = DabSpec(none_share=0.0, max_dabs=8)
    painted_any = 0
    for seed in range(40):
        torch.manual_seed(seed)
        out, _, count = sample_dabs(inp, target, spec)
        changed = (out != inp).any(0)
        assert not (changed & lines).any(), "a dab covered a line"
        # Every changed pixel holds the target's colour at that pixel (within the dab tolerance).
        assert ((out - target).abs().amax(0)[changed] <= SAME_COLOUR + 1e-6).all()
        # No dab lands on white (the paper around the boxes).
        assert not (changed & (target.amin(0) > 0.85)).any()
        assert 1 <= count <= spec.max_dabs
        painted_any += int(changed.any())
    assert painted_any == 40


def test_a_dab_stays_inside_its_shape() -> None:
    inp, target = _drawing()
    # A long stroke from inside the red box across its right outline into the green box.
    out = inp.clone()
    painted = paint_dab(out, target, (128, 70), 10.0, (128, 150))
    _, xs = torch.nonzero(painted, as_tuple=True)
    assert len(xs) > 0
    # Red box interior is x in [11, 77): nothing painted beyond its outline.
    assert int(xs.max()) < 85 - 8
    assert torch.allclose(out[:, 128, 70], torch.tensor(COLOURS["red"]))
    assert torch.equal(out[:, 128, 120], inp[:, 128, 120])  # the green box is untouched


def test_a_soft_dab_fades_into_the_paper_over_its_rim_and_stays_inside_its_shape() -> None:
    inp, target = _drawing()
    red = torch.tensor(COLOURS["red"])
    out = inp.clone()
    painted = paint_dab(out, target, (128, 40), 8.0, soft_edge=4.0)
    row = out[:, 128]  # (3, W) across the dab's centre
    assert torch.allclose(row[:, 40], red) and torch.allclose(row[:, 45], red)  # solid inside
    # The rim (radius 6 to 10): strictly between the colour and the paper, fading outward.
    rim = row[1, 47:50]
    assert ((rim > red[1]) & (rim < 1)).all() and (rim.diff() > 0).all()
    # The opacity is linear: half-way at the radius, i.e. half-way between paper and colour.
    assert torch.allclose(row[1, 48], (red[1] + 1) / 2, atol=1e-5)
    assert torch.equal(row[:, 51], inp[:, 128, 51]) and not painted[128, 51]
    # Every pixel it touched mixes the dab's colour with the paper; none is a line.
    changed = (out != inp).any(0)
    assert torch.equal(changed, painted) and not (changed & line_mask(inp)).any()
    alpha = (1 - out[1][changed]) / (1 - red[1])
    assert torch.allclose(out[:, changed], alpha * red[:, None] + (1 - alpha), atol=1e-5)
    # Near the outline (the red box's left line is x 8-10) the rim stops at the line.
    near = inp.clone()
    paint_dab(near, target, (128, 14), 8.0, soft_edge=4.0)
    assert torch.equal(near[:, :, 8:11], inp[:, :, 8:11])
    # Hard edges (the default) stay as they were: the colour, the paper or a line, nothing between.
    hard = inp.clone()
    paint_dab(hard, target, (128, 40), 8.0)
    assert set(hard[1, 128].unique().tolist()) == {-1.0, 1.0, float(red[1])}
    with pytest.raises(ValueError, match="soft_edge"):
        DabSpec(soft_edge=-1.0)


def test_sampled_dabs_get_soft_rims_only_when_asked() -> None:
    inp, target = _drawing()
    mixed = {}
    for edge in (0.0, 3.0):
        torch.manual_seed(0)
        out, _, count = sample_dabs(inp, target, DabSpec(none_share=0.0, soft_edge=edge))
        changed = (out != inp).any(0)
        # Pixels whose colour is neither the target's nor the paper's: the rims' blend.
        blend = (out - target).abs().amax(0) > SAME_COLOUR
        mixed[edge] = int((changed & blend).sum())
        assert count >= 1
    assert mixed[0.0] == 0 and mixed[3.0] > 0


def test_none_share_gives_that_share_of_examples_without_dabs() -> None:
    inp, target = _drawing()
    for share in (0.0, 0.5, 1.0):
        torch.manual_seed(0)
        counts = [sample_dabs(inp, target, DabSpec(none_share=share))[2] for _ in range(200)]
        none = sum(c == 0 for c in counts) / len(counts)
        assert abs(none - share) < 0.1, (share, none)


def test_dab_sizes_follow_the_spec_and_scale_with_the_image() -> None:
    inp, target = _drawing(256)
    spec = DabSpec(none_share=0.0, max_dabs=1, stroke_share=0.0, radius=(3.0, 10.0))
    areas = []
    for seed in range(30):
        torch.manual_seed(seed)
        out, _, _ = sample_dabs(inp, target, spec)
        areas.append(int((out != inp).any(0).sum()))
    assert max(areas) <= np.pi * 10.5**2
    assert min(a for a in areas if a) >= 1
    inp2, target2 = _drawing(512)  # twice the side: radii scale with it
    areas2 = []
    for seed in range(30):
        torch.manual_seed(seed)
        out, _, _ = sample_dabs(inp2, target2, spec)
        areas2.append(int((out != inp2).any(0).sum()))
    assert np.median(areas2) > 2 * np.median(areas)


def test_dabs_are_reproducible_from_the_seed() -> None:
    inp, target = _drawing()
    torch.manual_seed(3)
    a, _, _ = sample_dabs(inp, target, DabSpec(none_share=0.0))
    torch.manual_seed(3)
    b, _, _ = sample_dabs(inp, target, DabSpec(none_share=0.0))
    assert torch.equal(a, b)


def test_a_target_with_nothing_to_dab_gives_no_dab() -> None:
    inp = torch.ones(3, 64, 64)
    out, _, count = sample_dabs(inp, torch.ones(3, 64, 64), DabSpec(none_share=0.0))
    assert count == 0 and torch.equal(out, inp)
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        sample_dabs(torch.ones(1, 64, 64), torch.ones(1, 64, 64))
    with pytest.raises(ValueError, match="none_share"):
        DabSpec(none_share=1.5)


def _folder(root: Path, count: int = 4) -> Path:
    inp, target = _drawing(256)
    for side in ("A", "B"):
        (root / "train" / side).mkdir(parents=True)
    for i in range(count):
        for side, t in (("A", inp), ("B", target)):
            arr = ((t + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            Image.fromarray(arr).save(root / "train" / side / f"{i}.png")
    return root


def test_paired_dataset_draws_dabs_on_the_input_only(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    plain = PairedDataset(root, load_size=256, crop_size=256, flip=False)
    hinted = PairedDataset(
        root, load_size=256, crop_size=256, flip=False, hints=DabSpec(none_share=0.0)
    )
    torch.manual_seed(0)
    a = plain[0]
    torch.manual_seed(0)
    b = hinted[0]
    assert torch.equal(a["target"], b["target"])
    changed = (a["input"] != b["input"]).any(0)
    assert changed.any()
    assert ((b["input"] - b["target"]).abs().amax(0)[changed] <= SAME_COLOUR + 0.02).all()


def test_paired_dataset_recolours_the_target_under_recoloured_dabs(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data")
    hinted = PairedDataset(
        root, load_size=256, crop_size=256, flip=False, hints=DabSpec(none_share=0.0, recolour=1.0)
    )
    _, target = _drawing(256)
    torch.manual_seed(0)
    b = hinted[0]
    changed = (b["target"] - target).abs().amax(0) > 0.02
    assert changed.any()
    dabbed = (b["input"] - _drawing(256)[0]).abs().amax(0) > 0.02
    assert ((b["input"] - b["target"]).abs().amax(0)[dabbed] <= SAME_COLOUR + 0.02).all()


def test_training_with_hints_records_it_in_the_models_config(tmp_path: Path) -> None:
    from tests.test_train import run  # main() in this process, Accelerate's state reset after

    root = _folder(tmp_path / "data")
    out = tmp_path / "run"
    code = run(
        *[
            "--data", str(root), "--out", str(out), "--netG", "unet_128", "--ngf", "4",
            "--ndf", "4", "--load-size", "128", "--crop-size", "128", "--max-steps", "2",
            "--workers", "0", "--sample-every", "0", "--hints", "--hint-none-share", "0.2",
            "--hint-recolour", "0.5", "--hint-recolour-grey", "0.25", "--mixed-precision", "no",
        ]
    )  # fmt: skip
    assert code == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["hints"] is True
    assert "colour-hint dabs" in config["task"]["notes"]
    assert "50% of them in a random colour" in config["task"]["notes"]
    assert "25% of those colours greys" in config["task"]["notes"]
    card = (out / "README.md").read_text()
    assert "coloured dabs inside a shape choose its colour" in card
    # A resumed run keeps --hints from its checkpoint without being told again.
    assert run("--resume", out, "--max-steps", "3") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["task"]["hints"] is True


def test_recoloured_dabs_recolour_their_shape_in_the_target_too() -> None:
    inp, target = _drawing()
    lines = line_mask(inp)
    spec = DabSpec(none_share=0.0, max_dabs=4, recolour=1.0)
    for seed in range(20):
        torch.manual_seed(seed)
        out, new_target, count = sample_dabs(inp, target, spec)
        assert count >= 1
        changed = (new_target != target).any(0)
        assert changed.any() and not (changed & lines).any()
        # The recoloured shapes are whole boxes: each box is either untouched or one new flat
        # colour that is neither white nor black, and every dab pixel holds its box's colour.
        for k in range(3):
            x0, x1 = k * (256 // 3) + 11, (k + 1) * (256 // 3) - 11
            box = new_target[:, 43:213, x0:x1].reshape(3, -1)
            assert (box - box[:, :1]).abs().max() < 1e-6, "a box was recoloured only in part"
            if changed[43:213, x0:x1].any():
                colour = box[:, 0]
                assert colour.amin() <= 0.85 and colour.amax() > -0.2
        dabbed = (out != inp).any(0)
        assert ((out - new_target).abs().amax(0)[dabbed] <= SAME_COLOUR + 1e-6).all()
        # The paper around the boxes and the input's lines are untouched.
        assert torch.equal(new_target[:, :40], target[:, :40])
        assert torch.equal(out[:, lines], inp[:, lines])


def test_no_recolour_draws_exactly_as_before() -> None:
    """recolour=0 (the default) consumes the same random numbers as the sampler always did, so
    runs made before the option resume exactly; the target comes back untouched."""
    inp, target = _drawing()
    torch.manual_seed(3)
    a, t, _ = sample_dabs(inp, target, DabSpec(none_share=0.0))
    after_a = torch.rand(())
    torch.manual_seed(3)
    b, _, _ = sample_dabs(inp, target, DabSpec(none_share=0.0, recolour=0.0))
    assert torch.equal(a, b) and torch.equal(torch.rand(()), after_a)
    assert t is target
    with pytest.raises(ValueError, match="recolour"):
        DabSpec(recolour=1.5)
    with pytest.raises(ValueError, match="recolour_grey"):
        DabSpec(recolour_grey=-0.1)


def test_grey_recolours_are_greys_a_grey_dab_can_be() -> None:
    from pix2pix.networks import HintPropagation
    from train.hints import random_dab_colour

    torch.manual_seed(0)
    colours = torch.stack([random_dab_colour(grey=1.0) for _ in range(200)])
    assert (colours.amax(1) - colours.amin(1)).max() == 0  # greys
    bright = (colours[:, 0] + 1) / 2
    assert (bright >= HintPropagation.LINE).all() and (bright <= HintPropagation.PAPER).all()
    mixed = torch.stack([random_dab_colour(grey=0.3) for _ in range(400)])
    share = ((mixed.amax(1) - mixed.amin(1)) == 0).float().mean()
    assert 0.2 < share < 0.4


def test_region_recolour_fills_the_whole_closed_shape_flat() -> None:
    from train.hints import closed_shape, recolour_shape

    inp, target = _drawing()
    # The red box's target gets a second colour in its lower half, with no line between: the
    # colour's shape is the upper half, the drawing's shape the whole box.
    target[:, 130:213, 11:74] = torch.tensor((0.9, 0.6, -0.6))[:, None, None]
    lines = line_mask(inp)
    colour = torch.tensor((-0.5, 0.2, 0.7))
    by_colour = recolour_shape(target.clone(), lines, (60, 40), colour)
    assert by_colour[60, 40] and not by_colour[180, 40]
    recoloured = target.clone()
    whole = recolour_shape(recoloured, lines, (60, 40), colour, region=True)
    assert whole[60, 40] and whole[180, 40] and not whole[:, 90:].any()
    # Flat up to the outline; only the box's sharp corners (the disc that closes gaps rounds
    # them) keep their old colour.
    for inside in (recoloured[:, 46:210, 11:74], recoloured[:, 43:213, 14:71]):
        assert (inside.reshape(3, -1) - colour[:, None]).abs().max() < 1e-6
    assert torch.equal(recoloured[:, lines], target[:, lines])
    # An open shape (the paper around the boxes) is not a closed shape: the colour's shape is
    # recoloured instead.
    assert closed_shape(lines, (20, 128)) is None
    # A gap of 4 px in an outline still closes the shape; the paper outside stays untouched.
    gapped = inp.clone()
    gapped[:, 120:124, 8:11] = 1.0
    shape = closed_shape(line_mask(gapped), (60, 40))
    assert shape is not None and not shape[:, :8].any()
