"""The Gradio app on ZeroGPU, reproduced with the real ``spaces`` package on a machine with no GPU.

With ``SPACES_ZERO_GPU=true``, ``import spaces`` patches PyTorch as on a ZeroGPU Space: in the main
process ``torch.cuda.is_available()`` is True, "CUDA" tensors are emulated on the CPU in the main
thread only (any other thread reaches "Low-level CUDA init"), and ``launch()`` packs them away to
disk (``spaces.zero.torch.pack()``, called here directly: launching would ask the ZeroGPU device
API, which only exists on Hugging Face). What this cannot reproduce: a ``@spaces.GPU`` call itself
(it needs that API and a GPU), so nothing here runs a model on the device.

Checked: the app as ``app.py`` builds it loads the models to "cuda" without measuring a backend
(a timing there would be the CPU's, cached as the GPU's choice), and the canvas's ONNX exports,
in the main thread and in the app's background prefetch, come from a CPU copy of the weights
after the device copies have been packed away.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.app_fixtures import write_test_registry

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json
import sys

import app  # imports spaces first, then builds the demo from $PIX2PIX_MODELS
import spaces
import torch

from pix2pix import backends
from pix2pix.app import service
from pix2pix.app.ui import _APPS

the_app = _APPS[app.demo]
store = the_app.store
report = {
    "cuda_available": torch.cuda.is_available(),
    "zero_gpu": spaces.config.Config.zero_gpu,
    "run_is_wrapped": hasattr(service._run, "zerogpu"),
    "device": store.device.type,
    "ready": store.ready_ids(),
    "measured": [m for m in store.ready_ids() if store.get(m).translator.choice is not None],
}
spaces.zero.torch.pack()  # what launch() does: the "CUDA" weights go to disk
try:
    report["export"] = the_app.exports.path("test-labels-a").name
except Exception as e:
    report["export"] = f"failed: {type(e).__name__}: {str(e)[-300:]}"
the_app.exports.prefetch(["test-photo"]).join()  # the app's own background export
report["prefetched"] = sorted(p.name for p in the_app.exports.folder.glob("test-photo-*"))
report["choices_cached"] = (backends.cache_dir() / backends.CACHE_NAME).exists()
report["about"] = the_app.about()
print("REPORT " + json.dumps(report))
"""


def test_zerogpu_exports_from_cpu_weights_and_measures_nothing(tmp_path: Path) -> None:
    registry = write_test_registry(tmp_path / "app")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SPACES_ZERO_GPU": "true",
        "SPACES_ZERO_DEVICE_API_URL": "http://127.0.0.1:9/",  # never reached here
        "ZEROGPU_OFFLOAD_DIR": str(tmp_path / "zerogpu"),
        # pack() deletes mmapped files matching this pattern; keep it away from real caches
        "ZEROGPU_MMAP_AUTOPRUNE_PATTERN": str(tmp_path / "no-such-dir" / "*"),
        "PIX2PIX_MODELS": str(registry),
        "PIX2PIX_CACHE": str(tmp_path / "cache"),
        "PIX2PIX_BROWSER": "auto",
        "PIX2PIX_ORT_FETCH": "off",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("PIX2PIX_BACKENDS", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("REPORT ")), None)
    assert done.returncode == 0 and line, done.stdout[-3000:] + done.stderr[-5000:]
    report = json.loads(line.removeprefix("REPORT "))
    # The emulation is live: CUDA looks available and the GPU function is wrapped by spaces.
    assert report["cuda_available"] and report["zero_gpu"] and report["run_is_wrapped"], report
    assert report["device"] == "cuda", report
    assert report["ready"] == ["test-edges", "test-photo", "test-labels-a", "test-labels-b",
                               "test-labels-c"], report  # fmt: skip
    # Before the fix: every model measured (on the CPU behind the emulation) and cached as the
    # GPU's choice; the export failed with "Low-level CUDA init (`torch._C._cuda_init`) reached".
    assert report["measured"] == [] and not report["choices_cached"], report
    assert "**eager**: fixed on ZeroGPU" in report["about"], report["about"]
    assert report["export"].startswith("test-labels-a-"), report["export"]
    whole = [name for name in report["prefetched"] if ".stage" not in name]
    assert len(whole) == 1 and len(report["prefetched"]) == 5, (report, done.stderr[-3000:])
    assert "Low-level CUDA init" not in done.stderr, done.stderr[-3000:]
