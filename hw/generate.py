"""Generate the accelerator's Verilog and manifest for a model file.

``python -m hw.generate --model M [--fold F] [--max-width W] -o DIR`` writes ``DIR/gam_top.v``
(module ``gam_top``) and ``DIR/manifest.json``, which the host driver and the builds read:
model digest and shape hash, network shape, max width, folding, register map, parameter
regions, stream widths and the predicted cycles per frame.

``--fold`` is the language of :mod:`accel.fold` (``auto``, the default, ``full``, ``lut:N``,
``ii:N``, a JSON list or ``@file.json``), resolved once here for the model.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import os
import sys
from pathlib import Path

import spec
from spec.model import Model, ModelError

from accel import config
from accel.fold import DEFAULT_FOLD, HELP as FOLD_HELP, resolve_fold
from accel.manifest import Manifest

__all__ = ["generate", "main"]


def generate(model: Model, out_dir, *, fold=DEFAULT_FOLD, max_width: int = config.DEFAULT_MAX_WIDTH,
             fps: float = config.DEFAULT_FPS, clock_hz: float = config.DEFAULT_CLOCK_HZ,
             frame=config.DEFAULT_FRAME, dsp: int | None = None,
             lut_inputs: int = 4, lutram_depth: int = 0) -> Manifest:
    """Write ``gam_top.v`` and ``manifest.json`` into ``out_dir``; return the manifest.

    ``dsp`` caps the hard multipliers the design asks for (:func:`accel.perf.dsp_allocation`);
    ``None`` leaves every product to synthesis. ``lut_inputs`` is the target's LUT size (4 or
    6, :attr:`accel.boards.Board.lut_inputs`): the binary PE arrays are shaped to it, the
    arithmetic is the same. ``lutram_depth``: weight memories of at most this many rows go to
    LUT RAM (:class:`hw.pipeline.Pipeline`)."""
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")
    from amaranth.back import verilog

    from .top import Top

    model = model.validate()
    folds = resolve_fold(model, fold, fps=fps, clock_hz=clock_hz, frame=frame,
                         max_width=max_width)
    top = Top(model, max_width=max_width, fold=folds, dsp=dsp, lut_inputs=lut_inputs,
              lutram_depth=lutram_depth)
    text = verilog.convert(top, name="gam_top", emit_src=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gam_top.v").write_text(text)
    man = Manifest.describe(model, folds, max_width=max_width, frame=frame, clock_hz=clock_hz,
                            dsp_budget=dsp, dsp_terms=top.pipeline.dsp_terms)
    (out / "manifest.json").write_text(man.to_json())
    return man


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m hw.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model file (.gamir)")
    ap.add_argument("--fold", default=DEFAULT_FOLD, help=FOLD_HELP)
    ap.add_argument("--max-width", type=cli.positive_int, default=config.DEFAULT_MAX_WIDTH,
                    help="line buffer width (accelerator pixels)")
    ap.add_argument("--fps", type=cli.positive_float, default=config.DEFAULT_FPS,
                    help="target frames/s for --fold auto")
    ap.add_argument("--clock-mhz", type=cli.positive_float, default=config.DEFAULT_CLOCK_HZ / 1e6,
                    help="clock for --fold auto (MHz)")
    ap.add_argument("--frame", type=cli.frame_size, default=cli.frame_text(config.DEFAULT_FRAME),
                    metavar="WxH", help="accelerator frame for --fold auto and the cycle prediction")
    ap.add_argument("--dsp", type=cli.natural_int, default=None,
                    help="hard multiplier budget (e.g. 140 for an ECP5-85F, 200 for a Zynq-7020);"
                         " the fixed convs' other products become Booth multipliers in LUTs "
                         "(default: no budget, synthesis decides)")
    ap.add_argument("--lut-inputs", type=int, choices=(4, 6), default=4,
                    help="the target's LUT inputs: 4 (ECP5, iCE40) or 6 (Xilinx 7); shapes the "
                         "binary PE arrays (default 4)")
    ap.add_argument("-o", "--out", required=True, help="output directory")
    args = ap.parse_args(argv)
    return cli.run(lambda: _main(args), errors=(OSError, ModelError, ValueError))


def _main(args) -> int:
    model = spec.load(args.model)
    h, w = args.frame
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise cli.CliError(f"-o {args.out!r} is a file: give a folder")
    man = generate(model, out, fold=args.fold, max_width=args.max_width, fps=args.fps,
                   clock_hz=args.clock_mhz * 1e6, frame=(h, w), dsp=args.dsp,
                   lut_inputs=args.lut_inputs)
    perf_ = man.performance
    print(f"wrote {args.out}/gam_top.v and manifest.json: fold {man.fold.as_json()}, "
          f"{perf_['cycles_per_frame']} cycles per {h}x{w} frame "
          f"({perf_['fps_at_clock']:.1f} fps at {args.clock_mhz:g} MHz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
