"""gamir's integer spec: the model file and the bit-exact definition of the accelerator.

Imports nothing beyond numpy. The arithmetic rules live in :mod:`spec.arith`; the layer kinds
(one class per convolution: file fields, validation, arithmetic) in :mod:`spec.kinds`; the
output stages (one class each: arrays, validation, arithmetic) in :mod:`spec.stages`; the model and
its validation in :mod:`spec.model`; the file format in :mod:`spec.fileformat`; three
implementations that agree bit for bit: :mod:`spec.reference` (plain), :mod:`spec.fast`
(packed numpy) and :mod:`spec.native` (a compiled kernel, used by default where it runs).
The filters the host runs after the accelerator, integer too: :mod:`spec.degrid` (the 2-pixel
grid) and :mod:`spec.temporal` (the temporal blend of a restored video).
"""

from __future__ import annotations

import numpy as np

from . import arith, fast, kinds, native, reference
from .fileformat import FORMAT_VERSION, digest, from_bytes, load, save, to_bytes
from .model import Layer, Model, ModelError, PixelSteps, TensorType
from .stages import STAGES, Affine, PixelOutput, Stage, Threshold
from .pixels import model_input, model_output, pixel_shuffle, pixel_unshuffle
from .random_model import random_image, random_model

__all__ = [
    "FORMAT_VERSION",
    "Layer",
    "Stage",
    "Threshold",
    "Affine",
    "PixelOutput",
    "STAGES",
    "Model",
    "ModelError",
    "PixelSteps",
    "TensorType",
    "arith",
    "fast",
    "kinds",
    "native",
    "reference",
    "digest",
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
    "IMPLS",
    "tensor_runner",
    "stream_runner",
    "run_tensor",
    "restore",
]

#: Implementations of :func:`run_tensor`: ``auto`` is ``native`` where the compiled kernel
#: runs the model, else ``fast``.
IMPLS = ("auto", "native", "fast", "reference")


def _runner(model: Model, impl: str):
    """(what runs, the :class:`native.NativeRunner` or ``None``, function ``x0 -> output``)."""
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} must be one of {', '.join(IMPLS)}")
    if impl in ("auto", "native"):
        try:
            runner = native.NativeRunner(model)
            return native.describe(), runner, runner.run
        except ModelError as e:
            if impl == "native":
                raise
            return f"numpy ({e})", None, lambda x0: fast.run_output(model, x0)
    if impl == "fast":
        return "numpy (spec.fast)", None, lambda x0: fast.run_output(model, x0)
    return "numpy reference", None, lambda x0: reference.run_layers(model, x0)[-1]


def tensor_runner(model: Model, impl: str = "auto"):
    """(what runs, function ``x0 -> output tensor``) for ``model`` with implementation ``impl``.

    The function skips :func:`run_tensor`'s input checks; a backend prepares it once per model.
    """
    what, _, run = _runner(model, impl)
    return what, run


def stream_runner(model: Model, impl: str = "auto"):
    """(what runs, function ``iterable of x0 -> iterator of output tensors``, in order): as
    :func:`tensor_runner`, with several tensors in flight where the native kernel runs
    (:meth:`native.NativeRunner.run_stream`)."""
    what, runner, run = _runner(model, impl)
    if runner is not None:
        return what, runner.run_stream
    return what, lambda tensors: map(run, tensors)


def run_tensor(model: Model, x0: np.ndarray, impl: str = "auto") -> np.ndarray:
    """The accelerator's output stream for input stream ``x0`` (H, W, input_channels) uint8."""
    x0 = np.asarray(x0)
    if x0.dtype != np.uint8 or x0.ndim != 3 or x0.shape[2] != model.input_channels:
        raise ModelError(
            f"input tensor must be uint8 (height, width, {model.input_channels}), got "
            f"{x0.dtype} {x0.shape}"
        )
    return tensor_runner(model, impl)[1](x0)


def restore(model: Model, image: np.ndarray, impl: str = "auto") -> np.ndarray:
    """Run the whole model on an (H, W, C) uint8 image, pixel steps included."""
    return model_output(model, run_tensor(model, model_input(model, image), impl))
