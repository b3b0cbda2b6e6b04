"""The benchmark rewrites only its own machine's section of docs/PERFORMANCE.md; the GPU
benchmark's tables, and its message where there is no GPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.benchmark import HEADER, splice_section
from bench.gpu import EXPLICIT, _trainer_row, bench_data_pipeline
from bench.gpu import markdown as gpu_markdown

ROOT = Path(__file__).resolve().parents[1]


def _section(kind: str, text: str) -> str:
    return f"<!-- machine: {kind} -->\n## {kind}\n\n{text}\n<!-- /machine: {kind} -->"


def test_only_this_machines_section_changes() -> None:
    old = (
        "# Performance\n\nintro\n\n"
        + _section("AMD", "old amd figures")
        + "\n\n"
        + _section("Intel", "intel figures")
        + "\n\n## In the visitor's browser\n\nbrowser figures\n\n## Attempts log\n\n1. tried\n"
    )
    new = splice_section(old, "AMD", _section("AMD", "new amd figures"))
    assert "new amd figures" in new and "old amd figures" not in new
    assert new.replace("new amd figures", "old amd figures") == old
    added = splice_section(old, "ARM", _section("ARM", "arm figures"))
    assert added.index("arm figures") < added.index("## Attempts log")
    assert "browser figures" in added and "intel figures" in added and "1. tried" in added
    assert splice_section("", "AMD", "s").startswith(HEADER)


def test_the_real_file_keeps_its_other_sections() -> None:
    old = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    new = splice_section(old, "AMD EPYC, AVX2 only, 2 vCPU", _section("x", "y"))
    for kept in ("## In the visitor's browser", "## Attempts log", "## Intel Xeon"):
        assert kept in new


def _gpu_row(model: str) -> dict:
    ok = {"status": "ok", "p50_ms": 2.0, "p95_ms": 2.5, "psnr_db": 52.0, "note": ""}
    timed = {"p50_ms": 3.0, "p95_ms": 3.5, "runs": 10}
    through = {"fp32_eager_tensor_images_per_s": 100.0, "auto_tensor_to_uint8_images_per_s": 300.0,
               "auto_pil_end_to_end_images_per_s": 150.0}  # fmt: skip
    return {
        "model": model, "size": 256, "auto": "cuda-graph-fp16",
        "forward_batch1": {"eager-fp32": {**ok, "psnr_db": float("inf")},
                           "cuda-fp16-channels-last": ok,
                           "cuda-graph-fp16": {"status": "rejected", "note": "PSNR"}},
        "end_to_end_batch1": {k: timed for k in ("auto", *EXPLICIT)},
        "host_copies_per_request": {"HtoD": 1, "DtoH": 1},
        "throughput": {"batch1": through,
                       "batch64": {**through, "auto_tensor_to_uint8_images_per_s": 2000.0}},
        "batch64_auto_vs_batch1_fp32_eager": 20.0, "batch64_auto_vs_batch64_fp32_eager": 4.0,
    }  # fmt: skip


def test_gpu_benchmark_tables() -> None:
    results = {
        "machine": {"gpu": "GPU X", "gpu_memory_gib": 80, "torch": "2", "cuda": "13", "cudnn": 9,
                    "when": "today"},
        "inference": [_gpu_row("paper"), _gpu_row("facades")],
        "training": [{"settings": "ngf 64", "precision": "bf16", "train_images_per_s": 50.0,
                      "baseline_images_per_s": 25.0, "ratio": 2.0}],
        "data_pipeline": [
            {"settings": "ngf 64", "cache_images": cache, "workers": workers,
             "steady_images_per_s": rate, "run_seconds": seconds}
            for workers, cache, rate, seconds in ((0, "off", 100.0, 9.5), (0, "on", 400.0, 7.25),
                                                  (4, "off", 200.0, 8.0), (4, "on", None, 8.5))
        ],
        "compile": [
            {"settings": "ngf 64 b1", "compile": "off", "steady_images_per_s": 30.0,
             "first_step_s": 2.5, "run_seconds": 20.0},
            {"settings": "ngf 64 b1", "compile": "on", "steady_images_per_s": 75.0,
             "first_step_s": 61.0, "run_seconds": 80.0},
        ],
    }  # fmt: skip
    md = gpu_markdown(results)
    assert "### GPU X" in md
    assert "| paper (256 px) | 2.00 (exact) | 2.00 (52 dB) | rejected | cuda-graph-fp16 |" in md
    assert "| 1 / 1 |" in md and "| 20.0x | 4.0x |" in md
    assert "| ngf 64 | bf16 | 50.0 | 25.0 | 2.00x |" in md
    assert "| ngf 64 | 0 | 100.0 | 400.0 | 4.00x | 9.5 / 7.25 |" in md
    assert "| ngf 64 | 4 | 200.0 | - | - | 8.0 / 8.5 |" in md  # no steady figure: "-"
    assert "| ngf 64 b1 | off | 30.0 | 1.00x | 2.5 | 20.0 |" in md
    assert "| ngf 64 b1 | on | 75.0 | 2.50x | 61.0 | 80.0 |" in md
    training_only = gpu_markdown({**results, "inference": []})  # bench.gpu --no-inference
    assert "Forward only" not in training_only and "| ngf 64 b1 | on |" in training_only
    # A run cut short (its JSON is written after every row): the rows it has.
    cut = gpu_markdown({**results, "inference": [], "data_pipeline": results["data_pipeline"][:1],
                        "compile": results["compile"][:1]})  # fmt: skip
    assert "| ngf 64 | 0 | 100.0 | - | - | 9.5 / - |" in cut and "| ngf 64 b1 | off |" in cut
    for line in md.splitlines():  # every table row has its header's number of cells
        if line.startswith("|"):
            assert line.count("|") in {5, 6, 7, 9}, line


@pytest.mark.parametrize("module", ["bench.gpu", "bench.gpu_layouts"])
def test_gpu_benchmarks_say_when_there_is_no_gpu(module: str) -> None:
    if torch.cuda.is_available():
        pytest.skip(f"a GPU is present: {module} would run the whole benchmark")
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, capture_output=True,
                          text=True, check=False)  # fmt: skip
    assert done.returncode == 2 and "needs a CUDA GPU" in done.stderr, done.stderr


def test_a_backend_note_stays_on_its_table_row() -> None:
    # A runtime's error message spans lines (OpenVINO's under ONEDNN_MAX_CPU_ISA did): each
    # candidate keeps one row, its note on one line.
    from bench.benchmark import backend_lines

    note = "failed: RuntimeError: Exception from core.cpp:117:\nobject | not initialized\n\n"
    row = {"p50_ms": None, "p95_ms": None, "psnr_db": None, "status": "unavailable"}
    results = {"backends": [{"model": "m", "size": 256, "auto": "eager-fp32",
                             "measure_seconds": 1.0, "candidates": [
        {**row, "name": "eager-fp32", "p50_ms": 10.0, "p95_ms": 11.0, "status": "ok", "note": ""},
        {**row, "name": "openvino", "note": note},
    ]}]}  # fmt: skip
    lines = backend_lines(results)
    rows = [line for line in lines if line.startswith("| openvino")]
    assert rows == [
        "| openvino | unavailable | — | — | — | — | — | failed: RuntimeError: Exception from "
        "core.cpp:117: object / not initialized |"
    ]
    assert all("\n" not in line for line in lines)


def test_the_data_pipeline_rows_train_with_and_without_the_cache() -> None:
    # What bench.gpu runs on a lent GPU, here on the CPU with a tiny network: the trainer with the
    # decoded images kept in memory and without, in the main process and with a worker.
    rows = bench_data_pipeline(6, ngf=4, batch=2, precision="no", workers=(0, 1), pairs=4,
                               device="cpu")  # fmt: skip
    assert [(r["workers"], r["cache_images"]) for r in rows] == [
        (0, "off"), (0, "on"), (1, "off"), (1, "on")
    ]  # fmt: skip
    for row in rows:
        assert row["steady_images_per_s"] > 0 and row["run_seconds"] > 0, row
        kept = "kept in memory" in row["data"]
        assert kept == (row["cache_images"] == "on"), row["data"]
        assert "cache off" in row["data"] or kept, row["data"]


def test_the_training_benchmark_without_compile_times_the_eager_configurations() -> None:
    # bench.training --no-compile, as bench/device.sh runs it on a lent machine's host CPU.
    from bench.training import BASELINE, CONFIGS, bench_steps

    eager = tuple(c for c in CONFIGS if c[2] == "off")
    rows = bench_steps(4, 1, steps=1, rounds=2, warmup=0, configs=eager)
    assert [(r["precision"], r["layout"], r["compile"]) for r in rows] == list(eager)
    assert BASELINE in eager
    for row in rows:
        assert row["timed_steps"] == 2 and row["images_per_s"] > 0 and row["compile_s"] is None
    assert rows[0]["vs_fp32_eager"] == 1.0
    assert max(r["vs_best_fp32_eager"] for r in rows if r["precision"] == "no") == 1.0


def test_a_failed_trainer_run_is_a_row_with_its_error(tmp_path: Path) -> None:
    row = _trainer_row(tmp_path / "no-such-data", tmp_path / "run", 4, "no", device="cpu", ngf=4,
                       batch=1, options=(), compile="off")  # fmt: skip
    assert row["compile"] == "off" and row["settings"] == "unet_256 ngf 4, batch 1, fp32"
    assert "no-such-data" in row["error"] and row["steady_images_per_s"] is None
