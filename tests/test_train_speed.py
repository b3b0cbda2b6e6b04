"""Training speed options that must not change what is trained: ``--compile`` (torch.compile of
the training step) and ``--cache-images`` (decoded images kept in memory).

The compiled runs use a small U-Net (5 levels on 32-px crops, 16x16 D): a compilation takes tens of
seconds on a small CPU, so the module compiles twice in all (one fp32 run, one bf16 resume).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from pix2pix import load_generator
from tests.test_train import TINY, assert_same_weights, latest_weights, run, summary, write_aligned
from train import checkpoint as ckpt
from train import train as T

SMALL = [
    *TINY, "--num-downs", "5", "--load-size", "36", "--crop-size", "32", "--patch", "16",
]  # fmt: skip
NO_COMPILER = T.compiler_problem(torch.device("cpu"))
needs_compiler = pytest.mark.skipif(
    NO_COMPILER is not None, reason=f"torch.compile cannot build CPU kernels here: {NO_COMPILER}"
)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ (4 pairs) and val/ (2 pairs) in the aligned A|B format."""
    root = tmp_path_factory.mktemp("pairs")
    write_aligned(root / "train", 4)
    write_aligned(root / "val", 2, first_seed=100)
    return root


def _keys(out: Path) -> dict[str, list[str]]:
    folder = ckpt.find_checkpoint(out)
    assert folder is not None
    return {net: sorted(sd) for net, sd in ckpt.load_checkpoint(folder).weights.items()}


# --------------------------------------------------------------------------------------------
# --compile
# --------------------------------------------------------------------------------------------


def test_compile_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(T, "compiler_problem", lambda device: None)
    assert T.parse_args(["--data", "d", "--out", "o"]).compile == "off"
    assert T.resolve_compile("off", device=cpu) == (False, "as asked")
    # Not given: the log says it is the default, and how to turn it on.
    assert T.resolve_compile("off", device=cpu, default=True) == (
        False,
        "the default; --compile on to compile",
    )
    assert T.resolve_compile("on", device=cpu) == (True, "as asked")
    with pytest.raises(ValueError, match="unknown compile choice 'auto'"):
        T.resolve_compile("auto", device=cpu)


def test_no_cxx_compiler_trains_uncompiled_with_a_warning(pairs: Path, tmp_path: Path) -> None:
    import torch._inductor.config as inductor

    out = tmp_path / "run"
    # inductor looks for the compilers listed here; none of them exists.
    with inductor.patch({"cpp.cxx": ("no-such-c++-compiler",)}):
        problem = T.compiler_problem(torch.device("cpu"))
        assert problem is not None and "no C++ compiler" in problem
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            argv = ["--data", pairs, "--out", out, *SMALL, "--compile", "on", "--max-steps", "1"]
            assert run(*argv) == 0
    assert any("training without torch.compile: no C++ compiler" in str(w.message) for w in caught)
    assert summary(out)["compiled"] is False and summary(out)["steps"] == 1


@pytest.fixture(scope="module")
def eager_and_compiled(pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One fp32 step of the same run, uncompiled and compiled (the module's first compile)."""
    root = tmp_path_factory.mktemp("compile")
    fp32 = [*SMALL, "--mixed-precision", "no", "--max-steps", "1"]
    assert run("--data", pairs, "--out", root / "eager", *fp32, "--compile", "off") == 0
    assert run("--data", pairs, "--out", root / "compiled", *fp32, "--compile", "on") == 0
    return root / "eager", root / "compiled"


@needs_compiler
def test_compiled_step_trains_as_the_eager_one(eager_and_compiled: tuple[Path, Path]) -> None:
    eager, compiled = eager_and_compiled
    assert summary(compiled)["compiled"] is True and summary(eager)["compiled"] is False
    assert summary(compiled)["first_step_seconds"] > 0
    # Checkpoints hold the modules' own state dicts: no "_orig_mod." from torch.compile's wrapper.
    assert _keys(compiled) == _keys(eager)
    assert not any("_orig_mod" in k for keys in _keys(compiled).values() for k in keys)
    # Random ops run as in eager mode: the same dropout masks, so the same losses up to rounding.
    for name, value in summary(eager)["losses"].items():
        assert summary(compiled)["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-5)
    one, other = latest_weights(compiled), latest_weights(eager)
    worst = max((one[k].double() - other[k].double()).abs().max().item() for k in one)
    assert worst <= 2e-5, f"weights differ by up to {worst} (other dropout masks: ~4e-4)"
    # The model and its card do not say how the step was run.
    a, b = load_generator(eager), load_generator(compiled)
    assert a.config()["network"] == b.config()["network"]
    assert {**asdict(a.task), "metrics": None} == {**asdict(b.task), "metrics": None}


@needs_compiler
def test_resume_across_compile_on_and_off(eager_and_compiled: tuple[Path, Path]) -> None:
    eager, compiled = eager_and_compiled
    # A compiled run goes on uncompiled ...
    assert run("--resume", compiled, "--compile", "off", "--max-steps", "2") == 0
    # ... and an uncompiled one compiled, in bf16 with channels-last tensors (what
    # --mixed-precision auto picks on a CPU with native bf16).
    assert (
        run("--resume", eager, "--compile", "on", "--mixed-precision", "bf16", "--max-steps", "2")
        == 0
    )
    for out, was_compiled in ((compiled, False), (eager, True)):
        done = summary(out)
        assert done["steps"] == 2 and done["images"] == 2 and done["compiled"] is was_compiled
        assert all(math.isfinite(v) for v in done["losses"].values())
        assert ckpt.load_checkpoint(ckpt.find_checkpoint(out)).step == 2
    assert _keys(compiled) == _keys(eager)


# --------------------------------------------------------------------------------------------
# --cache-images
# --------------------------------------------------------------------------------------------


def test_cached_images_train_the_same_weights(pairs: Path, tmp_path: Path) -> None:
    common = ["--data", pairs, *SMALL, "--compile", "off", "--max-steps", "5"]
    assert run(*common, "--out", tmp_path / "off", "--cache-images", "off") == 0
    assert run(*common, "--out", tmp_path / "on", "--cache-images", "on", "--workers", "1") == 0
    assert_same_weights(latest_weights(tmp_path / "on"), latest_weights(tmp_path / "off"))


def test_cache_budget_is_shared_by_processes_and_spawned_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import multiprocessing

    monkeypatch.setattr(T, "available_memory", lambda: 8000)
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda: "fork")
    assert T.cache_budget(workers=4, local_processes=2) == 8000 * T.CACHE_SHARE // 2
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda: "spawn")
    assert T.cache_budget(workers=4, local_processes=2) == 8000 * T.CACHE_SHARE // 10
    monkeypatch.setattr(T, "available_memory", lambda: None)
    assert T.cache_budget(workers=0, local_processes=1) is None
