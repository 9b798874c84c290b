"""The open-flow Zynq design's fabric (:class:`hw.zynq_top.ZynqCore`: accelerator + DMA +
register port, everything but the PS7) in Verilator, scripted like :mod:`sim.top`.

The bench (:mod:`sim.zynq_tests`) plays the PS7: the CPU on M_AXI_GP0 (an AXI3 manager doing
the host's register sequence, :mod:`accel.protocol`) and DDR on S_AXI_HP0 (an AXI3 memory that
stalls every channel at random and fails the run on any broken AXI rule, :mod:`sim.axi3`).
Frames are placed in memory a few beats before 4 KiB boundaries, so bursts must split there.

Example::

    sim = ZynqSim(model, max_width=16)
    sc = sim.scenario(seed=1)
    sc.frames([x0, x1, x2], stall=0.3)     # back to back through DDR, random stalls
    sc.abort(x3, beats=20)                 # DMA abort + soft reset mid-frame
    sc.frames([x4])
    sc.run()
"""

from __future__ import annotations

import os

import numpy as np

from spec.model import Model

from . import runner
from .top import Scenario, TopSim

__all__ = ["ZynqSim", "ZynqScenario"]

#: Verilog top module name of the simulated fabric.
TOPLEVEL = "gam_zynq_core"


class ZynqSim(TopSim):
    """One :class:`hw.zynq_top.ZynqCore` built in Verilator (arguments as :class:`TopSim`'s)."""

    bench = "sim.zynq_tests"

    def __init__(self, model: Model, *, max_width: int = 16, fold="full", optimize=False):
        os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
        from amaranth.back import verilog

        from accel.fold import resolve_fold
        from hw.zynq_top import ZynqCore

        self.model, self.max_width = model.validate(), max_width
        self.folds = resolve_fold(self.model, fold, max_width=max_width)
        core = ZynqCore(self.model, max_width=max_width, fold=self.folds)
        self.verilog = verilog.convert(core, name=TOPLEVEL, emit_src=False)
        self.build = runner.build(self.verilog, TOPLEVEL, optimize=optimize)

    def scenario(self, seed: int = 0) -> "ZynqScenario":
        return ZynqScenario(self, seed)


class ZynqScenario(Scenario):
    """:class:`sim.top.Scenario` through DDR: ``stall`` is the memory's stall probability on
    every AXI3 channel (the frames' pixels come from and go to memory, not streams)."""

    def frames(self, inputs, *, stall: float = 0.0, **kw) -> "ZynqScenario":
        # CYCLES is not compared: no stream here to measure a frame's first and last beat on.
        return super().frames(inputs, stall=stall, check_cycles=False, **kw)

    def abort(self, x: np.ndarray, beats: int, *, stall: float = 0.0) -> "ZynqScenario":
        """Start ``x`` through the DMA, abort once ``beats`` read beats were delivered, wait
        for the DMA to go idle, soft-reset the accelerator."""
        h, w = x.shape[:2]
        self.ops.append({"op": "abort", "input": self._array("x", np.asarray(x, np.uint8)),
                         "beats": beats, "stall": stall,
                         "timeout_cycles": self._timeout(h, w, 1, 0.0, stall)})
        return self

    def burst(self, address: int, expect: list[int]) -> "ZynqScenario":
        """Read ``len(expect)`` consecutive registers in one GP0 burst."""
        self.ops.append({"op": "burst", "address": address, "expect": expect})
        return self

    def run(self, *, memory_page: int | None = None, **kw) -> dict:
        """As :meth:`sim.top.Scenario.run`; ``memory_page`` makes the memory police bursts
        against a smaller boundary than 4 KiB (to see its check fail the run)."""
        if memory_page is not None:
            self.options["memory_page"] = memory_page
        return super().run(**kw)
