"""The depthwise fixed-point convolution: one input channel per output channel.

Spec: a depthwise fixed layer of :mod:`spec.arith` (``groups == c_in == c_out``) --
``acc[c] = sum_{ky,kx} w[c, ky, kx, 0] * v[ky, kx, c]``, with ``v`` as for
:class:`hw.fixed_conv.FixedConv`.

This is FINN's vector-vector unit beside its matrix-vector unit: the same folded PE array
(``pe`` lanes, ``simd`` taps per cycle, ``nf = c/pe`` and ``sf = kernel**2/simd`` folds, the
same weight memory layout and pipeline), but the window slice is not broadcast: lane ``p`` of
output group ``n`` multiplies window tap ``t`` of channel ``n*pe + p``, so its input is a mux
over (group, slice) -- ``nf*sf`` ways, ``pe*simd`` lanes of the element width. A 3x3 head or
tail of ``c`` channels then needs ``9*c`` products per pixel where the dense layer needs
``9*c*c``.

With ``grouped=True`` the input is not a held window but the slice of the current step, read
by :class:`hw.group_window.GroupWindowGen` from LUT RAM at the step this array puts on
``step_n`` / ``step_s``: no window of flip-flops and no ``nf*sf``-way multiplexer per lane
(the ECP5 denoiser's head could not be placed with them, docs/builds.md).
"""

from amaranth.hdl import Cat, Shape, Signal
from amaranth.lib import data

from .fixed_conv import FixedConv
from .stream_util import pixel_layout

__all__ = ["DepthwiseConv"]


class DepthwiseConv(FixedConv):
    """Windows of ``kernel*kernel*channels`` values in, ``nf`` groups of ``pe`` accumulators
    out; latency, throughput and stall behaviour of :class:`hw.folded_mvu.FoldedMVU`.

    Parameters
    ----------
    region, init : see :class:`hw.folded_mvu.FoldedMVU` (weights of ``taps = kernel**2``).
    elem, bit_input, acc_shape, w_bits, dsp_terms : see :class:`hw.fixed_conv.FixedConv`.
    kernel : int
        1 or 3.
    channels : int
        ``c_in == c_out``.
    grouped : bool
        Take each step's slice (``simd*pe`` elements) from a
        :class:`~hw.group_window.GroupWindowGen` instead of a whole window.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(elem, kernel*kernel*channels)))
        (``simd*pe`` elements when ``grouped``: the slice of step ``step_n``, ``step_s``;
        ``i.ready`` is high on a window's last step.)
    o : Out(stream.Signature(ArrayLayout(acc_shape, pe)))
    bus : In(ParamBus())
    step_n, step_s : Signal(range(nf)), Signal(range(sf))
        Only when ``grouped`` (not signature members): the sequencer's output group and
        input slice.
    """

    def __init__(self, region, init, *, elem, bit_input, kernel, channels, acc_shape, w_bits,
                 dsp_terms=None, grouped=False):
        self.channels, self.grouped = channels, grouped
        fold = region.fold
        window = fold.pe * fold.simd if grouped else kernel * kernel * channels
        super().__init__(region, init, elem=elem, bit_input=bit_input, taps=kernel * kernel,
                         c_out=channels, acc_shape=acc_shape, w_bits=w_bits,
                         dsp_terms=dsp_terms, window=window)
        if grouped:  # plain signals: FoldedMVU's signature is its own
            self.step_n = Signal(range(self.nf), name="step_n")
            self.step_s = Signal(range(self.sf), name="step_s")

    @classmethod
    def for_layer(cls, layer, region, init, *, elem, bit_input, acc_shape, dsp_terms, grouped,
                  **_):
        return cls(region, init, elem=elem, bit_input=bit_input, kernel=layer.kernel,
                   channels=layer.c_out, acc_shape=acc_shape, w_bits=layer.w_bits,
                   dsp_terms=dsp_terms, grouped=grouped)

    def slice_layout(self):
        """``simd`` taps of ``pe`` channels: element ``[j][p]`` is lane ``p``'s tap ``j``."""
        return data.ArrayLayout(pixel_layout(self.elem, self.pe), self.simd)

    def select_slice(self, window, n, s):
        if self.grouped:  # the generator reads the slice of (n, s): see elaborate
            self._step = (n, s)
            return window
        # Taps s*simd .. of every channel (window element t*channels + c), then channels
        # n*pe .. of each tap.
        eb = Shape.cast(self.elem).width
        tap_bits = self.channels * eb
        taps = window.word_select(s, self.simd * tap_bits)
        return Cat(*(taps[j * tap_bits:(j + 1) * tap_bits].word_select(n, self.pe * eb)
                     for j in range(self.simd)))

    def lane_input(self, x, pe):
        return [x[j][pe] for j in range(self.simd)]

    def elaborate(self, platform):
        m = super().elaborate(platform)
        if self.grouped:
            n, s = self._step
            m.d.comb += [self.step_n.eq(n), self.step_s.eq(s)]
        return m
