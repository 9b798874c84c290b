"""The folded PE array (FINN's matrix-vector unit), the frame of every convolution.

Its subclasses supply the PE's arithmetic: :class:`hw.xnor_engine.XnorEngine` (binary,
XNOR-popcount) and :class:`hw.fixed_conv.FixedConv` (multiply-accumulate), and
:class:`hw.depthwise_conv.DepthwiseConv` the slice each PE reads (its own channel).

Folding (FINN's names): a grid of ``pe`` processing elements (output channels) by ``simd``
inputs each; ``nf = c_out/pe`` neuron folds and ``sf = taps/simd`` synapse folds, so a window
takes ``nf*sf`` cycles. Invariant of the sequencer: step ``c = n*sf + s`` multiplies window slice
``s`` (:meth:`FoldedMVU.select_slice` of ``(n, s)``: a depthwise array's slice depends on ``n``
too) with weight memory row ``c`` for output channels ``n*pe ..``; the accumulators clear at
``s == 0`` and leave at ``s == sf-1``. Fully unfolded (``pe = c_out``, ``simd = taps``) is one
window per cycle. The inputs are broadcast to the PEs (FINN MVU style) rather than shifted
through them systolically: at these array sizes a broadcast costs less than ``pe`` pipeline
registers per input bit.

Pipeline: issue (window slice and weight row address) -> weights arrive from the synchronous
memory -> weights and slice registered -> the PE array's terms (products, or a binary PE's
popcount in carry-save form) registered -> adder trees -> accumulate and emit. All stages
share one enable, low only while a finished group meets a full output register, so a stall
freezes the pipeline, memory read included; latency :data:`accel.latency.MVU_LATENCY` (5)
cycles, ``i.ready`` is high on a window's last step only (the window generator's output
register holds the window meanwhile, so no copy is kept here).
"""

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from accel import regmap
from accel.latency import MVU_LATENCY
from spec import arith

from .stream_util import pixel_layout, tree_sum
from .param_memory import ParamBus, ParamMemory

__all__ = ["FoldedMVU", "acc_shape_for"]


class FoldedMVU(wiring.Component):
    """Windows in, accumulator groups out: ``nf`` beats of ``pe`` accumulators per window.

    Subclasses define :meth:`dot` (the PE's arithmetic on one slice) and the shapes.

    Parameters
    ----------
    region : regmap.Region
        The weight region (its fold gives ``pe`` and ``simd``).
    init : list of int
        Initial weight rows.
    elem : shape
        Shape of one window element.
    taps, c_out : int
        Inputs per output channel and output channels.
    acc_shape : shape
        Accumulator shape (from :func:`accel.regmap.acc_bounds`).
    w_shape : shape
        Shape of one stored weight.
    window : int or None
        Elements of one input window; ``None``: ``taps`` (a dense layer reads the whole window
        for every output channel).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, window)))
    o : Out(stream.Signature(ArrayLayout(acc_shape, pe)))
    bus : In(ParamBus())
    """

    #: Cycles from a window's last step to its accumulators on ``o`` (the stages below).
    LATENCY = MVU_LATENCY

    def __init__(self, region, init, *, elem, taps, c_out, acc_shape, w_shape, window=None):
        fold = region.fold
        if taps % fold.simd or c_out % fold.pe:
            raise ValueError(f"taps={taps} must be a multiple of simd={fold.simd} and "
                             f"c_out={c_out} a multiple of pe={fold.pe}")
        self.pe, self.simd = fold.pe, fold.simd
        self.nf, self.sf = c_out // fold.pe, taps // fold.simd
        self.elem, self.acc_shape, self.w_shape = elem, acc_shape, w_shape
        self.weights = ParamMemory(region, init, read_domain="sync")
        super().__init__({
            "i": In(stream.Signature(pixel_layout(elem, taps if window is None else window))),
            "o": Out(stream.Signature(pixel_layout(acc_shape, fold.pe))),
            "bus": In(ParamBus()),
        })

    @classmethod
    def for_layer(cls, layer, region, init, *, elem, bit_input, acc_shape, dsp_terms,
                  lut_inputs, grouped):
        """The block computing spec layer ``layer`` (a block of its kind in
        ``hw.pipeline.CONV_BLOCKS``) with weights ``region`` (initial ``init``): ``elem`` and
        ``bit_input`` describe its input, ``acc_shape`` its accumulators (:func:`acc_shape_for`),
        ``dsp_terms`` its share of the DSP budget, ``lut_inputs`` the target's LUT size and
        ``grouped`` whether its window comes from :class:`hw.group_window.GroupWindowGen`;
        each block takes the arguments it needs."""
        raise NotImplementedError

    def slice_layout(self):
        """Layout of the registered input slice of one step: ``simd`` elements, shared by
        every PE (broadcast)."""
        return pixel_layout(self.elem, self.simd)

    def select_slice(self, window, n, s):
        """The slice of step (output group ``n``, input slice ``s``) of ``window`` (a value):
        elements ``s*simd ..``, the same for every group."""
        return window.word_select(s, Shape.cast(self.slice_layout()).width)

    def lane_input(self, x, pe):
        """PE ``pe``'s ``simd`` inputs within the registered slice ``x``: all of it."""
        return x

    def terms(self, m, x, w, pe):
        """PE ``pe``'s terms for its inputs ``x`` and weight slice ``w`` (``simd`` elements
        each): values whose sum is the PE's dot product (products, or partial sums of them);
        they are registered, then summed. ``m`` is the module being elaborated (for
        submodules)."""
        raise NotImplementedError

    def sum_terms(self, m, terms, pe):
        """One PE's registered terms summed (a balanced adder tree)."""
        return tree_sum(terms)

    def elaborate(self, platform):
        m = Module()
        m.submodules.weights = wm = self.weights
        wiring.connect(m, wiring.flipped(self.bus), wm.bus)
        steps = self.nf * self.sf
        chunk_layout = self.slice_layout()
        wbits = self.simd * Shape.cast(self.w_shape).width
        # Freeze only when a finished group meets a full output register: partial slices keep
        # flowing while the output stage drains the previous group.
        v4, first4, last4 = Signal(), Signal(), Signal()
        en = ~(v4 & last4 & self.o.valid & ~self.o.ready)

        # Stage 0: sequencer. c counts n*sf + s; n and s are kept separately to slice the
        # window (a dense array uses s only, synthesis drops n).
        c = Signal(range(max(2, steps)))
        n = Signal(range(max(2, self.nf)))
        s = Signal(range(max(2, self.sf)))
        issue = en & self.i.valid
        m.d.comb += [self.i.ready.eq(issue & (c == steps - 1)),
                     wm.addr.eq(c), wm.en.eq(en)]
        with m.If(issue):
            m.d.sync += [c.eq(Mux(c == steps - 1, 0, c + 1)),
                         s.eq(Mux(s == self.sf - 1, 0, s + 1))]
            with m.If(s == self.sf - 1):
                m.d.sync += n.eq(Mux(n == self.nf - 1, 0, n + 1))

        # Stage 1: the slice waits one cycle for its weight row.
        x1 = Signal(chunk_layout)
        v1, first1, last1 = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [x1.as_value().eq(self.select_slice(self.i.payload.as_value(), n, s)),
                         v1.eq(issue), first1.eq(s == 0), last1.eq(s == self.sf - 1)]

        # Stage 2: the weight row registered (the slice with it), so that the block RAM's
        # clock-to-output (about 5.6 ns on an ECP5 EBR, plus routing and a LUT) does not share
        # a cycle with a multiplier: the first critical path of a routed denoiser slice
        # (docs/builds.md).
        x2 = Signal(chunk_layout)
        w2 = Signal(wm.data.shape())
        v2, first2, last2 = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [x2.eq(x1), w2.eq(wm.data),
                         v2.eq(v1), first2.eq(first1), last2.eq(last1)]

        # Stage 3: the PE array's terms (products, or a binary PE's partial popcount), registered.
        # One register per PE (not per term: thousands of signals slow elaboration down).
        term_regs = []
        for p in range(self.pe):
            w = data.View(pixel_layout(self.w_shape, self.simd), w2.word_select(p, wbits))
            terms = [Value.cast(t) for t in self.terms(m, self.lane_input(x2, p), w, p)]
            shapes = [t.shape() for t in terms]
            reg = Signal(sum(sh.width for sh in shapes), name=f"terms_{p}")
            with m.If(en):
                m.d.sync += reg.eq(Cat(*terms))
            regs, offset = [], 0
            for sh in shapes:
                bits = reg[offset:offset + sh.width]
                regs.append(bits.as_signed() if sh.signed else bits)
                offset += sh.width
            term_regs.append(regs)
        v3, first3, last3 = Signal(), Signal(), Signal()
        with m.If(en):
            m.d.sync += [v3.eq(v2), first3.eq(first2), last3.eq(last2)]

        # Stage 4: adder trees.
        part = Signal(pixel_layout(self.acc_shape, self.pe))
        with m.If(en):
            m.d.sync += [v4.eq(v3), first4.eq(first3), last4.eq(last3)]
            for p in range(self.pe):
                m.d.sync += part[p].eq(self.sum_terms(m, term_regs[p], p))

        # Stage 5: accumulate, emit after the last slice.
        acc = Signal(pixel_layout(self.acc_shape, self.pe))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(en & v4):
            for p in range(self.pe):
                total = Mux(first4, 0, acc[p]) + part[p]
                m.d.sync += acc[p].eq(total)
                with m.If(last4):
                    m.d.sync += self.o.payload[p].eq(total)
            with m.If(last4):
                m.d.sync += self.o.valid.eq(1)
        return m


def acc_shape_for(layer, in_type):
    """Accumulator shape of a layer from :func:`accel.regmap.acc_bounds` (shape-only, exact)."""
    lo, hi = regmap.acc_bounds(layer, in_type)
    if lo >= 0:
        return unsigned(max(1, hi.bit_length()))
    return signed(arith.bits_for_range(lo, hi))
