"""The plain reference: the spec computed the obvious way, for trust, not speed.

Bits stay unpacked (one uint8 per channel), XNOR is ``==`` and popcount a sum; fixed convs are
integer products summed tap by tap in int64 (each kind's :meth:`~spec.kinds.Kind.reference`).
The window rule is written out as clamped coordinates (:func:`window_tap`). :mod:`spec.fast`
must equal this bit for bit.
"""

from __future__ import annotations

import numpy as np

from .kinds import window_tap
from .model import Layer, Model, TensorType

__all__ = ["window_tap", "conv_acc", "output_stage", "run_layers"]


def conv_acc(layer: Layer, x: np.ndarray, in_type: TensorType) -> np.ndarray:
    """The accumulator (H, W, c_out) int64 of ``layer`` on input tensor ``x``
    (:meth:`spec.kinds.Kind.reference`)."""
    return layer.conv.reference(layer, x, in_type)


def output_stage(layer: Layer, acc: np.ndarray, tensors: list[np.ndarray]) -> np.ndarray:
    """The output stage of ``layer`` (:meth:`spec.stages.Stage.reference`)."""
    return layer.stage.reference(acc, tensors)


def run_layers(model: Model, x0: np.ndarray) -> list[np.ndarray]:
    """All tensors 0..L for input tensor ``x0`` (H, W, input_channels) uint8."""
    types = model.tensor_types()
    tensors = [x0]
    for i, layer in enumerate(model.layers, 1):
        acc = conv_acc(layer, tensors[i - 1], types[i - 1])
        tensors.append(output_stage(layer, acc, tensors))
    return tensors
