"""Window generator for a folded depthwise PE array: 3x3 windows kept in LUT RAM, read one
step's slice at a time.

Spec: :func:`spec.reference.window_tap`, as :class:`hw.window.WindowGen` (replicate border).

Why. A folded depthwise PE array (:class:`hw.depthwise_conv.DepthwiseConv`) reads ``simd``
taps of ``pe`` channels per step out of a window of ``9*channels`` elements. From
:class:`~hw.window.WindowGen`'s window of flip-flops that is a ``nf*sf``-way multiplexer per lane
bit: on the ECP5 denoiser's depthwise head (40 channels of 10 bits, 12 lanes, 30 steps) 5.7k
flip-flops of window and 7.1k LUT4, 3.2k PFUMX and 1.8k L6MUX21 of multiplexers, where
nextpnr's legaliser gave up (docs/builds.md). Here the window is channel-group serial:

* vertical: the line buffer holds rows ``y-2`` and ``y-1`` one channel group (``pe``
  channels) per entry, address ``x*nf + g``; input pixel ``(y, x)`` takes ``nf`` steps, one per
  group ``g``, and writes its column of output row ``y-1`` (rows ``clamp(y-2), y-1, y`` of
  group ``g``) into entry ``g`` of a column slot, a LUT-RAM memory of ``nf`` entries. Input
  row 0 yields no column; a flush row of ``W`` pixels (no input) yields the last row's.
  ``i.ready`` is high on a pixel's last group (its payload is held meanwhile).
* horizontal: four column slots; three pointers (``a``, ``b``, ``c``, as the column registers
  of :class:`~hw.window.WindowGen`) name the window's, the fourth is filled. Taking a column
  moves pointers, never data.
* output: ``o.valid`` says a window is ready; ``o.payload`` is the slice of the step on
  ``step_n`` / ``step_s`` (the PE array's sequencer), read asynchronously from the slots at
  entry ``step_n``: element ``[j][p]`` is channel ``step_n*pe + p`` of tap
  ``step_s*simd + j``. The PE array raises ``o.ready`` on the window's last step. So
  ``payload`` changes while ``valid`` waits on ``ready``, unlike a plain stream.

Cycles: the vertical stage takes ``nf`` steps per pixel (column ``k`` ready ``nf`` cycles after
its first step instead of 1; ``accel.perf`` models it), the horizontal stage as
:class:`~hw.window.WindowGen`. A window lasts ``nf*sf >= nf`` steps in the PE array, so the
throughput is the PE array's.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap

from .stream_util import pixel_layout

__all__ = ["GroupWindowGen"]

#: Column slots: the window's three columns and the one being filled.
SLOTS = 4


class GroupWindowGen(wiring.Component):
    """Raster pixels in, 3x3 windows out, read one step's slice at a time.

    Parameters
    ----------
    elem : shape
        Shape of one channel value.
    channels : int
        Channels per pixel.
    pe, simd : int
        The PE array's fold: ``pe`` divides ``channels``, ``simd`` divides 9.
    max_width : int
        Largest frame width.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, channels)))
    o : Out(stream.Signature(ArrayLayout(elem, simd*pe)))
    step_n : In(range(nf))
    step_s : In(range(sf))
    width : In(range(max_width + 1))
    height : In(16)
    """

    def __init__(self, elem, channels: int, pe: int, simd: int, max_width: int):
        if channels % pe or 9 % simd:
            raise ValueError(f"pe={pe!r} must divide channels={channels!r} and simd={simd!r} "
                             f"must divide 9")
        if not isinstance(max_width, int) or max_width < 1:
            raise ValueError(f"max_width={max_width!r} must be a positive integer")
        self.elem, self.channels, self.pe, self.simd = elem, channels, pe, simd
        self.nf, self.sf, self.max_width = channels // pe, 9 // simd, max_width
        super().__init__({
            "i": In(stream.Signature(pixel_layout(elem, channels))),
            "o": Out(stream.Signature(pixel_layout(elem, simd * pe))),
            "step_n": In(range(self.nf)),
            "step_s": In(range(self.sf)),
            "width": In(range(max_width + 1)),
            "height": In(range(regmap.MAX_HEIGHT + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        nf, gw = self.nf, self.pe * Shape.cast(self.elem).width  # groups, bits per group
        w_last = self.width - 1

        # ---- column slots (LUT RAM: nf entries of three rows of one group)
        slots = []
        for k in range(SLOTS):
            mem = memory.Memory(shape=unsigned(3 * gw), depth=nf, init=[])
            m.submodules[f"slot{k}"] = mem
            slots.append((mem.write_port(), mem.read_port(domain="comb")))

        # ---- horizontal state (pointers to slots), needed by the vertical stage's writes
        pa, pb, pc = (Signal(range(SLOTS), init=k, name=f"p{x}") for k, x in enumerate("abc"))
        fill = Signal(range(SLOTS), init=3)
        fresh, clamp = Signal(), Signal()
        left = Mux(fresh, pc, pb)
        # Taking a column makes the window (left, c, fill): the next fill is a slot outside it.
        next_fill = Signal(range(SLOTS))
        for k in reversed(range(SLOTS)):
            with m.If((left != k) & (pc != k) & (fill != k)):
                m.d.comb += next_fill.eq(k)

        # ---- vertical stage: line buffer of groups -> column slot
        m.submodules.lines = lines = memory.Memory(shape=unsigned(2 * gw),
                                                   depth=self.max_width * nf, init=[])
        wr = lines.write_port()
        rd = lines.read_port(transparent_for=(wr,))
        g = Signal(range(max(2, nf)))
        vx = Signal(range(self.max_width))
        vy = Signal(range(regmap.MAX_HEIGHT + 2))
        la = Signal(range(self.max_width * nf))  # vx*nf + g
        flushing = vy == self.height
        col_valid, col_ready = Signal(), Signal()
        v_can = ~col_valid | col_ready
        v_step = v_can & (flushing | self.i.valid)
        g_last = g == nf - 1
        m.d.comb += self.i.ready.eq(v_can & ~flushing & g_last)
        row2, row1 = rd.data[:gw], rd.data[gw:]  # rows y-2 and y-1, group g at column vx
        new = self.i.payload.as_value().word_select(g, gw)
        la_next = Mux((vx == w_last) & g_last, 0, la + 1)
        m.d.comb += [rd.addr.eq(Mux(v_step, la_next, la)), rd.en.eq(1),
                     wr.addr.eq(la), wr.data.eq(Cat(row1, new)), wr.en.eq(v_step & ~flushing)]
        # A column taken this cycle frees its fill slot for the next one at once.
        target = Mux(col_valid, next_fill, fill)
        column = Cat(Mux(vy >= 2, row2, row1), row1, Mux(flushing, row1, new))
        for k, (swr, _) in enumerate(slots):
            m.d.comb += [swr.addr.eq(g), swr.data.eq(column),
                         swr.en.eq(v_step & (vy != 0) & (target == k))]
        with m.If(col_valid & col_ready):
            m.d.sync += col_valid.eq(0)
        with m.If(v_step):
            m.d.sync += [la.eq(la_next), g.eq(Mux(g_last, 0, g + 1))]
            with m.If(g_last):
                m.d.sync += vx.eq(Mux(vx == w_last, 0, vx + 1))
                with m.If(vx == w_last):
                    m.d.sync += vy.eq(Mux(flushing, 0, vy + 1))
                with m.If(vy != 0):
                    m.d.sync += col_valid.eq(1)

        # ---- horizontal stage: WindowGen's, on slot pointers
        hx = Signal(range(self.max_width))
        hy = Signal(range(regmap.MAX_HEIGHT + 1))
        h_flush = Signal()
        h_can = ~self.o.valid | self.o.ready
        h_step = h_can & (h_flush | col_valid)
        m.d.comb += col_ready.eq(h_can & ~h_flush)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(h_step):
            with m.If(h_flush | (hx == 0)):
                # The previous row's last pixel (none before the frame's first row).
                m.d.sync += [pa.eq(left), pb.eq(pc), clamp.eq(1)]
                with m.If(h_flush | (hy != 0)):
                    m.d.sync += self.o.valid.eq(1)
            with m.If(h_flush):
                m.d.sync += h_flush.eq(0)
            with m.Elif(hx == 0):
                m.d.sync += [pc.eq(fill), fill.eq(next_fill), fresh.eq(1)]
            with m.Else():
                m.d.sync += [pa.eq(left), pb.eq(pc), pc.eq(fill), fill.eq(next_fill),
                             clamp.eq(0), fresh.eq(0), self.o.valid.eq(1)]
            with m.If(~h_flush):
                m.d.sync += hx.eq(Mux(hx == w_last, 0, hx + 1))
                with m.If(hx == w_last):
                    with m.If(hy == self.height - 1):
                        m.d.sync += [hy.eq(0), h_flush.eq(1)]
                    with m.Else():
                        m.d.sync += hy.eq(hy + 1)

        # ---- output: the slice of step (step_n, step_s). Element j is row ky of the slot of
        # column kx, (ky, kx) = divmod(step_s*simd + j, 3): each slot's row is selected once per
        # distinct row sequence (all j share it when simd < 9), then each element's slot.
        for _, srd in slots:
            m.d.comb += srd.addr.eq(self.step_n)
        column_of = [pa, pb, Mux(clamp, pb, pc)]  # slot of tap column kx
        steps = [[divmod(s * self.simd + j, 3) for s in range(self.sf)] for j in range(self.simd)]

        def by_step(values, shape, name):
            """``values[step_s]``: a constant or a signal when they differ."""
            if all(v is values[0] for v in values):
                return values[0]
            sig = Signal(shape, name=name)
            with m.Switch(self.step_s):
                for s, v in enumerate(values):
                    with m.Case(s):
                        m.d.comb += sig.eq(v)
            return sig

        rows = {}  # row sequence over the steps -> each slot's row at step_s
        taps = []
        for j, seq in enumerate(steps):
            key = tuple(ky for ky, _ in seq)
            if key not in rows:
                ky = by_step(list(key), range(3), f"row{len(rows)}")
                rows[key] = Array(srd.data.word_select(ky, gw) for _, srd in slots)
            slot = by_step([column_of[kx] for _, kx in seq], range(SLOTS), f"slot{j}")
            taps.append(rows[key][slot])
        m.d.comb += self.o.payload.as_value().eq(Cat(*taps))
        return m
