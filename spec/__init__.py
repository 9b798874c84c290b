"""gamir's integer spec: the model file and the bit-exact definition of the accelerator.

Imports nothing beyond numpy. The arithmetic rules live in :mod:`spec.arith`; the model and
its validation in :mod:`spec.model`; the file format in :mod:`spec.fileformat`; two
implementations that agree bit for bit in :mod:`spec.reference` (plain) and :mod:`spec.fast`.
"""

from __future__ import annotations

import numpy as np

from . import arith, fast, reference
from .fileformat import FORMAT_VERSION, from_bytes, load, save, to_bytes
from .model import Layer, Model, ModelError, PixelSteps, TensorType
from .pixels import model_input, model_output, pixel_shuffle, pixel_unshuffle
from .random_model import random_image, random_model

__all__ = [
    "FORMAT_VERSION",
    "Layer",
    "Model",
    "ModelError",
    "PixelSteps",
    "TensorType",
    "arith",
    "fast",
    "reference",
    "from_bytes",
    "load",
    "save",
    "to_bytes",
    "model_input",
    "model_output",
    "pixel_shuffle",
    "pixel_unshuffle",
    "random_image",
    "random_model",
    "run_tensor",
    "restore",
]


def run_tensor(model: Model, x0: np.ndarray, impl: str = "fast") -> np.ndarray:
    """The accelerator's output stream for input stream ``x0`` (H, W, input_channels) uint8."""
    x0 = np.asarray(x0)
    if x0.dtype != np.uint8 or x0.ndim != 3 or x0.shape[2] != model.input_channels:
        raise ModelError(
            f"input tensor must be uint8 (height, width, {model.input_channels}), got "
            f"{x0.dtype} {x0.shape}"
        )
    if impl == "fast":
        return fast.run_output(model, x0)
    if impl == "reference":
        return reference.run_layers(model, x0)[-1]
    raise ValueError(f"impl={impl!r} must be 'fast' or 'reference'")


def restore(model: Model, image: np.ndarray, impl: str = "fast") -> np.ndarray:
    """Run the whole model on an (H, W, C) uint8 image, pixel steps included."""
    return model_output(model, run_tensor(model, model_input(model, image), impl))
