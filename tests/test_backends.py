"""Translator(backend="auto"): candidates measured on the real shape, the fastest faithful one kept,
the choice cached on disk; the real candidates of this machine agree with fp32 eager."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pix2pix import Translator, backends, networks
from pix2pix.hub import Pix2PixGenerator


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture
def shared_cache(_module_cache, monkeypatch: pytest.MonkeyPatch) -> None:
    """One cache for the tests that export the same model to ONNX: one export, not three."""
    monkeypatch.setenv("PIX2PIX_CACHE", str(_module_cache))


@pytest.fixture(params=[False, True], ids=["fp32-cpu", "native-bf16-cpu"])
def cpu_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both kinds of CPU the project runs on, whichever this one is: with native bf16 (AMX /
    AVX512-BF16), precision "auto" runs eager in bf16; without, in fp32. Says which it ran."""
    monkeypatch.setattr(backends, "native_bf16", lambda: request.param)
    kind = f"simulated native bf16 {request.param}, real CPU {backends.cpu_info()}"
    print(f"\n{kind}")
    return kind


def _fp32_reference(model: Pix2PixGenerator, image: Image.Image) -> np.ndarray:
    """What every fp32 path should give, whatever this CPU computes natively."""
    return np.asarray(Translator(model, device="cpu", backend="eager", precision="fp32")(image))


def _model(seed: int = 0) -> Pix2PixGenerator:
    torch.manual_seed(seed)
    model = Pix2PixGenerator("unet", {"num_downs": 5, "ngf": 4})
    networks.init_weights(model.net)
    return model.eval()


def _image(side: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), np.uint8))


class _Counted:
    """Fake candidates built around the real eager runner, counting their builds."""

    def __init__(self) -> None:
        self.builds: dict[str, int] = {}

    def candidate(self, name: str, wrap) -> backends.Candidate:
        def build(ctx: backends.Context) -> backends.Runner:
            self.builds[name] = self.builds.get(name, 0) + 1
            return wrap(backends._eager(ctx))

        return backends.Candidate(name, build)


def _slow(run: backends.Runner) -> backends.Runner:
    def slow(x: torch.Tensor) -> torch.Tensor:
        time.sleep(0.03)
        return run(x)

    return slow


def _memo(run: backends.Runner) -> backends.Runner:
    """Faster than eager: computes once per input, then answers from memory (same values)."""
    seen: dict[int, torch.Tensor] = {}

    def fast(x: torch.Tensor) -> torch.Tensor:
        key = hash(x.numpy().tobytes())
        if key not in seen:
            seen[key] = run(x)
        return seen[key]

    return fast


def _wrong(run: backends.Runner) -> backends.Runner:
    return lambda x: torch.zeros_like(run(x))  # fast enough, but not the same images


def _unavailable(ctx: backends.Context) -> backends.Runner:
    raise backends.Unavailable("no such hardware here")


def _fakes(counted: _Counted) -> list[backends.Candidate]:
    return [
        backends.Candidate(backends.BASELINE, backends._eager),
        counted.candidate("slow", _slow),
        counted.candidate("memo", _memo),
        counted.candidate("wrong", _wrong),
        backends.Candidate("absent", _unavailable),
    ]


def test_auto_picks_the_fastest_faithful_candidate_and_says_why(cpu_kind: str) -> None:
    counted = _Counted()
    model = _model()
    translate = Translator(model, device="cpu", candidates=_fakes(counted))
    assert translate.backend == "auto"  # nothing measured before the first call
    out = translate(_image())
    assert translate.backend == "memo"
    reason = translate.backend_reason
    assert "measured at 1x3x64x64" in reason and "eager-fp32" in reason
    assert "wrong rejected: PSNR" in reason and "absent unavailable: no such hardware" in reason
    by_name = {m.name: m for m in translate.choice.measurements}
    assert by_name["slow"].p50_ms > by_name[backends.BASELINE].p50_ms
    assert by_name["memo"].p50_ms < by_name[backends.BASELINE].p50_ms
    assert by_name["wrong"].status == "rejected" and by_name["wrong"].p50_ms is None
    assert by_name["memo"].psnr_db == float("inf")
    # The candidates run fp32 eager: compare with fp32, not with what "eager" means on this CPU.
    eager = Translator(model, device="cpu", backend="eager")
    print(f"backend='eager' with precision 'auto' runs in {eager.dtype}")
    assert np.array_equal(np.asarray(out), _fp32_reference(model, _image())), cpu_kind
    # Another shape reuses the choice without measuring again.
    translate(_image(96))
    assert counted.builds == {"slow": 1, "memo": 1, "wrong": 1}


def _lingering(run: backends.Runner) -> backends.Runner:
    """Returns at once (memoised) but leaves a thread busy for 100 ms after each call, as a
    runtime whose worker threads spin after a run does: the cost lands after the call. Its next
    call waits for that thread, as such a runtime's next run waits for its workers, so the cost
    is there to find however loaded the machine is (a thread that only competed for the cores
    made the test depend on how many were free)."""
    fast = _memo(run)
    last: list[threading.Thread] = []

    def busy() -> None:
        end = time.perf_counter() + 0.1
        while time.perf_counter() < end:
            pass

    def linger(x: torch.Tensor) -> torch.Tensor:
        if last:
            last.pop().join()
        y = fast(x)
        last.append(threading.Thread(target=busy, daemon=True))
        last[0].start()
        return y

    return linger


def test_a_cost_that_lands_after_the_call_is_paid_by_its_candidate() -> None:
    # Timed alone, the lingering candidate looks free; in use, the Translator's 8-bit conversion
    # right after the call and the next call compete with its thread. The measurement times the
    # candidate with that conversion, in blocks after an untimed call, so the cost stays with it.
    counted = _Counted()
    cands = [
        backends.Candidate(backends.BASELINE, backends._eager),
        counted.candidate("lingering", _lingering),
    ]
    ctx = backends.Context(_model(), torch.device("cpu"), True, (1, 3, 64, 64), "h")
    choice, _ = backends.choose(ctx, cands, rounds=3)
    time.sleep(0.2)  # let the last thread finish before other tests
    by_name = {m.name: m for m in choice.measurements}
    assert choice.name == backends.BASELINE, choice.reason
    assert by_name["lingering"].p50_ms > by_name[backends.BASELINE].p50_ms


def test_candidates_are_timed_in_blocks_in_rotating_order() -> None:
    calls: list[str] = []

    def recording(name: str) -> backends.Candidate:
        def build(ctx: backends.Context) -> backends.Runner:
            run = backends._eager(ctx)

            def record(x: torch.Tensor) -> torch.Tensor:
                calls.append(name)
                return run(x)

            return record

        return backends.Candidate(name, build)

    ctx = backends.Context(_model(), torch.device("cpu"), True, (1, 3, 32, 32), "h")
    backends.choose(ctx, [recording(backends.BASELINE), recording("b"), recording("c")],
                    rounds=3, block=2)  # fmt: skip
    warmups, timed = calls[:6], calls[6:]  # built and run twice each
    assert warmups == [backends.BASELINE] * 2 + ["b"] * 2 + ["c"] * 2
    blocks = [timed[i : i + 3] for i in range(0, len(timed), 3)]
    assert all(len(set(b)) == 1 for b in blocks)  # one untimed + two timed calls in a row
    starts = [b[0] for b in blocks]
    assert starts == [backends.BASELINE, "b", "c", "b", "c", backends.BASELINE,
                      "c", backends.BASELINE, "b"]  # fmt: skip


def test_the_choice_is_cached_per_model_and_machine() -> None:
    counted = _Counted()
    first = Translator(_model(), device="cpu", candidates=_fakes(counted))
    first(_image())
    assert not first.choice.cached
    builds = dict(counted.builds)

    again = Translator(_model(), device="cpu", candidates=_fakes(counted))
    again(_image())
    assert again.backend == "memo" and again.choice.cached
    assert "cached" in again.backend_reason
    # Only the cached choice was built: no measuring.
    assert counted.builds == {**builds, "memo": builds["memo"] + 1}

    other = _model(seed=1)  # other weights: another key
    changed = Translator(other, device="cpu", candidates=_fakes(counted))
    changed(_image())
    assert not changed.choice.cached and counted.builds["slow"] == builds["slow"] + 1

    key = backends.cache_key(
        backends.Context(_model(), torch.device("cpu"), True, (1, 3, 64, 64), "h"),
        _fakes(counted),
    )
    assert key != backends.cache_key(
        backends.Context(_model(), torch.device("cpu"), True, (1, 3, 64, 96), "h"),
        _fakes(counted),
    )


def test_a_broken_cache_file_is_measured_again() -> None:
    path = backends.cache_dir() / backends.CACHE_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{not json", encoding="utf-8")
    translate = Translator(_model(2), device="cpu", candidates=_fakes(_Counted()))
    translate(_image())
    assert translate.backend == "memo" and not translate.choice.cached


def test_seeded_calls_run_on_the_pytorch_path_with_noise() -> None:
    counted = _Counted()
    model = Pix2PixGenerator("unet", {"num_downs": 6, "ngf": 4, "dropout": True}).eval()
    translate = Translator(model, device="cpu", candidates=_fakes(counted))
    a, b = translate(_image(), seed=1), translate(_image(), seed=2)
    assert counted.builds == {}  # noise never measures: dropout is off in every candidate
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_native_bf16_is_read_from_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    info = backends.cpu_info()
    assert info["model"] and isinstance(info["flags"], list)
    for flags, native in ((["avx2"], False), (["avx512f", "avx512bw"], False),
                          (["avx512_bf16"], True), (["amx_tile", "amx_bf16"], True)):  # fmt: skip
        monkeypatch.setattr(
            backends, "cpu_info", lambda flags=flags: {"flags": flags, "avx512_off": None}
        )
        assert backends.native_bf16() is native


@pytest.mark.parametrize(
    ("env", "off"),
    [
        ({}, None),
        ({"ATEN_CPU_CAPABILITY": "avx512"}, None),
        ({"ONEDNN_MAX_CPU_ISA": "ALL"}, None),
        ({"ATEN_CPU_CAPABILITY": "avx2"}, "ATEN_CPU_CAPABILITY=avx2"),
        ({"DNNL_MAX_CPU_ISA": "avx512_core"}, "DNNL_MAX_CPU_ISA=AVX512_CORE"),
        ({"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "AVX2"},
         "ATEN_CPU_CAPABILITY=default, ONEDNN_MAX_CPU_ISA=AVX2"),
    ],
)  # fmt: skip
def test_avx512_switched_off_by_the_environment_is_no_native_bf16(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], off: str | None
) -> None:
    from bench.benchmark import machine_kind

    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert backends.avx512_off() == off
    flags = ["avx2", "avx512f", "avx512_bf16"]
    real = backends.cpu_info
    monkeypatch.setattr(backends, "cpu_info", lambda: {**real(), "flags": flags})
    assert backends.native_bf16() is (off is None)
    if off:
        assert backends.no_native_bf16() == f"no native bf16 with AVX-512 switched off ({off})"
    kind = machine_kind({"model": "M", "flags": flags, "cores": 2, "avx512_off": off})
    assert kind == (f"M, AVX2 only (AVX-512 switched off: {off}), 2 vCPU" if off
                    else "M, AVX512-BF16, 2 vCPU")  # fmt: skip


def test_real_candidates_of_this_machine_agree_with_fp32(shared_cache) -> None:
    print(f"\nCPU: {backends.cpu_info()}")
    model = _model()
    ctx = backends.Context(
        model, torch.device("cpu"), True, (1, 3, 64, 64), backends.model_hash(model)
    )
    everything = backends.default_candidates(torch.device("cpu"))
    names = {c.name for c in everything}
    if "onnxruntime" not in names:  # conftest limits "auto" to the PyTorch candidates
        everything = [c for c in backends.CANDIDATES if c.device_type == "cpu"]
    # Compiling takes minutes here: tests/test_backends_compiled.py checks those candidates.
    everything = [c for c in everything if c.name not in backends.COMPILED]
    choice, _ = backends.choose(ctx, everything, rounds=2)
    by_name = {m.name: m for m in choice.measurements}
    print(choice.reason)
    bf16 = by_name["bf16-channels-last"]
    if backends.native_bf16():
        assert bf16.status == "ok" and bf16.psnr_db >= backends.MIN_PSNR
    else:
        assert bf16.status == "unavailable" and "no native bf16" in bf16.note
    for name in ("onednn-fp32", "onnxruntime", "openvino"):
        m = by_name[name]
        if m.status == "unavailable" and "not installed" in m.note:
            continue  # the [fast] extra is optional
        assert m.status == "ok", (name, m.note)
        assert m.psnr_db >= 60 and m.p50_ms > 0  # fp32 everywhere on this model
    assert choice.name in {n for n, m in by_name.items() if m.status == "ok"}


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "onednn-fp32"])
def test_an_explicit_backend_translates_like_eager(shared_cache, name: str) -> None:
    pytest.importorskip({"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(name, "torch"))
    model = _model()
    translate = Translator(model, device="cpu", backend=name)
    assert translate.backend == name
    got = np.asarray(translate(_image(128)), np.int16)
    want = _fp32_reference(model, _image(128)).astype(np.int16)  # fp32 on every CPU
    assert np.abs(got - want).max() <= 1, f"CPU: {backends.cpu_info()}"


def test_an_unavailable_explicit_backend_names_the_reason() -> None:
    if backends.native_bf16():
        pytest.skip("this CPU computes bf16 natively: the backend is available")
    with pytest.raises(ValueError, match="no native bf16"):
        Translator(_model(), device="cpu", backend="bf16-channels-last")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        Translator(_model(), device="cpu", backend="cuda-graph-fp16")


def test_cached_exports_and_measurements_follow_the_code_that_runs_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The same weights under changed library code (a generator's forward, its export) must not
    # reuse an ONNX file or a measurement cached on disk for the old code: the browser would run
    # the old computation while the server runs the new one.
    from types import SimpleNamespace

    from pix2pix.app import browser

    model = _model()
    served = SimpleNamespace(size=64, entry=SimpleNamespace(norm="instance"), cpu_model=model)
    before = (backends.model_hash(model), browser.weights_key(served))
    assert (backends.model_hash(model), browser.weights_key(served)) == before
    monkeypatch.setattr(backends, "graph_source_hash", lambda: "another version")
    after = (backends.model_hash(model), browser.weights_key(served))
    assert after[0] != before[0] and after[1] != before[1]
    monkeypatch.undo()
    # The hash reads the files themselves: an edit to any of them changes it.
    package = Path(backends.__file__).parent
    for name in backends.GRAPH_SOURCES:
        (tmp_path / name).write_bytes((package / name).read_bytes())
    monkeypatch.setattr(backends, "__file__", str(tmp_path / "backends.py"))
    real = backends.graph_source_hash.__wrapped__
    assert real() == backends.graph_source_hash()
    with (tmp_path / "networks.py").open("a") as f:
        f.write("\n# a change to how a generator runs\n")
    assert real() != backends.graph_source_hash()


@pytest.mark.parametrize("fp32_input", [True, False], ids=["as-built", "bf16-pixels"])
def test_the_bf16_candidate_hands_a_hint_generator_its_pixels_in_fp32(
    monkeypatch: pytest.MonkeyPatch, fp32_input: bool
) -> None:
    # The hint propagation finds dabs, lines and grey cells by thresholds on the pixels; bf16
    # pixels (8 bits of mantissa) cross them, and the spread then differs from fp32's (the
    # shipped lineart2color: PSNR 16 dB on noise). The candidate keeps the image in fp32 and the
    # generator casts after the propagation, so the spread is exactly fp32's.
    monkeypatch.setattr(backends, "native_bf16", lambda: True)  # emulated where not native
    if not fp32_input:  # what the candidate did before: the image cast to bf16 first
        monkeypatch.setattr(networks, "reads_fp32_input", lambda model: False)
    torch.manual_seed(0)
    model = Pix2PixGenerator("unet_256", {"ngf": 4, "hint_propagation": 24}, {"hints": True})
    networks.init_weights(model.net)
    shape = (1, 3, 256, 256)
    ctx = backends.Context(model.eval(), torch.device("cpu"), True, shape, "test")
    x = backends.test_input(shape)  # noise: chroma and greys on every threshold
    spreads: list[torch.Tensor] = []

    def keep(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, networks.HintPropagation):
            spreads.append(output.float())

    hook = torch.nn.modules.module.register_module_forward_hook(keep)
    try:
        want = backends._eager(ctx)(x)
        got = backends._bf16_channels_last(ctx)(x)
    finally:
        hook.remove()
    assert len(spreads) == 2
    assert torch.equal(spreads[1], spreads[0]) == fp32_input
    if fp32_input:
        assert backends.psnr(got, want) >= backends.MIN_PSNR


@pytest.mark.parametrize("outputs,bias", [(3, True), (1, False), (4, True)])
def test_the_phase_form_of_a_last_layer_computes_the_transposed_convolution(
    outputs: int, bias: bool
) -> None:
    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose2d(8, outputs, 4, stride=2, padding=1, bias=bias)
    x = torch.randn(2, 8, 17, 12)  # odd, non-square sides: the phases' offsets must line up
    phase = backends.PhaseTransposedConv(conv)
    with torch.no_grad():
        want, got = conv(x), phase(x)
    assert got.shape == want.shape == (2, outputs, 34, 24)
    assert (got - want).abs().max() < 1e-5
    # Only the layers it computes exactly are replaced: a generator's small last layer.
    model = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(8, 16, 4, stride=2, padding=1),  # 16 outputs: kept
        torch.nn.ConvTranspose2d(16, 3, 3, stride=1, padding=1),  # 3x3: kept
        conv,
    )
    swapped = backends.phase_small_transposed(model)
    assert [type(m).__name__ for m in swapped] == [
        "ConvTranspose2d", "ConvTranspose2d", "PhaseTransposedConv"
    ]  # fmt: skip
