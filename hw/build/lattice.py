"""The Lattice open flow (ECP5, iCE40): the accelerator in the serial harness, amaranth's build
plan for the board, Yosys, nextpnr and ecppack/icepack, one timed step per tool."""

from __future__ import annotations

import copy
import importlib
import json
import os
import re
import shlex
import shutil
from pathlib import Path

from accel.boards import Board

from .fit import FitFailure, overflow, utilization
from .synthesis import BOOTH_LUT_PRODUCTS, cell_counts, classic_synth, resources_from_cells
from .tools import BuildError, Steps, nextpnr_threads, run_tool

__all__ = ["build_lattice"]

#: nextpnr's cell-type names for the resources of its report.
_NEXTPNR = {
    "ecp5": {"LUT": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD", "DSP": "MULT18X18D"},
    "ice40": {"LUT": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "DSP": "ICESTORM_DSP"},
}


def _platform(board: Board, clock_hz: float | None = None):
    """The board's amaranth-boards platform; with ``clock_hz``, its oscillator's constraint
    raised to that clock.

    iCE40 builds have no PLL in front of the accelerator: there the constraint is raised so that
    nextpnr's timing-driven placement aims at the clock a PLL would give, and the report gives
    the Fmax it reached. ECP5 builds keep the oscillator's constraint and constrain the PLL's
    output (:class:`hw.harness.SerialHarness`).
    """
    from amaranth.build import Clock

    module, name = board.platform.split(":")
    base = getattr(importlib.import_module(module), name)
    if clock_hz is None:
        return base()
    resources = []
    for res in base.resources:
        if res.name == base.default_clk and res.number == 0:
            res = copy.copy(res)
            res.clock = Clock(clock_hz)
        resources.append(res)
    return type(name, (base,), {"resources": resources})()


def build_lattice(board: Board, work: Path, out: Path, verilog: str, env: dict,
                   clock_hz: float, steps: Steps, nextpnr_opts: list[str]) -> dict:
    from ..harness import SerialHarness, verilog_ports

    pll = clock_hz if board.family == "ecp5" else None
    harness = SerialHarness(verilog_ports(verilog), board.serial_in, board.serial_out, pll_hz=pll)
    first, rest = classic_synth("ecp5", "top") if board.family == "ecp5" else ("", "")
    platform = _platform(board, None if pll else clock_hz)
    platform.add_file("gam_top.v", verilog)
    nextpnr = env["NEXTPNR_ECP5" if board.family == "ecp5" else "NEXTPNR_ICE40"]
    old_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # amaranth resolves tool names while rendering the plan
    try:
        plan = platform.build(
            harness, name="top", build_dir=str(work), do_build=False,
            synth_opts=first,
            script_after_read=BOOTH_LUT_PRODUCTS,
            script_after_synth=f"{rest}\ntee -q -o top.stat.json stat -json",
            # Missing the asked clock is a result (the report's Fmax), not a failed build.
            nextpnr_opts=shlex.join(["--report", "top.report.json", "--timing-allow-fail",
                                     *nextpnr_threads(nextpnr), *nextpnr_opts]),
        )
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    plan.extract(str(work))
    try:
        _run_steps(work / "build_top.sh", work, env, steps)
    except BuildError:
        stat = work / "top.stat.json"
        if stat.exists() and not (work / "top.report.json").exists():
            used = resources_from_cells(board.family, cell_counts(stat))
            used.update(_nextpnr_log_usage(board.family, work / "top.tim"))
            if overflow(board, used):
                raise FitFailure(used) from None
        raise
    report = json.loads((work / "top.report.json").read_text())
    util = report["utilization"]
    used, available = {}, {}
    for res, cell in _NEXTPNR[board.family].items():
        used[res], available[res] = util[cell]["used"], util[cell]["available"]
    if "FF" not in used:  # an iCE40 logic cell holds a LUT4 and a FF: count the FFs Yosys made
        used["FF"] = resources_from_cells("ice40", cell_counts(work / "top.stat.json"))["FF"]
        available["FF"] = available["LUT"]
    ext = ".bit" if board.family == "ecp5" else ".bin"
    bitstream = out / f"gam{ext}"
    shutil.copyfile(work / f"top{ext}", bitstream)
    fmax = {name.replace("$glbnet$", ""): {"achieved_mhz": round(v["achieved"], 2),
                                           "constraint_mhz": round(v["constraint"], 2)}
            for name, v in report["fmax"].items()}
    slowest = min(v["achieved_mhz"] for v in fmax.values())
    if harness.clock_hz is None:
        clock = {"clock_mhz": slowest, "clock_source": "nextpnr Fmax (slowest clock domain; "
                 "the bitstream runs on the board oscillator, no PLL)"}
    else:
        pll_mhz = round(harness.clock_hz / 1e6, 2)
        met = slowest >= pll_mhz
        clock = {"clock_mhz": pll_mhz if met else slowest, "pll_mhz": pll_mhz, "timing_met": met,
                 "clock_source": f"the bitstream's PLL, {pll_mhz:g} MHz" if met else
                 f"nextpnr Fmax: the bitstream's PLL runs at {pll_mhz:g} MHz, faster than timing"
                 f" allows; rebuild with --clock-mhz {int(slowest)}"}
    return {
        "bitstream": bitstream.name,
        "utilization": utilization(used, available),
        "fmax": fmax,
        **clock,
        "harness": {"input_bits": harness.input_bits, "output_bits": harness.output_bits},
    }


def _run_steps(script: Path, work: Path, env: dict, steps: Steps) -> None:
    """Run amaranth's build script one tool call at a time, timing each in ``steps``.

    The script's first lines set defaults (``: ${YOSYS:=yosys}``); every later line that starts
    with a tool variable is one step, named by the variable (``yosys``, ``nextpnr_ecp5``, ...),
    its output in ``build.log`` (appended) beside the tool's own log.
    """
    lines = script.read_text().splitlines()
    head = [line for line in lines if not line.startswith('"$')]
    log = work / "build.log"
    log.write_text("")
    for line in lines:
        if not line.startswith('"$'):
            continue
        with steps.step(line[2:line.index('"', 2)].lower()):
            run_tool(["sh", "-c", "\n".join(head + [line])], work, env, log, append=True)


def _nextpnr_log_usage(family: str, log: Path) -> dict:
    """Resources nextpnr counted before it gave up (``ICESTORM_LC: 6461/ 5280 122%`` lines).

    After packing these are exact where Yosys's cell counts are not (an iCE40 logic cell
    holds a LUT, a FF and a carry, so LUTs alone undercount).
    """
    text = log.read_text(errors="replace") if log.exists() else ""
    used = {}
    for res, cell in _NEXTPNR[family].items():
        found = re.findall(rf"\b{cell}:\s*(\d+)/\s*(\d+)", text)
        if found:
            used[res] = int(found[-1][0])
    return used
