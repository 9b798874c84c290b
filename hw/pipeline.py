"""All layers of a model as one stream pipeline: tensor 0 pixels in, output pixels out.

Data path (one stream per tensor, valid/ready everywhere)::

    i -> tensor 0 -> [fork] -> layer 1 -> tensor 1 -> ... -> layer L (pixel) -> o
             |                              |  (residual tensors fork into a DelayFIFO
             +--------- DelayFIFO ----------+-> joined by the affine / pixel stage)

A layer is ``[SignBits] -> [slice] -> WindowGen (GroupWindowGen for a folded 3x3 depthwise
layer) -> [slice] -> FoldedMVU -> slice -> Split -> output stage -> Gather`` (slice =
:class:`~hw.stream_util.SkidBuffer`; the first one in front of every layer but the first, the
second one only in front of an unfolded PE array):
the PE array emits ``pe`` accumulators per beat, the output stage (threshold, affine or pixel)
takes ``out_pe`` per beat, the gather rebuilds a whole pixel for the next layer's line buffer,
and the register slices keep ``ready`` paths short: the input slice's ``ready`` is a register,
so no ``ready`` path crosses from one layer into the one before.
"""

from amaranth.hdl import Cat, Module, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap
from accel.perf import delay_depth, dsp_allocation, grouped_window
from spec import kinds
from spec.model import Model

from .depthwise_conv import DepthwiseConv
from .fixed_conv import FixedConv
from .group_window import GroupWindowGen
from .folded_mvu import acc_shape_for
from .output_stages import stage_block
from .stream_util import DelayFIFO, Fork, Gather, SignBits, SkidBuffer, Split, pixel_layout
from .param_memory import ParamBus
from .window import WindowGen
from .xnor_engine import XnorEngine

__all__ = ["Pipeline", "tensor_elem", "CONV_BLOCKS"]

#: The hardware block (a :class:`~hw.folded_mvu.FoldedMVU`) of each layer kind.
CONV_BLOCKS = {kinds.Binary: XnorEngine, kinds.Fixed: FixedConv, kinds.Depthwise: DepthwiseConv}


def tensor_elem(t):
    """Shape of one channel value of a tensor type."""
    if t.kind == "pixel":
        return unsigned(8)
    if t.kind == "bit":
        return unsigned(1)
    return signed(t.bits)


class Pipeline(wiring.Component):
    """All layers of ``model`` with ``fold``: tensor 0 pixels in, output pixels out.

    ``lutram_depth``: weight memories of at most this many rows are asked of synthesis as LUT
    RAM (0: none). A folded layer reads a whole row of its weights every cycle, so its memory is
    wide and shallow (384 bits x 40 rows at 40 cycles per pixel), and block RAM holds it a
    32-bit write lane per block whatever the depth: 12 of the ECP5's 208 EBR for 14,400 bits.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(unsigned(8), input_channels)))
    o : Out(stream.Signature(ArrayLayout(unsigned(8), output_channels)))
    bus : In(ParamBus())
    param_hit : Out(1)
    width : In(range(max_width + 1))
    height : In(16)
    """

    def __init__(self, model: Model, *, max_width: int, fold=None, dsp=None, lut_inputs=4,
                 lutram_depth=0):
        model = model.validate()
        self.model, self.max_width, self.lut_inputs = model, max_width, lut_inputs
        self.lutram_depth = lutram_depth
        self.folds = regmap.given_fold(model, fold)
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
        # Who reads each tensor besides the next layer: the output stages that join it (residual
        # shortcuts, tensor 0 for the pixel stage's global residual).
        extra = {j: [] for j in range(n + 1)}
        for k, layer in enumerate(model.layers, 1):
            for j in layer.stage.joins():
                extra[j].append(k)
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
        if layer.conv.reads_signs and in_type.kind == "fixed":
            sb = add("sign", SignBits(elem, layer.c_in))
            wiring.connect(m, src, sb.i)
            src, elem = sb.o, unsigned(1)
        # A register slice in front of every layer but the first: the window generator's and
        # the PE array's ``ready`` (which follows the accumulator slice's) stops here instead of
        # running on through the fork and the previous layer's gather (the ECP5 denoiser's
        # routed critical path, 17.7 ns, was that chain). Not in front of layer 1: there it
        # would take the next frame's first pixels while the last one drains, and CYCLES counts
        # from the first pixel taken.
        if k > 1:
            in_slice = add("in_slice", SkidBuffer(src.payload.shape()))
            wiring.connect(m, src, in_slice.i)
            src = in_slice.o
        # A folded 3x3 depthwise PE array reads its window a slice per step from LUT RAM
        # (hw.group_window): no window of flip-flops, no nf*sf-way multiplexer per lane.
        grouped = grouped_window(layer, f)
        if grouped:
            win = add("window", GroupWindowGen(elem, layer.c_in, f.pe, f.simd, self.max_width))
        else:
            win = add("window", WindowGen(elem, layer.c_in, layer.kernel, self.max_width))
        m.d.comb += [win.width.eq(self.width), win.height.eq(self.height)]
        wiring.connect(m, src, win.i)
        mvu = add("mvu", CONV_BLOCKS[type(layer.conv)].for_layer(
            layer, w_region, init(w_region), elem=elem, bit_input=in_type.kind == "bit",
            acc_shape=acc_shape_for(layer, in_type), dsp_terms=self.dsp_terms[k - 1],
            lut_inputs=self.lut_inputs, grouped=grouped))
        if grouped:
            m.d.comb += [win.step_n.eq(mvu.step_n), win.step_s.eq(mvu.step_s)]
        mvu.weights.distributed = w_region.entries <= self.lutram_depth
        hits.append(mvu.weights.hit)
        # Register slices around the PE array: its enable (thousands of flip-flops) and the
        # line buffer's read address then depend on registered ``ready`` signals only. A folded
        # PE array (``nf*sf > 1`` steps per window) reads the window generator's output
        # register directly: it holds each window for those steps anyway, and a slice there
        # would be two more copies of the widest register of the layer (half of the window
        # path's flip-flops; a quarter of the design's at 128 cycles per pixel).
        if mvu.nf * mvu.sf == 1:
            win_slice = add("win_slice", SkidBuffer(win.o.payload.shape()))
            wiring.connect(m, win.o, win_slice.i)
            wiring.connect(m, win_slice.o, mvu.i)
        else:
            wiring.connect(m, win.o, mvu.i)
        acc_slice = add("acc_slice", SkidBuffer(mvu.o.payload.shape()))
        wiring.connect(m, mvu.o, acc_slice.i)
        split = add("split", Split(mvu.acc_shape, f.out_pe, f.pe // f.out_pe))
        wiring.connect(m, acc_slice.o, split.i)
        stage = add("stage", stage_block(layer.stage, o_region, init(o_region),
                                         acc_shape=mvu.acc_shape,
                                         input_channels=self.model.input_channels))
        hits.append(stage.params.hit)
        wiring.connect(m, split.o, stage.i)
        for j in layer.stage.joins():
            wiring.connect(m, delayed[(j, k)], stage.r)
        gather = add("gather", Gather(stage.out_elem, f.out_pe, layer.c_out // f.out_pe))
        wiring.connect(m, stage.o, gather.i)
        return gather.o
