"""Window generator: line buffers turning a raster pixel stream into 3x3 windows.

Spec: :func:`spec.reference.window_tap` -- tap ``(ky, kx)`` of output pixel ``(y, x)`` is input
pixel ``(clamp(y+ky-1), clamp(x+kx-1))`` (replicate border, every layer).

Idea. Two stages, each a register with valid/ready:

* vertical: one block-RAM line buffer of ``max_width`` rows of two pixels (rows ``y-2`` and
  ``y-1`` at column ``x``) turns input pixel ``(y, x)`` into the column of output row ``y-1``:
  rows ``(clamp(y-2), y-1, y)``. Input row 0 yields nothing; after the last input row a flush
  row of ``W`` steps (no input) yields the columns of the last output row, with the bottom
  clamped. The read port is synchronous: its address is the *next* step's column whenever the
  step advances, so the data is ready on time at one step per cycle (transparent for ``W == 1``
  where it reads the row being written).
* horizontal: three column registers are the output window of the pixel one column back
  (no separate 3x3 output register: it would hold the same columns twice over); the first
  column of each row emits the previous row's last pixel (right tap clamped), so a row costs
  ``W`` steps, and one flush step ends the frame.

Throughput one window per cycle after the fill; a frame takes ``H*W + W + 1`` steps. The frame
size is read from ``width``/``height``, which must only change between frames.
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap

from .stream_util import pixel_layout

__all__ = ["WindowGen"]


class WindowGen(wiring.Component):
    """Raster pixels in, ``kernel x kernel`` windows out (one per pixel, raster order).

    Window element ``(ky*kernel + kx)*channels + c`` is channel ``c`` of tap ``(ky, kx)``, the
    flat tap order of the weights (``c_out, ky, kx, c_in``). ``kernel == 1`` is a wire.

    Parameters
    ----------
    elem : shape
        Shape of one channel value (``unsigned(1)`` bits, ``unsigned(8)`` pixels, signed fixed).
    channels : int
        Channels per pixel.
    kernel : int
        1 or 3.
    max_width : int
        Largest frame width; the line buffer has this many entries.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, channels)))
    o : Out(stream.Signature(ArrayLayout(elem, kernel*kernel*channels)))
    width : In(range(max_width + 1))
    height : In(16)
    """

    def __init__(self, elem, channels: int, kernel: int, max_width: int):
        if kernel not in (1, 3):
            raise ValueError(f"kernel={kernel!r} must be 1 or 3")
        if not isinstance(max_width, int) or max_width < 1:
            raise ValueError(f"max_width={max_width!r} must be a positive integer")
        self.elem, self.channels, self.kernel, self.max_width = elem, channels, kernel, max_width
        super().__init__({
            "i": In(stream.Signature(pixel_layout(elem, channels))),
            "o": Out(stream.Signature(pixel_layout(elem, kernel * kernel * channels))),
            "width": In(range(max_width + 1)),
            "height": In(range(regmap.MAX_HEIGHT + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        if self.kernel == 1:
            m.d.comb += [self.o.payload.as_value().eq(self.i.payload.as_value()),
                         self.o.valid.eq(self.i.valid), self.i.ready.eq(self.o.ready)]
            return m
        pw = Shape.cast(pixel_layout(self.elem, self.channels)).width
        w_last = self.width - 1

        # ---- vertical stage: line buffer -> columns (top, mid, bottom)
        m.submodules.lines = lines = memory.Memory(shape=unsigned(2 * pw), depth=self.max_width,
                                                   init=[])
        wr = lines.write_port()
        rd = lines.read_port(transparent_for=(wr,))
        vx = Signal(range(self.max_width))
        vy = Signal(range(regmap.MAX_HEIGHT + 2))
        flushing = vy == self.height
        col = Signal(3 * pw)
        col_valid = Signal()
        col_ready = Signal()
        v_can = ~col_valid | col_ready
        v_step = v_can & (flushing | self.i.valid)
        m.d.comb += self.i.ready.eq(v_can & ~flushing)
        row2, row1 = rd.data[:pw], rd.data[pw:]  # rows y-2 and y-1 at column vx
        new = self.i.payload.as_value()
        vx_next = Mux(vx == w_last, 0, vx + 1)
        m.d.comb += [rd.addr.eq(Mux(v_step, vx_next, vx)), rd.en.eq(1),
                     wr.addr.eq(vx), wr.data.eq(Cat(row1, new)), wr.en.eq(v_step & ~flushing)]
        with m.If(col_valid & col_ready):
            m.d.sync += col_valid.eq(0)
        with m.If(v_step):
            m.d.sync += vx.eq(vx_next)
            with m.If(vx == w_last):
                m.d.sync += vy.eq(Mux(flushing, 0, vy + 1))
            with m.If(vy != 0):
                top = Mux(vy >= 2, row2, row1)
                bottom = Mux(flushing, row1, new)
                m.d.sync += [col.eq(Cat(top, row1, bottom)), col_valid.eq(1)]

        # ---- horizontal stage: columns -> windows
        # The window on `o` is three column registers: `a`, `b` and `c`, or `b` again when a
        # row's last pixel repeats its last column (`clamp`); no 3x3 output register beside
        # them. Between pixels of a row `b` and `c` are the next window's left and middle
        # columns; after a row's first column `c` is both (`fresh`).
        hx = Signal(range(self.max_width))
        hy = Signal(range(regmap.MAX_HEIGHT + 1))
        h_flush = Signal()
        a, b, c = Signal(3 * pw), Signal(3 * pw), Signal(3 * pw)
        clamp = Signal()
        fresh = Signal()
        left = Mux(fresh, c, b)
        h_can = ~self.o.valid | self.o.ready
        h_step = h_can & (h_flush | col_valid)
        m.d.comb += col_ready.eq(h_can & ~h_flush)

        def window(lc, mc, rc):
            cols = [lc, mc, rc]
            return Cat(*[cols[kx].word_select(ky, pw) for ky in range(3) for kx in range(3)])

        m.d.comb += self.o.payload.as_value().eq(window(a, b, Mux(clamp, b, c)))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(h_step):
            with m.If(h_flush | (hx == 0)):
                # The previous row's last pixel (none before the frame's first row).
                m.d.sync += [a.eq(left), b.eq(c), clamp.eq(1)]
                with m.If(h_flush | (hy != 0)):
                    m.d.sync += self.o.valid.eq(1)
            with m.If(h_flush):
                m.d.sync += h_flush.eq(0)
            with m.Elif(hx == 0):
                m.d.sync += [c.eq(col), fresh.eq(1)]
            with m.Else():
                m.d.sync += [a.eq(left), b.eq(c), c.eq(col), clamp.eq(0), fresh.eq(0),
                             self.o.valid.eq(1)]
            with m.If(~h_flush):
                m.d.sync += hx.eq(Mux(hx == w_last, 0, hx + 1))
                with m.If(hx == w_last):
                    with m.If(hy == self.height - 1):
                        m.d.sync += [hy.eq(0), h_flush.eq(1)]
                    with m.Else():
                        m.d.sync += hy.eq(hy + 1)
        return m
