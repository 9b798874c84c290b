"""One build: the board's flow picked, the accelerator generated, the flow run, the report and
the manifest written."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from accel.boards import Board, get_board

from .fit import FitFailure, fit_error
from .lattice import build_lattice
from .report import FRAMES, frame_tiles, throughput
from .tools import BuildError, Steps, tool_env, tool_versions
from .vivado import estimate

__all__ = ["FLOWS", "choose_flow", "build"]

#: ``--flow`` values (the Zynq; Lattice boards have only the open flow): ``open`` places and
#: routes with nextpnr-himbaechel-xilinx (:mod:`hw.build.xc7_open`); ``vivado`` estimates with
#: Yosys and writes a Vivado project (:mod:`hw.build.vivado`); ``auto`` is ``open`` where
#: nextpnr-himbaechel-xilinx is found, else ``vivado``.
FLOWS = ("auto", "open", "vivado")


def choose_flow(board: Board, flow: str, tools: str) -> tuple[str, str, dict]:
    """The flow that runs (:data:`FLOWS`), its tool set (:func:`hw.build.tools.tool_env`'s
    ``family``) and its tools."""
    if flow not in FLOWS:
        raise BuildError(f"--flow {flow!r}: choose one of {', '.join(FLOWS)}")
    if board.family != "xc7":
        if flow == "vivado":
            raise BuildError(f"--flow vivado is for the Zynq; {board.name} builds with the open"
                             " flow (leave --flow out)")
        return "open", board.family, tool_env(board.family, tools)
    if flow == "vivado":
        return "vivado", "xc7", tool_env("xc7", tools)
    try:
        return "open", "xc7-open", tool_env("xc7-open", tools)
    except BuildError:
        if flow == "open":
            raise
    return "vivado", "xc7", tool_env("xc7", tools)


def build(model, board: str | Board, out_dir, *, fold="full", max_width: int | None = None,
          fps: float = 30.0, dsp: int | None = None, tools: str = "auto",
          clock_mhz: float | None = None, flow: str = "auto", nextpnr_opts=(),
          lutram_depth: int = 0) -> dict:
    """Build ``model`` for ``board`` into ``out_dir``; return (and write) the report.

    ``fold`` is anything ``python -m hw.generate --fold`` takes; ``auto`` folds as far as
    ``fps`` at 1280x720 allows at the board's clock target (ask for more than you need when
    Fmax may fall short of the target). ``max_width`` defaults to the
    accelerator width of a 1280-pixel-wide image, so the 1280x720 figure of the report is a
    frame the bitstream takes whole. ``dsp`` caps the hard multipliers (:func:`accel.perf.dsp_allocation`;
    the rest become Booth multipliers in LUTs); it defaults to 90 % of the device's count (Yosys would
    otherwise map every product to a multiplier block and overflow them on folded designs; the
    margin is for multiplications elsewhere in the design that synthesis also maps).
    ``tools`` picks native or YoWASP tools (:func:`tool_env`); the report names those that ran.
    ``clock_mhz`` (default: the board's target) is the clock timing is asked for, the ECP5
    bitstream's PLL output and the clock ``auto`` folds for. ``flow`` (:data:`FLOWS`) picks the
    Zynq's open or Vivado flow; ``nextpnr_opts`` are more nextpnr options (``--seed 3``,
    ``--placer sa``, ...); ``lutram_depth`` puts weight memories of at most that many rows in
    LUT RAM (:class:`hw.pipeline.Pipeline`: for designs whose block RAM runs out).
    """
    from .. import generate

    board = board if isinstance(board, Board) else get_board(board)
    flow, toolset, env = choose_flow(board, flow, tools)
    if nextpnr_opts and flow == "vivado":
        raise BuildError("--nextpnr-opts: the Vivado flow runs no nextpnr (use --flow open)")
    out = Path(out_dir)
    r = model.steps.unshuffle
    (w, h) = FRAMES[-1]
    if max_width is None:
        max_width = -(-w // r)
    start = time.monotonic()
    clock_hz = board.clock_hz if clock_mhz is None else clock_mhz * 1e6
    if dsp is None:
        dsp = board.dsp_budget
    frame_tiles(model, max_width)  # a max width the host cannot tile fails before synthesis
    steps = Steps()
    with steps.step("generate"):
        manifest = generate.generate(model, out, fold=fold, max_width=max_width, fps=fps,
                                     clock_hz=clock_hz, frame=(-(-h // r), -(-w // r)), dsp=dsp,
                                     lut_inputs=board.lut_inputs, lutram_depth=lutram_depth)
        verilog = (out / "gam_top.v").read_text()
    work = out / "work"  # made only now: a bad model, fold or width leaves no folder behind
    work.mkdir(exist_ok=True)
    try:
        if toolset == "xc7-open":
            from . import xc7_open  # imports the Zynq top level's Amaranth

            result = xc7_open.build_open(board, work, out, verilog, model, env, clock_hz, steps,
                                         nextpnr_opts=list(nextpnr_opts))
        elif board.family == "xc7":
            result = estimate(board, work, out, verilog, manifest, env, clock_hz, steps)
        else:
            result = build_lattice(board, work, out, verilog, env, clock_hz, steps,
                                    list(nextpnr_opts))
    except FitFailure as fail:
        raise fit_error(board, model, manifest, fail.used) from None
    report = {
        "board": board.name,
        "device": board.device,
        "family": board.family,
        "flow": flow,
        "model": {"name": model.name, "task": model.task, "digest": manifest.model.digest,
                  "shape_hash": model.shape_hash()},
        "fold_arg": fold,
        "fold": manifest.fold.as_json(),
        "max_width": max_width,
        "dsp_budget": dsp,
        "lutram_depth": lutram_depth,
        "tools": tool_versions(toolset, env),
        **result,
        "step_seconds": steps.wall,
        "step_cpu_seconds": steps.cpu,
        "load_average": [round(v, 2) for v in os.getloadavg()],  # 1, 5, 15 min, at the end
        **throughput(model, manifest, result["clock_mhz"]),
        "seconds": round(time.monotonic() - start, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    # The block design's IP names (PYNQ only) are for host/pynq_backend; the Zynq's flow picks
    # the host's board driver.
    keys = ("board", "device", "bitstream", "clock_mhz") + (("flow",) if board.family == "xc7" else ())
    manifest = manifest.with_build({k: report[k] for k in keys}, result.get("pynq"))
    (out / "manifest.json").write_text(manifest.to_json())
    return report
