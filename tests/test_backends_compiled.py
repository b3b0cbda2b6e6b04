"""The compiled candidates (AOTInductor): built once for one shape, within the PSNR rule against
fp32 eager, other shapes without compiling, their package under $PIX2PIX_CACHE and loaded from
there by a second start, unavailable without a C++ compiler, and never compiled on the thread of
an app request.

Compiling even a tiny generator takes seconds of g++ (minutes on a loaded 2-vCPU machine), so the
tests that compile share one cache and one model: the first compiles, the others mostly load its
package."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import backends, networks
from pix2pix.app.registry import load_registry
from pix2pix.app.service import ModelStore
from pix2pix.hub import save_generator
from tests.app_fixtures import sketch_image, tiny_model

needs_cxx = pytest.mark.skipif(
    backends.cxx_compiler() is None, reason="no C++ compiler here: nothing compiles"
)
SHAPE = (1, 3, 128, 128)  # unet_128: the smallest input it takes, and the app's size for it
OTHER = (1, 3, 128, 256)


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("compiled-cache")


@pytest.fixture(autouse=True)
def shared_cache(_module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One $PIX2PIX_CACHE for the module, inductor's files inside it (no user setting)."""
    monkeypatch.setenv("PIX2PIX_CACHE", str(_module_cache))
    monkeypatch.delenv(backends.INDUCTOR_CACHE_ENV, raising=False)
    return _module_cache


@pytest.fixture(params=[False, True], ids=["fp32-cpu", "native-bf16-cpu"])
def cpu_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both kinds of CPU, whichever this one is (as in tests/test_backends.py)."""
    monkeypatch.setattr(backends, "native_bf16", lambda: request.param)
    print(f"\nsimulated native bf16 {request.param}, real CPU {backends.cpu_info()}")
    return request.param


def _model():
    return tiny_model("edges", seed=1)  # the app test's model too: the same kernels


def _ctx(model, device: str = "cpu") -> backends.Context:
    return backends.Context(model, torch.device(device), True, SHAPE, backends.model_hash(model))


def _candidate(name: str) -> backends.Candidate:
    return next(c for c in backends.CANDIDATES if c.name == name)


def _graphs() -> int:
    """Packages compiled in this process so far."""
    return len(backends.compiled_packages)


def _runs_eager_ops(run: backends.Runner, x: torch.Tensor) -> bool:
    """Whether a call ran PyTorch's own normalisation op (eager) rather than compiled kernels."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(x)
    return any(e.name == "aten::batch_norm" for e in prof.events())


def _fp32(model, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode(), networks.eval_mode(model, input_stats=True, noise=None):
        return model(x)


# --------------------------------------------------------------------------------------------
# Without compiling
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", backends.COMPILED)
def test_no_cxx_compiler_makes_them_unavailable(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "native_bf16", lambda: True)  # past the bf16 check
    monkeypatch.setattr(backends.shutil, "which", lambda cmd, *a, **k: None)
    assert backends.cxx_compiler() is None
    with pytest.raises(backends.Unavailable, match=r"no C\+\+ compiler"):
        _candidate(name).build(_ctx(_model()))
    # choose says so among its measurements, and measures the rest
    choice, _ = backends.choose(_ctx(_model()), [_candidate(backends.BASELINE), _candidate(name)],
                                rounds=2)  # fmt: skip
    by_name = {m.name: m for m in choice.measurements}
    assert by_name[name].status == "unavailable" and "no C++ compiler" in by_name[name].note
    assert choice.name == backends.BASELINE


def test_the_compiler_is_found_the_way_inductor_looks() -> None:
    from torch._inductor import config

    with config.patch({"cpp.cxx": (None, "no-such-compiler-here")}):
        assert backends.cxx_compiler() is None
    with config.patch({"cpp.cxx": (None, "no-such-compiler-here", "sh")}):
        assert backends.cxx_compiler().endswith("sh")


def test_not_offered_on_cuda_and_bf16_only_where_native(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not set(backends.COMPILED) & {
        c.name for c in backends.default_candidates(torch.device("cuda"))
    }
    for name in backends.COMPILED:
        with pytest.raises(backends.Unavailable, match="ZeroGPU Spaces do not support"):
            _candidate(name).build(_ctx(_model(), "cuda"))
    monkeypatch.setattr(backends, "native_bf16", lambda: False)
    with pytest.raises(backends.Unavailable, match="no native bf16"):
        _candidate("inductor-bf16-channels-last").build(_ctx(_model()))


def test_inductor_files_go_under_pix2pix_cache_unless_the_user_chose(
    shared_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    ours = shared_cache / "backends" / "inductor"
    assert backends.inductor_cache_dir() == ours
    assert backends.os.environ[backends.INDUCTOR_CACHE_ENV] == str(ours)
    # inductor's own default, written into the variable on its first use, is not a user's choice
    monkeypatch.setenv(backends.INDUCTOR_CACHE_ENV, default_cache_dir())
    assert backends.inductor_cache_dir() == ours
    # another $PIX2PIX_CACHE moves what this module set
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "other"))
    assert backends.inductor_cache_dir() == tmp_path / "other" / "backends" / "inductor"
    # the user's own setting is kept
    monkeypatch.setenv(backends.INDUCTOR_CACHE_ENV, str(tmp_path / "mine"))
    assert backends.inductor_cache_dir() == tmp_path / "mine"
    assert backends.os.environ[backends.INDUCTOR_CACHE_ENV] == str(tmp_path / "mine")


# --------------------------------------------------------------------------------------------
# Compiling (one compilation per test)
# --------------------------------------------------------------------------------------------


@needs_cxx
def test_the_compiled_candidate_matches_fp32_and_compiles_once(
    cpu_kind: bool, shared_cache: Path
) -> None:
    name = "inductor-bf16-channels-last" if cpu_kind else "inductor-fp32"
    model = _model()
    x = backends.test_input(SHAPE)
    package = backends.package_path(_ctx(model), cpu_kind)
    package.unlink(missing_ok=True)  # a first start
    before = _graphs()
    run = _candidate(name).build(_ctx(model))
    assert _graphs() == before + 1  # compiled while building, not at the first call
    assert package.is_file()

    quality = backends.psnr(run(x), _fp32(model, x))
    print(f"{name}: PSNR {quality:.1f} dB against fp32 eager")
    assert quality >= backends.MIN_PSNR
    if not cpu_kind:
        assert quality >= 60  # fp32 throughout
    assert not _runs_eager_ops(run, x)  # the compiled kernels ran
    with torch.inference_mode():
        made_in_inference_mode = x.clone()  # what dynamo's guards tell apart from x
    assert not _runs_eager_ops(run, made_in_inference_mode)

    # Another shape runs eagerly (the same copy, or its packed oneDNN twin) and compiles nothing,
    # however many times and shapes: the bound is the one compilation above.
    for shape in (OTHER, (2, *SHAPE[1:]), OTHER):
        other = backends.test_input(shape, seed=1)
        assert backends.psnr(run(other), _fp32(model, other)) >= backends.MIN_PSNR
    assert _runs_eager_ops(run, backends.test_input(OTHER))
    assert not _runs_eager_ops(run, x)  # and the compiled shape still runs compiled
    assert _graphs() == before + 1

    # What compiling produced lies under $PIX2PIX_CACHE, and a second start loads it: no
    # compiling, the same output.
    assert package.is_relative_to(shared_cache)
    again = _candidate(name).build(_ctx(model))
    assert _graphs() == before + 1
    assert torch.equal(again(x), run(x))
    assert not _runs_eager_ops(again, x)


@needs_cxx
def test_a_damaged_package_is_compiled_again(
    shared_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = _model()
    run = _candidate("inductor-fp32").build(_ctx(model))  # compiled, or loaded from the cache
    package = backends.package_path(_ctx(model), False)
    package.write_bytes(package.read_bytes()[:1000])  # cut short, as by a full disk
    before = _graphs()
    with caplog.at_level(logging.INFO, logger="pix2pix.backends"), backends.model_named("tiny"):
        again = _candidate("inductor-fp32").build(_ctx(model))
    assert _graphs() == before + 1 and package.is_file()
    said = caplog.text  # the log says what happened: not loaded, compiled again, how long
    assert f"compiled package {package} did not load" in said and "compiling it again" in said
    assert "compiling the fp32 candidate of tiny, for 1x3x128x128" in said  # the app's model id
    assert re.search(r"compiled the fp32 candidate of tiny, for 1x3x128x128 in \d+ s", said)
    x = backends.test_input(SHAPE)
    assert torch.equal(again(x), run(x))
    # another machine, torch or model code is another package, never this one
    other = backends.Context(model, torch.device("cpu"), True, OTHER, backends.model_hash(model))
    assert backends.package_path(other, False) != package
    assert backends.package_path(_ctx(model), True) != package


class _CountingKernel:
    """Stands in for the loaded native library: counts the calls, then runs the real kernel."""

    def __init__(self, real: object) -> None:
        self.real, self.calls = real, 0

    def hint_spread(self, *args: object) -> int:
        self.calls += 1
        return self.real.hint_spread(*args)


@needs_cxx
def test_a_compiled_hint_generator_takes_drawings_with_and_without_dabs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # HintPropagation skips its rounds when no dab starts them: compiled, a torch.cond chooses
    # per call, in the one graph compiled for the shape (no recompiling when a dab appears).
    # With a dab the package runs them in the native kernel (pix2pix.hint_spread), built here.
    from pix2pix import hint_spread

    torch.manual_seed(3)
    model = networks.create_generator("unet_128", ngf=4, hint_propagation=12)
    networks.init_weights(model)
    model.eval()
    plain = torch.ones(SHAPE)
    plain[..., 30:33, 20:110] = -1  # a box outlined in black
    plain[..., 90:93, 20:110] = -1
    plain[..., 30:93, 20:23] = -1
    plain[..., 30:93, 107:110] = -1
    dabbed = plain.clone()
    dabbed[0, :, 55:65, 55:65] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]
    before = _graphs()
    run = _candidate("inductor-fp32").build(_ctx(model))
    assert _graphs() == before + 1
    assert hint_spread.loaded()
    kernel = _CountingKernel(hint_spread._library)
    monkeypatch.setattr(hint_spread, "_library", kernel)
    outs = {}
    for name, x in (("plain", plain), ("dabbed", dabbed), ("plain again", plain)):
        kernel.calls = 0
        outs[name] = run(x)
        assert kernel.calls == (name == "dabbed"), name
        assert backends.psnr(outs[name], _fp32(model, x)) >= 60, name
        assert not _runs_eager_ops(run, x), name
    assert _graphs() == before + 1
    assert torch.equal(outs["plain"], outs["plain again"])
    assert (outs["dabbed"] - outs["plain"]).abs().amax() > 1e-3  # the dab reached the output


@needs_cxx
def test_a_compiled_bf16_hint_generator_reads_its_input_channels_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The package is compiled from the bf16 channels-last copy (its pixels are read in fp32,
    # contiguous): the generator then builds its 7-channel input in the first convolution's
    # channels-last layout (HintPropagation.beside_channels_last), and matches fp32.
    monkeypatch.setattr(backends, "native_bf16", lambda: True)
    calls: list[torch.Size] = []
    beside = networks.HintPropagation.beside_channels_last

    def recorded(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        calls.append(x.shape)
        return beside(self, x, dtype)

    monkeypatch.setattr(networks.HintPropagation, "beside_channels_last", recorded)
    torch.manual_seed(5)
    model = networks.create_generator("unet_128", ngf=4, hint_propagation=4)
    networks.init_weights(model)
    model.eval()
    run = _candidate("inductor-bf16-channels-last").build(_ctx(model))
    assert calls, "the exported graph did not build its input channels-last"
    x = torch.ones(SHAPE)
    x[..., 60:63, :] = -1
    x[0, :, 20:30, 20:30] = torch.tensor([0.8, -0.6, -0.6])[:, None, None]
    assert backends.psnr(run(x), _fp32(model, x)) >= backends.MIN_PSNR


@needs_cxx
def test_compiling_waits_for_an_onnx_export_in_another_thread() -> None:
    """torch.export and dynamo share process-wide trace state: the app's ONNX export for browsers
    and its compiled-candidate measurement, both in background threads, raced into
    ``KeyError: 'custom'`` and a lost candidate. Both hold ``export.TRACE_LOCK``."""
    from pix2pix import export

    done: list[backends.Runner] = []
    model = tiny_model("edges", seed=7)  # not compiled by another test: this build must trace
    builder = threading.Thread(
        target=lambda: done.append(_candidate("inductor-fp32").build(_ctx(model)))
    )
    with export.TRACE_LOCK:  # as an export in progress holds it
        before = _graphs()
        builder.start()
        builder.join(timeout=3.0)  # without the lock torch.export traces within a second
        assert _graphs() == before, "the compiled candidate compiled during an export"
        assert builder.is_alive() and not done
    builder.join(timeout=600)
    assert done, "the compiled candidate did not build once the export ended"


@needs_cxx
def test_compiled_runs_keep_answering_while_an_onnx_export_traces(tmp_path: Path) -> None:
    """While ``torch.compiler.is_exporting()`` is true in one thread, a compiled function run in
    another entered torch's process-wide trace annotations and failed (``KeyError: 'custom'``:
    the app's requests failed while it exported a model for browsers). Runs asked for during an
    export take the uncompiled path; an export waits for runs in flight."""
    from pix2pix import export
    from pix2pix.hub import Pix2PixGenerator

    model = _model()
    run = _candidate("inductor-fp32").build(_ctx(model))
    x = backends.test_input(SHAPE)
    want = _fp32(model, x)
    errors: list[BaseException] = []
    answered = 0
    stop = threading.Event()

    def serve() -> None:  # a request thread
        nonlocal answered
        while not stop.is_set():
            try:
                assert backends.psnr(run(x), want) >= 60
                answered += 1
            except BaseException as error:
                errors.append(error)

    other = Pix2PixGenerator("unet_128", {"ngf": 4})
    networks.init_weights(other.net)
    server = threading.Thread(target=serve)
    server.start()
    try:
        for n in range(2):
            export.export_onnx(other, tmp_path / f"other{n}.onnx")
    finally:
        stop.set()
        server.join(timeout=120)
    assert not errors, f"{len(errors)} runs failed during the exports, first: {errors[0]!r}"
    assert answered > 0
    with export.EXPORT_GATE.exporting():  # as an export in progress
        assert _runs_eager_ops(run, x)  # the uncompiled path answers meanwhile
    assert not _runs_eager_ops(run, x)


@needs_cxx
def test_the_app_never_compiles_on_a_request_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app serves on PyTorch's rule-of-thumb path at once and measures (here: fp32 eager
    # against inductor-fp32) in its background thread, then swaps the choice in.
    monkeypatch.setenv(backends.ENV_CANDIDATES, "eager-fp32,inductor-fp32")
    compiled_on: list[str] = []
    build, gate = backends._compiled, threading.Event()

    def recorded(ctx: backends.Context, *, bf16: bool) -> backends.Runner:
        compiled_on.append(threading.current_thread().name)
        assert backends._naming.name == "tiny"  # its compile log lines name the model
        gate.wait(60)  # held until the request below has been answered
        return build(ctx, bf16=bf16)

    monkeypatch.setattr(backends, "_compiled", recorded)
    save_generator(_model(), tmp_path / "models" / "tiny")
    (tmp_path / "registry.toml").write_text(
        '[[model]]\nid = "tiny"\nname = "Tiny"\npath = "models/tiny"\ntask = "edges -> noise"\n'
        'input = "edges"\n',
        encoding="utf-8",
    )
    store = ModelStore(load_registry(tmp_path / "registry.toml"), device="cpu", precision="fp32")
    assert store.defers_measuring
    store.load(remote="skip")
    try:
        drawing = sketch_image(128)
        before = store.translate("tiny", drawing)  # answered while the measurement is held
        assert store.get("tiny").translator.backend in ("onednn", "eager")
    finally:
        gate.set()
    assert store.wait(1800)
    assert compiled_on == ["pix2pix-backend-measurer"]  # once, in the background
    translator = store.get("tiny").translator
    by_name = {m.name: m for m in translator.choice.measurements}
    print(translator.backend_reason)
    assert by_name["inductor-fp32"].status == "ok", by_name["inductor-fp32"].note

    graphs = _graphs()
    after = store.translate("tiny", drawing)
    assert np.abs(np.asarray(before, np.int16) - np.asarray(after, np.int16)).max() <= 1
    translator(Image.new("RGB", (256, 128), "white"))  # another shape: eager, no compiling
    assert _graphs() == graphs and compiled_on == ["pix2pix-backend-measurer"]


@needs_cxx
def test_only_the_chosen_compiled_package_stays_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    # Run last in this module: it removes the packages that lose.
    monkeypatch.setattr(backends, "native_bf16", lambda: True)
    ctx = _ctx(_model())
    names = [backends.BASELINE, *backends.COMPILED]
    choice, _ = backends.choose(ctx, [_candidate(n) for n in names], rounds=2)
    built = {m.name for m in choice.measurements if m.status == "ok"}
    assert set(backends.COMPILED) <= built, choice.measurements
    on_disk = {
        n for n in backends.COMPILED
        if backends.package_path(ctx, n == "inductor-bf16-channels-last").is_file()
    }  # fmt: skip
    assert on_disk == {choice.name} & set(backends.COMPILED), (choice.name, on_disk)
