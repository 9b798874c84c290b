"""cocotb testbench run by :mod:`host.verilator_backend`: the board's sequence in Verilator.

Reads a job folder (``GAMIR_VERILATOR_JOB``: ``model.gamir``, ``job.json``, ``inputs.npz``),
executes :func:`host.protocol.setup_ops` over AXI4-Lite, then for each run of equal-size tiles
writes the size registers and streams every tile back to back (several frames in flight, as
the board's double buffering does), collecting the outputs. Writes ``outputs.npz`` and
``result.json`` (cycles per tile size, or the error message).
"""

from __future__ import annotations

import json
import os
from itertools import groupby
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

import spec
from hw import regmap

from .errors import HostError
from .protocol import FRAME_ERRORS, setup_ops, size_ops, status_text


async def _execute(axil: AxiLiteMaster, ops) -> None:
    for op in ops:
        if op.kind == "write":
            await axil.write_dword(op.address, op.value)
        else:
            op.check(await axil.read_dword(op.address))


@cocotb.test()
async def run_job(dut):
    job = Path(os.environ["GAMIR_VERILATOR_JOB"])
    model = spec.load(job / "model.gamir")
    fold = json.loads((job / "job.json").read_text())["fold"]
    with np.load(job / "inputs.npz") as z:
        tiles = [z[f"arr_{k}"] for k in range(len(z.files))]
    c_out = model.layers[-1].c_out

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"),
                         dut.clk, dut.rst)
    source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis", bus_separator="__"),
                             dut.clk, dut.rst)
    sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis", bus_separator="__"),
                         dut.clk, dut.rst)
    outputs, cycles, error = [], [], None
    try:
        await _execute(axil, setup_ops(model, fold))
        for (h, w), group in groupby(tiles, key=lambda t: t.shape[:2]):
            group = list(group)
            await _execute(axil, size_ops(h, w))
            for x in group:
                await source.send(AxiStreamFrame(regmap.pack_pixels(x).tobytes()))
            for _ in group:
                frame = await sink.recv()
                beats = np.frombuffer(bytes(frame.tdata), np.uint8)
                beats = beats.reshape(-1, regmap.stream_bytes(c_out))
                outputs.append(regmap.unpack_pixels(beats, h, w, c_out))
            status = await axil.read_dword(regmap.REG["STATUS"])
            if status & FRAME_ERRORS:
                raise HostError(f"the accelerator flagged a frame: {status_text(status)}")
            cycles.append([[h, w], await axil.read_dword(regmap.REG["CYCLES"])])
    except HostError as e:
        error = str(e)
    np.savez(job / "outputs.npz", *outputs)
    (job / "result.json").write_text(json.dumps({"cycles": cycles, "error": error}))
