"""cocotb bench of the generated accelerator top (``gam_top``), driven by a job of operations.

The host side (:mod:`sim.top`) turns a scenario into a list of operations plus arrays (input
frames, the spec's expected outputs, parameter words); this bench executes them in order over
AXI4-Lite and AXI4-Stream and checks every output frame with the :class:`Scoreboard`:

``reset``   hold ``rst`` for some cycles (the size registers return to their reset values)
``load``    replay :func:`accel.protocol.load_ops` (the board's parameter load: PARAM_ADDR /
            PARAM_DATA runs, then the STATUS check)
``regs``    read registers and compare with expected values
``frames``  set the size if it changed (:func:`accel.protocol.size_ops`), stream frames back to back (several in flight)
            with random valid gaps and ready stalls, check each against its expected frame,
            TLAST, STATUS (no sticky error) and that the CYCLES register equals the cycles this
            bench measured for the last frame (first input beat to last output beat)
``abort``   send the first beats of a frame, then reset the design in the middle of it
            (``rst`` or the CONTROL soft reset); the next frames must be right again

Results (``result.json``): status, error, pixels checked, mismatches, cycles per frame,
simulated cycles and cycles per second of wall time; ``outputs.npz`` holds the received frames
when the job asks for them.
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from accel import protocol, regmap

from .drivers import AxiLiteManager, Clocked, StreamBus, StreamSink, StreamSource, replay
from .runner import load_job, save_result
from .scoreboard import Scoreboard

REG = regmap.REG


class TopBench:
    """The accelerator with its bus models and scoreboard."""

    def __init__(self, dut, job: dict, arrays: dict):
        self.dut, self.job, self.arrays = dut, job, arrays
        self.rng = random.Random(job.get("seed", 0))
        self.clock = Clocked(dut.clk)
        self.axil = AxiLiteManager(dut, dut.clk)
        self.source = StreamSource(StreamBus.axis(dut, "s_axis"), self.rng)
        self.sink = StreamSink(StreamBus.axis(dut, "m_axis"), self.rng,
                               drop_after_stall=job.get("drop_after_stall"))
        self.clock.add(self.source, self.sink)
        self.board = Scoreboard(fail_fast=job.get("fail_fast", True))
        self.size = None
        self.frame_cycles: list[int] = []
        self.cycles_reg: list[int] = []
        self.outputs: dict[str, np.ndarray] = {}
        self.c_out = job["c_out"]

    async def start(self) -> None:
        Clock(self.dut.clk, Clocked.period_ns, unit="ns").start()
        self.clock.start()
        await self.reset(4)

    async def reset(self, cycles: int) -> None:
        self.dut.rst.value = 1
        self.source.abort()
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.sink.clear()
        self.size = None

    async def op_reset(self, op) -> None:
        await self.reset(op.get("cycles", 4))

    async def op_load(self, op) -> None:
        problem = await replay(self.axil, protocol.from_array(self.arrays[op["ops"]]))
        assert problem is None, f"parameter load: {problem}"

    async def op_regs(self, op) -> None:
        for name, want in op["expect"].items():
            got = await self.axil.read(REG[name])
            assert got == want, f"register {name}: expected 0x{want:x}, read 0x{got:x}"

    async def set_size(self, h: int, w: int) -> None:
        if self.size != (h, w):
            problem = await replay(self.axil, protocol.size_ops(h, w))
            assert problem is None, problem
            self.size = (h, w)

    def queue_frame(self, x: np.ndarray, beats: int | None = None) -> None:
        data = regmap.beats_to_ints(regmap.pack_pixels(x))
        n = len(data)
        lasts = [False] * (n - 1) + [True]
        if beats is not None:
            data, lasts = data[:beats], lasts[:beats]
        self.source.send(data, lasts)

    async def op_frames(self, op) -> None:
        inputs = [self.arrays[k] for k in op["inputs"]]
        h, w = inputs[0].shape[:2]
        await self.set_size(h, w)
        self.source.gap, self.sink.stall = op.get("gap", 0.0), op.get("stall", 0.0)
        self.source.fired.clear()
        self.sink.clear()
        for x in inputs:
            self.queue_frame(x)
        n = h * w
        try:
            await self.sink.expect(self.clock, n * len(inputs), op["timeout_cycles"])
        except AssertionError as e:
            got = len(self.sink.beats)
            k = got // n
            # Score the frame that came up short, so the message says which and how.
            beats = self.sink.beats[k * n:]
            self.board.check(f"frame {op['first_index'] + k}", self._expected(op, k),
                             None, beats=len(beats))
            raise AssertionError(f"{e}: frame {op['first_index'] + k} is short") from None
        await ClockCycles(self.dut.clk, 2)  # nothing more may arrive: extra beats are errors
        extra = len(self.sink.beats) - n * len(inputs)
        for k in range(len(inputs)):
            beats = self.sink.beats[k * n:(k + 1) * n]
            data = [b[0] for b in beats]
            y = regmap.unpack_pixels(data, h, w, self.c_out)
            name = op.get("names", [None] * len(inputs))[k] or f"frame {op['first_index'] + k}"
            if op.get("return_outputs"):
                self.outputs[op["inputs"][k]] = y
            if op.get("expect"):
                self.board.check(name, self._expected(op, k), y, lasts=[b[1] for b in beats])
            self.frame_cycles.append(beats[-1][2] - self.source.fired[k * n] + 1)
        assert extra <= 0, f"{extra} beats arrived after the last frame's last pixel"
        status = await self.axil.read(REG["STATUS"])
        assert not status & protocol.FRAME_ERRORS, \
            f"{protocol.status_text(status)}: the design flagged a TLAST error on correct frames"
        cycles = await self.axil.read(REG["CYCLES"])
        self.cycles_reg.append(cycles)
        if op.get("check_cycles", True):
            assert cycles == self.frame_cycles[-1], (
                f"CYCLES register {cycles} != {self.frame_cycles[-1]} cycles measured on the "
                f"bus for the last frame")

    def _expected(self, op, k) -> np.ndarray:
        return self.arrays[op["expect"][k]]

    async def op_abort(self, op) -> None:
        x = self.arrays[op["input"]]
        await self.set_size(*x.shape[:2])
        self.source.gap, self.sink.stall = op.get("gap", 0.0), op.get("stall", 0.0)
        self.queue_frame(x, beats=op["beats"])
        await self.clock.wait_for(self.source.idle, op["timeout_cycles"], "the partial frame")
        await ClockCycles(self.dut.clk, op.get("wait", 3))
        if op["how"] == "rst":
            await self.reset(3)
        else:
            await self.axil.write(REG["CONTROL"], regmap.CONTROL_SOFT_RESET)
            await ClockCycles(self.dut.clk, 2)
            self.sink.clear()

    async def run(self) -> None:
        await self.start()
        for op in self.job["ops"]:
            await getattr(self, f"op_{op['op']}")(op)
        self.board.verdict()

    def metrics(self) -> dict:
        """This bench's part of ``result.json``, beside the scoreboard's and the run's speed."""
        return {"frame_cycles": self.frame_cycles, "cycles_register": self.cycles_reg}


async def run_job(dut, bench_class: type[TopBench]) -> None:
    """Run this simulator process's job on ``dut`` with a ``bench_class`` bench and save its
    result, a failed run's too (its error, then the assertion goes on to fail the cocotb test)."""
    job, arrays = load_job()
    bench = bench_class(dut, job, arrays)
    t0 = time.time()
    result = {"status": "fail", "error": None}
    try:
        await bench.run()
        result["status"] = "pass"
    except AssertionError as e:
        result["error"] = str(e)
        raise
    finally:
        wall = time.time() - t0
        result.update(bench.board.summary())
        result.update(bench.metrics(), cycles_simulated=bench.clock.cycle, wall_seconds=wall,
                      cycles_per_second=bench.clock.cycle / wall if wall else 0.0)
        save_result(result, bench.outputs or None)


@cocotb.test()
async def top_job(dut):
    """Execute the job's operations (see the module docstring)."""
    await run_job(dut, TopBench)
