"""The plain reference: the spec computed the obvious way, for trust, not speed.

Bits stay unpacked (one uint8 per channel), XNOR is ``==`` and popcount a sum; fixed convs are
integer products summed tap by tap (and group by group) in int64. The window rule is written out as clamped
coordinates. :mod:`spec.fast` must equal this bit for bit.
"""

from __future__ import annotations

import numpy as np

from . import arith
from .model import Layer, Model, TensorType

__all__ = ["window_tap", "conv_acc", "output_stage", "run_layers"]


def window_tap(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x[clamp(y+dy), clamp(x+dx)]`` for every pixel: one tap of a replicate-border window."""
    h, w = x.shape[:2]
    rows = np.clip(np.arange(h) + dy, 0, h - 1)
    cols = np.clip(np.arange(w) + dx, 0, w - 1)
    return x[rows][:, cols]


def _offsets(kernel: int):
    r = kernel // 2
    for ky in range(kernel):
        for kx in range(kernel):
            yield ky, kx, ky - r, kx - r


def conv_acc(layer: Layer, x: np.ndarray, in_type: TensorType) -> np.ndarray:
    """The accumulator (H, W, c_out) int64 of ``layer`` on input tensor ``x``."""
    h, w = x.shape[:2]
    acc = np.zeros((h, w, layer.c_out), dtype=np.int64)
    if layer.kind == "binary":
        bits = x if in_type.kind == "bit" else arith.sign_bit(x)
        for ky, kx, dy, dx in _offsets(layer.kernel):
            tap = window_tap(bits, dy, dx)  # (h, w, c_in)
            wt = layer.weights[:, ky, kx, :]  # (c_out, c_in)
            xnor = tap[:, :, None, :] == wt[None, None, :, :]
            acc += xnor.sum(axis=3)
        return acc
    vals = arith.bit_to_pm1(x) if in_type.kind == "bit" else x.astype(np.int64)
    # Group g's outputs read only group g's inputs (groups=1: dense; groups=c_in: depthwise).
    ci, co = layer.c_in // layer.groups, layer.c_out // layer.groups
    for ky, kx, dy, dx in _offsets(layer.kernel):
        tap = window_tap(vals, dy, dx)
        for g in range(layer.groups):
            wt = layer.weights[g * co : (g + 1) * co, ky, kx, :].astype(np.int64)  # (co, ci)
            acc[:, :, g * co : (g + 1) * co] += tap[:, :, g * ci : (g + 1) * ci] @ wt.T
    return acc


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
