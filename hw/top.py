"""The accelerator top level: AXI4-Stream pixels in and out, AXI4-Lite registers, the layers.

``s_axis`` feeds the layers (:class:`hw.pipeline.Pipeline`), which feed ``m_axis``.

Registers (:mod:`accel.regmap`): frame size, status and sticky errors, frame and cycle counters,
and the parameter port that rewrites every weight/threshold/affine memory so one bitstream runs
any model of the same shape. A soft reset clears the pixel pipeline (not the registers or the
parameter memories).
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from accel import config, regmap
from spec.model import Model

from .pipeline import Pipeline

__all__ = ["AXIStreamSignature", "AXILiteSignature", "AXI3Signature", "TopSignature", "Top"]


class AXIStreamSignature(wiring.Signature):
    """AXI4-Stream, transmitter's view: ``tdata``, ``tvalid``, ``tready``, ``tlast``."""

    def __init__(self, width: int):
        super().__init__({"tdata": Out(width), "tvalid": Out(1), "tready": In(1),
                          "tlast": Out(1)})


class AXILiteSignature(wiring.Signature):
    """AXI4-Lite, manager's view, 32-bit data."""

    def __init__(self, addr_bits: int = regmap.AXIL_ADDR_BITS):
        super().__init__({
            "awaddr": Out(addr_bits), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


class AXI3Signature(wiring.Signature):
    """AXI3 (the Zynq PS7's ports), manager's view: bursts of up to 16 beats (4-bit ``len``),
    ``wid`` on the write data, 2-bit ``lock``; no ``qos``/``region``/``user``."""

    def __init__(self, *, data_bits: int = 64, id_bits: int = 6, addr_bits: int = 32):
        ch = {}
        for a in ("aw", "ar"):
            ch.update({f"{a}id": Out(id_bits), f"{a}addr": Out(addr_bits), f"{a}len": Out(4),
                       f"{a}size": Out(3), f"{a}burst": Out(2), f"{a}lock": Out(2),
                       f"{a}cache": Out(4), f"{a}prot": Out(3), f"{a}valid": Out(1),
                       f"{a}ready": In(1)})
        ch.update({
            "wid": Out(id_bits), "wdata": Out(data_bits), "wstrb": Out(data_bits // 8),
            "wlast": Out(1), "wvalid": Out(1), "wready": In(1),
            "bid": In(id_bits), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "rid": In(id_bits), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })
        super().__init__(ch)


class TopSignature(wiring.Signature):
    """:class:`Top`'s ports for ``c_in`` input and ``c_out`` output channels (they depend on
    nothing else): ``s_axis``, ``m_axis``, ``s_axil`` as ``gam_top.v`` names them."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__({
            "s_axis": In(AXIStreamSignature(regmap.stream_bits(c_in))),
            "m_axis": Out(AXIStreamSignature(regmap.stream_bits(c_out))),
            "s_axil": In(AXILiteSignature()),
        })


class Top(wiring.Component):
    """The accelerator for every model of ``model``'s shape, ``model`` loaded at reset.

    Contract: pixels enter on ``s_axis`` one per beat (:func:`accel.regmap.pack_pixels`), raster
    order, ``tlast`` on each frame's last pixel; results leave on ``m_axis`` in the same order
    with ``tlast`` on the last. WIDTH/HEIGHT define the frame; a misplaced or missing TLAST sets
    a sticky error bit and the frame is still processed by count. Several frames may be in
    flight. Verilog ports: ``s_axis__tdata`` etc., clock ``clk``, synchronous reset ``rst``.

    Parameters
    ----------
    model : spec.Model
        The default model (its parameters are the memories' initial contents).
    max_width : int
        Largest frame width (line buffer depth).
    fold : accel.regmap.Fold
        Resolved (:func:`accel.fold.resolve_fold`); ``None``: fully unfolded.
    dsp : int or None
        Hard multiplier budget (:func:`accel.perf.dsp_allocation`); ``None`` leaves every product to
        synthesis.
    lut_inputs : int
        The target's LUT inputs, 4 or 6 (:attr:`accel.boards.Board.lut_inputs`): the binary PE
        arrays' first logic level is shaped to it (:class:`hw.xnor_engine.XnorEngine`).
    lutram_depth : int
        Weight memories of at most this many rows go to LUT RAM (:class:`hw.pipeline.Pipeline`).

    Members
    -------
    s_axis : In(AXIStreamSignature(stream_bits(input_channels)))
    m_axis : Out(AXIStreamSignature(stream_bits(output_channels)))
    s_axil : In(AXILiteSignature())
    """

    def __init__(self, model: Model, *, max_width: int = config.DEFAULT_MAX_WIDTH, fold=None, dsp=None,
                 lut_inputs=4, lutram_depth=0):
        if not isinstance(max_width, int) or not 1 <= max_width <= 65535:
            raise ValueError(f"max_width={max_width!r} must be an integer in 1..65535")
        self.pipeline = Pipeline(model, max_width=max_width, fold=fold, dsp=dsp,
                                 lut_inputs=lut_inputs, lutram_depth=lutram_depth)
        self.model, self.max_width, self.folds = model, max_width, self.pipeline.folds
        self.c_in, self.c_out = model.input_channels, model.layers[-1].c_out
        super().__init__(TopSignature(self.c_in, self.c_out))

    def elaborate(self, platform):
        m = Module()
        p = self.pipeline
        r = _Registers(self.max_width)
        m.submodules.pipeline = ResetInserter({"sync": r.soft_reset})(p)
        m.d.comb += [p.width.eq(r.width), p.height.eq(r.height)]
        # Statement order matters where two parts assign one signal: the later wins (a CONTROL
        # write clears an error set in the same cycle; a soft reset clears the positions).
        self._streams(m, r)
        self._param_port(m, r)
        self._register_writes(m, r)
        self._soft_reset(m, r)
        self._register_reads(m, r)
        return m

    def _streams(self, m, r):
        """AXI4-Stream to and from the pipeline: frame positions, the TLAST checks, the frame
        counter and each frame's cycles (its start time waits in a FIFO for its last pixel)."""
        p = self.pipeline
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = ResetInserter({"sync": r.soft_reset})(
            fifo.SyncFIFO(width=32, depth=16))
        i_last = (r.ix == r.last_x) & (r.iy == r.last_y)
        o_last = (r.ox == r.last_x) & (r.oy == r.last_y)
        m.d.comb += [
            p.i.payload.as_value().eq(self.s_axis.tdata[:8 * self.c_in]),
            p.i.valid.eq(self.s_axis.tvalid),
            self.s_axis.tready.eq(p.i.ready),
            self.m_axis.tdata.eq(p.o.payload.as_value()),
            self.m_axis.tvalid.eq(p.o.valid),
            self.m_axis.tlast.eq(o_last),
            p.o.ready.eq(self.m_axis.tready),
            starts.w_data.eq(now),
        ]
        frame_in = self.s_axis.tvalid & self.s_axis.tready & (r.ix == 0) & (r.iy == 0)
        frame_out = self.m_axis.tvalid & self.m_axis.tready & o_last
        m.d.sync += r.in_flight.eq(r.in_flight + frame_in - frame_out)
        with m.If(self.s_axis.tvalid & self.s_axis.tready):
            m.d.comb += starts.w_en.eq((r.ix == 0) & (r.iy == 0))
            m.d.sync += r.ix.eq(Mux(r.ix == r.last_x, 0, r.ix + 1))
            with m.If(r.ix == r.last_x):
                m.d.sync += r.iy.eq(Mux(r.iy == r.last_y, 0, r.iy + 1))
            with m.If(self.s_axis.tlast & ~i_last):
                m.d.sync += r.err_early.eq(1)
            with m.If(~self.s_axis.tlast & i_last):
                m.d.sync += r.err_late.eq(1)
        with m.If(self.m_axis.tvalid & self.m_axis.tready):
            m.d.sync += r.ox.eq(Mux(r.ox == r.last_x, 0, r.ox + 1))
            with m.If(r.ox == r.last_x):
                m.d.sync += r.oy.eq(Mux(r.oy == r.last_y, 0, r.oy + 1))
            with m.If(o_last):
                m.d.comb += starts.r_en.eq(1)
                m.d.sync += [r.frames.eq(r.frames + 1), r.cycles.eq(now - starts.r_data + 1)]

    def _param_port(self, m, r):
        """PARAM_DATA writes go to the pipeline's parameter bus at PARAM_ADDR, which then
        increments; a word no region takes sets the sticky address error."""
        p = self.pipeline
        m.d.comb += p.bus.addr.eq(r.param_addr)
        m.d.sync += [r.soft_reset.eq(0), p.bus.en.eq(0)]  # both pulse for one cycle
        with m.If(p.bus.en):
            m.d.sync += r.param_addr.eq(r.param_addr + 1)
            with m.If(~p.param_hit):
                m.d.sync += r.err_param.eq(1)

    def _write_actions(self, m, r):
        """What a write to each writable register of :data:`accel.regmap.REGISTERS` does."""
        p, wdata = self.pipeline, self.s_axil.wdata

        def control():
            m.d.sync += r.soft_reset.eq(wdata & regmap.CONTROL_SOFT_RESET != 0)
            with m.If(wdata & regmap.CONTROL_CLEAR_ERRORS != 0):
                m.d.sync += [r.err_early.eq(0), r.err_late.eq(0), r.err_param.eq(0),
                             r.err_size.eq(0)]

        def frame_size(target, last, limit):
            def write():
                with m.If((wdata >= 1) & (wdata <= limit)):
                    m.d.sync += [target.eq(wdata), last.eq(wdata - 1)]
                with m.Else():
                    m.d.sync += r.err_size.eq(1)
            return write

        return {
            "CONTROL": control,
            "WIDTH": frame_size(r.width, r.last_x, self.max_width),
            "HEIGHT": frame_size(r.height, r.last_y, regmap.MAX_HEIGHT),
            "PARAM_ADDR": lambda: m.d.sync.__iadd__(r.param_addr.eq(wdata)),
            "PARAM_DATA": lambda: m.d.sync.__iadd__([p.bus.data.eq(wdata), p.bus.en.eq(1)]),
        }

    def _read_values(self, r):
        """The value each readable register of :data:`accel.regmap.REGISTERS` reads."""
        status = Cat(r.in_flight != 0, r.err_early, r.err_late, r.err_param, r.err_size)
        return {
            "ID": regmap.ID_VALUE, "SHAPE": regmap.shape_id(self.model), "STATUS": status,
            "WIDTH": r.width, "HEIGHT": r.height, "FRAMES": r.frames, "CYCLES": r.cycles,
            "PARAM_ADDR": r.param_addr, "MAX_WIDTH": self.max_width,
            "CHANNELS": self.c_in | (self.c_out << 16),
        }

    def _register_writes(self, m, r):
        """The AXI4-Lite write channel, its decoder generated from the register table (a
        writable register without an action here is an error at elaboration)."""
        bus, actions = self.s_axil, self._write_actions(m, r)
        m.d.comb += bus.bresp.eq(0)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(write), bus.wready.eq(write)]
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
            with m.Switch(bus.awaddr[2:]):
                for name, addr in _registers("w", actions):
                    with m.Case(addr >> 2):
                        actions[name]()

    def _soft_reset(self, m, r):
        """A soft reset (CONTROL bit 0) restarts the frame positions; the registers and the
        parameter memories keep their values."""
        with m.If(r.soft_reset):
            m.d.sync += [r.ix.eq(0), r.iy.eq(0), r.ox.eq(0), r.oy.eq(0), r.in_flight.eq(0)]

    def _register_reads(self, m, r):
        """The AXI4-Lite read channel, its decoder generated from the register table."""
        bus, values = self.s_axil, self._read_values(r)
        m.d.comb += bus.rresp.eq(0)
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & ~bus.rvalid):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0)]
            with m.Switch(bus.araddr[2:]):
                for name, addr in _registers("r", values):
                    with m.Case(addr >> 2):
                        m.d.sync += bus.rdata.eq(values[name])


def _registers(access: str, implemented: dict):
    """``(name, address)`` of the registers of :data:`accel.regmap.REGISTERS` with ``access``
    (``"r"`` or ``"w"``); each must have an entry in ``implemented``."""
    regs = [(name, addr) for name, (addr, acc, _) in regmap.REGISTERS.items() if access in acc]
    missing = [name for name, _ in regs if name not in implemented]
    if missing:
        what = "read value" if access == "r" else "write action"
        raise NotImplementedError(f"register {', '.join(missing)} of accel.regmap.REGISTERS has "
                                  f"no {what} in hw.top.Top")
    return regs


class _Registers:
    """The top level's state: frame size, positions, counters, sticky errors, the parameter
    address, the soft-reset pulse."""

    def __init__(self, max_width: int):
        self.soft_reset = Signal()
        self.width = Signal(range(max_width + 1), init=min(max_width, 640))
        self.height = Signal(range(regmap.MAX_HEIGHT + 1), init=360)
        # The last column and row, written with the size: the position counters compare against
        # them, so no subtractor sits in the stream's TLAST and wrap-around paths.
        self.last_x = Signal(range(max_width), init=self.width.init - 1)
        self.last_y = Signal(range(regmap.MAX_HEIGHT), init=self.height.init - 1)
        self.ix = Signal(range(max_width))
        self.iy = Signal(range(regmap.MAX_HEIGHT))
        self.ox = Signal(range(max_width))
        self.oy = Signal(range(regmap.MAX_HEIGHT))
        self.in_flight = Signal(32)
        self.err_early = Signal()
        self.err_late = Signal()
        self.err_param = Signal()
        self.err_size = Signal()
        self.frames = Signal(32)
        self.cycles = Signal(32)
        self.param_addr = Signal(32)
