"""What a depthwise 3x3 lane costs in ECP5 LUTs next to a lane of the dense 3x3 conv.

``python -m bench.depthwise_cost [--channels 32] [--x-bits 10] [--w-bits 8] [-o FILE]``
``python -m bench.depthwise_cost --front PE,SIMD [--channels 40] [--max-width 320] [-o FILE]``

Synthesizes whole PE arrays (weight memory, slice muxes, products, adder trees, accumulators)
through :func:`bench.product_cost.synth_ecp5` (classic-ABC ECP5 flow, hard multipliers off,
products through Yosys' Booth pass as :class:`hw.fixed_conv.LutProducts` get in the builds):

* dense: :class:`hw.fixed_conv.FixedConv` of ``channels`` -> 1, ``pe=1, simd=channels``:
  ``channels`` products sharing one broadcast slice, 9 cycles per pixel;
* depthwise: :class:`hw.depthwise_conv.DepthwiseConv` of ``channels``, ``pe=channels,
  simd=1`` (each lane a 9-way (group, slice) mux, 9 cycles per pixel) and ``pe=channels/4``
  (a 36-way mux, 36 cycles per pixel).

With ``--front PE,SIMD``: a folded depthwise layer's front instead, window generator and PE
array together, as :class:`hw.pipeline.Pipeline` builds it: :class:`hw.window.WindowGen` (a
window of flip-flops, each lane's ``nf*sf``-way mux) against :class:`hw.group_window.GroupWindowGen`
(LUT-RAM slots read a slice per step), cells, LUT4 equivalents and flip-flops of each
(default ``bench/results/depthwise_front.json``; the ECP5 denoiser at ii 30: ``--channels 40
--front 4,3``).

Both read ``x_bits`` signed inputs (the fixed stream after a 1x1 head) and ``w_bits``
weights. A dense 3x3 layer of ``channels -> channels`` at 9 cycles per pixel is ``channels``
dense arrays like the first; its depthwise replacement is one array like the second. Prints
LUT4 equivalents per array and per product and writes them to ``-o`` (default
``bench/results/local/depthwise_cost.json``; the recorded one: ``bench/results/``).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import sys
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from bench import write_result
import spec
from accel import regmap
from hw.depthwise_conv import DepthwiseConv
from hw.fixed_conv import FixedConv
from hw.folded_mvu import acc_shape_for
from hw.group_window import GroupWindowGen
from hw.param_memory import ParamBus
from hw.window import WindowGen
from spec.random_model import random_layer_params

from .product_cost import synth_ecp5

__all__ = ["conv_model", "measure", "measure_front", "main"]


def conv_model(channels: int, c_out: int, x_bits: int, w_bits: int, depthwise: bool) -> spec.Model:
    """1x1 head (pixels -> ``channels`` fixed values of ``x_bits``), the 3x3 conv under test
    (layer 2), 1x1 pixel tail: random parameters, only the shapes matter."""
    rng = np.random.default_rng(0)
    affine = spec.Affine(scale=None, bias=None, out_bits=x_bits, frac_bits=0)
    layers = [spec.Layer("fixed", 1, 3, channels, None, affine, w_bits=w_bits),
              spec.Layer("fixed", 3, channels, c_out, None, affine, w_bits=w_bits,
                         groups=channels if depthwise else 1),
              spec.Layer("fixed", 1, c_out, 3, None,
                         spec.PixelOutput(scale=None, bias=None, residual_map=None), w_bits=w_bits)]
    lo, hi = 0, spec.arith.PIXEL_MAX
    for i, layer in enumerate(layers):
        layers[i] = layer = random_layer_params(rng, layer, lo, hi)
        lo, hi = layer.out_type().value_range()
    return spec.Model(layers=layers, image_channels=3, task="test").validate()


def measure(channels: int, x_bits: int, w_bits: int, depthwise: bool, pe: int, simd: int) -> dict:
    model = conv_model(channels, channels if depthwise else 1, x_bits, w_bits, depthwise)
    layer, t_in = model.layers[1], model.tensor_types()[1]
    fold = [None, {"pe": pe, "simd": simd}, None]
    wreg = regmap.regions(model, fold)[2]
    kw = dict(elem=signed(x_bits), bit_input=False, acc_shape=acc_shape_for(layer, t_in),
              w_bits=w_bits, dsp_terms=0)
    if depthwise:
        dut = DepthwiseConv(wreg, regmap.region_entries(model, wreg), kernel=3,
                            channels=channels, **kw)
    else:
        dut = FixedConv(wreg, regmap.region_entries(model, wreg), taps=layer.taps,
                        c_out=layer.c_out, **kw)
    cells, lut4 = synth_ecp5(dut, None, booth=True)
    products = pe * simd
    return {"conv": "depthwise" if depthwise else "dense", "channels": channels,
            "c_out": layer.c_out, "x_bits": x_bits, "w_bits": w_bits, "pe": pe, "simd": simd,
            "cycles_per_pixel": (layer.c_out // pe) * (layer.taps // simd), "products": products,
            "cells": cells, "lut4": lut4, "lut4_per_product": lut4 / products}


class DepthwiseFront(wiring.Component):
    """A depthwise layer's window generator and PE array, wired as in the pipeline: pixels in,
    accumulator groups out, the weight bus and frame size as ports (nothing folds away)."""

    def __init__(self, win, mvu):
        self.win, self.mvu = win, mvu
        super().__init__({"i": In(stream.Signature(win.i.payload.shape())),
                          "o": Out(stream.Signature(mvu.o.payload.shape())), "bus": In(ParamBus()),
                          "width": In(win.width.shape()), "height": In(win.height.shape())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.win, m.submodules.mvu = self.win, self.mvu
        wiring.connect(m, wiring.flipped(self.i), self.win.i)
        wiring.connect(m, self.mvu.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.bus), self.mvu.bus)
        wiring.connect(m, self.win.o, self.mvu.i)
        m.d.comb += [self.win.width.eq(self.width), self.win.height.eq(self.height)]
        if self.mvu.grouped:
            m.d.comb += [self.win.step_n.eq(self.mvu.step_n), self.win.step_s.eq(self.mvu.step_s)]
        return m


def measure_front(channels: int, x_bits: int, w_bits: int, pe: int, simd: int, max_width: int,
                  grouped: bool) -> dict:
    model = conv_model(channels, channels, x_bits, w_bits, True)
    layer, t_in = model.layers[1], model.tensor_types()[1]
    wreg = regmap.regions(model, [None, {"pe": pe, "simd": simd}, None])[2]
    mvu = DepthwiseConv(wreg, regmap.region_entries(model, wreg), kernel=3, channels=channels,
                        elem=signed(x_bits), bit_input=False, acc_shape=acc_shape_for(layer, t_in),
                        w_bits=w_bits, dsp_terms=0, grouped=grouped)
    win = (GroupWindowGen(signed(x_bits), channels, pe, simd, max_width) if grouped
           else WindowGen(signed(x_bits), channels, 3, max_width))
    cells, lut4 = synth_ecp5(DepthwiseFront(win, mvu), None, booth=True)
    return {"window": type(win).__name__, "channels": channels, "x_bits": x_bits,
            "w_bits": w_bits, "pe": pe, "simd": simd, "max_width": max_width,
            "cycles_per_pixel": (channels // pe) * (9 // simd), "cells": cells, "lut4": lut4,
            "ff": cells.get("TRELLIS_FF", 0)}


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.depthwise_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=cli.positive_int, default=32,
                    help="channels of the 3x3 layer (the denoiser: 32)")
    ap.add_argument("--x-bits", type=cli.positive_int, default=10,
                    help="input bits (the denoiser's fixed stream: 10)")
    ap.add_argument("--w-bits", type=cli.positive_int, default=8, help="weight bits")
    ap.add_argument("-o", "--out", type=Path, default=None,
                    help="results JSON to write (default: bench/results/local/depthwise_cost.json,"
                         " or depthwise_front.json with --front; the recorded one:"
                         " bench/results/depthwise_cost.json)")
    ap.add_argument("--front", default=None, metavar="PE,SIMD",
                    help="measure a depthwise layer's window generator + PE array at this fold, "
                         "both window generators")
    ap.add_argument("--max-width", type=cli.positive_int, default=320,
                    help="line buffer entries (with --front)")
    a = ap.parse_args(argv)
    c = a.channels
    if a.front is not None:
        try:
            pe, simd = (int(v) for v in a.front.split(","))
        except ValueError:
            ap.error(f"--front {a.front!r} must be PE,SIMD (two integers)")
        if pe < 1 or simd < 1 or c % pe or 9 % simd:
            ap.error(f"--front {a.front}: PE must divide --channels {c} and SIMD must divide 9")
        rows = [measure_front(c, a.x_bits, a.w_bits, pe, simd, a.max_width, g)
                for g in (False, True)]
        print("| window generator | fold | cycles/pixel | LUT4 eq | FF | PFUMX | L6MUX21 | "
              "DPR16X4 | DP16KD |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            cl = r["cells"]
            print(f"| {r['window']} | pe={pe} simd={simd} | {r['cycles_per_pixel']} | "
                  f"{r['lut4']:g} | {r['ff']} | {cl.get('PFUMX', 0)} | {cl.get('L6MUX21', 0)} | "
                  f"{cl.get('TRELLIS_DPR16X4', 0)} | {cl.get('DP16KD', 0)} |")
        write_result(rows, a.out, "depthwise_front.json", indent=1)
        return 0
    if c % 4:
        ap.error(f"--channels {c} must be a multiple of 4 (the third array has channels/4 lanes)")
    rows = [measure(c, a.x_bits, a.w_bits, False, 1, c),
            measure(c, a.x_bits, a.w_bits, True, c, 1),
            measure(c, a.x_bits, a.w_bits, True, c // 4, 1)]
    print("| PE array | fold | cycles/pixel | products | LUT4 eq | per product |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        what = (f"dense 3x3 {r['channels']} -> {r['c_out']}" if r["conv"] == "dense"
                else f"depthwise 3x3 {r['channels']}")
        print(f"| {what} | pe={r['pe']} simd={r['simd']} | {r['cycles_per_pixel']} | "
              f"{r['products']} | {r['lut4']:g} | {r['lut4_per_product']:.0f} |")
    dense, dw = rows[0], rows[1]
    print(f"{c} -> {c} 3x3 at 9 cycles/pixel: dense {c} x {dense['lut4']:g} = "
          f"{c * dense['lut4']:g} LUT4, depthwise {dw['lut4']:g} LUT4")
    write_result(rows, a.out, "depthwise_cost.json", indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
