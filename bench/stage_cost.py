"""What one lane of the affine output stage costs in ECP5 LUTs, with and without the activation.

``python -m bench.stage_cost [--product-bits 27] [--shift 14] [--out-bits 10] [-o FILE]``

Synthesizes the second register of one :class:`hw.output_stages.Affine` lane -- from the
registered product ``acc*A`` to the saturated output, with the residual add -- as the block
writes it (:func:`~hw.output_stages.scale_round`, :func:`~hw.output_stages.prelu_shift`,
:func:`~hw.output_stages.saturate`), once plain and once with the per-channel power-of-two
PReLU and offset (``act``), through :func:`bench.product_cost.synth_ecp5`. Prints LUT4
equivalents and writes them to ``-o`` (default ``bench/results/local/stage_cost.json``; the recorded
one is ``bench/results/stage_cost.json``): the number behind the ECP5 ``act_lanes`` cost of
:data:`accel.perf.COSTS`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Signal, signed, unsigned
from amaranth.lib import data

from bench import local_result, write_result
from hw.output_stages import prelu_shift, rounding_bias, saturate, scale_round
from spec import arith

from .product_cost import synth_ecp5

__all__ = ["AffineLane", "main"]


class AffineLane(Elaboratable):
    """One affine lane's output logic, registered: ``sat(act(rshift_round(p + B)) + r)``."""

    def __init__(self, product_bits: int, shift: int, out_bits: int, act: bool):
        self.shift, self.out_bits, self.act = shift, out_bits, act
        fields = {"bias": signed(arith.CONST_BITS)}
        if act:
            fields.update(act_shift=unsigned(arith.MAX_ACT_SHIFT.bit_length()),
                          act_offset=signed(out_bits))
        self.product = Signal(signed(product_bits))
        self.prm = Signal(data.StructLayout(fields))
        self.r = Signal(signed(out_bits))
        self.y = Signal(signed(out_bits))

    def elaborate(self, platform):
        m = Module()
        y = scale_round(self.product, rounding_bias(self.prm.bias, self.shift), self.shift)
        if self.act:
            y = prelu_shift(y, self.prm.act_shift) + self.prm.act_offset
        m.d.sync += self.y.eq(saturate(y + self.r, self.out_bits))
        return m


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stage_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--product-bits", type=int, default=27,
                    help="width of acc*A (the denoiser's body: 9-bit popcount x 18-bit A)")
    ap.add_argument("--shift", type=int, default=14, help="the layer's rounding shift")
    ap.add_argument("--out-bits", type=int, default=10, help="the stream's width (the denoiser: 10)")
    ap.add_argument("-o", "--out", type=Path, default=local_result("stage_cost.json"),
                    help="results JSON to write (the recorded one: bench/results/stage_cost.json)")
    a = ap.parse_args(argv)
    rows = []
    for act in (False, True):
        dut = AffineLane(a.product_bits, a.shift, a.out_bits, act)
        cells, lut4 = synth_ecp5(dut, [dut.product, dut.prm.as_value(), dut.r, dut.y])
        rows.append({"act": act, "product_bits": a.product_bits, "shift": a.shift,
                     "out_bits": a.out_bits, "cells": cells, "lut4": lut4})
    print("| affine lane | LUT4 eq |")
    print("| --- | --- |")
    for r in rows:
        print(f"| {'with' if r['act'] else 'without'} the activation | {r['lut4']:g} |")
    print(f"activation: +{rows[1]['lut4'] - rows[0]['lut4']:g} LUT4 per lane")
    write_result(rows, a.out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
