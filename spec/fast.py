"""The fast spec: the same integers as :mod:`spec.reference`, computed the way hardware does.

Bit tensors are packed eight channels to a byte. A binary layer gathers the bytes of each 3x3
window into 64-bit words (taps in (ky, kx) order, channels padded with zero bits to whole
bytes, the window padded with zero bytes to whole words; weights are packed the same way, so
padding bits always agree and cancel), then counts disagreements with XOR + popcount:
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

from . import arith
from .model import Layer, Model
from .tensor import TensorType, pack_channels as _pack_channels, unpack_channels as _unpack_channels

__all__ = ["run_layers", "run_output"]

#: Pixels per work item: big enough to amortize numpy call overhead, small enough for L2.
_BAND_PIXELS = 4096

if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def _popcount(words: np.ndarray) -> np.ndarray:
        return np.bitwise_count(words)

else:  # numpy 1.x (the PYNQ image): byte lookup table
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray) -> np.ndarray:
        b = _POP8[words.view(np.uint8)].reshape(words.shape + (8,))
        return b.sum(axis=-1, dtype=np.uint8)


def _pad_edges(x: np.ndarray, r: int) -> np.ndarray:
    """Replicate-border padding by ``r`` rows and columns (the spec's border rule)."""
    if r == 0:
        return x
    h, w = x.shape[:2]
    out = np.empty((h + 2 * r, w + 2 * r) + x.shape[2:], dtype=x.dtype)
    out[r : r + h, r : r + w] = x
    out[r : r + h, :r] = x[:, :1]
    out[r : r + h, r + w :] = x[:, -1:]
    out[:r] = out[r : r + 1]
    out[r + h :] = out[r + h - 1 : r + h]
    return out


def _exact_float_dtype(layer: Layer, t_in: TensorType):
    """float32 when every partial sum stays below 2**24 (exact), else float64 (2**53)."""
    lo, hi = t_in.value_range()
    bound = int(np.abs(layer.weights).astype(np.int64).sum(axis=(1, 2, 3)).max()) * max(-lo, hi)
    return np.float32 if bound < 2**24 else np.float64


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

    # -------------------------------------------------------------- binary conv
    def binary(self, layer: Layer, x: np.ndarray, t_in: TensorType, stage) -> None:
        packed = x if t_in.kind == "bit" else _pack_channels(arith.sign_bit(x))
        h, w, nb = packed.shape
        k, r = layer.kernel, layer.kernel // 2
        padded = _pad_edges(packed, r)
        win_bytes = k * k * nb
        nw = (win_bytes + 7) // 8
        wbytes = np.zeros((layer.c_out, nw * 8), dtype=np.uint8)
        wbytes[:, :win_bytes] = _pack_channels(layer.weights).reshape(layer.c_out, win_bytes)
        wwords = np.ascontiguousarray(wbytes.view(np.uint64).T)  # (nw, c_out)

        def band(r0, r1):
            n = (r1 - r0) * w
            buf = np.empty((r1 - r0, w, nw * 8), dtype=np.uint8)
            buf[:, :, win_bytes:] = 0  # padding bytes: zero in windows and weights alike
            for t, (ky, kx) in enumerate((ky, kx) for ky in range(k) for kx in range(k)):
                buf[:, :, t * nb : (t + 1) * nb] = padded[r0 + ky : r1 + ky, kx : kx + w]
            xw = buf.reshape(n, nw * 8).view(np.uint64)  # (n, nw)
            mism = np.zeros((n, layer.c_out), dtype=np.uint16)
            tmp = np.empty((n, layer.c_out), dtype=np.uint64)
            for j in range(nw):
                np.bitwise_xor(xw[:, j : j + 1], wwords[j], out=tmp)
                np.add(mism, _popcount(tmp), out=mism)
            stage(r0, r1, mism.reshape(r1 - r0, w, layer.c_out))

        self._map(band, h, w)

    # --------------------------------------------------------------- fixed conv
    def fixed(self, layer: Layer, x: np.ndarray, t_in: TensorType, stage) -> None:
        ftype = _exact_float_dtype(layer, t_in)
        if t_in.kind == "bit":
            vals = _unpack_channels(x, t_in.channels).astype(ftype) * 2 - 1
        else:
            vals = x.astype(ftype)
        h, w, _ = vals.shape
        k, r = layer.kernel, layer.kernel // 2
        padded = _pad_edges(vals, r)
        if layer.depthwise:
            self._depthwise(layer, padded, ftype, stage, h, w)
            return
        # (k*k*c_in, c_out): rows in (ky, kx, c_in) order, like the gathered windows below.
        wmat = layer.weights.reshape(layer.c_out, -1).T.astype(ftype)

        def band(r0, r1):
            rows = r1 - r0
            taps = [padded[r0 + ky : r1 + ky, kx : kx + w] for ky in range(k) for kx in range(k)]
            win = np.concatenate(taps, axis=2).reshape(rows * w, -1)
            acc = (win @ wmat).astype(np.int64)
            stage(r0, r1, acc.reshape(rows, w, layer.c_out))

        self._map(band, h, w)

    def _depthwise(self, layer: Layer, padded: np.ndarray, ftype, stage, h: int, w: int) -> None:
        """A depthwise fixed conv: channel c of each tap times its own weight, summed over taps."""
        k = layer.kernel
        wtaps = layer.weights[:, :, :, 0].reshape(layer.c_out, k * k).T.astype(ftype)  # (k*k, c)

        def band(r0, r1):
            acc = np.zeros((r1 - r0, w, layer.c_out), dtype=ftype)
            for t, (ky, kx) in enumerate((ky, kx) for ky in range(k) for kx in range(k)):
                acc += padded[r0 + ky : r1 + ky, kx : kx + w] * wtaps[t]
            stage(r0, r1, acc.astype(np.int64))

        self._map(band, h, w)

    # ------------------------------------------------------------- output stage
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
            stage = self._stage(layer, tensors, out)
            conv = self.binary if layer.kind == "binary" else self.fixed
            conv(layer, tensors[i - 1], t_in, stage)
            tensors.append(out)
        return tensors

    def _stage(self, layer: Layer, tensors: list[np.ndarray], out: np.ndarray):
        """The output stage as a function of (row band, accumulator or mismatch count)."""
        return layer.stage.fast(tensors, out, layer.taps if layer.kind == "binary" else None)


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
