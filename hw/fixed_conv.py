"""Fixed-point head and tail convolutions.

Spec: fixed conv accumulator of :mod:`spec.arith` -- ``acc = sum(w * v)`` with ``v`` the pixel
(0..255), the fixed value, or ``2*bit - 1`` for a bit input.

The PE array is :class:`hw.folded_mvu.FoldedMVU` with a multiply-accumulate dot product, so
the same ``pe``/``simd`` folding trades multipliers for cycles: ``pe*simd`` multipliers of
``w_bits`` by the input width. A bit input needs no multiplier (``+w`` or ``-w``).
"""

from amaranth.hdl import Elaboratable, Module, Mux, Signal, Value, signed

from accel.config import LUT_PRODUCTS

from .folded_mvu import FoldedMVU

__all__ = ["FixedConv", "LutProducts", "LUT_PRODUCTS"]


class FixedConv(FoldedMVU):
    """Integer windows in, exact ``sum(w*v)`` accumulators out (``nf`` groups of ``pe``).

    Parameters
    ----------
    region, init : see :class:`hw.folded_mvu.FoldedMVU`.
    elem : shape
        ``unsigned(8)`` pixels, ``signed(bits)`` fixed values, or ``unsigned(1)`` bits (+/-1).
    bit_input : bool
        Read ``unsigned(1)`` elements as ``2*bit - 1``.
    taps, c_out : int
    acc_shape : shape
    w_bits : int
    window : int or None
        See :class:`hw.folded_mvu.FoldedMVU` (set by :class:`hw.depthwise_conv.DepthwiseConv`).
    dsp_terms : int or None
        How many of the ``pe*simd`` products synthesis may map to hard multipliers; the rest
        are computed in :class:`LutProducts` submodules, which the build flows turn into
        radix-4 Booth logic in LUTs (:data:`LUT_PRODUCTS` names them). ``None`` leaves every
        product to the multipliers. This is how a fold larger than the device's DSP count
        still fits (an ECP5-85F has 156 MULT18X18, a Zynq-7020 220 DSP48).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, taps)))
    o : Out(stream.Signature(ArrayLayout(acc_shape, pe)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, elem, bit_input, taps, c_out, acc_shape, w_bits,
                 dsp_terms=None, window=None):
        if dsp_terms is not None and (not isinstance(dsp_terms, int) or dsp_terms < 0):
            raise ValueError(f"dsp_terms={dsp_terms!r} must be None or a non-negative integer")
        self.bit_input, self.dsp_terms = bit_input, dsp_terms
        super().__init__(region, init, elem=elem, taps=taps, c_out=c_out, acc_shape=acc_shape,
                         w_shape=signed(w_bits), window=window)

    @classmethod
    def for_layer(cls, layer, region, init, *, elem, bit_input, acc_shape, dsp_terms, **_):
        return cls(region, init, elem=elem, bit_input=bit_input, taps=layer.taps,
                   c_out=layer.c_out, acc_shape=acc_shape, w_bits=layer.w_bits,
                   dsp_terms=dsp_terms)

    def terms(self, m, x, w, pe):
        if self.bit_input:
            return [Mux(x[j], w[j], -w[j]) for j in range(self.simd)]
        n_dsp = self.simd if self.dsp_terms is None else max(0, min(self.simd, self.dsp_terms - pe * self.simd))
        out = [x[j] * w[j] for j in range(n_dsp)]
        if n_dsp < self.simd:
            lut = LutProducts([(x[j], w[j]) for j in range(n_dsp, self.simd)])
            m.submodules[f"{LUT_PRODUCTS}_{pe}"] = lut
            out += lut.products
        return out


class LutProducts(Elaboratable):
    """Products that synthesis must build from LUTs: written as ``*`` in a module of their
    own, so a flow can select them. Yosys' radix-4 Booth pass makes them 37 % smaller than a
    shift-and-add tree (155 against 247 ECP5 LUT4s per 8x6-bit product, measured by
    ``python -m bench.product_cost``); without it they would go to hard multipliers too."""

    def __init__(self, pairs):
        self.pairs = [(Value.cast(x), Value.cast(w)) for x, w in pairs]
        self.products = [Signal((x * w).shape(), name=f"p{j}") for j, (x, w) in enumerate(self.pairs)]
        self._ports = [(Signal(x.shape(), name=f"x{j}"), Signal(w.shape(), name=f"w{j}"))
                       for j, (x, w) in enumerate(self.pairs)]

    def elaborate(self, platform):
        m = Module()
        for (x, w), (xi, wi), p in zip(self.pairs, self._ports, self.products):
            m.d.comb += [xi.eq(x), wi.eq(w), p.eq(xi * wi)]
        return m
