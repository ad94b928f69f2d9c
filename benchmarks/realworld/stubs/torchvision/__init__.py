"""A minimal stand-in for torchvision, for the real-code harness only.

The torchvision wheel that can be had here is a CUDA build that fails to import on the CPU
torch, and nothing can be downloaded, so the harness puts this package first on PYTHONPATH:
datasets that generate random data of the right shapes (deterministically), the transforms the
examples use, ``utils.save_image`` and models with the right structure and random weights.
"""
from . import datasets, models, transforms, utils  # noqa: F401

__version__ = "0.0+graphprobe.standin"
