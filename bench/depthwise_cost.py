"""What a depthwise 3x3 lane costs in ECP5 LUTs next to a lane of the dense 3x3 conv.

``python -m bench.depthwise_cost [--channels 32] [--x-bits 10] [--w-bits 8] [-o FILE]``

Synthesizes whole PE arrays (weight memory, slice muxes, products, adder trees, accumulators)
through :func:`bench.product_cost.synth_ecp5` (classic-ABC ECP5 flow, hard multipliers off,
products through Yosys' Booth pass as :class:`hw.fixed_conv.LutProducts` get in the builds):

* dense: :class:`hw.fixed_conv.FixedConv` of ``channels`` -> 1, ``pe=1, simd=channels``:
  ``channels`` products sharing one broadcast slice, 9 cycles per pixel;
* depthwise: :class:`hw.depthwise_conv.DepthwiseConv` of ``channels``, ``pe=channels,
  simd=1`` (each lane a 9-way (group, slice) mux, 9 cycles per pixel) and ``pe=channels/4``
  (a 36-way mux, 36 cycles per pixel).

Both read ``x_bits`` signed inputs (the fixed stream after a 1x1 head) and ``w_bits``
weights. A dense 3x3 layer of ``channels -> channels`` at 9 cycles per pixel is ``channels``
dense arrays like the first; its depthwise replacement is one array like the second. Prints
LUT4 equivalents per array and per product and writes them to ``-o`` (default
``bench/results/local/depthwise_cost.json``; the recorded one: ``bench/results/``).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
from amaranth.hdl import signed

from bench import local_result
import spec
from accel import regmap
from hw.depthwise_conv import DepthwiseConv
from hw.fixed_conv import FixedConv
from hw.folded_mvu import acc_shape_for
from spec.random_model import random_layer_params

from .product_cost import synth_ecp5

__all__ = ["conv_model", "measure", "main"]


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


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.depthwise_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=cli.positive_int, default=32,
                    help="channels of the 3x3 layer (the denoiser: 32)")
    ap.add_argument("--x-bits", type=cli.positive_int, default=10,
                    help="input bits (the denoiser's fixed stream: 10)")
    ap.add_argument("--w-bits", type=cli.positive_int, default=8, help="weight bits")
    ap.add_argument("-o", "--out", type=Path, default=local_result("depthwise_cost.json"),
                    help="results JSON to write (the recorded one: bench/results/depthwise_cost.json)")
    a = ap.parse_args(argv)
    c = a.channels
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
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
