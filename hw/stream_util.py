"""Stream plumbing: broadcast, width conversion, delay FIFOs, element maps.

Every block here keeps ``lib.stream`` semantics: a beat moves when ``valid`` and ``ready`` are
both high, nothing is lost or duplicated under any stall pattern, and ``valid`` never waits for
``ready`` (AXI's rule, so blocks compose without combinational loops).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from accel.latency import SLICE_LATENCY

__all__ = ["pixel_layout", "SkidBuffer", "Fork", "Split", "Gather", "DelayFIFO", "SignBits",
           "tree_sum"]


def pixel_layout(elem, count: int) -> data.ArrayLayout:
    """``count`` channels (or lanes, or window taps) of shape ``elem``, element 0 in the LSBs."""
    return data.ArrayLayout(elem, count)


def tree_sum(values):
    """Balanced adder tree (log depth instead of a chain); Amaranth widens each sum exactly."""
    values = list(values)
    if not values:
        return Const(0)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


class SkidBuffer(wiring.Component):
    """A register slice: ``valid``/``payload`` and ``ready`` both registered.

    Placed between layers so no combinational ``ready`` path crosses a layer (otherwise the
    output's ``tready`` would ripple back to ``s_axis.tready`` through every stage). Latency 1,
    one beat per cycle; when the output stalls, the beat in flight goes to the skid register.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    LATENCY = SLICE_LATENCY

    def __init__(self, shape):
        self.shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self.shape)
        skid_valid = Signal()
        m.d.comb += self.i.ready.eq(~skid_valid)
        load = ~self.o.valid | self.o.ready
        with m.If(load):
            with m.If(skid_valid):
                m.d.sync += [self.o.payload.eq(skid), self.o.valid.eq(1), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid)]
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class Fork(wiring.Component):
    """Broadcast one stream to ``n`` outputs; each output takes every beat exactly once.

    Eager fork: an output that accepted the current beat is masked until all have, so a slow
    consumer never makes another one see a beat twice. No added latency.

    Members
    -------
    i : In(stream.Signature(shape))
    o0 .. o{n-1} : Out(stream.Signature(shape))
    """

    def __init__(self, shape, n: int):
        if n < 1:
            raise ValueError(f"n={n!r} must be at least 1")
        self.n = n
        members = {"i": In(stream.Signature(shape))}
        members.update({f"o{k}": Out(stream.Signature(shape)) for k in range(n)})
        super().__init__(members)

    def outputs(self):
        return [getattr(self, f"o{k}") for k in range(self.n)]

    def elaborate(self, platform):
        m = Module()
        outs = self.outputs()
        done = Signal(self.n)
        taken = Cat(*[done[k] | o.ready for k, o in enumerate(outs)])
        m.d.comb += self.i.ready.eq(taken.all())
        for k, o in enumerate(outs):
            m.d.comb += [o.payload.eq(self.i.payload), o.valid.eq(self.i.valid & ~done[k])]
        with m.If(self.i.valid):
            with m.If(self.i.ready):
                m.d.sync += done.eq(0)
            with m.Else():
                m.d.sync += done.eq(taken)
        return m


class Split(wiring.Component):
    """Width down-conversion: a beat of ``n*lanes`` elements leaves as ``n`` beats of ``lanes``.

    Element group ``k`` (elements ``k*lanes ..``) leaves ``k``-th. Combinational (no latency);
    ``n == 1`` is a wire.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, n*lanes)))
    o : Out(stream.Signature(ArrayLayout(elem, lanes)))
    """

    def __init__(self, elem, lanes: int, n: int):
        self.lanes, self.n = lanes, n
        super().__init__({"i": In(stream.Signature(pixel_layout(elem, lanes * n))),
                          "o": Out(stream.Signature(pixel_layout(elem, lanes)))})

    def elaborate(self, platform):
        m = Module()
        if self.n == 1:
            wiring.connect(m, wiring.flipped(self.i), wiring.flipped(self.o))
            return m
        k = Signal(range(self.n))
        width = Shape.cast(self.o.payload.shape()).width
        m.d.comb += [
            self.o.payload.eq(self.i.payload.as_value().word_select(k, width)),
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready & (k == self.n - 1)),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += k.eq(Mux(k == self.n - 1, 0, k + 1))
        return m


class Gather(wiring.Component):
    """Width up-conversion and register slice: ``n`` beats of ``lanes`` elements leave as one
    beat of ``n*lanes``, ``valid``/``payload`` and ``ready`` registered.

    Beat ``k`` fills elements ``k*lanes ..``. Latency :data:`SLICE_LATENCY` on the last beat
    (the output is a register). Groups ``0..n-2`` shift through one buffer, so that its
    flip-flops share a clock enable (an ECP5 slice packs only flip-flops that share one: a
    write per group made ``n-1`` small control sets, where nextpnr's legaliser gave up on the
    ECP5 denoiser), and are taken even while the previous whole beat waits. ``i.ready`` is a
    register (a layer's output: no ``ready`` path crosses it): a last group that meets a full
    output waits in a skid register of one group, the buffer holding the rest, and nothing
    more is taken until the output takes that beat. This is :class:`SkidBuffer` with the
    buffer as the skid's first ``n-1`` groups: a gather followed by a slice held the pixel
    three times (gather output, slice output, skid), this holds it twice.
    ``n == 1`` is a :class:`SkidBuffer`.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, lanes)))
    o : Out(stream.Signature(ArrayLayout(elem, n*lanes)))
    """

    LATENCY = SLICE_LATENCY

    def __init__(self, elem, lanes: int, n: int):
        self.lanes, self.n = lanes, n
        super().__init__({"i": In(stream.Signature(pixel_layout(elem, lanes))),
                          "o": Out(stream.Signature(pixel_layout(elem, lanes * n)))})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.i.payload.shape()).width
        k = Signal(range(self.n))
        buf = Signal(width * (self.n - 1))
        skid = Signal(width)
        skid_valid = Signal()
        last = k == self.n - 1
        load = ~self.o.valid | self.o.ready
        take = self.i.valid & ~skid_valid
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        # One load of the output for both sources, so that the buffer's part of it is a plain
        # clock enable and only the last group has a multiplexer (two writes, one per source,
        # took a LUT per output bit).
        with m.If(load & (skid_valid | (take & last))):
            m.d.sync += [self.o.payload.eq(Cat(buf, Mux(skid_valid, skid, self.i.payload))),
                         self.o.valid.eq(1), skid_valid.eq(0)]
        with m.If(take):
            m.d.sync += k.eq(Mux(last, 0, k + 1))
            with m.If(~last):  # shifted in: one clock enable for all of buf
                m.d.sync += buf.eq(Cat(buf[width:], self.i.payload))
            with m.Elif(~load):
                m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m


class DelayFIFO(wiring.Component):
    """A block-RAM FIFO of ``depth`` beats that holds a stream while a longer path catches up.

    Residual shortcuts and the global residual go through one: the FIFO must hold every beat
    that enters before its partner on the long path leaves, or the fork feeding both stalls
    forever. ``SyncFIFOBuffered`` reads its memory synchronously, so it maps to EBR/BRAM; its
    output is registered once more (``ready`` passes through), so that a block RAM's
    clock-to-output (5.6 ns on an ECP5 EBR) and the routing from its column do not share a
    cycle with the consumer's logic (a routed critical path of the denoiser, docs/builds.md).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape, depth: int):
        if depth < 1:
            raise ValueError(f"depth={depth!r} must be at least 1")
        self.shape, self.depth = shape, depth
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = q = fifo.SyncFIFOBuffered(width=Shape.cast(self.shape).width,
                                                       depth=self.depth)
        load = ~self.o.valid | self.o.ready
        m.d.comb += [
            q.w_data.eq(self.i.payload), q.w_en.eq(self.i.valid), self.i.ready.eq(q.w_rdy),
            q.r_en.eq(load),
        ]
        with m.If(load):
            m.d.sync += [self.o.payload.eq(q.r_data), self.o.valid.eq(q.r_rdy)]
        return m


class SignBits(wiring.Component):
    """Fixed values to sign bits (``bit = x >= 0``, :func:`spec.arith.sign_bit`): the inverted
    sign bit of each channel, no logic and no latency. A binary layer reading a fixed tensor
    keeps only these bits in its line buffers.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(bits), channels)))
    o : Out(stream.Signature(ArrayLayout(unsigned(1), channels)))
    """

    def __init__(self, elem, channels: int):
        self.channels = channels
        super().__init__({"i": In(stream.Signature(pixel_layout(elem, channels))),
                          "o": Out(stream.Signature(pixel_layout(unsigned(1), channels)))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.o.payload.as_value().eq(Cat(self.i.payload[c] >= 0 for c in range(self.channels))),
            self.o.valid.eq(self.i.valid),
            self.i.ready.eq(self.o.ready),
        ]
        return m
