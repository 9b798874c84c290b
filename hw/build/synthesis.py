"""The Yosys side of every build: the classic-ABC synthesis scripts, Booth products in LUTs,
the cell tables that turn Yosys' statistics into LUT/FF/BRAM/DSP, and the Xilinx flows' one
synthesis step with its fit check."""

from __future__ import annotations

import json
from pathlib import Path

from accel.boards import Board
from accel.config import LUT_PRODUCTS

from .fit import FitFailure, overflow
from .tools import Steps, run_tool

__all__ = ["BOOTH_LUT_PRODUCTS", "classic_synth", "synth_script", "cell_counts",
           "resources_from_cells", "synthesize"]

#: Yosys cell types counted as each resource, with the number of units one cell takes. Used
#: for the Xilinx estimate and, on Lattice, to say what does not fit when nextpnr gives up.
_CELLS = {
    "ecp5": {
        "LUT": {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 2},
        "FF": {"TRELLIS_FF": 1},
        "BRAM": {"DP16KD": 1, "PDPW16KD": 1},
        "DSP": {"MULT18X18D": 1, "ALU54B": 2},
    },
    "ice40": {
        "LUT": {"SB_LUT4": 1},
        "FF": {"SB_DFF": 1, "SB_DFFE": 1, "SB_DFFSR": 1, "SB_DFFR": 1, "SB_DFFS": 1,
               "SB_DFFESR": 1, "SB_DFFER": 1, "SB_DFFES": 1, "SB_DFFSS": 1, "SB_DFFESS": 1},
        "BRAM": {"SB_RAM40_4K": 1},
        "DSP": {"SB_MAC16": 1},
    },
    "xc7": {
        "LUT": {"LUT1": 1, "LUT2": 1, "LUT3": 1, "LUT4": 1, "LUT5": 1, "LUT6": 1,
                "RAM32M": 4, "RAM64M": 4, "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4,
                "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "SRL16E": 1, "SRLC32E": 1},
        "FF": {"FDRE": 1, "FDSE": 1, "FDCE": 1, "FDPE": 1},
        "BRAM": {"RAMB36E1": 1, "RAMB18E1": 0.5},
        "DSP": {"DSP48E1": 1},
    },
}


#: ECP5 and Xilinx synthesis map LUTs with classic ABC, per module of the kept hierarchy, in
#: place of each ``synth_*`` script's ABC9 step: on the denoiser WebAssembly Yosys 0.70's ABC9
#: failed every way tried (flattened: an assertion after 33 min on ECP5, a Wasm exception on
#: Xilinx; hierarchical: the reintegration name clash of YosysHQ/yosys#4349, and with
#: ``splitnets`` before it a Wasm exception in its XAIGER2 writer). On the CI model classic ABC
#: maps 14 % (Xilinx) to 18 % (ECP5) more LUTs than ABC9, so the figures lean high. iCE40
#: parts hold only small models and keep ``synth_ice40`` as it is. The latch check stands for
#: the script's ``check -latchonly -assert``, which Yosys 0.52 (Debian trixie) does not know.
_CLASSIC_LUTS = {  # family: (synth command and options, label after LUT mapping, the mapping)
    "ecp5": ("synth_ecp5", "-noflatten", "map_cells", """\
select -assert-none t:$_DLATCH* t:$dlatch t:$adlatch t:$dlatchsr
techmap -map +/lattice/latches_map.v
abc -lut 4:7 -dress
clean"""),
    "xc7": ("synth_xilinx", "-family xc7 -noiopad", "finalize", """\
opt_expr -mux_undef -noclkinv
abc -luts 2:2,3,6:5,10,20
clean
techmap -map +/xilinx/ff_map.v
xilinx_srl -fixed -minlen 3
techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6
xilinx_dffopt
opt_lut_ins -tech xilinx"""),
}


#: Run right after reading the RTL: the products hw.fixed_conv keeps out of hard multipliers
#: become radix-4 Booth logic (in any other form, synth_* maps every ``$mul`` to a DSP block).
BOOTH_LUT_PRODUCTS = f"booth *.{LUT_PRODUCTS}_*/t:$mul"


def classic_synth(family: str, top: str, clock_buffers: bool = False) -> tuple[str, str]:
    """Options of the ``synth_*`` call that stops before LUT mapping, and the script after it.

    Xilinx: ``clock_buffers`` for a top level with pins (a BUFG on each clock; amaranth
    instantiates the I/O buffers itself); without, a module alone (the estimate)."""
    command, options, resume, mapping = _CLASSIC_LUTS[family]
    if family == "xc7" and not clock_buffers:
        options += " -noclkbuf"
    return f"{options} -run :map_luts", f"{mapping}\n{command} {options} -top {top} -run {resume}:"


def synth_script(family: str, top: str, sources: list[str], stat: str, *,
                 clock_buffers: bool = False, after: str = "") -> str:
    """The whole Yosys script of a synthesis outside amaranth's Lattice plans (the Xilinx
    estimate and open flow, the cost benchmarks): read ``sources``, Booth products, the
    family's ``synth_*`` with the classic-ABC LUT mapping (:func:`classic_synth`), per-module
    cell statistics to ``stat``, then ``after`` (e.g. ``write_json top.json``)."""
    first, rest = classic_synth(family, top, clock_buffers)
    reads = "".join(f"read_verilog {src}\n" for src in sources)
    return (f"{reads}{BOOTH_LUT_PRODUCTS}\n{_CLASSIC_LUTS[family][0]} {first} -top {top}\n"
            f"{rest}\ntee -q -o {stat} stat -json\n{after}")


def cell_counts(stat_json: Path) -> dict[str, int]:
    data = json.loads(stat_json.read_text())
    return data["design"]["num_cells_by_type"]


def resources_from_cells(family: str, cells: dict[str, int]) -> dict[str, float]:
    return {res: sum(n * cells.get(c, 0) for c, n in table.items())
            for res, table in _CELLS[family].items()}


def synthesize(board: Board, work: Path, env: dict, steps: Steps, top: str, sources: list[str],
               log: str, *, clock_buffers: bool = False, after: str = "") -> tuple[dict, dict]:
    """The ``yosys`` step of the Xilinx flows: :func:`synth_script` of ``sources`` (in ``work``)
    as ``top.ys``, Yosys' report in ``top.rpt``, its output in ``log``; return the cell counts
    and the resources they take, or raise :class:`FitFailure` where those exceed ``board``'s."""
    (work / "top.ys").write_text(synth_script(board.family, top, sources, "top.stat.json",
                                              clock_buffers=clock_buffers, after=after))
    with steps.step("yosys"):
        run_tool([env["YOSYS"], "-q", "-l", "top.rpt", "top.ys"], work, env, work / log)
    cells = cell_counts(work / "top.stat.json")
    used = resources_from_cells(board.family, cells)
    if overflow(board, used):
        raise FitFailure(used)
    return cells, used
