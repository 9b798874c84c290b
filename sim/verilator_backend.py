"""The Verilator backend of ``python -m host.run``: the generated Verilog, driven like the board.

``sim`` registers it (the entry point ``verilator`` of :data:`host.backends.GROUP`, in
pyproject.toml): host never imports it, so the board image, which has neither amaranth nor
cocotb, has no path to it.

The accelerator's Verilog is the one beside the manifest (``hw.generate`` writes
``gam_top.v`` and ``manifest.json`` together) or, without one, what :func:`hw.generate.generate`
makes for the model, width and fold. :func:`sim.runner.build` compiles it once per distinct
design (cached under ``sim_build/``). Tiles go to the simulator in batches; each batch is one
simulator run (:func:`sim.runner.run`) of the bench :mod:`sim.board_tb`, which replays the
board's register sequence (:mod:`accel.protocol`: ID/SHAPE checks, soft reset, parameter
loading, frame size) with ``sim``'s AXI4-Lite manager and streams the tiles back to back with
its AXI4-Stream models, packed as on the board, several frames in flight.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

import spec
from host.backend import Backend
from host.errors import HostError
from host.manifest import Manifest
from hw.generate import generate
from spec import Model

from . import runner

__all__ = ["VerilatorBackend", "DEFAULT_MAX_WIDTH", "BATCH_TILES"]

#: Line buffer width generated when no manifest says otherwise: smaller than
#: :data:`accel.config.DEFAULT_MAX_WIDTH` (a board's), so the model builds faster.
DEFAULT_MAX_WIDTH = 256
#: Tiles per simulator run: amortizes start-up, reset and parameter loading.
BATCH_TILES = 32


class VerilatorBackend(Backend):
    """The generated Verilog in Verilator (see the module docstring)."""

    name = "verilator"

    def __init__(self, model: Model, manifest: Manifest | None = None):
        super().__init__(model, manifest)
        self.fold = manifest.fold if manifest else None
        if self.max_width is None:
            self.max_width = DEFAULT_MAX_WIDTH
        print(f"verilator: compiling the generated Verilog unless {runner.build_root()} "
              f"has it (a first build takes minutes)", file=sys.stderr)
        try:
            self._build = runner.build(self._verilog(), "gam_top")
        except RuntimeError as e:
            raise HostError(str(e)) from None

    def _verilog(self) -> str:
        if self.manifest is not None:
            beside = self.manifest.path.with_name("gam_top.v")
            if beside.is_file():
                return beside.read_text()
        with tempfile.TemporaryDirectory(prefix="gamir-verilog-") as tmp:
            # Without a manifest's fold: fully unfolded, the fewest cycles to simulate.
            generate(self.model, tmp, fold=self.fold or "full", max_width=self.max_width)
            return (Path(tmp) / "gam_top.v").read_text()

    def _simulate(self, tiles: list[np.ndarray]) -> list[np.ndarray]:
        arrays = {f"x{k}": x for k, x in enumerate(tiles)}
        arrays["model"] = np.frombuffer(spec.to_bytes(self.model), dtype=np.uint8)
        job = {"fold": self.fold.as_json() if self.fold else None, "tiles": len(tiles)}
        try:
            res = runner.run(self._build, "sim.board_tb", job, arrays)
        except runner.SimFailure as e:
            raise HostError(f"the Verilator simulation failed: {e}") from None
        if res.get("driver_error"):
            raise HostError(f"Verilator: {res['driver_error']}")
        for (h, w), cycles in res["cycles"]:
            self.measured_cycles[(h, w)] = cycles
        return [res["outputs"][f"y{k}"] for k in range(len(tiles))]

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        for x in tensors:
            batch.append(np.ascontiguousarray(x))
            if len(batch) == BATCH_TILES:
                yield from self._simulate(batch)
                batch = []
        if batch:
            yield from self._simulate(batch)
