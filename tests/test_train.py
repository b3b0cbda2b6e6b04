"""Tests for train/train.py and train/checkpoint.py: tiny runs in tmp_path, on the CPU.

Networks are unet_128 with 4 filters on 128-pixel crops (loaded at 136, so crops are random):
a step takes a few hundred milliseconds at most. Runs call ``main([...])`` in-process; only the
2-process run and the kill-during-save run need subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from PIL import Image

from pix2pix import load_generator
from train import checkpoint as ckpt
from train.data import make_aligned
from train.train import (
    EpochShuffle,
    SeededItems,
    _schedule,
    lr_factor,
    main,
    parse_args,
    resolve_mixed_precision,
    warmup_steps,
)

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--netG", "unet_128", "--ngf", "4", "--ndf", "4",
    "--load-size", "136", "--crop-size", "128",
    "--epochs", "1", "--epochs-decay", "1",
    "--cpu", "--workers", "0", "--sample-every", "0", "--log-every", "1",
]  # fmt: skip


def run(*argv: str | Path) -> int:
    """``main`` in this process, with Accelerate's process-wide state reset afterwards."""
    try:
        return main([str(a) for a in argv])
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def summary(out: Path) -> dict:
    return json.loads((out / "train_summary.json").read_text())


def latest_weights(out: Path) -> dict[str, torch.Tensor]:
    """G's and D's weights in the run's latest checkpoint, keys prefixed by network."""
    folder = ckpt.find_checkpoint(out)
    assert folder is not None
    loaded = ckpt.load_checkpoint(folder)
    return {f"{net}.{k}": v for net, sd in loaded.weights.items() for k, v in sd.items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    assert worst <= 1e-5, f"weights differ by up to {worst}"


# --------------------------------------------------------------------------------------------
# Data written by the tests: smooth random images, target = inverted input (easy to learn)
# --------------------------------------------------------------------------------------------


def _smooth(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return coarse.resize((size, size), Image.BICUBIC)


def _invert(img: Image.Image) -> Image.Image:
    return Image.fromarray(255 - np.asarray(img))


def write_aligned(folder: Path, count: int, first_seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        a = _smooth(first_seed + i)
        make_aligned(a, _invert(a)).save(folder / f"img{i:02d}.png")
    return folder


def write_paired(root: Path, names: list[str], b_names: list[str] | None = None) -> Path:
    (root / "A").mkdir(parents=True, exist_ok=True)
    (root / "B").mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        _smooth(i).save(root / "A" / f"{name}.png")
    for i, name in enumerate(b_names if b_names is not None else names):
        _invert(_smooth(i)).save(root / "B" / f"{name}.jpg")
    return root


def write_photos(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        photo = np.array(_smooth(i, 48))
        photo[10:30, 12:36] = 255 - photo[10:30, 12:36]  # a rectangle gives the edge map lines
        Image.fromarray(photo).save(folder / f"photo{i}.jpg")
    return folder


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ (4 pairs) and val/ (2 pairs) in the aligned A|B format."""
    root = tmp_path_factory.mktemp("aligned")
    write_aligned(root / "train", 4)
    write_aligned(root / "val", 2, first_seed=100)
    return root


@pytest.fixture(scope="module")
def straight_run(aligned: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Weights after 6 uninterrupted steps (crossing an epoch boundary and an LR change)."""
    out = tmp_path_factory.mktemp("straight") / "run"
    assert run("--data", aligned, "--out", out, *TINY, "--max-steps", "6") == 0
    return latest_weights(out)


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------


def test_the_model_cards_schedule_counts_in_the_singular_where_a_count_is_one() -> None:
    one = parse_args(["--data", "d", "--out", "o", "--epochs", "1", "--epochs-decay", "1"])
    assert _schedule(one, 8, 8) == "8 steps (1 epoch) of a schedule of 1 + 1 decay epoch"
    assert _schedule(one, 1, 3) == "1 step (0.333 epochs) of a schedule of 1 + 1 decay epoch"
    long = parse_args(["--data", "d", "--out", "o"])  # the paper's 100 + 100
    assert _schedule(long, 1200, 8) == (
        "1200 steps (150 epochs) of a schedule of 100 + 100 decay epochs"
    )


def test_lr_policy_matches_reference_linear() -> None:
    factors = [lr_factor(e, epochs=2, epochs_decay=3) for e in range(5)]
    assert factors == pytest.approx([1.0, 1.0, 0.75, 0.5, 0.25])


def test_epoch_order_and_crops_depend_only_on_seed_epoch_index(aligned: Path) -> None:
    from train.data import PairedDataset

    sampler = EpochShuffle(10, seed=3)
    sampler.set_epoch(1)
    first = list(sampler)
    assert first == list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in first} == {1}
    sampler.set_epoch(2)
    assert [i for _, i in sampler] != [i for _, i in first]

    items = SeededItems(PairedDataset(aligned, load_size=136, crop_size=128), seed=0)
    before = torch.get_rng_state()
    one = items[(4, 1)]["input"]
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left alone
    torch.manual_seed(1234)
    assert torch.equal(items[(4, 1)]["input"], one)
    assert not torch.equal(items[(5, 1)]["input"], one)  # another epoch, another crop


def test_seeded_items_leave_the_cuda_generators_alone(
    aligned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # torch.manual_seed reseeds CUDA's generators too, which would reset a GPU run's dropout
    # masks at every example; the CPU generator alone drives the crops and flips.
    from train.data import PairedDataset

    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    items = SeededItems(PairedDataset(aligned, load_size=136, crop_size=128), seed=0)
    items[(0, 1)]
    assert reseeded == []


def test_warmup_steps_leave_a_steady_part() -> None:
    assert [warmup_steps(n) for n in (0, 4, 5, 10, 60, 1000)] == [0, 0, 1, 2, 12, 20]


def test_options_given_are_told_from_defaults() -> None:
    args = parse_args(["--resume", "x", "--ngf", "64", "--no-flip"])
    assert set(args.given) == {"resume", "ngf", "no_flip"}
    with pytest.raises(SystemExit):
        parse_args(["--data", "x"])  # --out missing


def test_checkpoint_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "checkpoint"
    weights = {"generator": {"w": torch.ones(3)}}
    ckpt.save_checkpoint(root, 1, weights=weights, state={"step": 1}, config={"a": 1})

    real_save = torch.save

    def failing_save(obj: object, f: str | os.PathLike) -> None:
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(root, 2, weights=weights, state={"step": 2}, config={"a": 2})
    monkeypatch.setattr(torch, "save", real_save)

    assert [p.name for p in root.iterdir()] == ["step-000000001"]  # no partial folder left
    loaded = ckpt.load_checkpoint(ckpt.find_checkpoint(tmp_path))
    assert loaded.step == 1 and loaded.config == {"a": 1}
    assert torch.equal(loaded.weights["generator"]["w"], torch.ones(3))


def test_rng_state_round_trips_through_weights_only_load(tmp_path: Path) -> None:
    import random

    state = ckpt.capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    ckpt.restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


def test_run_writes_a_loadable_model_with_card_samples_logs_and_checkpoint(
    aligned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    argv = [*TINY, "--sample-every", "1", "--input-kind", "photo", "--dataset", "tiny"]
    assert run("--data", aligned, "--out", out, *argv, "--max-steps", "2") == 0
    # The CLI's process keeps freed memory for the next step (pix2pix.allocator) and says so;
    # that is the process's, not the recipe's, so the run's config leaves it out.
    logged = capsys.readouterr().out
    assert any(line.startswith("malloc: ") for line in logged.splitlines()), logged

    model = load_generator(out)
    assert model.architecture == "unet_128" and model.network_kwargs["ngf"] == 4
    task = model.task
    assert (task.input_kind, task.dataset) == ("photo", "tiny")
    assert (task.train_size, task.patch) == (128, 70)
    assert task.metrics["steps"] == 2 and 0 < task.metrics["val_l1"] < 2
    assert "100 x L1" in task.notes
    card = (out / "README.md").read_text()
    assert "pix2pix" in card and "unet_128" in card and "val_l1" in card

    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_00000001.png",
        "step_00000002.png",
    ]
    with Image.open(out / "samples" / "step_00000002.png") as grid:
        assert grid.width > 3 * 128 and grid.height > 2 * 128  # 3 columns, a row per val image
    assert any((out / "logs").iterdir())

    folder = ckpt.find_checkpoint(out)
    assert folder == out / "checkpoint" / "step-000000002"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "config.json",
        "discriminator.safetensors",
        "generator.safetensors",
        "training_state.pt",
    ]
    assert "malloc" not in json.loads((folder / "config.json").read_text())
    state = torch.load(folder / "training_state.pt", weights_only=True)
    assert (state["step"], state["epoch"], state["batch_in_epoch"]) == (2, 0, 2)
    assert state["processes"][0]["images"] == 2
    assert summary(out)["images"] == 2 and summary(out)["world_size"] == 1
    # Too short for a steady rate: no warm-up steps to leave out, so none is given.
    assert summary(out)["warmup_steps"] == 0 and summary(out)["steady_images_per_second"] is None


@pytest.mark.parametrize("layout", ["aligned", "paired", "photos"])
def test_each_data_format_trains(layout: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    if layout == "aligned":
        write_aligned(data, 3)
    elif layout == "paired":
        write_paired(data, ["a", "b", "c"])
    else:
        write_photos(data, 3)
    out = tmp_path / "run"
    assert run("--data", data, "--out", out, *TINY, "--max-steps", "2") == 0
    assert summary(out)["steps"] == 2
    assert load_generator(out).task.dataset == "data"


@pytest.mark.parametrize(
    ("options", "patch", "d_in"),
    [
        (["--patch", "1"], 1, 6),
        (["--patch", "16"], 16, 6),
        (["--patch", "70", "--gan-mode", "lsgan"], 70, 6),
        (["--patch", "286"], 286, 6),
        (["--unconditional"], 70, 3),
        (["--no-gan"], None, None),
        (["--mixed-precision", "bf16", "--direction", "BtoA", "--no-flip"], 70, 6),
    ],
)
def test_discriminator_variants(
    aligned: Path, tmp_path: Path, options: list[str], patch: int | None, d_in: int | None
) -> None:
    out = tmp_path / "run"
    assert run("--data", aligned, "--out", out, *TINY, "--max-steps", "1", *options) == 0
    assert load_generator(out).task.patch == patch
    weights = ckpt.load_checkpoint(ckpt.find_checkpoint(out)).weights
    if d_in is None:
        assert "discriminator" not in weights
    else:
        first_conv = min(k for k in weights["discriminator"] if k.endswith("weight"))
        assert weights["discriminator"][first_conv].shape[1] == d_in


def test_l1_decreases_on_a_learnable_mapping(aligned: Path, tmp_path: Path) -> None:
    # Target = inverted input. Same seed, so both runs start from the same weights.
    common = ["--data", aligned, *TINY, "--epochs", "100", "--lr", "2e-3"]
    assert run(*common, "--out", tmp_path / "start", "--max-steps", "0") == 0
    assert run(*common, "--out", tmp_path / "trained", "--max-steps", "30") == 0
    before = load_generator(tmp_path / "start").task.metrics["val_l1"]
    after = load_generator(tmp_path / "trained").task.metrics["val_l1"]
    assert after < 0.85 * before, (before, after)
    # 30 steps: the first 6 are left out of the steady rate (what a GPU benchmark compares).
    trained = summary(tmp_path / "trained")
    assert trained["warmup_steps"] == 6 and trained["steady_images_per_second"] > 0


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_matches_an_uninterrupted_run(
    aligned: Path, tmp_path: Path, straight_run: dict, workers: int
) -> None:
    out = tmp_path / "run"
    argv = ["--data", aligned, "--out", out, *TINY, "--workers", str(workers)]
    assert run(*argv, "--max-steps", "3") == 0
    assert ckpt.load_checkpoint(ckpt.find_checkpoint(out)).step == 3
    assert run("--resume", out, "--max-steps", "6") == 0
    assert summary(out)["steps"] == 6 and summary(out)["images"] == 6
    assert_same_weights(latest_weights(out), straight_run)


def test_kill_during_save_keeps_the_last_checkpoint(
    aligned: Path, tmp_path: Path, straight_run: dict
) -> None:
    out = tmp_path / "run"
    # The child dies by SIGKILL halfway through writing its second checkpoint (step 6).
    child = """
import os, signal, sys
import torch
from train.train import main
real_save, calls = torch.save, []
def dying_save(obj, f, *args, **kwargs):
    calls.append(f)
    if len(calls) == 2:
        with open(f, "wb") as handle:
            handle.write(b"half a checkpoint")
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = dying_save
sys.exit(main(sys.argv[1:]))
"""
    argv = ["--data", aligned, "--out", out, *TINY, "--save-every", "3", "--max-steps", "6"]
    # Steps 1-3 run in the child, 4-6 here, and the uninterrupted run here: with as many threads
    # as this process, since bf16 kernels (--mixed-precision auto on AMX / AVX512-BF16 CPUs) sum
    # in a thread-count-dependent order; exact resume assumes the same thread count.
    threads = torch.get_num_threads()
    print(f"\n{threads} threads, precision {resolve_mixed_precision('auto', cpu=True)}")
    proc = subprocess.run(
        [sys.executable, "-c", child, *map(str, argv)],
        cwd=REPO,
        env=_child_env(threads),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    leftovers = [p.name for p in (out / "checkpoint").iterdir()]
    partial = [n for n in leftovers if n.startswith(".step-000000006.") and n.endswith(".part")]
    assert "step-000000003" in leftovers and partial
    assert ckpt.load_checkpoint(ckpt.find_checkpoint(out)).step == 3

    assert run("--resume", out) == 0  # same options as the killed run: on to step 6
    assert not any(p.name.startswith(".") for p in (out / "checkpoint").iterdir())
    assert_same_weights(latest_weights(out), straight_run)


def test_truncated_image_is_skipped_with_a_warning(tmp_path: Path) -> None:
    data = write_aligned(tmp_path / "data", 3)
    good = (data / "img00.png").read_bytes()
    (data / "broken.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "run"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run("--data", data, "--out", out, *TINY, "--max-steps", "3") == 0
    assert any("broken.png" in str(w.message) for w in caught)
    assert summary(out)["steps"] == 3


def test_unmatched_names_fail_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_paired(tmp_path / "data", ["cat", "dog"], ["cat", "dig"])
    out = tmp_path / "run"
    assert run("--data", data, "--out", out, *TINY) == 2
    err = capsys.readouterr().err
    assert "do not match" in err and "dog" in err and "dig" in err
    assert not out.exists()


def test_side_by_side_pairs_of_non_square_images_need_format_aligned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):  # 4:3 pairs side by side: 8:3, which photos are not
        a = _smooth(i).resize((48, 36))
        make_aligned(a, _invert(a)).save(data / f"img{i}.png")
    out = tmp_path / "run"
    assert run("--data", data, "--out", out, *TINY) == 2
    assert "pass --format aligned" in capsys.readouterr().err and not out.exists()
    assert run("--data", data, "--out", out, *TINY, "--format", "aligned", "--max-steps", "1") == 0


def test_resume_refusals(aligned: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run("--resume", tmp_path / "empty") == 2
    assert "no training checkpoint" in capsys.readouterr().err

    out = tmp_path / "run"
    assert run("--data", aligned, "--out", out, *TINY, "--max-steps", "1") == 0
    capsys.readouterr()
    assert run("--resume", out, "--ngf", "8", "--patch", "16") == 2
    err = capsys.readouterr().err
    assert "--ngf 8 (the checkpoint has 4)" in err and "--patch 16" in err
    assert run("--data", aligned, "--out", out, *TINY) == 2  # a new run over an old one
    assert "--resume" in capsys.readouterr().err


def test_crop_size_that_does_not_fit_is_refused(
    aligned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run("--data", aligned, "--out", tmp_path / "a", *TINY, "--crop-size", "64") == 2
    err = capsys.readouterr().err
    assert "multiples of 128" in err and "--num-downs 6" in err
    small = [*TINY, "--netG", "resnet_6blocks", "--crop-size", "64", "--patch", "286"]
    assert run("--data", aligned, "--out", tmp_path / "b", *small) == 2
    assert "too small for the 286x286 discriminator" in capsys.readouterr().err


def test_init_from_fine_tunes_a_saved_model(aligned: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    assert run("--data", aligned, "--out", base, *TINY, "--max-steps", "1") == 0
    tuned = tmp_path / "tuned"
    # --netG is ignored: the architecture comes from the model.
    argv = [*TINY, "--netG", "unet_256", "--init-from", base, "--patch", "16"]
    assert run("--data", aligned, "--out", tuned, *argv, "--max-steps", "2") == 0
    before, after = load_generator(base), load_generator(tuned)
    assert after.config()["network"] == before.config()["network"]
    assert after.task.patch == 16 and "Fine-tuned from" in after.task.notes
    changed = [
        k for k, v in after.state_dict().items() if not torch.equal(v, before.state_dict()[k])
    ]
    assert changed
    # A fine-tuned run resumes with the generator it was started from.
    assert run("--resume", tuned, "--max-steps", "3") == 0
    assert load_generator(tuned).task.metrics["steps"] == 3


def test_push_to_hub_uploads_the_final_model(
    aligned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pushed = []
    monkeypatch.setattr(
        "train.train.push_generator", lambda model, repo: pushed.append((model, repo)) or "url"
    )
    out = tmp_path / "run"
    argv = ["--data", aligned, "--out", out, *TINY, "--max-steps", "1"]
    assert run(*argv, "--push-to-hub", "me/tiny") == 0
    assert len(pushed) == 1 and pushed[0][1] == "me/tiny"
    assert pushed[0][0].task.train_size == 128
    assert "me/tiny" in (out / "README.md").read_text()


# --------------------------------------------------------------------------------------------
# Two processes (DDP over gloo on the CPU)
# --------------------------------------------------------------------------------------------


def _child_env(threads: int = 1) -> dict[str, str]:
    """This environment for a child Python process with ``threads`` intra-op threads; a child
    whose weights are compared with this process's must have as many as this one."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(*argv: str | Path) -> subprocess.CompletedProcess:
    # `accelerate launch --cpu` starts a single process whatever --num_processes says; torchrun
    # (`--multi_gpu`) starts two, and the script's --cpu makes them use gloo on the CPU.
    launch = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        "-m", "train.train",
    ]  # fmt: skip
    proc = subprocess.run(
        [*launch, *map(str, argv)],
        cwd=REPO,
        env=_child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_processes_train_save_and_resume(
    aligned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    argv = ["--data", aligned, *TINY]
    proc = _launch_two(*argv, "--out", straight)
    assert "on 2 processes, device cpu" in proc.stdout
    result = summary(straight)
    # 4 training images: 2 steps per epoch, each process sees one image per step.
    assert result["world_size"] == 2 and result["steps"] == 4
    assert result["images_per_process"] == [4, 4]
    model = load_generator(straight)
    assert model.task.metrics["steps"] == 4 and "batch 1 x 2 processes" in model.task.notes
    state = ckpt.load_checkpoint(ckpt.find_checkpoint(straight)).state
    assert len(state["processes"]) == 2
    rngs = [p["rng"]["torch"] for p in state["processes"]]
    assert not torch.equal(*rngs)  # each process has its own dropout stream

    _launch_two(*argv, "--out", stopped, "--max-steps", "3")  # stops mid-epoch
    _launch_two("--resume", stopped, "--max-steps", "4")
    assert summary(stopped)["images_per_process"] == [4, 4]
    assert_same_weights(latest_weights(stopped), latest_weights(straight))

    assert run("--resume", stopped) == 2  # in one process: the batches would differ
    err = capsys.readouterr().err
    assert "on 1 process: it was trained on 2 processes" in err
    again = f"accelerate launch --multi_gpu --num_processes 2 -m train.train --resume {stopped}"
    assert again in err


# --------------------------------------------------------------------------------------------
# Options changed on --resume: in effect from the resumed step, as in a fresh run, or refused
# --------------------------------------------------------------------------------------------


def _spy_optimizer(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Record G's and D's LR and betas at every training step."""
    import train.train as train_module

    seen: list[dict] = []
    real = train_module.train_step

    def spy(batch: dict, nets, accelerator, args) -> dict:
        g, d = nets.opt_G.param_groups[0], nets.opt_D.param_groups[0]
        seen.append({"lr_G": g["lr"], "lr_D": d["lr"], "betas": tuple(g["betas"])})
        return real(batch, nets, accelerator, args)

    monkeypatch.setattr(train_module, "train_step", spy)
    return seen


def test_every_option_is_fixed_applied_or_run_only_on_resume() -> None:
    from train.train import FIXED_ON_RESUME, RECIPE_OPTIONS, RUN_OPTIONS, build_parser

    dests = {a.dest for a in build_parser()._actions} - {"help"}
    groups = [set(FIXED_ON_RESUME), set(RECIPE_OPTIONS), set(RUN_OPTIONS)]
    assert set.union(*groups) == dests, "classify every new option for --resume"
    assert sum(len(g) for g in groups) == len(dests), "an option is in two classes"


def test_a_finished_run_resumed_with_a_longer_schedule_trains_at_its_lr(
    aligned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The example: 1 + 1 epochs (8 steps of 4 images), then --epochs 2 --epochs-decay 2.
    out = tmp_path / "run"
    assert run("--data", aligned, "--out", out, *TINY) == 0
    seen = _spy_optimizer(monkeypatch)
    assert run("--resume", out, "--epochs", "2", "--epochs-decay", "2", "--max-steps", "10") == 0
    resumed = seen[:]
    # A fresh run with the new options, at the same steps (9 and 10: epoch 2).
    seen.clear()
    fresh = tmp_path / "fresh"
    longer = ["--epochs", "2", "--epochs-decay", "2", "--max-steps", "10"]
    assert run("--data", aligned, "--out", fresh, *TINY, *longer) == 0
    expected = 2e-4 * lr_factor(2, 2, 2)
    assert [s["lr_G"] for s in resumed] == pytest.approx([expected] * 2)
    assert resumed == seen[8:10]
    notes = load_generator(out).task.notes
    assert "of a schedule of 2 + 2 decay epochs" in notes
    assert "Resumed at step 8 with --epochs 1 -> 2, --epochs-decay 1 -> 2" in notes


def test_lr_and_betas_changed_on_resume_apply_from_that_step(
    aligned: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert run("--data", aligned, "--out", out, *TINY, "--max-steps", "3") == 0
    seen = _spy_optimizer(monkeypatch)
    assert run("--resume", out, "--lr", "1e-3", "--beta1", "0.9", "--max-steps", "6") == 0
    # Step 4 ends epoch 0 (factor 1); steps 5 and 6 are in epoch 1 (factor 1/2).
    assert [s["lr_G"] for s in seen] == pytest.approx([1e-3, 5e-4, 5e-4])
    assert [s["lr_D"] for s in seen] == pytest.approx([1e-3, 5e-4, 5e-4])
    assert {s["betas"] for s in seen} == {(0.9, 0.999)}
    # A second resume keeps the history; what the card says is what was used, and when.
    seen.clear()
    assert run("--resume", out, "--lambda-l1", "10", "--max-steps", "7") == 0
    assert seen[0]["lr_G"] == pytest.approx(5e-4) and seen[0]["betas"] == (0.9, 0.999)
    notes = load_generator(out).task.notes
    assert "Adam lr 0.001, betas (0.9, 0.999)" in notes and "+ 10 x L1" in notes
    assert "Resumed at step 3 with --lr 0.0002 -> 0.001, --beta1 0.5 -> 0.9" in notes
    assert "Resumed at step 6 with --lambda-l1 100.0 -> 10.0" in notes


def test_options_that_change_the_examples_are_refused_on_resume(
    aligned: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    assert run("--data", aligned, "--out", out, *TINY, "--max-steps", "1") == 0
    capsys.readouterr()
    for option, value in (("--direction", "BtoA"), ("--format", "photos")):
        assert run("--resume", out, option, value) == 2
        assert f"{option} {value!r}" in capsys.readouterr().err
