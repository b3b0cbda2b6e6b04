"""The Gradio app: a model registry (``models.toml``), resident models, and the Blocks UI.

``build_demo()`` reads the registry (``$PIX2PIX_MODELS`` or ``models.toml``), loads the models and
returns the ``gr.Blocks``; ``launch_options(demo)`` gives ``launch()`` its host, port,
theme, and the routes and headers that let the canvas run models in the browser (``browser.py``).
Nothing else under ``pix2pix/`` imports gradio.
"""

from pix2pix.app.gpu import on_gpu
from pix2pix.app.registry import ModelEntry, Registry, RegistryError, load_registry
from pix2pix.app.service import ModelError, ModelStore, ServedModel
from pix2pix.app.ui import App, build_demo, create_store, launch_options

__all__ = [
    "App",
    "ModelEntry",
    "ModelError",
    "ModelStore",
    "Registry",
    "RegistryError",
    "ServedModel",
    "build_demo",
    "create_store",
    "launch_options",
    "load_registry",
    "on_gpu",
]
