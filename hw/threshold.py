"""Threshold unit (norm + sign folded into one comparison) and the lane-stage frame it shares
with the affine and pixel output stages.

Spec: threshold output of :mod:`spec.arith` -- ``bit = acc >= T``, or ``acc <= T`` for channels
whose norm scale is negative (``flip``).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .stream_util import pixel_layout
from .weights import ParamBus, ParamMemory

__all__ = ["LaneStage", "Threshold", "LATENCY"]

#: Cycles from an accumulator group in to its result out (for :mod:`hw.perf`).
LATENCY = 2


class LaneStage(wiring.Component):
    """An output stage applied to ``lanes`` channels per cycle, ``groups`` beats per pixel.

    Beat ``g`` of a pixel carries the accumulators of channels ``g*lanes ..``; their constants
    are row ``g`` of a parameter region (combinational read: these regions are a few hundred
    bits). With ``r_layout`` set, a second stream ``r`` carries one whole residual pixel per
    output pixel; it is joined with every group and taken with the last one. Two registers
    (:meth:`pre`, e.g. the multiply, then :meth:`post`): latency 2, one group per cycle.

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

    def pre(self, acc, prm):
        """First pipeline stage of one channel (e.g. the product ``acc*A``), registered."""
        raise NotImplementedError

    def post(self, pre, prm, group, lane, r):
        """Second stage: the channel's output from ``pre``, its constants ``prm`` (a view with
        the region's fields), its position ``group``/``lane`` and the residual pixel ``r``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.params = pm = self.params
        wiring.connect(m, wiring.flipped(self.bus), pm.bus)
        fields = {name: (signed(b) if sgn else unsigned(b)) for name, b, sgn in self.region.fields}
        row_layout = pixel_layout(data.StructLayout(fields), self.lanes)
        prm = data.View(row_layout, pm.data)
        g = Signal(range(max(2, self.groups)))
        last = g == self.groups - 1
        # Both registers advance together unless the output is stalled (no bubbles).
        en = ~self.o.valid | self.o.ready
        r_valid = self.r.valid if self.r_layout is not None else 1
        fire = en & self.i.valid & r_valid
        m.d.comb += [pm.addr.eq(g), self.i.ready.eq(en & r_valid)]
        if self.r_layout is not None:
            m.d.comb += self.r.ready.eq(en & self.i.valid & last)

        # Stage 1: per-lane first step, the constants row, the group and the residual pixel.
        pre_shape = self.pre(self.i.payload[0], prm[0]).shape()
        pre1 = Signal(pixel_layout(pre_shape, self.lanes))
        prm1 = Signal(row_layout)
        g1 = Signal.like(g)
        v1 = Signal()
        r1 = Signal(self.r_layout) if self.r_layout is not None else None
        with m.If(en):
            m.d.sync += v1.eq(fire)
        with m.If(fire):
            m.d.sync += [g.eq(Mux(last, 0, g + 1)), g1.eq(g), prm1.eq(prm)]
            m.d.sync += [pre1[p].eq(self.pre(self.i.payload[p], prm[p]))
                         for p in range(self.lanes)]
            if r1 is not None:
                m.d.sync += r1.eq(self.r.payload)

        # Stage 2: the output register.
        with m.If(en):
            m.d.sync += self.o.valid.eq(v1)
            m.d.sync += [self.o.payload[p].eq(self.post(pre1[p], prm1[p], g1, p, r1))
                         for p in range(self.lanes)]
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

    def pre(self, acc, prm):
        return acc

    def post(self, acc, prm, group, lane, r):
        return Mux(prm.flip, acc <= prm.threshold, acc >= prm.threshold)
