"""What one fixed-point product costs in ECP5 LUTs: the unit behind the head/tail hardware.

``python -m bench.product_cost [--terms 13] [--x-bits 8] [--w-bits 6] [--popcount 36] [-o FILE]``

Synthesizes one processing element of :class:`hw.fixed_conv.FixedConv` -- a dot product of
``terms`` unsigned pixels by signed weights, registered -- with the classic-ABC ECP5 flow of
:mod:`hw.build` and hard multipliers off, in the two forms the PE array writes (``x * w``
and the shift-and-add form it used before) plus the ``x * w`` form through Yosys' radix-4
Booth pass (what :class:`hw.fixed_conv.LutProducts` gets in the build flows), and in the
carry-save form of :mod:`hw.compressor`; then one binary PE (the popcount of XNOR bits) as a
tree of adders and as the carry-save tree :class:`hw.xnor_engine.XnorEngine` uses. Prints LUT4 equivalents
(CCU2C and LUT RAM count as 2 LUT4s) and writes them to ``-o`` (default
``bench/results/local/product_cost.json``; the recorded one is ``bench/results/product_cost.json``).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import subprocess
import sys
import tempfile
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Mux, Signal, signed, unsigned

from bench import local_result, write_result
from hw import build
from hw.compressor import Operand, carry_save_sum
from hw.stream_util import tree_sum

__all__ = ["DotProduct", "measure", "synth_ecp5", "main"]


def shift_add_product(x, w):
    """``x * w`` as shifted copies of ``x``, one per weight bit (the top one subtracted): what
    ``hw.fixed_conv`` wrote before it used :class:`~hw.fixed_conv.LutProducts`."""
    n = len(w)
    return tree_sum([Mux(w[b], x << b, 0) for b in range(n - 1)]) - Mux(w[n - 1], x << (n - 1), 0)


class DotProduct(Elaboratable):
    """``sum(x[j] * w[j])`` registered, written as ``form``: ``mul`` (``*``), ``shift_add``
    (:func:`shift_add_product`, then a tree of adders) or
    ``carry_save`` (every partial product row into one :func:`~hw.compressor.carry_save_sum`).
    ``w_bits == 1`` is the binary PE: ``popcount(XNOR(x, w))`` of 1-bit ``x``."""

    def __init__(self, terms: int, x_bits: int, w_bits: int, form: str):
        self.form, self.w_bits = form, w_bits
        binary = w_bits == 1
        self.x = [Signal(unsigned(x_bits), name=f"x{j}") for j in range(terms)]
        self.w = [Signal(unsigned(1) if binary else signed(w_bits), name=f"w{j}") for j in range(terms)]
        self.y = Signal(unsigned(terms.bit_length()) if binary
                        else signed(x_bits + w_bits + terms.bit_length() + 1))

    def elaborate(self, platform):
        m = Module()
        n = self.w_bits
        if n == 1:
            terms = [~(x ^ w) for x, w in zip(self.x, self.w)]
            total = (carry_save_sum(m, terms, self.y.shape()) if self.form == "carry_save"
                     else tree_sum(terms))
        elif self.form == "carry_save":
            rows = [Operand(Mux(w[b], x, 0), b, negate=b == n - 1)
                    for x, w in zip(self.x, self.w) for b in range(n)]
            total = carry_save_sum(m, rows, self.y.shape())
        else:
            product = (lambda x, w: x * w) if self.form == "mul" else shift_add_product
            total = tree_sum([product(x, w) for x, w in zip(self.x, self.w)])
        m.d.sync += self.y.eq(total)
        return m


def measure(terms: int, x_bits: int, w_bits: int, form: str, booth: bool = False) -> dict:
    """Cell counts and LUT4 equivalents of one :class:`DotProduct` (ECP5, no DSPs)."""
    dut = DotProduct(terms, x_bits, w_bits, form)
    cells, lut4 = synth_ecp5(dut, [*dut.x, *dut.w, dut.y], booth)
    return {"form": form + (" + booth" if booth else ""), "terms": terms, "x_bits": x_bits,
            "w_bits": w_bits, "cells": cells, "lut4": lut4, "lut4_per_product": lut4 / terms}


def synth_ecp5(dut, ports, booth: bool = False) -> tuple[dict, float]:
    """Cell counts and LUT4 equivalents of ``dut`` with the classic-ABC ECP5 flow of
    :mod:`hw.build`, hard multipliers off."""
    env = build.tool_env("ecp5")
    first, rest = build.classic_synth("ecp5", "dot")
    first = first.replace("-run :map_luts", "-nodsp -run :map_luts")
    rest = rest.replace("-run map_cells:", "-nodsp -run map_cells:")
    # Booth rewrites $mul cells; it has to run before synth_ecp5 turns them into adders.
    pre = "proc; flatten; opt; wreduce; booth; " if booth else ""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "dot.v").write_text(verilog.convert(dut, name="dot", ports=ports, emit_src=False))
        script = (f"read_verilog dot.v; hierarchy -top dot; {pre}synth_ecp5 -top dot {first}\n"
                  f"{rest}\ntee -q -o dot.stat.json stat -json\n")
        (work / "dot.ys").write_text(script)
        subprocess.run([env["YOSYS"], "-q", "dot.ys"], cwd=work, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        cells = build.cell_counts(work / "dot.stat.json")
    return cells, build.resources_from_cells("ecp5", cells)["LUT"]


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.product_cost", description=__doc__.splitlines()[0])
    ap.add_argument("--terms", type=cli.positive_int, default=13,
                    help="products per PE (the denoiser head: 13)")
    ap.add_argument("--x-bits", type=cli.positive_int, default=8, help="activation bits")
    ap.add_argument("--w-bits", type=cli.positive_int, default=6, help="weight bits")
    ap.add_argument("--popcount", type=cli.positive_int, default=36,
                    help="XNOR bits per binary PE (the denoiser's body at 9 cycles per pixel: 36)")
    ap.add_argument("-o", "--out", type=Path, default=local_result("product_cost.json"),
                    help="results JSON to write (the recorded one: bench/results/product_cost.json)")
    a = ap.parse_args(argv)
    rows = [measure(a.terms, a.x_bits, a.w_bits, form, booth)
            for form, booth in (("shift_add", False), ("mul", False), ("mul", True),
                                ("carry_save", False))]
    rows += [measure(a.popcount, 1, 1, form) for form in ("tree", "carry_save")]
    print("| PE | form | LUT4 eq | per product (bit) |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        what = (f"popcount of {r['terms']} XNOR bits" if r["w_bits"] == 1 else
                f"{r['terms']} products of {r['x_bits']}x{r['w_bits']} bits")
        print(f"| {what} | {r['form']} | {r['lut4']:g} | {r['lut4_per_product']:.1f} |")
    write_result(rows, a.out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
