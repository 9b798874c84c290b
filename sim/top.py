"""The generated accelerator top in Verilator: build it, script a scenario, get a verdict.

``TopSim(model, max_width=..., fold=...)`` writes the Verilog with :func:`hw.generate.generate`
(exactly what goes to synthesis), builds it once per distinct Verilog (:mod:`sim.runner`), and
hands out :class:`Scenario` objects. A scenario records operations (reset, parameter load,
register checks, frames with stalls, resets in the middle of a frame), computes every expected
output with the spec (``spec.run_tensor`` of the model loaded at that point) and runs them in
one simulator process with the bench :mod:`sim.top_tests`.

Example::

    sim = TopSim(model, max_width=16)
    sc = sim.scenario(seed=1)
    sc.frames([x0, x1], gap=0.3, stall=0.3)   # two frames in flight, random stalls
    sc.load(other_model)                       # same shape, new parameters over AXI4-Lite
    sc.frames([x2])
    result = sc.run()                          # raises SimFailure with the first mismatch
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import spec
from accel import perf, protocol
from spec.model import Model

from . import runner

__all__ = ["TopSim", "Scenario"]


class TopSim:
    """One generated ``gam_top`` (model shape, ``max_width``, ``fold``) built in Verilator.

    Parameters
    ----------
    model : spec.Model
        The default model: its parameters are the memories' reset contents.
    max_width : int
        Line buffer width of the generated design (small widths build and simulate faster).
    fold : str or list
        Anything :func:`accel.fold.resolve_fold` accepts (``"full"``, a list per layer, ...).
    optimize : bool
        Compile the C++ model at -O2: worth its longer build for whole frames through large
        designs (``sim.check``, benchmarks), not for the tests' small ones.
    """

    #: The cocotb bench module that runs this design's scenarios.
    bench = "sim.top_tests"

    def __init__(self, model: Model, *, max_width: int = 64, fold="full", optimize=False):
        from hw.generate import generate

        model = model.validate()
        self.model, self.max_width = model, max_width
        with tempfile.TemporaryDirectory(prefix="gen-", dir=_mkdir(runner.build_root())) as d:
            self.manifest = generate(model, d, fold=fold, max_width=max_width)
            self.verilog = (Path(d) / "gam_top.v").read_text()
        self.folds = self.manifest.fold
        self.build = runner.build(self.verilog, "gam_top", optimize=optimize)

    def scenario(self, seed: int = 0) -> "Scenario":
        return Scenario(self, seed)

    def predicted_cycles(self, height: int, width: int) -> int:
        """accel.perf's prediction of the CYCLES register for one frame without stalls."""
        return perf.frame_cycles(self.model, self.folds, height=height, width=width)


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


class Scenario:
    """Operations for one simulator run (see :mod:`sim.top_tests` for their meaning)."""

    def __init__(self, sim: TopSim, seed: int):
        self.sim, self.seed = sim, seed
        self.ops: list[dict] = []
        self.arrays: dict[str, np.ndarray] = {}
        self.loaded = sim.model  # what the parameter memories hold
        self.n_frames = 0
        self.options: dict = {}

    def _array(self, prefix: str, a: np.ndarray) -> str:
        key = f"{prefix}{len(self.arrays)}"
        self.arrays[key] = a
        return key

    def _timeout(self, h: int, w: int, frames: int, gap: float, stall: float) -> int:
        slow = 1.0 / ((1.0 - gap) * (1.0 - stall))
        return int(4 * slow * frames * self.sim.predicted_cycles(h, w)) + 4000

    def reset(self, cycles: int = 4) -> "Scenario":
        self.ops.append({"op": "reset", "cycles": cycles})
        return self

    def load(self, model: Model, *, words_of: Model | None = None) -> "Scenario":
        """Load ``model``'s parameters over AXI4-Lite; later frames expect ``model``'s outputs.

        ``words_of`` loads another model's words while still expecting ``model`` (a corrupted
        load, for the scoreboard's own tests).
        """
        if model.shape_hash() != self.sim.model.shape_hash():
            raise ValueError(f"model {model.name!r} has another shape than the generated design")
        ops = protocol.load_ops(words_of or model, self.sim.folds)
        self.ops.append({"op": "load", "ops": self._array("p", protocol.to_array(ops))})
        self.loaded = model
        return self

    def regs(self, **expect: int) -> "Scenario":
        self.ops.append({"op": "regs", "expect": expect})
        return self

    def frames(self, inputs, *, gap: float = 0.0, stall: float = 0.0, expect: bool = True,
               return_outputs: bool = False, check_cycles: bool = True) -> "Scenario":
        """Stream ``inputs`` (tensor-0 frames, all one size) back to back and check each."""
        inputs = [np.ascontiguousarray(x, dtype=np.uint8) for x in inputs]
        h, w = inputs[0].shape[:2]
        if any(x.shape != inputs[0].shape for x in inputs):
            raise ValueError("frames in one call must share a size (registers change between)")
        if w > self.sim.max_width:
            raise ValueError(f"frame width {w} exceeds the design's max_width {self.sim.max_width}")
        keys = [self._array("x", x) for x in inputs]
        op = {"op": "frames", "inputs": keys, "gap": gap, "stall": stall,
              "first_index": self.n_frames, "return_outputs": return_outputs,
              "check_cycles": check_cycles,
              "timeout_cycles": self._timeout(h, w, len(inputs), gap, stall)}
        if expect:
            op["expect"] = [self._array("y", spec.run_tensor(self.loaded, x)) for x in inputs]
        self.ops.append(op)
        self.n_frames += len(inputs)
        return self

    def abort(self, x: np.ndarray, beats: int, how: str = "rst", *, gap: float = 0.0,
              stall: float = 0.0) -> "Scenario":
        """Send the first ``beats`` beats of ``x``, then reset (``"rst"`` or ``"soft"``)."""
        if how not in ("rst", "soft"):
            raise ValueError(f"how={how!r} must be 'rst' or 'soft'")
        h, w = x.shape[:2]
        self.ops.append({"op": "abort", "input": self._array("x", np.asarray(x, np.uint8)),
                         "beats": beats, "how": how, "gap": gap, "stall": stall,
                         "timeout_cycles": self._timeout(h, w, 1, gap, stall)})
        return self

    def run(self, *, waves: bool = False, wave_path=None, fail_fast: bool = True,
            drop_after_stall: int | None = None) -> dict:
        """Simulate; return the bench's result or raise :class:`sim.runner.SimFailure`.

        ``drop_after_stall`` plugs the sink's beat-dropping shim in (scoreboard self-tests).
        """
        job = {"seed": self.seed, "c_in": self.sim.model.input_channels,
               "c_out": self.sim.model.layers[-1].c_out, "ops": self.ops,
               "fail_fast": fail_fast, "drop_after_stall": drop_after_stall, **self.options}
        return runner.run(self.sim.build, self.sim.bench, job, self.arrays, waves=waves,
                          wave_path=wave_path)
