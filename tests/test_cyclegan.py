"""CycleGAN: unpaired data, the history pool, a tiny run killed and resumed exactly, loading each
direction (our format, the reference's run folders, its official models, another codebase's keys)
and the ONNX export of instance-norm ResNet generators.

Networks are resnet_6blocks with 4 filters on 32-pixel crops: a step takes well under a second.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import hub, load_generator, networks
from pix2pix.formats import CheckpointError
from pix2pix.hub import Pix2PixGenerator
from tests.test_train import (
    REPO,
    _child_env,
    _smooth,
    assert_same_weights,
    latest_weights,
    run,
    summary,
)
from train import checkpoint as ckpt
from train.cyclegan import ImagePool
from train.data import UnpairedDataset, unpaired_folders

TINY = [
    "--model", "cyclegan", "--ngf", "4", "--ndf", "4",
    "--load-size", "36", "--crop-size", "32",
    "--epochs", "1", "--epochs-decay", "1", "--pool-size", "2",
    "--cpu", "--workers", "0", "--sample-every", "0", "--log-every", "1",
]  # fmt: skip


def write_images(folder: Path, names: list[str], first_seed: int, suffix: str = ".png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        _smooth(first_seed + i, 40).save(folder / f"{name}{suffix}")
    return folder


@pytest.fixture(scope="module")
def horse2zebra(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference's layout: 3 A and 5 B training images, no names in common; test images."""
    root = tmp_path_factory.mktemp("data") / "horse2zebra"
    write_images(root / "trainA", ["h0", "h1", "h2"], 0)
    write_images(root / "trainB", ["z0", "z1", "z2", "z3", "z4"], 10, ".jpg")
    write_images(root / "testA", ["t0", "t1"], 20)
    write_images(root / "testB", ["u0"], 30)
    return root


# --------------------------------------------------------------------------------------------
# Data and the pool
# --------------------------------------------------------------------------------------------


def test_unpaired_folders_of_different_sizes_with_a_stray_file(tmp_path: Path) -> None:
    a = write_images(tmp_path / "photos", ["p0", "p1"], 0)
    b = write_images(tmp_path / "paintings", ["x", "y", "z"], 5, ".jpg")
    (b / "notes.txt").write_text("not an image")
    (a / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    with pytest.warns(UserWarning, match=r"skipped 1 files") as caught:
        data = UnpairedDataset(a, b, load_size=36, crop_size=32, b_channels=1)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.png" in messages and "notes.txt" in messages
    assert len(data) == 3 and [len(f) for f in data.files] == [2, 3]
    torch.manual_seed(0)
    items = [data[i] for i in range(3)]
    assert [it["A_name"] for it in items] == ["p0", "p1", "p0"]  # A cycles, B is drawn
    assert {it["B_name"] for it in items} <= {"x", "y", "z"}
    assert items[0]["A"].shape == (3, 32, 32) and items[0]["B"].shape == (1, 32, 32)
    assert all(it["A"].min() >= -1 and it["A"].max() <= 1 for it in items)
    torch.manual_seed(0)
    assert [data[i]["B_name"] for i in range(3)] == [it["B_name"] for it in items]


def test_unpaired_layouts_and_their_errors(tmp_path: Path, horse2zebra: Path) -> None:
    assert unpaired_folders(horse2zebra) == (horse2zebra / "trainA", horse2zebra / "trainB")
    assert unpaired_folders(horse2zebra, "test")[1] == horse2zebra / "testB"
    flat = tmp_path / "flat"
    write_images(flat / "A", ["a"], 0)
    write_images(flat / "B", ["b"], 1)
    assert unpaired_folders(flat, "test") == (flat / "A", flat / "B")
    (tmp_path / "half" / "trainA").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"found .*trainA but no .*trainB"):
        unpaired_folders(tmp_path / "half")
    empty = tmp_path / "empty"
    (empty / "A").mkdir(parents=True)
    write_images(empty / "B", ["b"], 1)
    with pytest.raises(ValueError, match="no readable images"):
        UnpairedDataset(empty / "A", empty / "B")


def test_history_pool_fills_then_swaps_half_the_time_and_resumes() -> None:
    assert torch.equal(ImagePool(0, seed=0).query(x := torch.randn(3, 1, 2, 2)), x)
    pool = ImagePool(4, seed=0)
    first = torch.arange(4.0).view(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the images themselves
    returned = torch.cat([pool.query(torch.full((1, 1, 1, 1), 10.0 + i)) for i in range(200)])
    values = returned.flatten().tolist()
    new = sum(v == 10 + i for i, v in enumerate(values))
    assert 70 < new < 130, new  # about half are the new image, the rest a stored one
    assert all(v == 10 + i or v < 10 + i for i, v in enumerate(values))  # never a future one
    assert len(pool.images) == 4

    state = pool.state_dict()
    copy = ImagePool(4, seed=123)
    copy.load_state_dict(state, torch.device("cpu"))
    batch = torch.randn(6, 1, 1, 1)
    assert torch.equal(pool.query(batch), copy.query(batch))


# --------------------------------------------------------------------------------------------
# A run, killed and resumed
# --------------------------------------------------------------------------------------------

_DYING_CHILD = """
import os, signal, sys
import torch
from train.train import main
real_save, calls = torch.save, []
def dying_save(obj, f, *args, **kwargs):
    calls.append(f)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = dying_save
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def straight(horse2zebra: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 uninterrupted steps (an epoch is 5: it crosses an epoch and an LR change)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    argv = ["--data", horse2zebra, "--out", out, *TINY, "--max-steps", "6", "--save-every", "3"]
    assert run(*argv, "--sample-every", "6", "--domain-b", "zebra stripes") == 0
    return out


def test_a_run_killed_after_its_first_checkpoint_resumes_exactly(
    horse2zebra: Path, straight: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    argv = ["--data", horse2zebra, "--out", out, *TINY, "--max-steps", "6", "--save-every", "3"]
    # Same thread count as the straight run: bf16 kernels sum in a thread-dependent order.
    proc = subprocess.run(
        [sys.executable, "-c", _DYING_CHILD, *map(str, argv)],
        cwd=REPO,
        env=_child_env(torch.get_num_threads()),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    saved = ckpt.load_checkpoint(ckpt.find_checkpoint(out))
    assert saved.step == 3
    pools = saved.state["processes"][0]["pools"]
    assert pools["A"]["images"].shape == (2, 3, 32, 32)  # full (--pool-size 2), with its RNG

    assert run("--resume", out) == 0
    assert summary(out)["steps"] == 6
    resumed, uninterrupted = latest_weights(out), latest_weights(straight)
    assert any(k.startswith("discriminator.B.") for k in resumed)
    assert_same_weights(resumed, uninterrupted)
    final = ckpt.load_checkpoint(ckpt.find_checkpoint(out)).state["processes"][0]["pools"]
    expected = ckpt.load_checkpoint(ckpt.find_checkpoint(straight)).state["processes"][0]
    for key in "AB":
        diff = (final[key]["images"].float() - expected["pools"][key]["images"].float()).abs()
        assert diff.max() <= 1e-5
        assert torch.equal(final[key]["rng"], expected["pools"][key]["rng"])


def test_the_run_saves_both_directions_with_domains_samples_and_a_card(straight: Path) -> None:
    forward, backward = load_generator(straight), load_generator(straight, direction="BtoA")
    assert forward.architecture == backward.architecture == "resnet_6blocks"
    assert forward.network_kwargs["norm"] == "instance" and not forward.network_kwargs["dropout"]
    assert forward.task.translates() == "A -> B (horse -> zebra stripes)"
    assert backward.task.translates() == "B -> A (zebra stripes -> horse)"
    assert forward.task.method == "cyclegan" and forward.task.train_size == 32
    # Each generator takes its own domain: no --input-kind given for A, B's defaults to photo.
    assert forward.task.input_kind is None and backward.task.input_kind == "photo"
    assert "10 x cycle L1 + 0.5 x 10 x identity L1" in forward.task.notes
    assert hub.holds_both_directions(straight) and not hub.holds_both_directions(straight / "BtoA")
    card = (straight / "README.md").read_text()
    assert "CycleGAN" in card and 'direction="BtoA"' in card
    with Image.open(straight / "samples" / "step_00000006.png") as grid:
        # 3 columns (image, translation, reconstruction); 2 test A rows and 1 test B row.
        assert grid.width == 3 * 34 + 2 and grid.height == 3 * 34 + 2
    with pytest.raises(CheckpointError, match=r"translates B -> A .*direction='AtoB'"):
        load_generator(straight / "BtoA", direction="AtoB")


def test_pix2pix_only_options_are_refused(horse2zebra: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        run("--data", horse2zebra, "--out", "x", *TINY, "--lambda-l1", "10", "--direction", "BtoA")
    err = capsys.readouterr().err
    assert "--lambda-l1 (there is no paired target" in err and "--direction" in err


def _aligned_pairs(root: Path, split: str, count: int) -> None:
    """``count`` aligned A|B images: A a flat colour per pair, B a smooth image."""
    folder = root / split
    folder.mkdir(parents=True)
    for i in range(count):
        both = Image.new("RGB", (80, 40), (i * 40, 0, 255 - i * 40))
        both.paste(_smooth(100 + i, 40), (40, 0))
        both.save(folder / f"p{i}.png")


def test_unpaired_split_breaks_training_pairs_and_keeps_test_pairs(tmp_path: Path) -> None:
    from train.datasets import unpaired

    src = tmp_path / "labels2photo"
    _aligned_pairs(src, "train", 6)
    _aligned_pairs(src, "test", 2)
    (src / "classes.json").write_text('{"names": ["a"], "palette": [[0, 0, 255]]}')
    out = tmp_path / "unpaired"
    unpaired.main(["--data", str(src), "--out", str(out)])
    a_names = sorted(p.stem for p in (out / "trainA").iterdir())
    b_names = sorted(p.stem for p in (out / "trainB").iterdir())
    assert len(a_names) == len(b_names) == 6 and not set(a_names) & set(b_names)
    # Every A side is there once, under a name that says nothing of its pair.
    firsts = sorted(np.asarray(Image.open(out / "trainA" / f"{n}.png"))[0, 0, 0] for n in a_names)
    assert firsts == [i * 40 for i in range(6)]
    # Test pairs keep their names and are the two halves of the source image.
    for name in ("p0", "p1"):
        both = np.asarray(Image.open(src / "test" / f"{name}.png"))
        assert np.array_equal(np.asarray(Image.open(out / "testA" / f"{name}.png")), both[:, :40])
        assert np.array_equal(np.asarray(Image.open(out / "testB" / f"{name}.png")), both[:, 40:])
    assert (out / "classes.json").read_text() == (src / "classes.json").read_text()
    assert "unpaired, renamed" in (out / "README.md").read_text()

    disjoint = tmp_path / "disjoint"
    unpaired.main(["--data", str(src), "--out", str(disjoint), "--disjoint"])
    a_first = {np.asarray(Image.open(p))[0, 0, 0] for p in (disjoint / "trainA").iterdir()}
    assert a_first == {0, 40, 80}  # A of the first half only; B of the other half
    assert len(list((disjoint / "trainB").iterdir())) == 3
    with pytest.raises(SystemExit):  # never writes into a folder that has files
        unpaired.main(["--data", str(src), "--out", str(out)])


def test_a_labels_photo_run_records_each_generators_input_and_the_palette(
    tmp_path: Path,
) -> None:
    from train.datasets import unpaired

    src = tmp_path / "facades"
    _aligned_pairs(src, "train", 4)
    (src / "classes.json").write_text('{"names": ["a", "b"], "palette": [[0, 0, 255], [9, 9, 9]]}')
    data = tmp_path / "unpaired"
    unpaired.main(["--data", str(src), "--out", str(data)])
    out = tmp_path / "run"
    argv = ["--data-a", data / "trainA", "--data-b", data / "trainB", "--out", out, *TINY]
    assert run(*argv, "--max-steps", "1", "--input-kind", "labels") == 0
    forward, backward = load_generator(out), load_generator(out, direction="BtoA")
    assert (forward.task.input_kind, backward.task.input_kind) == ("labels", "photo")
    for task in (forward.task, backward.task):
        assert task.palette == [[0, 0, 255], [9, 9, 9]] and task.class_names == ["a", "b"]

    # pix2pix-convert keeps the pair: both directions, each with its own input kind.
    from pix2pix import convert

    converted = tmp_path / "converted"
    argv = [str(out), str(converted), "--fp16", "--input-kind-b", "edges", "--license", "mit"]
    assert convert.main(argv) == 0
    forward2 = load_generator(converted)
    backward2 = load_generator(converted, direction="BtoA")
    assert (forward2.task.input_kind, backward2.task.input_kind) == ("labels", "edges")
    assert forward2.task.license == backward2.task.license == "mit"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert (backward2(x) - backward(x)).abs().max() < 0.05
    single = tmp_path / "single"
    assert convert.main([str(out), str(single), "--direction", "BtoA"]) == 0
    assert not hub.holds_both_directions(single)
    assert load_generator(single).task.direction == "BtoA"


# --------------------------------------------------------------------------------------------
# Loading what CycleGAN users have
# --------------------------------------------------------------------------------------------


def _resnet_state(seed: int, norm: str = "instance", blocks: int = 6) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = networks.create_generator("resnet", ngf=4, norm=norm, dropout=False, n_blocks=blocks)
    return networks.init_weights(net).state_dict()


def test_reference_run_folder_loads_by_direction(tmp_path: Path) -> None:
    run_dir = tmp_path / "horse2zebra_cyclegan"
    run_dir.mkdir()
    torch.save(_resnet_state(0), run_dir / "latest_net_G_A.pth")
    torch.save(_resnet_state(1), run_dir / "latest_net_G_B.pth")
    torch.save(_resnet_state(1), run_dir / "5_net_G_B.pth")
    torch.save(_resnet_state(1), run_dir / "10_net_G_B.pth")
    for name in ("D_A", "D_B"):
        torch.save(
            networks.create_discriminator(70, in_channels=3).state_dict(),
            run_dir / f"latest_net_{name}.pth",
        )
    forward, backward = load_generator(run_dir), load_generator(run_dir, direction="BtoA")
    assert forward.task.direction == "AtoB" and backward.task.direction == "BtoA"
    assert forward.task.method == "cyclegan"
    assert torch.equal(
        forward.net.state_dict()["model.1.weight"], _resnet_state(0)["model.1.weight"]
    )
    assert torch.equal(
        backward.net.state_dict()["model.1.weight"], _resnet_state(1)["model.1.weight"]
    )
    assert hub.holds_both_directions(run_dir)
    g_b = load_generator(run_dir / "latest_net_G_B.pth")
    assert g_b.task.direction == "BtoA"
    with pytest.raises(CheckpointError, match=r"G_B, which translates B -> A"):
        load_generator(run_dir / "latest_net_G_B.pth", direction="AtoB")

    (run_dir / "latest_net_G_B.pth").unlink()
    with pytest.raises(CheckpointError, match=r"several B -> A generators .*5_net_G_B\.pth"):
        load_generator(run_dir, direction="BtoA")
    for path in run_dir.glob("*_net_G_B.pth"):
        path.unlink()
    with pytest.raises(
        CheckpointError, match=r"no B -> A generator .*latest_net_G_A.pth \(A -> B\)"
    ):
        load_generator(run_dir, direction="BtoA")
    assert load_generator(run_dir).task.direction == "AtoB"


def test_official_generators_load_by_name_or_url_in_either_direction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _resnet_state(0, blocks=9)
    # Official files saved before PyTorch 0.4 carry InstanceNorm running statistics.
    state["model.2.running_mean"] = torch.zeros(4)
    state["model.2.running_var"] = torch.ones(4)
    torch.save(state, tmp_path / "official.pth")
    fetched = []
    monkeypatch.setattr(
        hub, "download_url", lambda url: fetched.append(url) or tmp_path / "official.pth"
    )

    model = load_generator("cyclegan:horse2zebra", direction="BtoA")
    assert fetched == [
        "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/zebra2horse.pth"
    ]
    assert model.architecture == "resnet_9blocks" and model.network_kwargs["norm"] == "instance"
    assert not model.network_kwargs["dropout"]
    assert model.task.translates() == "B -> A (zebra -> horse)" and model.task.method == "cyclegan"
    assert model.task.source == fetched[0]

    by_url = load_generator(
        "https://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/style_monet.pth"
    )
    assert by_url.task.translates() == "B -> A (photo -> Monet painting)"
    assert len(hub.OFFICIAL_MODELS) == 18 + 5
    assert sum(k.startswith("cyclegan:") for k in hub.OFFICIAL_MODELS) == 18
    with pytest.raises(ValueError, match="published no generator for the other direction"):
        load_generator("cyclegan:style_cezanne", direction="AtoB")
    with pytest.raises(
        ValueError, match=r"unknown official model 'cyclegan:horse2cat'.*horse2zebra"
    ):
        load_generator("cyclegan:horse2cat")


def test_another_codebases_resnet_keys_with_affine_instance_norm_load(tmp_path: Path) -> None:
    # vintagify's G_A2B: the reference's indices, blocks named "block", affine InstanceNorm.
    state = _resnet_state(0, norm="instance_affine", blocks=9)
    for k, v in state.items():
        if k.endswith(".weight") and v.ndim == 1:
            v.uniform_(0.5, 1.5)  # scales away from 1, so a dropped affine would show
    foreign = {k.replace(".conv_block.", ".block."): v for k, v in state.items()}
    assert any(".block.1." in k for k in foreign)
    torch.save(foreign, tmp_path / "G_A2B_epoch33.pth")
    model = load_generator(tmp_path / "G_A2B_epoch33.pth")
    assert model.architecture == "resnet_9blocks"
    assert (
        model.network_kwargs["norm"] == "instance_affine"
        and model.network_kwargs["padding"] == "reflect"
    )
    source = networks.create_generator("resnet_9blocks", ngf=4, norm="instance_affine")
    source.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(model(x), source.eval()(x), atol=1e-6)


# --------------------------------------------------------------------------------------------
# ONNX export of CycleGAN's generators
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["instance"])
def test_instance_norm_resnet_exports_and_matches_onnx_runtime(tmp_path: Path, norm: str) -> None:
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is in requirements.txt")
    from pix2pix.export import export_onnx

    torch.manual_seed(0)
    model = Pix2PixGenerator("resnet_6blocks", {"ngf": 4, "norm": norm, "dropout": False})
    networks.init_weights(model).eval()
    path = tmp_path / "g.onnx"
    assert export_onnx(model, path, height=32, width=48).passed
    x = torch.rand(2, 3, 40, 24) * 2 - 1  # another size and batch through the same graph
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad(), warnings.catch_warnings():
        expected = model(x).numpy()
    got = session.run(None, {"input": x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4
