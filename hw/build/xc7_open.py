"""The Zynq-7000 open flow of :mod:`hw.build`: Yosys, nextpnr-himbaechel-xilinx, FASM, bitstream.

``python -m hw.build --board pynq-z2 --flow open`` builds the whole PYNQ design of
:mod:`hw.zynq_top` (the PS7, the accelerator, its own AXI3 DMA on S_AXI_HP0 and the GP0
register port; no Xilinx IP, no pins of its own) and runs, in ``DIR/work/``:

1. ``yosys``: ``synth_xilinx`` of ``gam_zynq`` (:func:`hw.zynq_top.zynq_verilog`, the
   ``generate_zynq`` step) around the build's ``gam_top.v`` with the classic-ABC LUT mapping
   every gamir synthesis uses (:func:`hw.build.synth_script`), to ``top.json``;
2. ``nextpnr_xilinx``: ``nextpnr-himbaechel-xilinx --device xc7z020clg400-1`` with an XDC that
   constrains the fabric clock (FCLK_CLK0 after its BUFG, :data:`hw.zynq_top.CLOCK_NET`) at the
   clock the report names, timing-driven, to ``top.fasm``; the report takes the placed
   utilization and the routed Fmax from its log (:func:`parse_nextpnr_log`);
3. ``bitstream``: ``hw.xc7.bitstream.write_bitstream`` (the project's FASM-to-frames writer,
   then prjxray's ``xc7frames2bit``) to ``DIR/gam.bit``, where that module, ``xc7frames2bit``
   and the prjxray database are at hand; else the report says why no ``.bit`` was written.

PYNQ sets FCLK_CLK0 to the manifest's ``build.clock_mhz`` when it loads the bitstream
(:mod:`host.pynq_open_backend`), so the clock timed here is the clock the board runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from accel.boards import Board

from ..zynq_top import CLOCK_NET, TOP_NAME, zynq_verilog
from .fit import FitFailure, overflow, utilization
from .synthesis import synthesize
from .tools import BuildError, Steps, nextpnr_threads, run_tool

__all__ = ["PART", "parse_nextpnr_log", "build_open"]

#: The PYNQ-Z2's part as nextpnr-himbaechel-xilinx and prjxray name it.
PART = "xc7z020clg400-1"

#: nextpnr-himbaechel-xilinx's cell types for each resource of the report, with the units one
#: cell takes (a RAMB18 is half of a 36 Kbit block). Its SLICE_LUTX are LUT cells on two bels per
#: LUT6 site (the 6-input and the 5-input one; "available" is twice the device's 53,200), route-
#: through LUT1s for the carry chains included: the report's LUT figure is the LUT6 sites the
#: FASM configures (:func:`fasm_lut_sites`), what Vivado calls Slice LUTs; from the log alone
#: (a run that stopped) half the cells, the fewest sites they can take.
NEXTPNR_CELLS = {
    "LUT": {"SLICE_LUTX": 0.5},
    "FF": {"SLICE_FFX": 1},
    "BRAM": {"RAMB36E1_RAMB36E1": 1, "RAMB18E1_RAMB18E1": 0.5},
    "DSP": {"DSP48E1_DSP48E1": 1},
}

#: nextpnr's counts the report keeps (``nextpnr_cells``): the resources' and the carry chains'.
_REPORTED_CELLS = {"CARRY4", *(c for table in NEXTPNR_CELLS.values() for c in table)}

_ROUTING = re.compile(r"^Info: (Routing global|Running router|Routing\.\.)", re.M)
_UTIL = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)
_FMAX = re.compile(r"^(?:Info|Warning): Max frequency for clock '([^']+)': ([\d.]+) MHz "
                   r"\((PASS|FAIL) at ([\d.]+) MHz\)", re.M)


def parse_nextpnr_log(text: str) -> dict:
    """What a nextpnr-himbaechel-xilinx log says, as far as the run got.

    Returns ``cells`` (``{type: (used, available)}`` of its "Device utilisation" table, after
    packing), ``placed_fmax`` (the post-placement estimate per clock, ``(MHz, constraint)``),
    ``fmax`` (the same after routing; empty when routing did not end), ``routed`` and
    ``finished`` (whether the router and the whole run completed).
    """
    split = _ROUTING.search(text)
    placed, routed = (text[:split.start()], text[split.start():]) if split else (text, "")

    def fmax(part):
        return {clk: (float(mhz), float(want)) for clk, mhz, _, want in _FMAX.findall(part)}

    return {
        "cells": {cell: (int(used), int(avail)) for cell, used, avail in _UTIL.findall(text)},
        "placed_fmax": fmax(placed),
        "fmax": fmax(routed),
        "routed": "Routing complete." in routed,
        "finished": "Program finished normally." in text,
    }


def placed_resources(cells: dict) -> dict:
    """LUT/FF/BRAM/DSP used, from :func:`parse_nextpnr_log`'s ``cells``."""
    return {res: sum(n * cells.get(c, (0, 0))[0] for c, n in table.items())
            for res, table in NEXTPNR_CELLS.items()}


_FASM_LUT = re.compile(r"^(\S+?\.SLICE[LM]_X\d)\.([A-D])LUT\.", re.M)


def fasm_lut_sites(fasm: str) -> int:
    """LUT6 sites a FASM file configures (any ``TILE.SLICE.xLUT.`` feature: logic, route-through,
    LUT RAM or shift register), one per slice and letter however many of its two bels are used."""
    return len(set(_FASM_LUT.findall(fasm)))


def _bitstream_writer():
    """``hw.xc7.bitstream.write_bitstream``, or the reason it cannot be used."""
    try:
        from ..xc7.bitstream import write_bitstream
    except ImportError as exc:
        return None, f"hw.xc7.bitstream (the FASM-to-frames writer) is not importable: {exc}"
    return write_bitstream, None


def clock_xdc(clock_hz: float) -> str:
    """The open flow's constraints: the fabric clock's period (the PS7's pins are dedicated, so
    there are no pins to place)."""
    return f"create_clock -period {1e9 / clock_hz:.3f} [get_nets {CLOCK_NET}]\n"


def build_open(board: Board, work: Path, out: Path, verilog: str, model, env: dict,
               clock_hz: float, steps: Steps, *, nextpnr_opts: list[str] = ()) -> dict:
    """Synthesize, place and route :func:`hw.zynq_top.zynq_verilog` of ``model`` around
    ``verilog`` (its ``gam_top.v``) for ``board`` and write ``out/gam.bit`` where the bitstream
    tools allow; return the flow's part of the report."""
    (work / "gam_top.v").write_text(verilog)
    with steps.step("generate_zynq"):
        (work / "gam_zynq.v").write_text(zynq_verilog(model))
    (work / "top.xdc").write_text(clock_xdc(clock_hz))
    _, estimate = synthesize(board, work, env, steps, TOP_NAME, ["gam_top.v", "gam_zynq.v"],
                             "yosys.log", clock_buffers=True, after="write_json top.json\n")

    nextpnr = env["NEXTPNR_XILINX"]
    cmd = [nextpnr, "--device", PART, "--json", "top.json", "-o", "xdc=top.xdc",
           "-o", "fasm=top.fasm", "--report", "top.report.json",
           # Missing the asked clock is a result (the report's Fmax), not a failed build.
           "--timing-allow-fail", *nextpnr_threads(nextpnr), *nextpnr_opts]
    log = work / "nextpnr.log"
    try:
        with steps.step("nextpnr_xilinx"):
            run_tool(cmd, work, env, log)
    except BuildError:
        used = placed_resources(parse_nextpnr_log(log.read_text(errors="replace"))["cells"])
        if overflow(board, used):
            raise FitFailure(used) from None
        raise
    parsed = parse_nextpnr_log(log.read_text(errors="replace"))
    if not parsed["fmax"]:
        raise BuildError(f"no routed Fmax in {log} (did nextpnr route the design? see its log)")

    result = {"top": f"{TOP_NAME} (hw.zynq_top: PS7, accelerator, AXI3 DMA on S_AXI_HP0)",
              "nextpnr_command": cmd[1:], "fasm": "work/top.fasm"}
    result.update(_bitstream(out, work, env, PART, steps))
    used = placed_resources(parsed["cells"])
    used["LUT"] = fasm_lut_sites((work / "top.fasm").read_text())
    fmax = {clk: {"achieved_mhz": round(mhz, 2), "constraint_mhz": round(want, 2)}
            for clk, (mhz, want) in parsed["fmax"].items()}
    slowest = min(v["achieved_mhz"] for v in fmax.values())
    asked = round(clock_hz / 1e6, 2)
    met = slowest >= asked
    return {
        **result,
        "utilization": utilization(used, board.resources),
        "synthesis_utilization": utilization(estimate, board.resources),
        "nextpnr_cells": {c: {"used": u, "available": a} for c, (u, a) in parsed["cells"].items()
                          if c in _REPORTED_CELLS},
        "fmax": fmax,
        "placed_fmax_mhz": {clk: round(mhz, 2) for clk, (mhz, _) in parsed["placed_fmax"].items()},
        "clock_mhz": asked if met else slowest,
        "timing_met": met,
        "clock_source": (f"FCLK0 at the {asked:g} MHz asked of nextpnr; routed Fmax {slowest:g} MHz"
                         if met else
                         f"nextpnr's routed Fmax: {asked:g} MHz was asked, timing allows "
                         f"{slowest:g} MHz (the host sets FCLK0 to it)"),
    }


def _bitstream(out: Path, work: Path, env: dict, part: str, steps: Steps) -> dict:
    """``out/gam.bit`` from ``work/top.fasm`` where the writer, ``xc7frames2bit`` and the prjxray
    database are at hand; else ``{"bitstream": None, "bitstream_note": why}``."""
    write_bitstream, why = _bitstream_writer()
    if why is None and not env.get("XC7FRAMES2BIT"):
        why = "xc7frames2bit (prjxray) not found: set XC7FRAMES2BIT or put it on PATH"
    if why is None and not env.get("PRJXRAY_DB"):
        why = "the prjxray database was not found: set PRJXRAY_DB"
    if why is not None:
        return {"bitstream": None, "bitstream_note": f"no .bit written: {why}"}
    bit = out / "gam.bit"
    with steps.step("bitstream"):
        write_bitstream(work / "top.fasm", bit, part=part, db_root=env["PRJXRAY_DB"],
                        tools_dir=str(Path(env["XC7FRAMES2BIT"]).parent))
    return {"bitstream": bit.name}
