"""The accelerator top level: AXI4-Stream pixels in and out, AXI4-Lite registers, the layers.

Data path (one stream per tensor, valid/ready everywhere)::

    s_axis -> tensor 0 -> [fork] -> layer 1 -> tensor 1 -> ... -> layer L (pixel) -> m_axis
                  |                              |  (residual tensors fork into a DelayFIFO
                  +--------- DelayFIFO ----------+-> joined by the affine / pixel stage)

A layer is ``[SignBits] -> WindowGen -> slice -> FoldedMVU -> slice -> Split -> output stage
-> Gather -> slice`` (slice = :class:`~hw.stream_util.SkidBuffer`): the PE array emits ``pe`` accumulators per beat, the output stage (threshold,
affine or pixel) takes ``out_pe`` per beat, the gather rebuilds a whole pixel for the next
layer's line buffer, and the register slices keep ``ready`` paths short (none crosses a
layer).

Registers (:mod:`hw.regmap`): frame size, status and sticky errors, frame and cycle counters,
and the parameter port that rewrites every weight/threshold/affine memory so one bitstream runs
any model of the same shape. A soft reset clears the pixel pipeline (not the registers or the
parameter memories).
"""

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.model import Model

from . import regmap
from .affine import Affine
from .perf import delay_depth
from .fixed_conv import FixedConv, PixelOutput
from .stream_util import DelayFIFO, Fork, Gather, SignBits, SkidBuffer, Split, pixel_layout
from .threshold import Threshold
from .weights import ParamBus
from .window import WindowGen
from .xnor_engine import XnorEngine, acc_shape_for

__all__ = ["AXIStreamSignature", "AXILiteSignature", "Pipeline", "Top", "AXIL_ADDR_BITS",
           "dsp_allocation"]

#: AXI4-Lite address width (a 4 KiB register window).
AXIL_ADDR_BITS = 12


class AXIStreamSignature(wiring.Signature):
    """AXI4-Stream, transmitter's view: ``tdata``, ``tvalid``, ``tready``, ``tlast``."""

    def __init__(self, width: int):
        super().__init__({"tdata": Out(width), "tvalid": Out(1), "tready": In(1),
                          "tlast": Out(1)})


class AXILiteSignature(wiring.Signature):
    """AXI4-Lite, manager's view, 32-bit data."""

    def __init__(self, addr_bits: int = AXIL_ADDR_BITS):
        super().__init__({
            "awaddr": Out(addr_bits), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_bits), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })


def tensor_elem(t):
    """Shape of one channel value of a tensor type."""
    if t.kind == "pixel":
        return unsigned(8)
    if t.kind == "bit":
        return unsigned(1)
    return signed(t.bits)


def dsp_allocation(model: Model, folds, dsp):
    """Per layer, how many conv products may use hard multipliers (``None`` = all).

    ``dsp`` is the device budget. The output stages' ``out_pe`` multipliers (accumulator x
    ``A``, up to 18 bits: one DSP each) are counted first; the rest goes to the fixed convs in
    layer order, the head first. Their remaining products become Booth multipliers in LUTs.
    """
    if dsp is None:
        return [None] * len(model.layers)
    if not isinstance(dsp, int) or dsp < 0:
        raise ValueError(f"dsp={dsp!r} must be None or a non-negative integer")
    left = dsp - sum(f.out_pe for layer, f in zip(model.layers, folds) if layer.output != "threshold")
    out = []
    for layer, f in zip(model.layers, folds):
        n = 0
        if layer.kind == "fixed":
            n = max(0, min(left, f.pe * f.simd))
            left -= n
        out.append(n)
    return out


class Pipeline(wiring.Component):
    """All layers of ``model`` with ``fold``: tensor 0 pixels in, output pixels out.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(unsigned(8), input_channels)))
    o : Out(stream.Signature(ArrayLayout(unsigned(8), output_channels)))
    bus : In(ParamBus())
    param_hit : Out(1)
    width : In(range(max_width + 1))
    height : In(16)
    """

    def __init__(self, model: Model, *, max_width: int, fold=None, dsp=None):
        model.validate()
        self.model, self.max_width = model, max_width
        self.folds = regmap.normalize_fold(model, fold)
        self.regions = regmap.regions(model, self.folds)
        self.dsp_terms = dsp_allocation(model, self.folds, dsp)
        types = model.tensor_types()
        super().__init__({
            "i": In(stream.Signature(pixel_layout(unsigned(8), types[0].channels))),
            "o": Out(stream.Signature(pixel_layout(unsigned(8), types[-1].channels))),
            "bus": In(ParamBus()),
            "param_hit": Out(1),
            "width": In(range(max_width + 1)),
            "height": In(range(regmap.MAX_HEIGHT + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        model, types = self.model, self.model.tensor_types()
        n = len(model.layers)
        # Who reads each tensor besides the next layer: residual shortcuts, and tensor 0 for the
        # pixel layer (always wired: residual_map is a loadable array, not part of the shape).
        extra = {j: [] for j in range(n + 1)}
        for k, layer in enumerate(model.layers, 1):
            if layer.residual is not None:
                extra[layer.residual].append(k)
        extra[0].append(n)
        delayed = {}  # (tensor, consumer layer) -> delayed stream
        hits = []

        def fork(j, src):
            """Split tensor ``j``'s stream: next layer, and a DelayFIFO per residual reader."""
            if not extra[j]:
                return src
            layout = pixel_layout(tensor_elem(types[j]), types[j].channels)
            f = Fork(layout, 1 + len(extra[j]))
            m.submodules[f"fork{j}"] = f
            m.d.comb += [f.i.payload.eq(src.payload), f.i.valid.eq(src.valid),
                         src.ready.eq(f.i.ready)]
            for out, k in zip(f.outputs()[1:], extra[j]):
                span = k - j
                q = DelayFIFO(layout, delay_depth(span, self.max_width))
                m.submodules[f"delay{j}_{k}"] = q
                wiring.connect(m, out, q.i)
                delayed[(j, k)] = q.o
            return f.o0

        src = fork(0, self.i)
        for k, (layer, f) in enumerate(zip(model.layers, self.folds), 1):
            src = self._layer(m, k, layer, f, types[k - 1], src, delayed, hits)
            if k < n:
                src = fork(k, src)
        wiring.connect(m, src, wiring.flipped(self.o))
        m.d.comb += self.param_hit.eq(Cat(*hits).any())
        return m

    def _layer(self, m, k, layer, f, in_type, src, delayed, hits):
        w_region, o_region = self.regions[2 * k - 2], self.regions[2 * k - 1]

        def init(region):
            return regmap.region_entries(self.model, region)

        def add(name, block):
            m.submodules[f"l{k}_{name}"] = block
            if hasattr(block, "bus"):
                wiring.connect(m, wiring.flipped(self.bus), block.bus)
            return block

        elem = tensor_elem(in_type)
        if layer.kind == "binary" and in_type.kind == "fixed":
            sb = add("sign", SignBits(elem, layer.c_in))
            wiring.connect(m, src, sb.i)
            src, elem = sb.o, unsigned(1)
        win = add("window", WindowGen(elem, layer.c_in, layer.kernel, self.max_width))
        m.d.comb += [win.width.eq(self.width), win.height.eq(self.height)]
        wiring.connect(m, src, win.i)
        acc = acc_shape_for(layer, in_type)
        if layer.kind == "binary":
            mvu = XnorEngine(w_region, init(w_region), taps=layer.taps, c_out=layer.c_out)
        else:
            mvu = FixedConv(w_region, init(w_region), elem=elem, bit_input=in_type.kind == "bit",
                            taps=layer.taps, c_out=layer.c_out, acc_shape=acc, w_bits=layer.w_bits,
                            dsp_terms=self.dsp_terms[k - 1])
        add("mvu", mvu)
        hits.append(mvu.weights.hit)
        # Register slices around the PE array: its enable (thousands of flip-flops) and the
        # line buffer's read address then depend on registered ``ready`` signals only.
        win_slice = add("win_slice", SkidBuffer(win.o.payload.shape()))
        wiring.connect(m, win.o, win_slice.i)
        wiring.connect(m, win_slice.o, mvu.i)
        acc_slice = add("acc_slice", SkidBuffer(mvu.o.payload.shape()))
        wiring.connect(m, mvu.o, acc_slice.i)
        split = add("split", Split(mvu.acc_shape, f.out_pe, f.pe // f.out_pe))
        wiring.connect(m, acc_slice.o, split.i)
        if layer.output == "threshold":
            stage = Threshold(o_region, init(o_region), acc_shape=mvu.acc_shape)
        elif layer.output == "affine":
            stage = Affine(o_region, init(o_region), acc_shape=mvu.acc_shape, shift=layer.shift,
                           out_bits=layer.out_bits, residual=layer.residual is not None)
        else:
            stage = PixelOutput(o_region, init(o_region), acc_shape=mvu.acc_shape,
                                shift=layer.shift, in_channels=self.model.input_channels)
        add("stage", stage)
        hits.append(stage.params.hit)
        wiring.connect(m, split.o, stage.i)
        if layer.output == "affine" and layer.residual is not None:
            wiring.connect(m, delayed[(layer.residual, k)], stage.r)
        if layer.output == "pixel":
            wiring.connect(m, delayed[(0, k)], stage.r)
        gather = add("gather", Gather(stage.out_elem, f.out_pe, layer.c_out // f.out_pe))
        wiring.connect(m, stage.o, gather.i)
        slice_ = add("slice", SkidBuffer(gather.o.payload.shape()))
        wiring.connect(m, gather.o, slice_.i)
        return slice_.o


class Top(wiring.Component):
    """The accelerator for every model of ``model``'s shape, ``model`` loaded at reset.

    Contract: pixels enter on ``s_axis`` one per beat (:func:`hw.regmap.pack_pixels`), raster
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
    fold : see :func:`hw.regmap.normalize_fold`
    dsp : int or None
        Hard multiplier budget (:func:`dsp_allocation`); ``None`` leaves every product to
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
