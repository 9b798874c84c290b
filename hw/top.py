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

from accel import regmap
from spec.model import Model

from .pipeline import Pipeline

__all__ = ["AXIStreamSignature", "AXILiteSignature", "Top"]


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
    fold : see :func:`accel.regmap.normalize_fold`
    dsp : int or None
        Hard multiplier budget (:func:`hw.pipeline.dsp_allocation`); ``None`` leaves every product to
        synthesis.

    Members
    -------
    s_axis : In(AXIStreamSignature(stream_bits(input_channels)))
    m_axis : Out(AXIStreamSignature(stream_bits(output_channels)))
    s_axil : In(AXILiteSignature())
    """

    def __init__(self, model: Model, *, max_width: int = 1280, fold=None, dsp=None):
        if not isinstance(max_width, int) or not 1 <= max_width <= 65535:
            raise ValueError(f"max_width={max_width!r} must be an integer in 1..65535")
        self.pipeline = Pipeline(model, max_width=max_width, fold=fold, dsp=dsp)
        self.model, self.max_width, self.folds = model, max_width, self.pipeline.folds
        self.c_in, self.c_out = model.input_channels, model.layers[-1].c_out
        super().__init__({
            "s_axis": In(AXIStreamSignature(regmap.stream_bits(self.c_in))),
            "m_axis": Out(AXIStreamSignature(regmap.stream_bits(self.c_out))),
            "s_axil": In(AXILiteSignature()),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.pipeline
        soft_reset = Signal()
        m.submodules.pipeline = ResetInserter({"sync": soft_reset})(p)

        width = Signal(range(self.max_width + 1), init=min(self.max_width, 640))
        height = Signal(range(regmap.MAX_HEIGHT + 1), init=360)
        m.d.comb += [p.width.eq(width), p.height.eq(height)]

        # ---- input: frame position, TLAST check, start time of each frame
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        m.submodules.starts = starts = ResetInserter({"sync": soft_reset})(
            fifo.SyncFIFO(width=32, depth=16))
        in_flight = Signal(32)
        ix, iy = Signal(range(self.max_width)), Signal(range(regmap.MAX_HEIGHT))
        ox, oy = Signal(range(self.max_width)), Signal(range(regmap.MAX_HEIGHT))
        err_early, err_late, err_param, err_size = Signal(), Signal(), Signal(), Signal()
        frames, cycles = Signal(32), Signal(32)
        i_last = (ix == width - 1) & (iy == height - 1)
        o_last = (ox == width - 1) & (oy == height - 1)
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
        frame_in = self.s_axis.tvalid & self.s_axis.tready & (ix == 0) & (iy == 0)
        frame_out = self.m_axis.tvalid & self.m_axis.tready & o_last
        m.d.sync += in_flight.eq(in_flight + frame_in - frame_out)
        with m.If(self.s_axis.tvalid & self.s_axis.tready):
            m.d.comb += starts.w_en.eq((ix == 0) & (iy == 0))
            m.d.sync += ix.eq(Mux(ix == width - 1, 0, ix + 1))
            with m.If(ix == width - 1):
                m.d.sync += iy.eq(Mux(iy == height - 1, 0, iy + 1))
            with m.If(self.s_axis.tlast & ~i_last):
                m.d.sync += err_early.eq(1)
            with m.If(~self.s_axis.tlast & i_last):
                m.d.sync += err_late.eq(1)
        with m.If(self.m_axis.tvalid & self.m_axis.tready):
            m.d.sync += ox.eq(Mux(ox == width - 1, 0, ox + 1))
            with m.If(ox == width - 1):
                m.d.sync += oy.eq(Mux(oy == height - 1, 0, oy + 1))
            with m.If(o_last):
                m.d.comb += starts.r_en.eq(1)
                m.d.sync += [frames.eq(frames + 1), cycles.eq(now - starts.r_data + 1)]

        # ---- AXI4-Lite register file
        bus = self.s_axil
        param_addr = Signal(32)
        m.d.comb += [bus.bresp.eq(0), bus.rresp.eq(0), p.bus.addr.eq(param_addr)]
        m.d.sync += [soft_reset.eq(0), p.bus.en.eq(0)]
        with m.If(p.bus.en):
            m.d.sync += param_addr.eq(param_addr + 1)
            with m.If(~p.param_hit):
                m.d.sync += err_param.eq(1)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += bus.bvalid.eq(0)
        write = bus.awvalid & bus.wvalid & ~bus.bvalid
        m.d.comb += [bus.awready.eq(write), bus.wready.eq(write)]
        reg = regmap.REG
        with m.If(write):
            m.d.sync += bus.bvalid.eq(1)
            with m.Switch(bus.awaddr[2:]):
                with m.Case(reg["CONTROL"] >> 2):
                    m.d.sync += soft_reset.eq(bus.wdata & regmap.CONTROL_SOFT_RESET != 0)
                    with m.If(bus.wdata & regmap.CONTROL_CLEAR_ERRORS != 0):
                        m.d.sync += [err_early.eq(0), err_late.eq(0), err_param.eq(0),
                                     err_size.eq(0)]
                for name, target, limit in (("WIDTH", width, self.max_width),
                                            ("HEIGHT", height, regmap.MAX_HEIGHT)):
                    with m.Case(reg[name] >> 2):
                        with m.If((bus.wdata >= 1) & (bus.wdata <= limit)):
                            m.d.sync += target.eq(bus.wdata)
                        with m.Else():
                            m.d.sync += err_size.eq(1)
                with m.Case(reg["PARAM_ADDR"] >> 2):
                    m.d.sync += param_addr.eq(bus.wdata)
                with m.Case(reg["PARAM_DATA"] >> 2):
                    m.d.sync += [p.bus.data.eq(bus.wdata), p.bus.en.eq(1)]
        with m.If(soft_reset):
            m.d.sync += [ix.eq(0), iy.eq(0), ox.eq(0), oy.eq(0), in_flight.eq(0)]

        status = Cat(in_flight != 0, err_early, err_late, err_param, err_size)
        values = {
            "ID": regmap.ID_VALUE, "SHAPE": regmap.shape_id(self.model), "STATUS": status,
            "WIDTH": width, "HEIGHT": height, "FRAMES": frames, "CYCLES": cycles,
            "PARAM_ADDR": param_addr, "MAX_WIDTH": self.max_width,
            "CHANNELS": self.c_in | (self.c_out << 16),
        }
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        m.d.comb += bus.arready.eq(~bus.rvalid)
        with m.If(bus.arvalid & ~bus.rvalid):
            m.d.sync += [bus.rvalid.eq(1), bus.rdata.eq(0)]
            with m.Switch(bus.araddr[2:]):
                for name, value in values.items():
                    with m.Case(reg[name] >> 2):
                        m.d.sync += bus.rdata.eq(value)
        return m
