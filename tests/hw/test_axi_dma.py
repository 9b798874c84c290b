"""hw.axi_dma.AxiDma alone in the Amaranth simulator: its reader looped into its writer, a
memory with random stalls on every channel, every pixel width the streams can have.

What the Verilator tests of the whole fabric (tests/sim/test_zynq.py) do not reach cheaply: 8- and
32-byte pixels (one pixel per beat, four beats per pixel), buffers that start at every offset
before a 4 KiB boundary, frames ending early or late (the writer's error bits), and a start
with a bad address or length. The memory checks each burst (at most 16 beats, inside one
4 KiB page, inside the buffers) and the destination must equal the source byte for byte.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from accel import regmap
from hw.axi_dma import AxiDma

DMA = regmap.DMA_REG
BASE = 0x1000_0000


class Loopback(wiring.Component):
    """The DMA with its pixel streams joined: what it reads it writes back."""

    def __init__(self, pixel_bytes):
        self.dma = AxiDma(pixel_bytes, pixel_bytes)
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = self.dma
        wiring.connect(m, self.dma.m_axis, self.dma.s_axis)
        return m


def simulate(pixel_bytes, jobs, seed, stall=0.3, deadline=20000):
    """Run ``jobs`` (src, src bytes, dst, dst bytes) one after another through the loopback;
    return (memory, bursts, DMA_STATUS after each job)."""
    top = Loopback(pixel_bytes)
    dma, bus = top.dma, top.dma.m_axi
    rng = random.Random(seed)
    mem = np.zeros(1 << 16, np.uint8)
    src_rng = np.random.default_rng(seed)
    mem[:] = src_rng.integers(0, 256, mem.size, dtype=np.uint8)
    bursts, statuses, problems = [], [], []
    windows = {"r": [(s, s + -(-n // 8) * 8) for s, n, _, _ in jobs],
               "w": [(d, d + n) for _, _, d, n in jobs]}

    def burst(kind, addr, length):
        beats = length + 1
        bursts.append((kind, addr, beats))
        if addr // 4096 != (addr + 8 * beats - 1) // 4096:
            problems.append(f"{kind} burst at 0x{addr:x} ({beats} beats) crosses 4 KiB")
        return [addr, beats, 0]

    async def memory(ctx):
        reads, writes, wbeats, resps = [], [], [], []
        rvalid = bvalid = False
        while True:
            for ready in (bus.arready, bus.awready, bus.wready):
                ctx.set(ready, rng.random() >= stall)
            if not rvalid and reads and rng.random() >= stall:
                addr, beats, k = reads[0]
                at = addr + 8 * k - BASE
                ctx.set(bus.rdata, int.from_bytes(mem[at:at + 8].tobytes(), "little"))
                ctx.set(bus.rlast, k == beats - 1)
                rvalid = True
            ctx.set(bus.rvalid, rvalid)
            if not bvalid and resps and rng.random() >= stall:
                bvalid = True
            ctx.set(bus.bvalid, bvalid)
            (_, _, arv, ara, arl, arr, awv, awa, awl, awr, wv, wd, ws, wl, wr, rr, br) = \
                await ctx.tick().sample(bus.arvalid, bus.araddr, bus.arlen, bus.arready,
                                        bus.awvalid, bus.awaddr, bus.awlen, bus.awready,
                                        bus.wvalid, bus.wdata, bus.wstrb, bus.wlast,
                                        bus.wready, bus.rready, bus.bready)
            if arv and arr:
                reads.append(burst("read", ara, arl))
            if awv and awr:
                writes.append(burst("write", awa, awl))
            if wv and wr:
                wbeats.append((wd, ws, wl))
            while writes and wbeats:
                addr, beats, k = writes[0]
                data, strb, last = wbeats.pop(0)
                if last != (k == beats - 1):
                    problems.append(f"WLAST={last} on beat {k} of {beats}")
                for j in range(8):
                    if strb >> j & 1:
                        at = addr + 8 * k + j
                        if not any(a <= at < b for a, b in windows["w"]):
                            problems.append(f"write to 0x{at:x} outside the destination")
                        mem[at - BASE] = data >> (8 * j) & 0xFF
                writes[0][2] += 1
                if k + 1 == beats:
                    writes.pop(0)
                    resps.append(1)
            if rvalid and rr:
                rvalid = False
                reads[0][2] += 1
                if reads[0][2] == reads[0][1]:
                    reads.pop(0)
            if bvalid and br:
                bvalid = False
                resps.pop(0)

    async def reg(ctx, name, value):
        ctx.set(dma.regs.addr, (DMA[name] - regmap.DMA_BASE) >> 2)
        ctx.set(dma.regs.wdata, value)
        ctx.set(dma.regs.we, 1)
        await ctx.tick()
        ctx.set(dma.regs.we, 0)

    async def host(ctx):
        for src, nin, dst, nout in jobs:
            for name, value in (("DMA_DST", dst), ("DMA_DST_BYTES", nout), ("DMA_SRC", src),
                                ("DMA_SRC_BYTES", nin),
                                ("DMA_CONTROL", regmap.DMA_START_WRITE | regmap.DMA_START_READ)):
                await reg(ctx, name, value)
            ctx.set(dma.regs.addr, (DMA["DMA_STATUS"] - regmap.DMA_BASE) >> 2)
            for _ in range(deadline):
                await ctx.tick()
                status = ctx.get(dma.regs.rdata)
                if not status & (regmap.DMA_READ_BUSY | regmap.DMA_WRITE_BUSY):
                    break
            statuses.append(status)
            await reg(ctx, "DMA_CONTROL", regmap.DMA_CLEAR_ERRORS)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(memory, background=True)
    sim.add_testbench(host)
    sim.run()
    assert not problems, problems[0]
    return mem, bursts, statuses


@pytest.mark.parametrize("pixel_bytes", [4, 8, 16, 32])
def test_frames_round_trip_across_pages(pixel_bytes):
    """Frames of 1..70 pixels from buffers starting 1..31 beats before a page end come back
    byte for byte; bursts are split at the page ends and at 16 beats."""
    rng = random.Random(pixel_bytes)
    jobs, cursor = [], BASE
    for pixels in (1, 3, 70, 17, 40):
        n = pixels * pixel_bytes
        src = (cursor // 4096 + 1) * 4096 - 8 * rng.randrange(1, 32)
        dst = src + 4096 * 2
        jobs.append((src, n, dst, n))
        cursor = dst + n
    mem, bursts, statuses = simulate(pixel_bytes, jobs, seed=pixel_bytes)
    assert statuses == [0] * len(jobs)
    for src, n, dst, _ in jobs:
        np.testing.assert_array_equal(mem[dst - BASE:dst - BASE + n], mem[src - BASE:src - BASE + n])
    assert max(b for _, _, b in bursts) == 16
    split = [(k, a, b) for k, a, b in bursts if b < 16 and (a + 8 * b) % 4096 == 0]
    assert {k for k, _, _ in split} == {"read", "write"}


def test_short_and_long_frames_set_their_errors():
    """A destination larger than the frame: written up to the frame's end, DMA_ERR_SHORT;
    smaller: filled, the rest dropped, DMA_ERR_LONG; nothing written outside it."""
    src, dst = BASE + 0x0FF0, BASE + 0x3000
    mem, _, statuses = simulate(4, [(src, 44, dst, 60), (src, 44, dst, 20), (src, 44, dst, 44)],
                                seed=7)
    assert statuses == [regmap.DMA_ERR_SHORT, regmap.DMA_ERR_LONG, 0]
    np.testing.assert_array_equal(mem[dst - BASE:dst - BASE + 44], mem[src - BASE:src - BASE + 44])


@pytest.mark.parametrize("src, nbytes", [(BASE + 4, 16), (BASE, 0), (BASE, 18)])
def test_bad_start_is_refused(src, nbytes):
    """A misaligned address, a zero length or a length of no whole pixels: DMA_ERR_START,
    nothing moves."""
    _, bursts, statuses = simulate(8, [(src, nbytes, BASE + 0x2000, 16)], seed=3, deadline=200)
    assert statuses[0] & regmap.DMA_ERR_START
    assert not [b for b in bursts if b[0] == "read"]
