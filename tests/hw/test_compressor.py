"""hw.compressor.carry_save_sum against Python integers: popcounts, signed and unsigned
products as shifted (and negated) partial-product rows, random values including extremes."""

import numpy as np
import pytest
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.compressor import Operand, carry_save_sum


def _extreme_or_random(rng, lo, hi):
    return int(rng.choice([lo, hi, 0, int(rng.integers(lo, hi + 1))]))


@pytest.mark.parametrize("x_shape, w_bits, terms", [(unsigned(8), 6, 13), (signed(10), 8, 5),
                                                    (unsigned(1), 1, 36), (unsigned(1), 1, 1)])
def test_carry_save_sum_equals_the_integer_sum(x_shape, w_bits, terms):
    rng = np.random.default_rng(terms)
    m = Module()
    xs = [Signal(x_shape, name=f"x{j}") for j in range(terms)]
    if w_bits == 1:  # a popcount of XNOR bits, as in hw.xnor_engine
        ws = [Signal(unsigned(1), name=f"w{j}") for j in range(terms)]
        out = Signal(unsigned(terms.bit_length()))
        ops = [~(x ^ w) for x, w in zip(xs, ws)]
    else:  # dot product as partial-product rows, the weight's top row subtracted
        ws = [Signal(signed(w_bits), name=f"w{j}") for j in range(terms)]
        out = Signal(signed(x_shape.width + w_bits + terms.bit_length() + 1))
        ops = [Operand(Mux(w[b], x, 0), b, negate=b == w_bits - 1)
               for x, w in zip(xs, ws) for b in range(w_bits)]
    m.d.comb += out.eq(carry_save_sum(m, ops, out.shape()))
    x_lo = -(1 << x_shape.width - 1) if x_shape.signed else 0
    x_hi = (1 << x_shape.width - x_shape.signed) - 1
    w_lo, w_hi = (0, 1) if w_bits == 1 else (-(1 << w_bits - 1), (1 << w_bits - 1) - 1)

    async def bench(ctx):
        for _ in range(100):
            xv = [_extreme_or_random(rng, x_lo, x_hi) for _ in xs]
            wv = [_extreme_or_random(rng, w_lo, w_hi) for _ in ws]
            for s, v in zip(xs + ws, xv + wv):
                ctx.set(s, v)
            want = (sum(1 - (a ^ b) for a, b in zip(xv, wv)) if w_bits == 1
                    else sum(a * b for a, b in zip(xv, wv)))
            assert ctx.get(out) == want

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
