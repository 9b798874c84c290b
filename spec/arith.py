"""The fixed-point rules of gamir, in one place.

Every number the accelerator handles is an integer. This module states how each kind of value
is represented, how it is rounded and how it saturates; the reference, the fast spec, the torch
export and the hardware generator all call these functions (or mirror them in HDL with a test
against them), so there is exactly one definition.

Values and their ranges
-----------------------
pixel
    Unsigned 8 bit, 0..255. The model's input tensor (after the host's pixel steps) and its
    output tensor.
bit
    One bit per channel, 1 meaning +1 and 0 meaning -1. Binary weights use the same coding.
fixed
    Signed two's complement with ``bits`` bits, -2**(bits-1) .. 2**(bits-1)-1. ``frac_bits``
    only says how training reads it (value = integer / 2**frac_bits); the arithmetic never uses
    it, except that a residual add requires both operands to have the same ``frac_bits``.

Rules
-----
sign
    ``sign(x) = -1 if x < 0 else +1`` (the paper's sign; zero maps to +1). On a fixed value this
    is the inverted sign bit: ``bit = x >= 0``. It costs no logic.
binary conv accumulator
    ``acc = popcount(XNOR(window_bits, weight_bits))``, 0..N with N = kernel*kernel*c_in. The
    +/-1 dot product is ``2*acc - N``; norm constants absorb that, so hardware never forms it.
fixed conv accumulator
    ``acc = sum(w * v)`` with ``v`` the pixel (0..255), the fixed value, or for a bit input
    ``2*bit - 1``. Exact (no overflow): :func:`conv_acc_range` bounds it so hardware can size
    its adders. A depthwise layer (``groups == c_in == c_out``) sums only its own channel:
    ``acc[c] = sum_{ky,kx} w[c,ky,kx,0] * v[ky,kx,c]``.
threshold output (norm + sign folded)
    ``bit = acc >= T`` or, for channels whose norm scale is negative, ``bit = acc <= T``.
affine output (norm folded, optional residual)
    ``y = sat(rshift_round(acc*A + B, shift) + r, out_bits)``: one multiply by a per-channel
    integer ``A``, a per-channel ``B``, one rounding shift shared by the layer, the residual ``r``
    added before the single saturation (so a residual block never saturates twice).
affine activation (optional, per channel: BBCU's RPReLU with power-of-two slopes)
    ``y = sat(prelu_shift(rshift_round(acc*A + B, shift), k) + o + r, out_bits)`` with
    :func:`prelu_shift` keeping ``y >= 0`` and taking ``rshift_round(y, k)`` of negative
    ``y`` (slope ``2**-k``, ``k`` in 0..``MAX_ACT_SHIFT``, rounded half up like every shift),
    then a per-channel offset ``o`` (``out_bits`` signed). RPReLU's offset before the PReLU
    is an integer on ``y`` and folds exactly into ``B`` (adding ``c * 2**shift`` to ``B``
    adds ``c`` to the rounded value), so only the offset after it is stored. In hardware: a
    sign test, a 3-bit barrel shifter and an adder per lane.
pixel output (last layer)
    ``y = clamp(rshift_round(acc*A + B, shift) + p, 0, 255)`` where ``p`` is a channel of the
    model input (global residual) or 0.
rounding
    :func:`rshift_round` is round-half-up: add ``2**(shift-1)`` then shift right arithmetically
    (floor). In hardware that is one constant added into the accumulator and dropped wires; it
    is unbiased except at exact halves, which the training export accounts for.
border
    3x3 windows replicate the edge (coordinates clamp into the frame), for every layer. A line
    buffer implements it by repeating the first/last row and column; torch trains with
    ``padding_mode="replicate"``, so no pad value has to be invented for +/-1 activations.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PIXEL_MAX",
    "MAX_SHIFT",
    "MAX_SCALE_BITS",
    "MAX_WEIGHT_BITS",
    "MAX_OUT_BITS",
    "MAX_ACT_SHIFT",
    "CONST_BITS",
    "MIN_BITS",
    "MAX_CHANNELS",
    "MAX_IMAGE_CHANNELS",
    "PIXEL_STEPS",
    "signed_range",
    "fits_signed",
    "rshift_round",
    "prelu_shift",
    "saturate",
    "clamp_pixel",
    "sign_bit",
    "bit_to_pm1",
    "conv_acc_range",
    "affine_range",
    "bits_for_range",
]

PIXEL_MAX = 255
#: Largest rounding shift of an affine/pixel output stage.
MAX_SHIFT = 30
#: ``A`` is at most an 18-bit signed multiplier operand (one ECP5 MULT18X18 / DSP48 port).
MAX_SCALE_BITS = 18
#: Fixed-conv weights are at most 8-bit signed (one DSP per multiply, or LUT multipliers).
MAX_WEIGHT_BITS = 8
#: Fixed activations (the residual stream) are at most 16-bit signed.
MAX_OUT_BITS = 16
#: Largest per-channel shift of the affine stage's activation (negative slope 2**-7 .. 1): three
#: bits of select on a barrel shifter.
MAX_ACT_SHIFT = 7
#: ``B`` and thresholds ``T`` are 32-bit signed constants.
CONST_BITS = 32
#: The narrowest signed width of a fixed weight, ``A`` or fixed activation (one sign bit and
#: one magnitude bit).
MIN_BITS = 2
#: Channels of any tensor (a bound for validation, far above what a board holds).
MAX_CHANNELS = 1024
#: Channels of an image (gray, colour, colour + alpha).
MAX_IMAGE_CHANNELS = 4
#: Factors of the host's pixel (un)shuffle steps.
PIXEL_STEPS = (1, 2, 3, 4)
#: Fraction bits of a noise gain (``PixelSteps.noise_gain``), and a gain of 1 (4096).
GAIN_FRAC_BITS = 12
GAIN_ONE = 1 << GAIN_FRAC_BITS
#: Largest noise gain (2.0) and the longest gain table (one entry per noise level 0..255).
MAX_GAIN = 2 << GAIN_FRAC_BITS
MAX_GAIN_LEVELS = PIXEL_MAX + 1


def signed_range(bits: int) -> tuple[int, int]:
    """Inclusive range of a ``bits``-bit two's complement integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def fits_signed(values, bits: int) -> bool:
    """True where every value lies in the ``bits``-bit signed range."""
    lo, hi = signed_range(bits)
    values = np.asarray(values)
    return values.size == 0 or (int(values.min()) >= lo and int(values.max()) <= hi)


def rshift_round(x, shift):
    """Round-half-up arithmetic right shift: ``floor((x + 2**(shift-1)) / 2**shift)``.

    ``x`` is an integer array (int64); ``shift`` an int or an integer array broadcasting
    against ``x`` (per-channel shifts); a shift of 0 leaves the value unchanged.
    """
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    return (x + ((np.int64(1) << shift) >> 1)) >> shift


def prelu_shift(y, k):
    """``y`` where ``y >= 0``, else ``rshift_round(y, k)``: a PReLU with slope ``2**-k``.

    ``k`` is an int or a per-channel integer array broadcasting against ``y``.
    """
    y = np.asarray(y, dtype=np.int64)
    return np.where(y < 0, rshift_round(y, k), y)


def saturate(x, bits: int):
    """Clamp to the ``bits``-bit signed range (the only saturation of a fixed output)."""
    lo, hi = signed_range(bits)
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def clamp_pixel(x):
    """Clamp to 0..255 and return uint8 (the last layer's output)."""
    return np.clip(np.asarray(x, dtype=np.int64), 0, PIXEL_MAX).astype(np.uint8)


def sign_bit(x):
    """The paper's sign as a bit: 1 (+1) where ``x >= 0``, 0 (-1) where ``x < 0``."""
    return (np.asarray(x) >= 0).astype(np.uint8)


def bit_to_pm1(bits):
    """Bit 1 -> +1, bit 0 -> -1, as int64."""
    return np.asarray(bits, dtype=np.int64) * 2 - 1


def conv_acc_range(weights: np.ndarray, in_lo: int, in_hi: int) -> tuple[int, int]:
    """Exact bounds of a fixed conv accumulator over any input in ``[in_lo, in_hi]``.

    ``weights`` has shape (c_out, k, k, c_in // groups); the bound is over all output channels.
    """
    w = np.asarray(weights, dtype=np.int64).reshape(weights.shape[0], -1)
    pos = np.where(w > 0, w, 0).sum(1)
    neg = np.where(w < 0, w, 0).sum(1)
    lo = pos * in_lo + neg * in_hi
    hi = pos * in_hi + neg * in_lo
    return int(lo.min()), int(hi.max())


def affine_range(acc_lo: int, acc_hi: int, scale: np.ndarray, bias: np.ndarray) -> tuple[int, int]:
    """Exact bounds of ``acc*A + B`` before the rounding shift, over all channels."""
    a = np.asarray(scale, dtype=np.int64)
    b = np.asarray(bias, dtype=np.int64)
    ends = np.stack([a * acc_lo + b, a * acc_hi + b])
    return int(ends.min()), int(ends.max())


def bits_for_range(lo: int, hi: int) -> int:
    """Smallest signed width holding every integer in ``[lo, hi]``."""
    bits = 1
    while not (signed_range(bits)[0] <= lo and hi <= signed_range(bits)[1]):
        bits += 1
    return bits
