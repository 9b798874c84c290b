"""Affine + residual unit: norm folded into ``acc*A + B``, rounding shift, residual, saturation.

Spec: affine output of :mod:`spec.arith` --
``y = saturate(rshift_round(acc*A + B, shift) + r, out_bits)``, rounding half up (add
``2**(shift-1)`` then shift arithmetically), the residual added before the single saturation.
Amaranth widens every product and sum exactly, so only the final saturation narrows.

The residual ``r`` is an earlier tensor's pixel, delayed by a :class:`hw.stream_util.DelayFIFO`
to arrive with this layer's accumulators (the top level sizes the FIFO).
"""

from amaranth.hdl import Const, Mux, signed

from spec import arith

from .stream_util import pixel_layout
from .threshold import LaneStage

__all__ = ["Affine", "scale_round"]


def scale_round(product, prm, shift: int):
    """``rshift_round(acc*A + B, shift)`` of one lane from ``product = acc*A`` (registered by
    the first stage) and ``prm.bias``."""
    value = product + prm.bias
    if shift:
        value = (value + Const(1 << (shift - 1))) >> shift
    return value


def saturate(value, bits: int):
    lo, hi = arith.signed_range(bits)
    return Mux(value < lo, lo, Mux(value > hi, hi, value))


class Affine(LaneStage):
    """Accumulators (and optionally a residual pixel) in, ``out_bits`` signed values out.

    Parameters
    ----------
    region : regmap.Region
        The layer's ``affine`` region (``A``, ``B`` per channel).
    init : list of int
    acc_shape : shape
    shift, out_bits : int
        The layer's rounding shift and output width.
    residual : bool
        Whether a residual stream ``r`` (the whole pixel, ``c_out`` channels of
        ``signed(out_bits)``) is added.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    r : In(stream.Signature(ArrayLayout(signed(out_bits), c_out))) (with ``residual``)
    o : Out(stream.Signature(ArrayLayout(signed(out_bits), lanes)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, acc_shape, shift, out_bits, residual=False):
        self.shift, self.out_bits = shift, out_bits
        c_out = region.entries * region.lanes
        r_layout = pixel_layout(signed(out_bits), c_out) if residual else None
        super().__init__(region, init, acc_shape=acc_shape, out_elem=signed(out_bits),
                         r_layout=r_layout)

    def pre(self, acc, prm):
        return acc * prm.scale

    def post(self, product, prm, group, lane, r):
        y = scale_round(product, prm, self.shift)
        if self.r_layout is not None:
            rv = r.as_value().word_select(group, self.lanes * self.out_bits)
            y = y + rv[lane * self.out_bits:(lane + 1) * self.out_bits].as_signed()
        return saturate(y, self.out_bits)
