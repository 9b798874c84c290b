"""The Verilator backend: the generated Verilog, driven like the board.

The accelerator's Verilog for the model's shape (:mod:`hw.generate`) is compiled once with Verilator through cocotb's runner and cached by the Verilog's
hash. Tiles go to the simulator in batches: each batch is one simulator run of the testbench
:mod:`host.verilator_tb`, which executes the same register sequence as the board
(:mod:`host.protocol`: ID/SHAPE checks, soft reset, parameter loading, frame size) through an
AXI4-Lite manager and streams the tiles with AXI4-Stream models, packed as on the board
(:func:`hw.regmap.pack_pixels`), several frames in flight.

Amaranth, cocotb and Verilator are imported only here (the board image has none of them).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

import spec
from spec import Model

from .backend import Backend
from .errors import HostError
from .manifest import Manifest

__all__ = ["VerilatorBackend", "DEFAULT_MAX_WIDTH", "BATCH_TILES"]

#: Line buffer width generated when no manifest says otherwise (small: faster to build).
DEFAULT_MAX_WIDTH = 256
#: Tiles per simulator run: amortizes start-up, reset and parameter loading.
BATCH_TILES = 32
#: Verilator builds kept in the cache (each a few MB once its precompiled headers are gone).
KEEP_BUILDS = 8
_REPO = Path(__file__).resolve().parent.parent


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gamir" / "verilator"


def _tidy_cache(current: Path) -> None:
    """Drop the 140 MB of precompiled headers (the runner skips the build while the simulator
    binary is newer than the Verilog) and all but the newest :data:`KEEP_BUILDS` builds."""
    for p in current.glob("*.gch"):
        p.unlink()
    current.touch()
    builds = sorted((d for d in current.parent.iterdir() if d.is_dir()),
                    key=lambda d: d.stat().st_mtime, reverse=True)
    for old in builds[KEEP_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


class VerilatorBackend(Backend):
    """The generated Verilog in Verilator (see the module docstring)."""

    name = "verilator"

    def __init__(self, model: Model, manifest: Manifest | None = None):
        super().__init__(model, manifest)
        try:
            from cocotb_tools.runner import get_runner

            from sim.toolchain import setup_verilator_env
        except ImportError as e:
            raise HostError(f"--backend verilator needs the dev tools ({e.name} is missing): "
                            f"pip install -e \".[dev]\"") from None
        self.fold = manifest.fold if manifest else None
        if self.max_width is None:
            self.max_width = DEFAULT_MAX_WIDTH
        setup_verilator_env()
        verilog = self._verilog()
        key = hashlib.sha256(verilog.encode()).hexdigest()[:16]
        self.build_dir = _cache_root() / key
        self.build_dir.mkdir(parents=True, exist_ok=True)
        src = self.build_dir / "gam_top.v"
        if not src.exists():
            src.write_text(verilog)
        self._runner = get_runner("verilator")
        print(f"verilator: building {src} (cached in {self.build_dir})", file=sys.stderr)
        self._runner.build(sources=[src], hdl_toplevel="gam_top", build_dir=self.build_dir,
                           build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"],
                           always=False, log_file=self.build_dir / "build.log")
        _tidy_cache(self.build_dir)

    def _verilog(self) -> str:
        """The manifest's own ``gam_top.v`` (``hw.generate`` wrote them together), else the
        Verilog :func:`hw.generate.generate` makes for this model, width and fold."""
        if self.manifest is not None:
            beside = self.manifest.path.with_name("gam_top.v")
            if beside.is_file():
                return beside.read_text()
        from hw.generate import generate

        with tempfile.TemporaryDirectory(prefix="gamir-verilog-") as tmp:
            generate(self.model, tmp, fold=self.fold or "full", max_width=self.max_width)
            return (Path(tmp) / "gam_top.v").read_text()

    def _simulate(self, tiles: list[np.ndarray]) -> list[np.ndarray]:
        with tempfile.TemporaryDirectory(prefix="gamir-verilator-") as tmp:
            job = Path(tmp)
            spec.save(self.model, job / "model.gamir")
            np.savez(job / "inputs.npz", *tiles)
            (job / "job.json").write_text(json.dumps({"fold": self.fold}))
            env = {"GAMIR_VERILATOR_JOB": str(job),
                   "PYTHONPATH": os.pathsep.join([str(_REPO), os.environ.get("PYTHONPATH", "")])}
            self._runner.test(hdl_toplevel="gam_top", test_module="host.verilator_tb",
                              build_dir=self.build_dir, test_dir=job, extra_env=env,
                              results_xml=str(job / "results.xml"),
                              log_file=job / "sim.log")
            result = job / "result.json"
            if not result.exists():
                log = (job / "sim.log").read_text() if (job / "sim.log").exists() else ""
                raise HostError("the Verilator simulation ended without a result:\n"
                                + log[-2000:])
            res = json.loads(result.read_text())
            if res.get("error"):
                raise HostError(f"Verilator: {res['error']}")
            for (h, w), c in res["cycles"]:
                self.measured_cycles[(h, w)] = c
            with np.load(job / "outputs.npz") as out:
                return [out[f"arr_{k}"] for k in range(len(tiles))]

    def run(self, tensors: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        for x in tensors:
            batch.append(np.ascontiguousarray(x))
            if len(batch) == BATCH_TILES:
                yield from self._simulate(batch)
                batch = []
        if batch:
            yield from self._simulate(batch)
