"""The native kernel of the hint propagation's rounds (pix2pix.hint_spread): built once per CPU,
values identical to PyTorch's rounds, and PyTorch's rounds wherever it cannot be built."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from pix2pix import backends, hint_spread, networks

needs_cxx = pytest.mark.skipif(
    backends.cxx_compiler() is None, reason="no C++ compiler here: the kernel cannot be built"
)
CPU = {"model": "test CPU", "flags": ["avx2"]}


def _grid(b: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seed and gate as HintPropagation.cells makes them: walls, a few source cells."""
    g = torch.Generator().manual_seed(seed)
    free = (torch.rand(b, 1, h, w, generator=g) > 0.25).float()
    source = (torch.rand(b, 1, h, w, generator=g) > 0.97).float() * free
    seed_ = torch.cat([torch.rand(b, 3, h, w, generator=g) * source, source], 1)
    return seed_, free * (1 - source)


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No kernel loaded in this process, whatever an earlier test loaded."""
    monkeypatch.setattr(hint_spread, "_library", None)
    monkeypatch.setattr(hint_spread, "_loaded_from", None)


@needs_cxx
@pytest.mark.usefixtures("fresh")
def test_the_kernel_gives_pytorchs_values_exactly(tmp_path: Path) -> None:
    assert hint_spread.load(backends.cxx_compiler(), tmp_path, CPU)
    assert hint_spread.loaded()
    seed, gate = _grid(2, 40, 56, seed=0)  # two images, not square
    seed[1] = 0  # the second has no source: its rounds are skipped, its state stays zero
    gate[1] = 1
    for steps in (1, 7, 96):
        want = networks.HintPropagation(steps=steps)._spread(seed, gate)
        got = torch.ops.pix2pix.hint_spread(seed, gate, steps)
        assert got.is_contiguous() and got.dtype == torch.float32
        assert torch.equal(got, want), steps
    assert torch.equal(got[1], torch.zeros(4, 40, 56))
    assert got[0, 3].gt(0).float().mean() > 0.3  # colour travelled


@needs_cxx
@pytest.mark.usefixtures("fresh")
def test_the_kernel_is_built_once_per_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiler = backends.cxx_compiler()
    assert hint_spread.load(compiler, tmp_path, CPU)
    built = hint_spread.library_path(compiler, tmp_path, CPU)
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(hint_spread, "_library", None)
    assert hint_spread.load(compiler, tmp_path, CPU)  # found, not built again
    assert built.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [built.name]  # no partial file left
    other = hint_spread.library_path(compiler, tmp_path, {**CPU, "flags": ["avx512f"]})
    assert other != built  # a library built for another CPU is never loaded


@pytest.mark.usefixtures("fresh")
def test_without_the_kernel_the_operator_runs_pytorchs_rounds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A compiler that fails: the reason is logged, and the operator (which a compiled package
    # may call) still answers, with PyTorch's rounds.
    with caplog.at_level(logging.WARNING, logger="pix2pix.hint_spread"):
        assert not hint_spread.load("false", tmp_path, CPU)
    assert "stays on PyTorch's rounds" in caplog.text and "building hint_spread.c" in caplog.text
    assert not hint_spread.loaded()
    assert not list(tmp_path.iterdir())
    seed, gate = _grid(1, 16, 16, seed=1)
    want = networks.HintPropagation(steps=12)._spread(seed, gate)
    assert torch.equal(torch.ops.pix2pix.hint_spread(seed, gate, 12), want)


@needs_cxx
@pytest.mark.usefixtures("fresh")
def test_the_operator_refuses_a_seed_of_the_wrong_shape(tmp_path: Path) -> None:
    assert hint_spread.load(backends.cxx_compiler(), tmp_path, CPU)
    seed, gate = _grid(1, 8, 8, seed=2)
    with pytest.raises(ValueError, match=r"seed \(B, 4, h, w\)"):
        torch.ops.pix2pix.hint_spread(seed[:, :3], gate, 4)


def test_an_export_for_inductor_calls_the_given_kernel_only_with_a_dab() -> None:
    # compiled_export(spread) puts the kernel in the branch that runs the rounds: a drawing
    # without a dab still skips them without calling anything.
    torch.manual_seed(0)
    g = networks.create_generator("unet_128", ngf=4, hint_propagation=6)
    networks.init_weights(g)
    g.eval()
    plain = torch.ones(1, 3, 128, 128)
    plain[..., 60:63, :] = -1
    dabbed = plain.clone()
    dabbed[0, :, 20:30, 20:30] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]
    with torch.no_grad(), networks.compiled_export(torch.ops.pix2pix.hint_spread):
        program = torch.export.export(g, (plain,))
    text = str(program.graph_module.code) + "".join(
        str(m.code) for m in program.graph_module.modules() if hasattr(m, "code")
    )
    assert "pix2pix.hint_spread" in text and "cond" in text
    with torch.no_grad():
        for x in (plain, dabbed):
            assert torch.allclose(program.module()(x), g(x), atol=1e-6)


@needs_cxx
@pytest.mark.usefixtures("fresh")
def test_with_avx512_switched_off_the_kernel_is_built_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bench emulates an AVX2-only CPU by capping PyTorch and oneDNN (backends.avx512_off); the
    # kernel then leaves AVX-512 out too, as -march=native would on such a CPU.
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path))
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    g = networks.create_generator("unet_128", ngf=4, hint_propagation=6)
    name = backends._native_spread(g)
    folder, compiler = backends.cache_dir() / "native", backends.cxx_compiler()
    capped = hint_spread.library_path(compiler, folder, backends.cpu_info(), avx512=False)
    assert name == capped.name and capped.is_file()
    assert capped != hint_spread.library_path(compiler, folder, backends.cpu_info())
    assert "-mno-avx512f" in hint_spread.flags(avx512=False)
    seed, gate = _grid(1, 32, 32, seed=3)
    want = networks.HintPropagation(steps=20)._spread(seed, gate)
    assert torch.equal(torch.ops.pix2pix.hint_spread(seed, gate, 20), want)
    assert backends._native_spread(networks.create_generator("unet_128", ngf=4)) is None


@needs_cxx
@pytest.mark.usefixtures("fresh")
def test_a_damaged_library_is_built_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    compiler = backends.cxx_compiler()
    path = hint_spread.library_path(compiler, tmp_path, CPU)
    path.write_bytes(b"junk")  # cut short, or written by something else
    with caplog.at_level(logging.WARNING, logger="pix2pix.hint_spread"):
        assert hint_spread.load(compiler, tmp_path, CPU)
    assert "did not load" in caplog.text and "building it again" in caplog.text
    assert path.stat().st_size > 1000
    seed, gate = _grid(1, 16, 16, seed=4)
    want = networks.HintPropagation(steps=9)._spread(seed, gate)
    assert torch.equal(torch.ops.pix2pix.hint_spread(seed, gate, 9), want)
