"""Build gamir for a board: a bitstream through the open tools, or an estimate + Vivado project
(Zynq), and a report: ``python -m hw.build`` (:mod:`hw.build`)."""

from __future__ import annotations

import shlex
from pathlib import Path

from accel.boards import BOARDS, BoardError, get_board
from gamir import cli

from .flow import FLOWS, build
from .report import format_report
from .tools import TOOL_CHOICES, BuildError

__all__ = ["main"]


def main(argv=None) -> int:
    from accel.fold import DEFAULT_FOLD, HELP as FOLD_HELP  # numpy: after __main__'s handlers

    parser = cli.ArgumentParser(
        prog="python -m hw.build", description=__doc__.split("\n")[0],
        epilog=f"boards: {', '.join(f'{b.name} ({b.note})' for b in BOARDS.values())}")
    parser.add_argument("--board", required=True, help="target board (see below)")
    parser.add_argument("--model", required=True, help="model file (.gamir)")
    parser.add_argument("--fold", default=DEFAULT_FOLD,
                        help=FOLD_HELP + " (auto: 30 fps at 1280x720)")
    parser.add_argument("--max-width", type=cli.positive_int, default=None,
                        help="widest accelerator frame (default: 1280 / unshuffle)")
    parser.add_argument("--fps", type=cli.positive_float, default=30.0,
                        help="frames/s at 1280x720 that --fold auto aims at")
    parser.add_argument("--dsp", type=cli.natural_int, default=None,
                        help="hard multipliers the design may use (default: 90 %% of the device's)")
    parser.add_argument("--lutram-depth", type=cli.natural_int, default=0, metavar="ROWS",
                        help="weight memories of at most ROWS rows in LUT RAM, not block RAM "
                             "(for a design whose block RAM runs out: a folded layer's weights are"
                             " wide and shallow, and block RAM holds them a 32-bit lane per block)")
    parser.add_argument("--tools", choices=TOOL_CHOICES, default="auto",
                        help="auto: tools named by YOSYS, NEXTPNR_ECP5, ... or native ones on PATH,"
                             " else YoWASP; native: never YoWASP; yowasp: only YoWASP")
    parser.add_argument("--clock-mhz", type=cli.positive_float, default=None,
                        help="clock to time for (the ECP5 bitstream's PLL; default: the board's)")
    parser.add_argument("--flow", choices=FLOWS, default="auto",
                        help="Zynq: open (nextpnr-himbaechel-xilinx place and route), vivado "
                             "(Yosys estimate + Vivado project); auto: open where its tools are "
                             "found, else vivado. Lattice boards: open only")
    parser.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                        help="more nextpnr options, one string with '=': "
                             "--nextpnr-opts='--seed 3 --placer sa'")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    return cli.run(lambda: _main(args), errors=(BoardError, BuildError, ValueError, OSError))


def _main(args) -> int:
    import spec  # ModelError and FoldError are ValueErrors

    board = get_board(args.board)
    model = spec.load(args.model)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise BuildError(f"-o {args.out!r} is a file: give a folder")
    report = build(model, board, args.out, fold=args.fold, max_width=args.max_width,
                   fps=args.fps, dsp=args.dsp, tools=args.tools, clock_mhz=args.clock_mhz,
                   flow=args.flow, nextpnr_opts=shlex.split(args.nextpnr_opts),
                   lutram_depth=args.lutram_depth)
    print(format_report(report))
    return 0
