"""The layer kinds: what a layer's convolution is, one class per kind.

A layer (:class:`spec.model.Layer`) is a convolution of one kind followed by an output stage
(:mod:`spec.stages`). Each kind class owns everything about its convolution, so adding a kind
is one class here (plus its hardware block in ``hw.pipeline.CONV_BLOCKS`` and its torch twin
in training; docs/architecture.md):

* its name in the file (:attr:`Kind.FILE_KIND`, and :attr:`Kind.GROUPED`: whether the file
  writes ``groups``), :meth:`Kind.file_fields` (also the shape hash's), how its weights are
  stored (:meth:`Kind.stored_weights` / :meth:`Kind.read_weights`);
* its validation (:meth:`Kind.validate`), weight shape and taps;
* its accumulator range, for one model's weights (:meth:`Kind.acc_range`) and for every model
  of the shape (:meth:`Kind.acc_bounds`, what the hardware is sized for);
* its arithmetic, twice: :meth:`Kind.reference` (plain) and :meth:`Kind.fast` (the bands of
  :mod:`spec.fast`), which must agree bit for bit, and its random weights;
* the facts the cost model and the generator dispatch on (:attr:`Kind.reads_signs`,
  :attr:`Kind.multiplies`, :attr:`Kind.per_channel`).

The kinds (rules in :mod:`spec.arith`):

* :class:`Binary` -- XNOR-popcount on sign bits, weights 0/1 (1 = +1);
* :class:`Fixed` -- integer multiply-accumulate, weights ``w_bits`` signed;
* :class:`Depthwise` -- a fixed conv whose output channel ``c`` reads only input channel ``c``
  (``groups == c_in == c_out``; the file says ``kind: fixed`` with ``groups``).
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import numpy as np

from . import arith
from .stages import check_int, int_array
from .tensor import ModelError, TensorType, pack_channels, unpack_channels

__all__ = ["Kind", "Binary", "Fixed", "Depthwise", "LAYER_KINDS", "KINDS", "kind_of",
           "window_tap"]

#: ``bands(fn, h, w)``: calls ``fn(r0, r1)`` for row bands covering ``h`` rows (spec.fast).
Bands = Callable[[Callable[[int, int], None], int, int], None]


# ------------------------------------------------------------------ window helpers
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


if hasattr(np, "bitwise_count"):  # numpy >= 2.0

    def _popcount(words: np.ndarray) -> np.ndarray:
        return np.bitwise_count(words)

else:  # numpy 1.x (the PYNQ image): byte lookup table
    _POP8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)

    def _popcount(words: np.ndarray) -> np.ndarray:
        b = _POP8[words.view(np.uint8)].reshape(words.shape + (8,))
        return b.sum(axis=-1, dtype=np.uint8)


# ------------------------------------------------------------------ the kinds
class Kind:
    """Base of the layer kinds (see the module docstring for the contract). Kinds hold no
    data: every method takes the layer. The defaults are those of signed ``w_bits`` weights."""

    #: The kind's name (``Layer.conv.name``; hardware tables key on the class).
    name: ClassVar[str]
    #: The file's ``kind`` value.
    FILE_KIND: ClassVar[str]
    #: Whether the file writes ``groups`` (a layer with ``groups != 1``).
    GROUPED: ClassVar[bool] = False
    #: The conv reads its input's sign bits (one bit per channel): no pixels, a sign stage in
    #: front of a fixed input, and the fast spec hands the stage mismatch counts.
    reads_signs: ClassVar[bool] = False
    #: Each lane multiplies a weight by a value (the DSP budget's conv products).
    multiplies: ClassVar[bool] = False
    #: Output channel ``c`` reads only input channel ``c``: each hardware lane selects its own
    #: slice of the window.
    per_channel: ClassVar[bool] = False

    def __repr__(self):
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ shape and file
    def weight_shape(self, layer) -> tuple[int, int, int, int]:
        """(c_out, kernel, kernel, c_in // groups)."""
        return (layer.c_out, layer.kernel, layer.kernel, layer.c_in // layer.groups)

    def weight_bits(self, layer) -> int:
        """Bits of one stored weight."""
        return layer.w_bits

    def in_bits(self, t_in: TensorType) -> int:
        """Bits of one input value the conv reads (what its line buffer holds per channel)."""
        return t_in.bits

    def weight_field(self, layer) -> tuple[str, int, bool]:
        """What one hardware lane stores per weight: (name, bits, signed), packed by
        :mod:`accel.regmap` like the stages' :meth:`~spec.stages.Stage.param_fields`."""
        return ("w", self.weight_bits(layer), True)

    def file_fields(self, layer) -> dict:
        """The convolution's scalars in the file and the shape hash (``groups`` only for a
        grouped kind, so dense layers keep their bytes and hashes)."""
        return {"kind": self.FILE_KIND, "w_bits": self.weight_bits(layer),
                **({"groups": layer.groups} if self.GROUPED else {})}

    def stored_weights(self, weights: np.ndarray) -> np.ndarray:
        """The weights as the file stores them."""
        return np.asarray(weights).astype(np.int8)

    def read_weights(self, a: np.ndarray, conv: dict, where: str) -> np.ndarray:
        """The weights from the file's array ``a`` (``conv``: the entry's scalars)."""
        return a

    # ------------------------------------------------------------------ validation
    def validate(self, layer, where: str, src: TensorType) -> dict:
        """The normalized ``weights`` and ``w_bits`` of ``layer`` reading ``src``, or
        :class:`ModelError`."""
        w_bits = layer.w_bits
        check_int(where, "w_bits", w_bits, arith.MIN_BITS, arith.MAX_WEIGHT_BITS)
        weights = int_array(where, "weights", layer.weights, self.weight_shape(layer),
                            *arith.signed_range(w_bits))
        return {"weights": weights, "w_bits": w_bits}

    # ------------------------------------------------------------------ accumulator
    def acc_range(self, layer, lo: int, hi: int) -> tuple[int, int]:
        """Exact bounds of the accumulator of this layer's weights for inputs in ``lo..hi``."""
        return arith.conv_acc_range(layer.weights, lo, hi)

    def acc_bounds(self, layer, lo: int, hi: int) -> tuple[int, int]:
        """Accumulator bounds for *every* model of this layer's shape (any weights in
        ``w_bits``): what a bitstream that reloads parameters is sized for."""
        wlo, whi = arith.signed_range(layer.w_bits)
        ends = [arith.conv_acc_range(np.full((1, 1, 1, layer.taps), w), lo, hi) for w in (wlo, whi)]
        return min(e[0] for e in ends), max(e[1] for e in ends)

    def random_weights(self, rng: np.random.Generator, layer) -> np.ndarray:
        """Random weights of ``layer``'s shape (:func:`spec.random_model`)."""
        lo, hi = arith.signed_range(layer.w_bits)
        return rng.integers(lo, hi + 1, self.weight_shape(layer))

    # ------------------------------------------------------------------ arithmetic
    def reference(self, layer, x: np.ndarray, in_type: TensorType) -> np.ndarray:
        """The accumulator (H, W, c_out) int64 of ``layer`` on input tensor ``x``, plainly."""
        raise NotImplementedError

    def fast(self, layer, x: np.ndarray, t_in: TensorType, stage, bands: Bands) -> None:
        """The same accumulators as :meth:`reference` by row bands: ``stage(r0, r1, acc)``
        for each band :func:`bands` hands out (``x``: bit tensors packed)."""
        raise NotImplementedError

    def mismatch_taps(self, layer) -> int | None:
        """``N`` when :meth:`fast` hands the stage mismatch counts ``m = N - acc`` instead of
        accumulators (:meth:`spec.stages.Stage.fast`), else ``None``."""
        return None


class Binary(Kind):
    """XNOR-popcount: ``acc = popcount(XNOR(window bits, weight bits))``, 0..N."""

    name = FILE_KIND = "binary"
    reads_signs = True

    def weight_bits(self, layer):
        return 1

    def weight_field(self, layer):
        return ("w", 1, False)  # 1 = +1

    def in_bits(self, t_in):
        return 1

    def stored_weights(self, weights):
        return np.packbits(np.asarray(weights, dtype=np.uint8).reshape(-1))

    def read_weights(self, a, conv, where):
        if a.dtype != np.uint8:
            raise ModelError(f"model file: {where}.weights of a binary layer must be "
                             f"packed uint8 bits, not {a.dtype}")
        shape = (conv["c_out"], conv["kernel"], conv["kernel"], conv["c_in"])
        count = math.prod(shape)
        if a.size * 8 < count or a.size > (count + 7) // 8:
            raise ModelError(
                f"model file: {where}.weights holds {a.size} packed bytes, shape "
                f"{shape} needs {(count + 7) // 8}"
            )
        return np.unpackbits(a)[:count].reshape(shape)

    def validate(self, layer, where, src):
        if src.kind == "pixel":
            raise ModelError(f"{where}: a binary layer cannot read pixels (sign of 0..255 is +1)")
        weights = int_array(where, "weights", layer.weights, self.weight_shape(layer), 0, 1)
        return {"weights": weights.astype(np.uint8), "w_bits": 1}

    def acc_range(self, layer, lo, hi):
        return 0, layer.taps

    acc_bounds = acc_range

    def random_weights(self, rng, layer):
        return rng.integers(0, 2, self.weight_shape(layer), dtype=np.uint8)

    def reference(self, layer, x, in_type):
        h, w = x.shape[:2]
        acc = np.zeros((h, w, layer.c_out), dtype=np.int64)
        bits = x if in_type.kind == "bit" else arith.sign_bit(x)
        for ky, kx, dy, dx in _offsets(layer.kernel):
            tap = window_tap(bits, dy, dx)  # (h, w, c_in)
            wt = layer.weights[:, ky, kx, :]  # (c_out, c_in)
            xnor = tap[:, :, None, :] == wt[None, None, :, :]
            acc += xnor.sum(axis=3)
        return acc

    def mismatch_taps(self, layer):
        return layer.taps

    def fast(self, layer, x, t_in, stage, bands):
        """Gathers the bytes of each window into 64-bit words (taps in (ky, kx) order, channels
        padded with zero bits to whole bytes, the window with zero bytes to whole words; the
        weights alike, so padding bits agree and cancel) and counts disagreements with XOR +
        popcount: the stage gets ``m = N - acc`` (uint16)."""
        packed = x if t_in.kind == "bit" else pack_channels(arith.sign_bit(x))
        h, w, nb = packed.shape
        k, r = layer.kernel, layer.kernel // 2
        padded = _pad_edges(packed, r)
        win_bytes = k * k * nb
        nw = (win_bytes + 7) // 8
        wbytes = np.zeros((layer.c_out, nw * 8), dtype=np.uint8)
        wbytes[:, :win_bytes] = pack_channels(layer.weights).reshape(layer.c_out, win_bytes)
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

        bands(band, h, w)


class Fixed(Kind):
    """Integer multiply-accumulate over every input channel: ``acc = sum(w * v)``."""

    name = FILE_KIND = "fixed"
    multiplies = True

    def _values(self, x: np.ndarray, t_in: TensorType, dtype) -> np.ndarray:
        """The values a multiplying conv reads (bits as +/-1) from a packed tensor."""
        if t_in.kind == "bit":
            return unpack_channels(x, t_in.channels).astype(dtype) * 2 - 1
        return x.astype(dtype)

    @staticmethod
    def _exact_float_dtype(layer, t_in: TensorType):
        """float32 when every partial sum stays below 2**24 (exact), else float64 (2**53)."""
        lo, hi = t_in.value_range()
        bound = int(np.abs(layer.weights).astype(np.int64).sum(axis=(1, 2, 3)).max()) * max(-lo, hi)
        return np.float32 if bound < 2**24 else np.float64

    def reference(self, layer, x, in_type):
        h, w = x.shape[:2]
        acc = np.zeros((h, w, layer.c_out), dtype=np.int64)
        vals = arith.bit_to_pm1(x) if in_type.kind == "bit" else x.astype(np.int64)
        for ky, kx, dy, dx in _offsets(layer.kernel):
            acc += window_tap(vals, dy, dx) @ layer.weights[:, ky, kx, :].astype(np.int64).T
        return acc

    def fast(self, layer, x, t_in, stage, bands):
        """Multiplies through BLAS in float, exact: :meth:`_exact_float_dtype` keeps every
        partial sum within the float's exact-integer range."""
        ftype = self._exact_float_dtype(layer, t_in)
        padded = _pad_edges(self._values(x, t_in, ftype), layer.kernel // 2)
        h, w = x.shape[:2]
        k = layer.kernel
        # (k*k*c_in, c_out): rows in (ky, kx, c_in) order, like the gathered windows below.
        wmat = layer.weights.reshape(layer.c_out, -1).T.astype(ftype)

        def band(r0, r1):
            rows = r1 - r0
            taps = [padded[r0 + ky : r1 + ky, kx : kx + w] for ky in range(k) for kx in range(k)]
            win = np.concatenate(taps, axis=2).reshape(rows * w, -1)
            acc = (win @ wmat).astype(np.int64)
            stage(r0, r1, acc.reshape(rows, w, layer.c_out))

        bands(band, h, w)


class Depthwise(Fixed):
    """A fixed conv of ``groups == c_in == c_out``: ``acc[c] = sum_{ky,kx} w[c, ky, kx, 0] *
    v[ky, kx, c]`` (the cheap 3x3 half of a depthwise-separable head or tail: 9 products per
    channel instead of 9*c_in)."""

    name = "depthwise"
    GROUPED = True
    per_channel = True

    def validate(self, layer, where, src):
        if not layer.groups == layer.c_in == layer.c_out:
            raise ModelError(f"{where}: groups={layer.groups} must be 1 or equal c_in="
                             f"{layer.c_in} and c_out={layer.c_out} (depthwise)")
        return super().validate(layer, where, src)

    def reference(self, layer, x, in_type):
        vals = arith.bit_to_pm1(x) if in_type.kind == "bit" else x.astype(np.int64)
        acc = np.zeros(vals.shape[:2] + (layer.c_out,), dtype=np.int64)
        for ky, kx, dy, dx in _offsets(layer.kernel):
            acc += window_tap(vals, dy, dx) * layer.weights[:, ky, kx, 0].astype(np.int64)
        return acc

    def fast(self, layer, x, t_in, stage, bands):
        """Channel ``c`` of each tap times its own weight, summed over the taps (elementwise)."""
        ftype = self._exact_float_dtype(layer, t_in)
        padded = _pad_edges(self._values(x, t_in, ftype), layer.kernel // 2)
        h, w = x.shape[:2]
        k = layer.kernel
        wtaps = layer.weights[:, :, :, 0].reshape(layer.c_out, k * k).T.astype(ftype)  # (k*k, c)

        def band(r0, r1):
            acc = np.zeros((r1 - r0, w, layer.c_out), dtype=ftype)
            for t, (ky, kx) in enumerate((ky, kx) for ky in range(k) for kx in range(k)):
                acc += padded[r0 + ky : r1 + ky, kx : kx + w] * wtaps[t]
            stage(r0, r1, acc.astype(np.int64))

        bands(band, h, w)


#: Every kind, by name.
LAYER_KINDS: dict[str, Kind] = {k.name: k for k in (Binary(), Fixed(), Depthwise())}
#: The file's ``kind`` values.
KINDS = tuple(dict.fromkeys(k.FILE_KIND for k in LAYER_KINDS.values()))
_BY_FILE = {(k.FILE_KIND, k.GROUPED): k for k in LAYER_KINDS.values()}


def kind_of(where: str, kind: str, groups) -> Kind:
    """The kind of a layer whose file says ``kind`` and ``groups``, or :class:`ModelError`."""
    if kind not in KINDS:
        raise ModelError(f"{where}: kind {kind!r} must be one of {KINDS}")
    found = _BY_FILE.get((kind, groups != 1))
    if found is None:
        grouped = " or ".join(repr(k.FILE_KIND) for k in LAYER_KINDS.values() if k.GROUPED)
        raise ModelError(f"{where}: groups={groups} needs kind {grouped} (a {kind} layer is "
                         f"dense: groups=1)")
    return found
