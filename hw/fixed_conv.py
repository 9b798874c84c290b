"""Fixed-point head and tail convolutions and the pixel output stage.

Spec: fixed conv accumulator of :mod:`spec.arith` -- ``acc = sum(w * v)`` with ``v`` the pixel
(0..255), the fixed value, or ``2*bit - 1`` for a bit input; pixel output
``y = clamp(rshift_round(acc*A + B, shift) + p, 0, 255)`` with ``p`` channel
``residual_map[c]`` of the model input (global residual) or 0.

The PE array is :class:`hw.xnor_engine.FoldedMVU` with a multiply-accumulate dot product, so
the same ``pe``/``simd`` folding trades multipliers for cycles: ``pe*simd`` multipliers of
``w_bits`` by the input width. A bit input needs no multiplier (``+w`` or ``-w``).
"""

from amaranth.hdl import Cat, Const, Mux, signed, unsigned
from amaranth.lib import data

from spec import arith

from .affine import scale_round
from .stream_util import pixel_layout, tree_sum
from .threshold import LaneStage
from .xnor_engine import FoldedMVU

__all__ = ["FixedConv", "PixelOutput", "shift_add_product"]


class FixedConv(FoldedMVU):
    """Integer windows in, exact ``sum(w*v)`` accumulators out (``nf`` groups of ``pe``).

    Parameters
    ----------
    region, init : see :class:`hw.xnor_engine.FoldedMVU`.
    elem : shape
        ``unsigned(8)`` pixels, ``signed(bits)`` fixed values, or ``unsigned(1)`` bits (+/-1).
    bit_input : bool
        Read ``unsigned(1)`` elements as ``2*bit - 1``.
    taps, c_out : int
    acc_shape : shape
    w_bits : int
    dsp_terms : int or None
        How many of the ``pe*simd`` products are written as ``*`` (synthesis maps those to hard
        multipliers); the rest are shift-and-add trees, which synthesis keeps in LUTs. ``None``
        writes every product as ``*``. This is how a fold larger than the device's DSP count
        still fits (an ECP5-85F has 156 MULT18X18, a Zynq-7020 220 DSP48).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, taps)))
    o : Out(stream.Signature(ArrayLayout(acc_shape, pe)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, elem, bit_input, taps, c_out, acc_shape, w_bits,
                 dsp_terms=None):
        if dsp_terms is not None and (not isinstance(dsp_terms, int) or dsp_terms < 0):
            raise ValueError(f"dsp_terms={dsp_terms!r} must be None or a non-negative integer")
        self.bit_input, self.dsp_terms = bit_input, dsp_terms
        super().__init__(region, init, elem=elem, taps=taps, c_out=c_out, acc_shape=acc_shape,
                         w_shape=signed(w_bits))

    def terms(self, x, w, pe):
        if self.bit_input:
            return [Mux(x[j], w[j], -w[j]) for j in range(self.simd)]
        out = []
        for j in range(self.simd):
            if self.dsp_terms is None or pe * self.simd + j < self.dsp_terms:
                out.append(x[j] * w[j])
            else:
                out.append(shift_add_product(x[j], w[j]))
        return out


def shift_add_product(x, w):
    """``x * w`` for a two's complement ``w`` as a sum of shifted copies of ``x`` (one per
    weight bit, the top bit's copy subtracted): no ``$mul`` cell, so no hard multiplier."""
    n = len(w)
    rows = [Mux(w[b], x << b, 0) for b in range(n - 1)]
    return tree_sum(rows) - Mux(w[n - 1], x << (n - 1), 0)


class PixelOutput(LaneStage):
    """The last layer's output: scale, round, add the global residual, clamp to 0..255.

    ``r`` carries the model input pixel (tensor 0, delayed to line up); each lane's stored
    ``map`` (``residual_map + 1``, 0 = none) selects the channel it adds.

    Parameters
    ----------
    region : regmap.Region
        The layer's ``pixel`` region (``A``, ``B``, ``map`` per channel).
    init : list of int
    acc_shape : shape
    shift : int
    in_channels : int
        Channels of tensor 0.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    r : In(stream.Signature(ArrayLayout(unsigned(8), in_channels)))
    o : Out(stream.Signature(ArrayLayout(unsigned(8), lanes)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, acc_shape, shift, in_channels):
        self.shift, self.in_channels = shift, in_channels
        super().__init__(region, init, acc_shape=acc_shape, out_elem=unsigned(8),
                         r_layout=pixel_layout(unsigned(8), in_channels))

    def pre(self, acc, prm):
        return acc * prm.scale

    def post(self, product, prm, group, lane, r):
        y = scale_round(product, prm, self.shift)
        # map 0 selects the zero prepended to the input channels.
        choices = data.View(pixel_layout(unsigned(8), self.in_channels + 1),
                            Cat(Const(0, 8), r.as_value()))
        y = y + choices[prm.map]
        return Mux(y < 0, 0, Mux(y > arith.PIXEL_MAX, arith.PIXEL_MAX, y))
