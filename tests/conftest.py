"""Shared fixtures. The whole suite runs offline: the Hub is switched off before anything imports
huggingface_hub, and every cache points into a temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_CACHE = Path(tempfile.mkdtemp(prefix="pix2pix-test-cache-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_CACHE / "hf")
os.environ["HF_HUB_CACHE"] = str(_CACHE / "hf" / "hub")
os.environ["PIX2PIX_CACHE"] = str(_CACHE / "pix2pix")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# App tests run every model on the server unless they ask for browser runs (App(browser_mode=True)):
# otherwise each App would export its default model to ONNX in the background.
os.environ.setdefault("PIX2PIX_BROWSER", "off")
# Translator(backend="auto") measures the PyTorch candidates only: ONNX Runtime and OpenVINO would
# add an ONNX export per model to every test that builds a Translator. tests/test_backends.py
# measures them all.
os.environ.setdefault("PIX2PIX_BACKENDS", "eager-fp32,onednn-fp32,bf16-channels-last")

import pytest  # noqa: E402
import torch  # noqa: E402


def pytest_unconfigure(config: pytest.Config) -> None:
    # The suite's caches (exports, compiled kernels, a Hub cache: about 400 MB) go with it; they
    # piled up in the temporary folder, one per run, until a disk filled.
    shutil.rmtree(_CACHE, ignore_errors=True)


# A copy of the project's shared golden vectors (see tests/golden/README.md), kept in the repo so
# that a clean clone tests against them; PIX2PIX_GOLDEN points elsewhere to test other copies.
GOLDEN = Path(os.environ.get("PIX2PIX_GOLDEN") or Path(__file__).parent / "golden")


@pytest.fixture(autouse=True)
def _seeded() -> None:
    # The generators' own seeding, not torch.manual_seed: once dynamo is imported, that runs under
    # dynamo's disable wrapper, which edits process-wide trace metadata that a test server's
    # background ONNX export (torch.export, in a thread) edits too: KeyError: 'custom'.
    torch.default_generator.manual_seed(0)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(0)


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    """The shared golden vectors (read-only)."""
    if not (GOLDEN / "unet256_ngf8_batch.pt").is_file():
        pytest.fail(f"golden vectors not found in {GOLDEN}; set PIX2PIX_GOLDEN")
    return GOLDEN
