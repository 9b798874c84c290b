"""cocotb bench of the board's sequence in Verilator, run by :mod:`sim.verilator_backend`.

The job (:func:`sim.runner.load_job`) holds the model file's bytes, the fold and the tiles.
The bench replays :func:`accel.protocol.setup_ops` over AXI4-Lite, then for each run of
equal-size tiles :func:`accel.protocol.size_ops`, and streams the tiles back to back (several
frames in flight, as the board's double buffering does), collecting the outputs, checking
``STATUS`` and reading ``CYCLES``. The bus models are :mod:`sim.drivers`.

A register check that fails (wrong ID/SHAPE, a parameter or size error) is a driver error,
reported in the result as ``driver_error`` for the host to print; a hang (no output within
four times the predicted cycles) fails the run, and :mod:`sim.runner` records a waveform.
"""

from __future__ import annotations

import random
from itertools import groupby

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import spec
from accel import perf, regmap
from accel.protocol import FRAME_ERRORS, setup_ops, size_ops, status_text

from .drivers import AxiLiteManager, Clocked, StreamBus, StreamSink, StreamSource, replay
from .runner import load_job, save_result


class DriverError(Exception):
    """A register check the driver would stop at (reported to the host, not a bench failure)."""


async def _execute(axil: AxiLiteManager, ops) -> None:
    problem = await replay(axil, ops)
    if problem:
        raise DriverError(problem)


@cocotb.test()
async def host_job(dut):
    job, arrays = load_job()
    model = spec.from_bytes(arrays["model"].tobytes())
    tiles = [arrays[f"x{k}"] for k in range(job["tiles"])]
    c_out = model.layers[-1].c_out

    clock = Clocked(dut.clk)
    axil = AxiLiteManager(dut, dut.clk)
    rng = random.Random(0)
    source = StreamSource(StreamBus.axis(dut, "s_axis"), rng)
    sink = StreamSink(StreamBus.axis(dut, "m_axis"), rng)
    clock.add(source, sink)
    Clock(dut.clk, Clocked.period_ns, unit="ns").start()
    clock.start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await RisingEdge(dut.clk)

    result = {"status": "fail", "error": None, "driver_error": None, "cycles": []}
    outputs = {}
    try:
        await _execute(axil, setup_ops(model, job["fold"]))
        k = 0
        for (h, w), group in groupby(tiles, key=lambda t: t.shape[:2]):
            group = list(group)
            await _execute(axil, size_ops(h, w))
            n = h * w
            sink.clear()
            for x in group:
                source.send(regmap.beats_to_ints(regmap.pack_pixels(x)), [False] * (n - 1) + [True])
            timeout = 4 * len(group) * perf.frame_cycles(model, job["fold"], height=h, width=w)
            await sink.expect(clock, n * len(group), timeout + 4000)
            for j in range(len(group)):
                beats = [b[0] for b in sink.beats[j * n:(j + 1) * n]]
                outputs[f"y{k}"] = regmap.unpack_pixels(beats, h, w, c_out)
                k += 1
            status = await axil.read(regmap.REG["STATUS"])
            if status & FRAME_ERRORS:
                raise DriverError(f"the accelerator flagged a tile: {status_text(status)}")
            result["cycles"].append([[h, w], await axil.read(regmap.REG["CYCLES"])])
        result["status"] = "pass"
    except DriverError as e:
        result["status"], result["driver_error"] = "pass", str(e)  # the bench ran; the driver stopped
    except AssertionError as e:
        result["error"] = str(e)
        raise
    finally:
        result["cycles_simulated"] = clock.cycle
        save_result(result, outputs)
