"""Stream frames through the Verilator model of the generated top; get the output frames back.

The reusable entry point for tools outside ``sim/`` (``python -m sim.check``, the throughput
benchmark, a host ``--backend verilator``)::

    from sim.verilator_backend import run_frames
    outputs, cycles = run_frames(model, [x0, x1, ...], max_width=256, fold="full")

``frames`` are tensor-0 frames (``spec.model_input`` of an image: (H, W, input_channels)
uint8); ``outputs`` the accelerator's output tensors in the same order ((H, W, c_out) uint8,
``spec.model_output`` makes images of them); ``cycles`` the clock cycles of each frame from its
first input beat to its last output beat, measured on the bus (equal to the CYCLES register).
Frames of one size are streamed back to back, several in flight; the size registers change
between sizes. The model's parameters are loaded over AXI4-Lite first, exactly as a driver
does (``hw.regmap.param_writes``), so the bitstream for any model of the same shape is the same
build. The Verilog comes from ``hw.generate`` and is compiled once per distinct design
(:mod:`sim.runner` caches builds under ``sim_build/``).

With ``check=True`` the bench also compares every frame with ``spec.run_tensor`` and raises
:class:`sim.runner.SimFailure` at the first difference (what ``sim.check`` uses).
"""

from __future__ import annotations

from itertools import groupby

import numpy as np

from spec.model import Model

from .runner import SimFailure
from .top import TopSim

__all__ = ["run_frames", "default_max_width", "SimFailure"]


def default_max_width(frames) -> int:
    """The line-buffer width to generate: a power of two >= the widest frame, at least 16, so
    nearby frame sizes share one cached build."""
    widest = max(x.shape[1] for x in frames)
    return max(16, 1 << (widest - 1).bit_length())


def run_frames(model: Model, frames, *, max_width: int | None = None, fold="full",
               gap: float = 0.0, stall: float = 0.0, check: bool = False, seed: int = 0,
               fail_fast: bool = True, optimize: bool = True, sim: TopSim | None = None):
    """Run ``frames`` through the generated top; return ``(outputs, cycles, result)``.

    ``result`` is the bench's summary (pixels checked, mismatches, simulated cycles per
    second, ...). ``gap``/``stall`` add random valid gaps / ready stalls (cycles then include
    them). ``optimize`` builds the C++ model at -O2 (see :class:`sim.top.TopSim`). ``sim``
    reuses an already built :class:`sim.top.TopSim` of the model's shape.
    """
    frames = [np.ascontiguousarray(x, dtype=np.uint8) for x in frames]
    if not frames:
        return [], [], {}
    if sim is None:
        sim = TopSim(model, max_width=max_width or default_max_width(frames), fold=fold,
                     optimize=optimize)
    sc = sim.scenario(seed=seed)
    if model is not sim.model:
        sc.load(model)
    order = []
    for _, group in groupby(range(len(frames)), key=lambda k: frames[k].shape):
        group = list(group)
        order += group
        sc.frames([frames[k] for k in group], gap=gap, stall=stall, expect=check,
                  return_outputs=True)
    result = sc.run(fail_fast=fail_fast)
    outs = [result["outputs"][key] for op in sc.ops if op["op"] == "frames"
            for key in op["inputs"]]
    outputs, cycles = [None] * len(frames), [0] * len(frames)
    for pos, k in enumerate(order):
        outputs[k], cycles[k] = outs[pos], result["frame_cycles"][pos]
    result = {k: v for k, v in result.items() if k != "outputs"}
    return outputs, cycles, result
