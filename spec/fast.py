"""The fast spec: the same integers as :mod:`spec.reference`, computed the way hardware does.

Bit tensors are packed eight channels to a byte. Each layer kind's :meth:`~spec.kinds.Kind.fast`
computes its convolution band by band. A binary layer gathers the bytes of each 3x3
window into 64-bit words and counts disagreements with XOR + popcount:
``acc = N - popcount(window XOR weights)`` which is ``popcount(XNOR)`` over the N real bits.

Fixed layers multiply in float64 through BLAS (a depthwise layer: nine per-channel products,
elementwise). That is exact: every accumulator is bounded by
:func:`spec.arith.conv_acc_range`, and with 8-bit weights, 16-bit inputs and at most 9*1024
taps the bound stays below 2**36, far inside float64's 2**53 exact-integer range.

Rows are processed in bands small enough to stay in cache, spread over a thread pool (numpy
releases the GIL in these kernels).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .model import Model
from .tensor import unpack_channels as _unpack_channels

__all__ = ["run_layers", "run_output"]

#: Pixels per work item: big enough to amortize numpy call overhead, small enough for L2.
_BAND_PIXELS = 4096


class _Runner:
    """Runs one model over one input, sharing a thread pool across layers.

    Each conv hands its accumulator for a band of rows to the layer's output stage; for
    binary layers the stage receives the mismatch count ``m = N - acc`` (uint16), which keeps
    the per-pixel work in narrow integers.
    """

    def __init__(self, model: Model, pool: ThreadPoolExecutor):
        self.model = model
        self.pool = pool
        self.types = model.tensor_types()

    def _map(self, fn, h, w):
        rows = max(1, _BAND_PIXELS // max(w, 1))
        bands = [(r0, min(h, r0 + rows)) for r0 in range(0, h, rows)]
        list(self.pool.map(lambda b: fn(*b), bands))

    def run(self, x0: np.ndarray) -> list[np.ndarray]:
        tensors: list[np.ndarray] = [x0]
        h, w = x0.shape[:2]
        for i, layer in enumerate(self.model.layers, 1):
            t_in = self.types[i - 1]
            t_out = self.types[i]
            if t_out.kind == "bit":
                out = np.empty((h, w, (layer.c_out + 7) // 8), dtype=np.uint8)
            elif t_out.kind == "fixed":
                out = np.empty((h, w, layer.c_out), dtype=np.int32)
            else:
                out = np.empty((h, w, layer.c_out), dtype=np.uint8)
            conv = layer.conv
            # The output stage as a function of (row band, accumulator or mismatch count).
            stage = layer.stage.fast(tensors, out, conv.mismatch_taps(layer))
            conv.fast(layer, tensors[i - 1], t_in, stage, self._map)
            tensors.append(out)
        return tensors


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="spec")
    return _POOL


def run_layers(model: Model, x0: np.ndarray) -> list[np.ndarray]:
    """All tensors 0..L, bit tensors unpacked to one uint8 per channel (as the reference)."""
    tensors = _Runner(model, _pool()).run(np.asarray(x0, dtype=np.uint8))
    types = model.tensor_types()
    return [
        _unpack_channels(t, ty.channels) if ty.kind == "bit" else t.astype(np.int64 if ty.kind == "fixed" else np.uint8)
        for t, ty in zip(tensors, types)
    ]


def run_output(model: Model, x0: np.ndarray) -> np.ndarray:
    """Only the output tensor (H, W, c_out) uint8."""
    return _Runner(model, _pool()).run(np.asarray(x0, dtype=np.uint8))[-1]
