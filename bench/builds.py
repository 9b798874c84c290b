"""Build the shipped models for every board and print the docs/builds.md results table.

``python -m bench.builds [--boards B,...] [--fold F] [--fps N] [--tools T] [--clock-mhz F]
[--flow F] [-o DIR] [MODEL ...]``

Models default to ``models/*.gamir``. Each build goes to ``DIR/<model>-<board>`` (``DIR``:
``-o``, default ``bench/results/local/builds``) with its own
report.json; the table goes to stdout and ``DIR/table.md``, all reports to
``DIR/reports.json``. A model that does not fit a board prints the build's error and the
others go on.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import sys
from pathlib import Path

from bench import local_result
import spec
from hw import build

__all__ = ["table", "main"]


def table(reports: list[dict]) -> str:
    """Markdown rows: utilization, Fmax per clock, pixels per clock, fps, tools and the wall
    and CPU seconds of each step, per board and model."""
    head = ("| model | board | fold | LUT | FF | BRAM | DSP | Fmax MHz | clock MHz | px/clk "
            "| fps 640x480 | fps 1280x720 | tools | seconds wall/CPU |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for r in reports:
        u = r["utilization"]
        cell = lambda k: f"{u[k]['used']:g} / {u[k]['available']:g} ({u[k]['percent']:.0f} %)"  # noqa: E731
        fmax = (", ".join(f"{name} {f['achieved_mhz']:.1f}" for name, f in r["fmax"].items())
                or "-")
        clock = (f"{r['clock_mhz']:g}" if r["fmax"] else f"({r['clock_mhz']:g} assumed)")
        tools = ", ".join(f"{Path(t['path']).name} {t['version']}" for t in r["tools"].values())
        board = r["board"] + (f" ({r['flow']})" if r.get("family") == "xc7" else "")
        rows.append(f"| {r['model']['name']} | {board} | {r['fold_arg']} | {cell('LUT')} "
                    f"| {cell('FF')} | {cell('BRAM')} | {cell('DSP')} | {fmax} | {clock} "
                    f"| {r['pixels_per_clock']:.3g} | {r['fps']['640x480']:.1f} "
                    f"| {r['fps']['1280x720']:.1f} | {tools} | {build.step_times(r)} |")
    return head + "\n".join(rows) + "\n"


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.builds", description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="*", help="model files (default: models/*.gamir)")
    ap.add_argument("--boards", default="ulx3s-85f,orangecrab-85f,pynq-z2",
                    help="comma-separated boards to build for")
    ap.add_argument("--fold", default="auto", help="as hw.build: full, auto, lut:N, ii:N, JSON, @file")
    ap.add_argument("--fps", type=cli.positive_float, default=30.0,
                    help="frame rate --fold auto aims at")
    ap.add_argument("--max-width", type=cli.positive_int, default=None,
                    help="line-buffer width (default: a 1280-pixel-wide frame; wider frames are tiled)")
    ap.add_argument("--dsp", type=cli.natural_int, default=None,
                    help="multiplier budget (default: the device's)")
    ap.add_argument("--tools", choices=build.TOOL_CHOICES, default="auto",
                    help="native or YoWASP tools, as python -m hw.build takes it")
    ap.add_argument("--clock-mhz", type=cli.positive_float, default=None,
                    help="clock to time for (default: each board's)")
    ap.add_argument("--flow", choices=build.FLOWS, default="auto",
                    help="the Zynq's flow, as python -m hw.build takes it")
    ap.add_argument("-o", "--out", default=local_result("builds"),
                    help="folder for the builds and the results")
    args = ap.parse_args(argv)
    models = [spec.load(p) for p in (args.models or sorted(Path("models").glob("*.gamir")))]
    if not models:
        print("error: no models: give model files or ship models/*.gamir", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for model in models:
        for board in args.boards.split(","):
            try:
                r = build.build(model, board, out / f"{model.name}-{board}", fold=args.fold,
                                fps=args.fps, dsp=args.dsp, max_width=args.max_width,
                                tools=args.tools, clock_mhz=args.clock_mhz, flow=args.flow)
            except (build.BuildError, ValueError) as exc:
                print(f"{model.name} on {board}: error: {exc}", file=sys.stderr)
                continue
            print(build.format_report(r), flush=True)
            reports.append(r)
    text = table(reports)
    (out / "table.md").write_text(text)
    (out / "reports.json").write_text(json.dumps(reports, indent=2) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
