"""Threshold unit (norm + sign folded into one comparison) and the lane-stage frame it shares
with the affine and pixel output stages.

Spec: threshold output of :mod:`spec.arith` -- ``bit = acc >= T``, or ``acc <= T`` for channels
whose norm scale is negative (``flip``).
"""

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .stream_util import pixel_layout
from .weights import ParamBus, ParamMemory

__all__ = ["LaneStage", "Threshold", "LATENCY"]

#: Cycles from an accumulator group in to its result out (for :mod:`hw.perf`).
LATENCY = 1


class LaneStage(wiring.Component):
    """An output stage applied to ``lanes`` channels per cycle, ``groups`` beats per pixel.

    Beat ``g`` of a pixel carries the accumulators of channels ``g*lanes ..``; their constants
    are row ``g`` of a parameter region (combinational read: these regions are a few hundred
    bits). With ``r_layout`` set, a second stream ``r`` carries one whole residual pixel per
    output pixel; it is joined with every group and taken with the last one. Output is a
    register: latency 1, one group per cycle.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    r : In(stream.Signature(r_layout)) (only with ``r_layout``)
    o : Out(stream.Signature(ArrayLayout(out_elem, lanes)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, acc_shape, out_elem, r_layout=None):
        self.region, self.lanes, self.groups = region, region.lanes, region.entries
        self.acc_shape, self.out_elem, self.r_layout = acc_shape, out_elem, r_layout
        self.params = ParamMemory(region, init, read_domain="comb")
        members = {"i": In(stream.Signature(pixel_layout(acc_shape, self.lanes))),
                   "o": Out(stream.Signature(pixel_layout(out_elem, self.lanes))),
                   "bus": In(ParamBus())}
        if r_layout is not None:
            members["r"] = In(stream.Signature(r_layout))
        super().__init__(members)

    def lane(self, m, acc, prm, group, lane):
        """The stage's arithmetic for one channel: ``acc`` its accumulator, ``prm`` its
        constants (a view with the region's fields), ``group``/``lane`` locate the channel."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.params = pm = self.params
        wiring.connect(m, wiring.flipped(self.bus), pm.bus)
        fields = {name: (signed(b) if sgn else unsigned(b)) for name, b, sgn in self.region.fields}
        prm = data.View(pixel_layout(data.StructLayout(fields), self.lanes), pm.data)
        g = Signal(range(max(2, self.groups)))
        last = g == self.groups - 1
        free = ~self.o.valid | self.o.ready
        r_valid = self.r.valid if self.r_layout is not None else 1
        fire = free & self.i.valid & r_valid
        m.d.comb += [pm.addr.eq(g), self.i.ready.eq(free & r_valid)]
        if self.r_layout is not None:
            m.d.comb += self.r.ready.eq(free & self.i.valid & last)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(fire):
            m.d.sync += [g.eq(Mux(last, 0, g + 1)), self.o.valid.eq(1)]
            for p in range(self.lanes):
                m.d.sync += self.o.payload[p].eq(self.lane(m, self.i.payload[p], prm[p], g, p))
        return m


class Threshold(LaneStage):
    """Accumulators in, one bit per channel out: ``acc >= T`` or, where ``flip``, ``acc <= T``.

    Parameters
    ----------
    region : regmap.Region
        The layer's ``threshold`` region (``T`` clamped to the accumulator range +/- 1).
    init : list of int
    acc_shape : shape

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    o : Out(stream.Signature(ArrayLayout(unsigned(1), lanes)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, acc_shape):
        super().__init__(region, init, acc_shape=acc_shape, out_elem=unsigned(1))

    def lane(self, m, acc, prm, group, lane):
        return Mux(prm.flip, acc <= prm.threshold, acc >= prm.threshold)
