"""The training step's memory layout (``--channels-last``, ``train.layout``): bf16 channels-last,
fp32 on the CPU timed both ways before training and the answer kept per machine and run shape,
the timing leaving the run's networks and random streams as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from pix2pix import backends
from tests.test_train import TINY, latest_weights, run, summary, write_aligned
from train import layout

CPU = torch.device("cpu")


def _never() -> tuple[dict[bool, float], str]:
    raise AssertionError("measured where the layout needs no measuring")


def test_the_layout_as_asked_resumed_or_by_precision_needs_no_timing() -> None:
    resolve = layout.resolve_channels_last
    assert resolve("on", precision="no", device=CPU, measure=_never) == (True, "as asked")
    assert resolve("off", precision="bf16", device=CPU, measure=_never) == (False, "as asked")
    assert resolve(True, precision="no", device=CPU, measure=_never) == (
        True,
        "as in the run resumed",
    )
    assert resolve(False, precision="bf16", device=CPU, measure=_never)[0] is False
    assert resolve("auto", precision="bf16", device=CPU, measure=_never)[0] is True
    cuda = torch.device("cuda")
    on_gpu, why = resolve("auto", precision="fp16", device=cuda, measure=_never)
    assert not on_gpu and "not measured" in why
    with pytest.raises(ValueError, match="unknown channels-last choice 'nhwc'"):
        resolve("nhwc", precision="no", device=CPU, measure=_never)


@pytest.mark.parametrize(
    ("cl_s", "nchw_s", "picked"), [(0.08, 0.1, True), (0.095, 0.1, True), (0.12, 0.1, False)]
)
def test_auto_in_fp32_on_the_cpu_takes_the_faster_layout(
    cl_s: float, nchw_s: float, picked: bool
) -> None:
    def measure() -> tuple[dict[bool, float], str]:
        return {True: cl_s, False: nchw_s}, "timed here"

    chosen, why = layout.resolve_channels_last("auto", precision="no", device=CPU, measure=measure)
    assert chosen is picked
    assert f"{1000 * cl_s:.0f} ms channels-last against {1000 * nchw_s:.0f} ms NCHW" in why
    assert why.endswith("timed here") and "unless" not in why


def test_a_near_tie_goes_to_nchw_every_time() -> None:
    # Two timings within 5 % differ by noise as much as by layout: NCHW, PyTorch's default.
    def measure() -> tuple[dict[bool, float], str]:
        return {True: 0.097, False: 0.1}, "timed here"

    chosen, why = layout.resolve_channels_last("auto", precision="no", device=CPU, measure=measure)
    assert chosen is False and "NCHW unless channels-last is 5% faster" in why


def test_timing_alternates_the_layouts_after_an_untimed_step_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(layout.time, "perf_counter", lambda: clock[0])
    durations = {False: [9.0, 3.0, 2.0, 5.0], True: [9.0, 1.0, 4.0, 0.5]}
    now: list[bool] = []
    calls: list[str] = []

    def convert(channels_last: bool) -> None:
        calls.append(f"to {channels_last}")
        clock[0] += 100.0  # converting is never timed
        now.append(channels_last)

    def step() -> None:
        calls.append("step")
        clock[0] += durations[now[-1]].pop(0)

    assert layout.time_layouts(step, convert, repeats=3) == {False: 2.0, True: 0.5}
    # The first two steps untimed, then alternating, each after its conversion.
    assert calls == [c for layout_ in [False, True] * 4 for c in (f"to {layout_}", "step")]


def test_times_are_kept_per_key_and_a_damaged_entry_is_timed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path))
    timings = iter([{True: 0.1, False: 0.2}, {True: 0.3, False: 0.2}])
    measured = []

    def measure() -> dict[bool, float]:
        measured.append(1)
        return next(timings)

    key = layout.cache_key(CPU, generator="G", batch=[1, 3, 3, 64])
    assert key != layout.cache_key(CPU, generator="G", batch=[2, 3, 3, 64])
    times, source = layout.cached_times(key, measure, label="unet_128 ngf 4, batch 1")
    assert times == {True: 0.1, False: 0.2}
    assert source.startswith("timed on this run's networks and batch shape in ")
    stored = backends.read_entry(layout.CACHE_NAME, key)
    assert stored["run"] == "unet_128 ngf 4, batch 1"  # what a reader of the file sees
    again, source = layout.cached_times(key, measure)
    assert again == {True: 0.1, False: 0.2} and "earlier run" in source and len(measured) == 1
    # Another process's entry is not measured by a process told not to store (Accelerate's
    # non-main ranks): nothing written.
    other = layout.cache_key(CPU, generator="other")
    layout.cached_times(other, lambda: {True: 1.0, False: 2.0}, store=False)
    assert backends.read_entry(layout.CACHE_NAME, other) is None
    path = backends.cache_dir() / layout.CACHE_NAME
    entries = json.loads(path.read_text())
    entries[key] = {"channels_last_s": "fast"}
    path.write_text(json.dumps(entries))
    assert layout.cached_times(key, measure)[0] == {True: 0.3, False: 0.2}
    assert len(measured) == 2
    for bad in (float("nan"), -1.0, float("inf"), 0.0):  # not a time a step can take
        backends.write_entry(layout.CACHE_NAME, key, {"channels_last_s": bad, "nchw_s": 0.2})
        assert layout.cached_times(key, lambda: {True: 0.4, False: 0.2})[0][True] == 0.4
    path.write_text("{not json")
    assert layout.cached_times(key, lambda: {True: 0.5, False: 0.4})[0] == {True: 0.5, False: 0.4}


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "backends" / layout.CACHE_NAME


def test_an_fp32_run_times_both_layouts_and_trains_as_one_told_the_winner(
    tmp_path: Path, fresh_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_aligned(tmp_path / "data", 4)
    fp32 = ["--data", data, *TINY, "--mixed-precision", "no", "--max-steps", "3"]
    assert run(*fp32, "--out", tmp_path / "auto") == 0
    log = capsys.readouterr().out
    assert "timing a training step channels-last and NCHW" in log
    assert "timed on this run's networks and batch shape" in log
    picked = summary(tmp_path / "auto")["channels_last"]
    config = json.loads(next((tmp_path / "auto" / "checkpoint").glob("*/config.json")).read_text())
    assert config["args"]["channels_last"] is picked
    assert len(json.loads(fresh_cache.read_text())) == 1

    # The timing ran on copies, with the random streams put back: the run is the one an
    # explicit --channels-last of the same layout trains, to the bit.
    told = "on" if picked else "off"
    assert run(*fp32, "--out", tmp_path / "told", "--channels-last", told) == 0
    assert "timing a training step" not in capsys.readouterr().out
    auto, explicit = latest_weights(tmp_path / "auto"), latest_weights(tmp_path / "told")
    assert all(torch.equal(auto[k], explicit[k]) for k in auto)

    # The next run of the same shape on this machine takes the kept answer, untimed.
    assert run(*fp32, "--out", tmp_path / "again") == 0
    log = capsys.readouterr().out
    assert "timing a training step" not in log and "timed by an earlier run here" in log
    assert summary(tmp_path / "again")["channels_last"] is picked
    again = latest_weights(tmp_path / "again")
    assert all(torch.equal(auto[k], again[k]) for k in auto)

    # A resumed run continues in its own layout, whatever a new timing would say.
    fresh_cache.unlink()
    assert run("--resume", tmp_path / "auto", "--max-steps", "4") == 0
    log = capsys.readouterr().out
    assert "channels-last (as in the run resumed)" in log or "NCHW (as in the run resumed)" in log
    assert "mixed precision no (as in the run resumed)" in log
    assert "timing a training step" not in log
    assert summary(tmp_path / "auto")["channels_last"] is picked


def test_a_cache_that_cannot_be_written_warns_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PIX2PIX_CACHE", str(blocker))
    key = layout.cache_key(CPU, generator="G")
    with pytest.warns(UserWarning, match="could not keep the layout timing .*PIX2PIX_CACHE"):
        times, source = layout.cached_times(key, lambda: {True: 0.2, False: 0.1})
    assert times == {True: 0.2, False: 0.1} and source.startswith("timed on this run")


def test_a_resumed_run_keeps_its_layout_unless_told_or_its_precision_changes(
    tmp_path: Path, fresh_cache: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_aligned(tmp_path / "data", 4)
    out = tmp_path / "run"
    fp32 = ["--data", data, *TINY, "--mixed-precision", "no", "--channels-last", "off"]
    assert run(*fp32, "--out", out, "--max-steps", "2") == 0
    capsys.readouterr()
    # Told another layout: it says what the run had so far.
    assert run("--resume", out, "--max-steps", "3", "--channels-last", "on") == 0
    log = capsys.readouterr().out
    assert "channels-last (as asked; the run so far was NCHW)" in log
    # A new precision: the layout is chosen for it, as in a fresh bf16 run.
    assert run("--resume", out, "--max-steps", "4", "--mixed-precision", "bf16") == 0
    log = capsys.readouterr().out
    assert "channels-last (auto: bf16 convolutions are fastest channels-last" in log
    assert summary(out)["channels_last"] is True
