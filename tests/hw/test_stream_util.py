"""Fork, Split, Gather and DelayFIFO: every beat arrives once, in order, under random stalls."""

import numpy as np
import pytest
from amaranth.hdl import unsigned

from hw.stream_util import DelayFIFO, Fork, Gather, SkidBuffer, Split, pixel_layout
from hwsim import get, put, run_to_completion


def test_fork_delivers_every_beat_to_every_output():
    dut = Fork(unsigned(8), 3)
    rng = np.random.default_rng(1)
    items = rng.integers(0, 256, 60).tolist()
    outs = [[], [], []]
    benches = [put(dut.i, items, rng, 0.3)]
    benches += [get(o, len(items), out, rng, 0.5) for o, out in zip(dut.outputs(), outs)]
    run_to_completion(dut, benches, deadline_cycles=2000)
    assert outs == [items] * 3


@pytest.mark.parametrize("n", [1, 3])
def test_split_then_gather_is_identity(n):
    rng = np.random.default_rng(n)
    items = rng.integers(0, 1 << (8 * n), 40).tolist()
    split = Split(unsigned(4), 2, n)
    pieces = []
    run_to_completion(split, [put(split.i, items, rng, 0.3), get(split.o, n * 40, pieces, rng, 0.3)],
                      deadline_cycles=2000)
    assert pieces == [(v >> (8 * k)) & 0xFF for v in items for k in range(n)]
    gather = Gather(unsigned(4), 2, n)
    whole = []
    run_to_completion(gather, [put(gather.i, pieces, rng, 0.3), get(gather.o, 40, whole, rng, 0.5)],
                      deadline_cycles=2000)
    assert whole == items


def test_delay_fifo_keeps_order_and_fills():
    dut = DelayFIFO(pixel_layout(unsigned(8), 2), 5)
    rng = np.random.default_rng(2)
    items = rng.integers(0, 1 << 16, 50).tolist()
    out = []
    run_to_completion(dut, [put(dut.i, items, rng, 0.2), get(dut.o, 50, out, rng, 0.7)],
                      deadline_cycles=2000)
    assert out == items


def test_skid_buffer_passes_every_beat_in_order():
    dut = SkidBuffer(unsigned(8))
    rng = np.random.default_rng(3)
    items = rng.integers(0, 256, 80).tolist()
    out = []
    run_to_completion(dut, [put(dut.i, items, rng, 0.3), get(dut.o, 80, out, rng, 0.5)],
                      deadline_cycles=2000)
    assert out == items
