"""pix2pix-studio: exact pix2pix networks, checkpoint loading, inference, training and an app."""

from pix2pix.hub import Pix2PixGenerator, TaskInfo, load_generator, save_generator
from pix2pix.inference import Translator
from pix2pix.networks import create_discriminator, create_generator

__all__ = [
    "Pix2PixGenerator",
    "TaskInfo",
    "Translator",
    "create_discriminator",
    "create_generator",
    "load_generator",
    "save_generator",
]
__version__ = "0.1.0"
