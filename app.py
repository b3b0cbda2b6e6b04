"""pix2pix studio: the Gradio app (``python app.py``; on Hugging Face Spaces, the app file).

The models come from ``models.toml`` (or the file named by ``$PIX2PIX_MODELS``); see
``pix2pix/app/`` for the registry, the model store and the UI.
"""

import contextlib
import logging

with contextlib.suppress(ImportError):  # ZeroGPU: import `spaces` before anything touches CUDA
    import spaces  # noqa: F401

from pix2pix.app import build_demo, launch_options

# Model loading is reported as it goes: a first start on a new machine also measures each model's
# fastest inference path, which takes a while.
# Only this project's loggers speak at INFO; libraries (the ONNX exporter's optimiser passes,
# httpx) keep to warnings.
logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("pix2pix: %(message)s"))
_ours = logging.getLogger("pix2pix")
_ours.setLevel(logging.INFO)
_ours.addHandler(_handler)
_ours.propagate = False
# torch warns at every start of a CPU-only machine that it found no CUDA runtime when inductor
# loads its C++ builder (the compiled candidates): true, and irrelevant to the CPU kernels.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)

demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_options(demo))
