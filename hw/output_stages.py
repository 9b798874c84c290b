"""The output stages: what a layer does with its accumulators, ``out_pe`` channels per cycle.

:class:`LaneStage` is the frame they share (a parameter region of per-channel constants, an
optional residual stream joined per pixel, two registers); each stage defines its arithmetic:

* :class:`Threshold` -- threshold output of :mod:`spec.arith`: ``bit = acc >= T``, or
  ``acc <= T`` for channels whose norm scale is negative (``flip``).
* :class:`Affine` -- affine output: ``y = saturate(rshift_round(acc*A + B, shift) + r, out_bits)``,
  rounding half up (add ``2**(shift-1)`` then shift arithmetically; the first register holds
  ``acc*A`` and ``B + 2**(shift-1) + r*2**shift``, so the second adds once before the shift
  and the residual ``r`` rides along exactly), then the single saturation. Amaranth widens
  every product and sum exactly, so only the final saturation narrows. The residual ``r`` is
  an earlier tensor's pixel, delayed by a :class:`hw.stream_util.DelayFIFO` to arrive with
  this layer's accumulators (the pipeline sizes the FIFO). With the activation option
  (``act``), each lane takes its rounded value through a power-of-two PReLU (a sign test and a
  barrel shifter on the stored 3-bit ``act_shift``, rounding half up) and adds its
  ``act_offset`` before the residual, in the same output register: no extra cycle.
* :class:`PixelOutput` -- pixel output: ``y = clamp(rshift_round(acc*A + B, shift) + p, 0, 255)``
  with ``p`` channel ``residual_map[c]`` of the model input (global residual) or 0.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.latency import STAGE_LATENCY
from spec import arith, stages

from .stream_util import pixel_layout
from .param_memory import ParamBus, ParamMemory

__all__ = ["LaneStage", "Threshold", "Affine", "PixelOutput", "rounding_bias", "residual_bias",
           "scale_round", "prelu_shift",
           "saturate", "stage_block", "BLOCKS"]


class LaneStage(wiring.Component):
    """An output stage applied to ``lanes`` channels per cycle, ``groups`` beats per pixel.

    Beat ``g`` of a pixel carries the accumulators of channels ``g*lanes ..``; their constants
    are row ``g`` of a parameter region (these regions are a few hundred bits: LUT RAM read one
    cycle ahead into a register). With ``r_layout`` set, a second stream ``r`` carries one whole
    residual pixel per output pixel; it is joined with every group and taken with the last one.
    Two registers (:meth:`pre`, e.g. the multiply, then :meth:`post`): latency 2, one group per
    cycle.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    r : In(stream.Signature(r_layout)) (only with ``r_layout``)
    o : Out(stream.Signature(ArrayLayout(out_elem, lanes)))
    bus : In(ParamBus())
    """

    #: Cycles from an accumulator group in to its result out (:meth:`pre`, then :meth:`post`).
    LATENCY = STAGE_LATENCY

    def __init__(self, region, init, *, acc_shape, out_elem, r_layout=None):
        self.region, self.lanes, self.groups = region, region.lanes, region.entries
        self.acc_shape, self.out_elem, self.r_layout = acc_shape, out_elem, r_layout
        self.params = ParamMemory(region, init, read_domain="comb")
        self._row0 = init[0] & ((1 << region.entry_bits) - 1)
        members = {"i": In(stream.Signature(pixel_layout(acc_shape, self.lanes))),
                   "o": Out(stream.Signature(pixel_layout(out_elem, self.lanes))),
                   "bus": In(ParamBus())}
        if r_layout is not None:
            members["r"] = In(stream.Signature(r_layout))
        super().__init__(members)

    @classmethod
    def for_stage(cls, stage, region, init, *, acc_shape, input_channels):
        """The block for the spec stage ``stage`` (its scalars fix the block's shape)."""
        raise NotImplementedError

    def pre(self, acc, prm, group, lane, r):
        """First pipeline stage of one channel: a dict of named values (e.g. the product
        ``acc*A``), registered together as one struct, from its accumulator, its constants
        ``prm`` (a view with the region's fields), its position ``group``/``lane`` and the
        residual pixel ``r`` (``None`` without one). The residual is selected here, not in
        :meth:`post`, so that its multiplexer and the output adders are in different cycles."""
        raise NotImplementedError

    def post(self, pre, prm):
        """Second stage: the channel's output from ``pre`` (a view of :meth:`pre`'s registered
        fields) and its constants ``prm``."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.params = pm = self.params
        wiring.connect(m, wiring.flipped(self.bus), pm.bus)
        fields = {name: (signed(b) if sgn else unsigned(b)) for name, b, sgn in self.region.fields}
        row_layout = pixel_layout(data.StructLayout(fields), self.lanes)
        g = Signal(range(max(2, self.groups)))
        last = g == self.groups - 1
        # Both registers advance together unless the output is stalled (no bubbles).
        en = ~self.o.valid | self.o.ready
        r_valid = self.r.valid if self.r_layout is not None else 1
        fire = en & self.i.valid & r_valid
        g_next = Mux(fire, Mux(last, 0, g + 1), g)
        # The constants row of group g, read a cycle ahead (from g_next) into a register, so the
        # multipliers start from flip-flops, not from a LUT-RAM read (a routed critical path,
        # docs/builds.md). Read every cycle: a parameter write shows one cycle later.
        row = Signal(len(pm.data), init=self._row0)
        m.d.sync += row.eq(pm.data)
        prm = data.View(row_layout, row)
        m.d.comb += [pm.addr.eq(g_next), self.i.ready.eq(en & r_valid)]
        if self.r_layout is not None:
            m.d.comb += self.r.ready.eq(en & self.i.valid & last)

        # Stage 1: per-lane first step (with the residual) and the constants row.
        r = self.r.payload if self.r_layout is not None else None
        lane_pre = [self.pre(self.i.payload[p], prm[p], g, p, r) for p in range(self.lanes)]
        pre_layout = data.StructLayout({name: Value.cast(v).shape()
                                        for name, v in lane_pre[0].items()})
        pre1 = Signal(pixel_layout(pre_layout, self.lanes))
        prm1 = Signal(row_layout)
        v1 = Signal()
        with m.If(en):
            m.d.sync += v1.eq(fire)
        with m.If(fire):
            m.d.sync += [g.eq(g_next), prm1.eq(prm)]
            m.d.sync += [pre1[p][name].eq(v) for p in range(self.lanes)
                         for name, v in lane_pre[p].items()]

        # Stage 2: the output register.
        with m.If(en):
            m.d.sync += self.o.valid.eq(v1)
            m.d.sync += [self.o.payload[p].eq(self.post(pre1[p], prm1[p]))
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

    @classmethod
    def for_stage(cls, stage, region, init, *, acc_shape, input_channels):
        return cls(region, init, acc_shape=acc_shape)

    def pre(self, acc, prm, group, lane, r):
        return {"acc": acc}

    def post(self, pre, prm):
        return Mux(prm.flip, pre.acc <= prm.threshold, pre.acc >= prm.threshold)


def rounding_bias(bias, shift: int):
    """``B + 2**(shift-1)`` (``B`` when ``shift`` is 0): the bias with the half-up rounding
    term, computed in the first register beside the product so that the second register's
    path has one adder before the shift (the critical path of a placed design had two)."""
    return bias + Const(1 << (shift - 1)) if shift else bias


def residual_bias(rbias, res, shift: int):
    """``rbias + res * 2**shift``: a residual added after the rounding shift, moved before it
    (exact for an integer ``res``: ``(x + res*2**s) >> s == (x >> s) + res``), so the output
    register's path has one adder, not two."""
    return rbias + (Value.cast(res) << shift)


def scale_round(product, rbias, shift: int):
    """``rshift_round(acc*A + B, shift)`` of one lane from ``product = acc*A`` and
    ``rbias = rounding_bias(B, shift)``, both registered by the first stage."""
    return (product + rbias) >> shift


def prelu_shift(value, k):
    """``spec.arith.prelu_shift`` of one lane: ``value`` where it is >= 0, else
    ``rshift_round(value, k)`` for the lane's shift signal ``k``.

    One barrel shifter and one increment: with ``v2 = 2*value``,
    ``rshift_round(value, k) = ((v2 >> k) + 1) >> 1`` for every ``k`` >= 0 (the bit shifted
    out last is the rounding bit; ``k = 0`` gives ``(2v + 1) >> 1 = v``)."""
    doubled = Cat(Const(0, 1), value).as_signed()
    return Mux(value < 0, ((doubled >> k) + 1) >> 1, value)


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
    act : bool
        Whether the per-channel activation applies (the region then holds ``act_shift`` and
        ``act_offset`` per lane).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(acc_shape, lanes)))
    r : In(stream.Signature(ArrayLayout(signed(out_bits), c_out))) (with ``residual``)
    o : Out(stream.Signature(ArrayLayout(signed(out_bits), lanes)))
    bus : In(ParamBus())
    """

    def __init__(self, region, init, *, acc_shape, shift, out_bits, residual=False, act=False):
        self.shift, self.out_bits, self.act = shift, out_bits, act
        c_out = region.entries * region.lanes
        r_layout = pixel_layout(signed(out_bits), c_out) if residual else None
        super().__init__(region, init, acc_shape=acc_shape, out_elem=signed(out_bits),
                         r_layout=r_layout)

    @classmethod
    def for_stage(cls, stage, region, init, *, acc_shape, input_channels):
        return cls(region, init, acc_shape=acc_shape, shift=stage.shift, out_bits=stage.out_bits,
                   residual=stage.residual is not None, act=stage.act is not None)

    def pre(self, acc, prm, group, lane, r):
        fields = {"product": acc * prm.scale, "bias": rounding_bias(prm.bias, self.shift)}
        if r is not None:
            rv = r.as_value().word_select(group, self.lanes * self.out_bits)
            res = rv[lane * self.out_bits:(lane + 1) * self.out_bits].as_signed()
            if self.act:
                fields["res"] = res
            else:
                fields["bias"] = residual_bias(fields["bias"], res, self.shift)
        return fields

    def post(self, pre, prm):
        y = scale_round(pre.product, pre.bias, self.shift)
        if self.act:
            y = prelu_shift(y, prm.act_shift) + prm.act_offset
            if self.r_layout is not None:
                y = y + pre.res
        return saturate(y, self.out_bits)


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

    @classmethod
    def for_stage(cls, stage, region, init, *, acc_shape, input_channels):
        return cls(region, init, acc_shape=acc_shape, shift=stage.shift,
                   in_channels=input_channels)

    def pre(self, acc, prm, group, lane, r):
        # map 0 selects the zero prepended to the input channels.
        choices = data.View(pixel_layout(unsigned(8), self.in_channels + 1),
                            Cat(Const(0, 8), r.as_value()))
        bias = rounding_bias(prm.bias, self.shift)
        return {"product": acc * prm.scale,
                "bias": residual_bias(bias, choices[prm.map], self.shift)}

    def post(self, pre, prm):
        y = scale_round(pre.product, pre.bias, self.shift)
        return Mux(y < 0, 0, Mux(y > arith.PIXEL_MAX, arith.PIXEL_MAX, y))


#: The hardware block of each spec stage.
BLOCKS = {stages.Threshold: Threshold, stages.Affine: Affine, stages.PixelOutput: PixelOutput}


def stage_block(stage, region, init, *, acc_shape, input_channels) -> LaneStage:
    """The block computing spec stage ``stage`` with constants ``region`` (initial ``init``)
    on accumulators of ``acc_shape``; ``input_channels`` are tensor 0's (global residual)."""
    return BLOCKS[type(stage)].for_stage(stage, region, init, acc_shape=acc_shape,
                                         input_channels=input_channels)
