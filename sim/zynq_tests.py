"""cocotb bench of the open-flow fabric (``gam_zynq_core``): the CPU on GP0, DDR on HP0.

The host side (:mod:`sim.zynq`) writes the same operations as :mod:`sim.top` plus ``abort``
and ``burst``; this bench runs them as the board's host would:

``frames``  each frame packed into memory (:func:`accel.regmap.pack_pixels`, a few beats before
            a 4 KiB boundary), its output buffer filled with a marker; then the DMA sequence of
            the host (:func:`accel.protocol.dma_write_ops` / :func:`~accel.protocol.dma_read_ops`,
            ``DMA_STATUS`` polled): the next frame's read starts as soon as the reader is idle,
            its write once the previous frame is written, so frames overlap in the accelerator.
            Each output buffer must equal the packed expected frame byte for byte (padding
            included), with no DMA error and no TLAST error.
``abort``   a frame started, the DMA aborted after some read beats, its busy bits awaited, the
            accelerator soft-reset; the memory must have seen only whole bursts.
``burst``   consecutive registers read in one GP0 burst.

The memory (:class:`sim.axi3.Axi3Memory`) fails the run on the first broken AXI rule; the
result reports the bursts seen, so the tests can require page splits to have happened.
"""

from __future__ import annotations

import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from accel import protocol, regmap

from .axi3 import PAGE, Axi3Manager, Axi3Memory
from .drivers import Clocked, replay
from .scoreboard import Scoreboard
from .top_tests import TopBench, run_job

DMA = regmap.DMA_REG
#: Where the memory model sits (a PYNQ CMA buffer's kind of address) and its size.
MEM_BASE, MEM_SIZE = 0x1800_0000, 1 << 20
#: Byte written into output buffers before a frame: left there, the frame missed bytes.
MARKER = 0xA5


class ZynqBench(TopBench):
    """:class:`sim.top_tests.TopBench`'s register operations, frames through DDR."""

    def __init__(self, dut, job: dict, arrays: dict):
        self.dut, self.job, self.arrays = dut, job, arrays
        self.rng = random.Random(job.get("seed", 0))
        self.clock = Clocked(dut.clk)
        self.axil = Axi3Manager(dut, dut.clk)
        self.mem = Axi3Memory(dut, "m_axi_hp", self.rng, base=MEM_BASE, size=MEM_SIZE,
                              page=job.get("memory_page", PAGE))
        self.clock.add(self.mem)
        self.board = Scoreboard(fail_fast=job.get("fail_fast", True))
        self.size = None
        self.frame_cycles: list[int] = []
        self.cycles_reg: list[int] = []
        self.outputs: dict[str, np.ndarray] = {}
        self.c_in, self.c_out = job["c_in"], job["c_out"]
        self.cursor = MEM_BASE

    async def reset(self, cycles: int) -> None:
        assert self.mem.quiet(), "reset with bursts in flight"
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.size = None

    # ------------------------------------------------------------------ memory
    def _place(self, nbytes: int) -> int:
        """An 8-byte-aligned buffer of ``nbytes`` starting 1..23 beats before a page end."""
        end = (self.cursor // PAGE + 1) * PAGE
        addr = end - regmap.DMA_BEAT_BYTES * self.rng.randrange(1, 24)
        if addr < self.cursor:
            addr += PAGE
        self.cursor = addr + nbytes
        assert self.cursor <= MEM_BASE + MEM_SIZE, "the frames do not fit the memory model"
        return addr

    def _buffers(self, x: np.ndarray) -> tuple[int, int, int, int]:
        """Put ``x`` into memory and make room for its result: (src, bytes, dst, bytes)."""
        data = regmap.pack_pixels(x).reshape(-1)
        src = self._place(len(data))
        self.mem.write(src, data)
        beat = regmap.DMA_BEAT_BYTES
        self.mem.readable.append((src, src + -(-len(data) // beat) * beat))
        nout = regmap.dma_bytes(x.shape[0] * x.shape[1], self.c_out)
        dst = self._place(nout)
        self.mem.write(dst, np.full(nout, MARKER, np.uint8))
        self.mem.writable.append((dst, dst + nout))
        return src, len(data), dst, nout

    def _check_bus(self) -> None:
        assert self.mem.violation is None, f"AXI3 rule broken on HP0: {self.mem.violation}"

    async def _dma_status(self) -> int:
        status = await self.axil.read(DMA["DMA_STATUS"])
        self._check_bus()
        assert not status & regmap.DMA_ERRORS, protocol.dma_status_text(status)
        return status

    # ------------------------------------------------------------------ operations
    async def op_frames(self, op) -> None:
        inputs = [self.arrays[k] for k in op["inputs"]]
        h, w = inputs[0].shape[:2]
        await self.set_size(h, w)
        self.mem.stall = op.get("stall", 0.0)
        self.cursor = MEM_BASE
        self.mem.readable.clear()
        self.mem.writable.clear()
        bufs = [self._buffers(x) for x in inputs]
        n = len(inputs)
        deadline = self.clock.cycle + op["timeout_cycles"]
        src, nin, dst, nout = bufs[0]
        await replay(self.axil, protocol.dma_write_ops(dst, nout) + protocol.dma_read_ops(src, nin))
        reads = writes = 1
        done = 0
        while done < n:
            assert self.clock.cycle < deadline, (
                f"timeout: {done} of {n} frames written, {reads} reads started "
                f"({protocol.dma_status_text(await self.axil.read(DMA['DMA_STATUS']))})")
            status = await self._dma_status()
            if not status & regmap.DMA_READ_BUSY and reads < n:
                await replay(self.axil, protocol.dma_read_ops(bufs[reads][0], bufs[reads][1]))
                reads += 1
            if not status & regmap.DMA_WRITE_BUSY and writes > done:
                self._check_output(op, done, bufs[done][2], h, w)
                done += 1
                if writes < n:
                    await replay(self.axil, protocol.dma_write_ops(*bufs[writes][2:]))
                    writes += 1
        status = await self.axil.read(regmap.REG["STATUS"])
        assert not status & protocol.FRAME_ERRORS, \
            f"{protocol.status_text(status)}: the accelerator saw a TLAST error from the DMA"
        assert self.mem.quiet(), "bursts still in flight after the last frame"

    def _check_output(self, op, k: int, dst: int, h: int, w: int) -> None:
        want = self._expected(op, k)
        got = self.mem.read(dst, regmap.dma_bytes(h * w, self.c_out))
        rows = got.reshape(h * w, -1)
        name = f"frame {op['first_index'] + k}"
        y = regmap.unpack_pixels(rows, h, w, self.c_out)
        if op.get("return_outputs"):
            self.outputs[op["inputs"][k]] = y
        self.board.check(name, want, y)
        packed = regmap.pack_pixels(want).reshape(-1)
        bad = np.flatnonzero(got != packed)
        assert not len(bad), (f"{name}: output buffer byte {bad[0]} is 0x{got[bad[0]]:02x}, "
                              f"expected 0x{packed[bad[0]]:02x} (padding bytes are zero)")

    async def op_abort(self, op) -> None:
        x = self.arrays[op["input"]]
        await self.set_size(*x.shape[:2])
        self.mem.stall = op.get("stall", 0.0)
        self.cursor = MEM_BASE
        src, nin, dst, nout = self._buffers(x)
        start = self.mem.read_beats
        await replay(self.axil, protocol.dma_write_ops(dst, nout) + protocol.dma_read_ops(src, nin))
        deadline = self.clock.cycle + op["timeout_cycles"]
        while self.mem.read_beats - start < op["beats"]:
            assert self.clock.cycle < deadline, "timeout waiting for the read beats to abort at"
            await RisingEdge(self.dut.clk)
        await replay(self.axil, protocol.dma_abort_ops())
        while (await self._dma_status()) & (regmap.DMA_READ_BUSY | regmap.DMA_WRITE_BUSY):
            assert self.clock.cycle < deadline, "timeout: the DMA stays busy after an abort"
        assert self.mem.quiet(), "the abort left bursts unfinished"
        await replay(self.axil, protocol.reset_ops())

    async def op_burst(self, op) -> None:
        got = await self.axil.read_burst(op["address"], len(op["expect"]))
        assert got == op["expect"], (f"burst read from 0x{op['address']:x}: "
                                     f"{[hex(v) for v in got]} != {[hex(v) for v in op['expect']]}")

    async def run(self) -> None:
        await super().run()
        self._check_bus()

    def metrics(self) -> dict:
        """Bursts per channel, and how many of them ended early at a page end (split there)."""
        bursts = self.mem.bursts
        return {"bursts": {ch: len(b) for ch, b in bursts.items()},
                "page_splits": {ch: sum(1 for a, n in b if n < 16 and (a + 8 * n) % PAGE == 0)
                                for ch, b in bursts.items()}}


@cocotb.test()
async def zynq_job(dut):
    """Execute the job's operations (see the module docstring)."""
    await run_job(dut, ZynqBench)
