"""Binary convolution: the folded PE array with XNOR-popcount processing elements.

Spec: binary conv accumulator of :mod:`spec.arith` -- ``acc = popcount(XNOR(window, weights))``
over ``taps = kernel*kernel*c_in`` bits, one per output channel.
"""

from amaranth.hdl import unsigned

from .compressor import carry_save_rows, carry_save_sum
from .folded_mvu import FoldedMVU

__all__ = ["XnorEngine"]


class XnorEngine(FoldedMVU):
    """Binary conv: bits in, ``popcount(XNOR)`` accumulators (unsigned, 0..taps) out.

    Parameters
    ----------
    region, init : see :class:`FoldedMVU`.
    taps, c_out : int
    lut_inputs : int
        The target's LUT inputs (:attr:`accel.boards.Board.lut_inputs`). With 6, a LUT sees three
        weight/activation pairs: the XNORs and the popcount's first full adders share it, and
        the register after them holds the popcount's two carry-save rows. With 4 that
        function would take four LUT4s and a multiplexer per output (``python -m
        bench.density``: 21 % more ECP5 LUTs in the PE array), so the XNOR bits are
        registered, one LUT4 each, and summed the cycle after.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(unsigned(1), taps)))
    o : Out(stream.Signature(ArrayLayout(unsigned(bits(taps)), pe)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, taps, c_out, lut_inputs=4):
        if lut_inputs not in (4, 6):
            raise ValueError(f"lut_inputs={lut_inputs!r} must be 4 or 6")
        self.merged = lut_inputs == 6
        super().__init__(region, init, elem=unsigned(1), taps=taps, c_out=c_out,
                         acc_shape=unsigned(taps.bit_length()), w_shape=unsigned(1))

    @classmethod
    def for_layer(cls, layer, region, init, *, lut_inputs, **_):
        return cls(region, init, taps=layer.taps, c_out=layer.c_out, lut_inputs=lut_inputs)

    def terms(self, m, x, w, pe):
        """The XNOR bits, or (``lut_inputs=6``) the popcount's carry-save tree on them down to
        two rows (``2*bits(simd)`` flip-flops per PE to register instead of ``simd``)."""
        xnor = ~(x.as_value() ^ w.as_value())
        bits = [xnor[j] for j in range(self.simd)]
        if not self.merged:
            return bits
        return carry_save_rows(m, bits, self.simd.bit_length(), name=f"popcount_{pe}")

    def sum_terms(self, m, terms, pe):
        """The popcount: the two registered rows added, or the XNOR bits' carry-save tree
        (:func:`~hw.compressor.carry_save_sum`: 18 % fewer ECP5 LUTs than an adder tree at 36
        bits, ``python -m bench.product_cost``)."""
        width = self.simd.bit_length()
        if self.merged:
            return (terms[0] + terms[1])[:width]
        return carry_save_sum(m, terms, unsigned(width), name=f"popcount_{pe}")
