"""``python -m sim.check --model MODEL IMAGE_OR_FOLDER [--fold F]``: the Verilog equals the spec.

Runs any model on any images through the Verilator model of the top that ``hw.generate``
emits for it (parameters loaded over AXI4-Lite as a driver does) and compares every output
pixel with the spec (``spec.run_tensor`` on the same tensor-0 frames, pixel steps included).
Prints the pixels checked, the mismatches (and the first one's position), the cycles of each
frame next to ``accel.perf``'s prediction, and the simulated clock cycles per second of wall
time. Exit status (:mod:`gamir.cli`): 0 only when every pixel is bit-exact; 1 on a mismatch or a
bad input (one ``error:`` line); 2 on a bad command line.

Images: PNG/JPEG/... files (read with imageio), ``.npy`` uint8 arrays (H, W, C), or a folder
of them. ``--frames N`` repeats each image N times back to back (several frames in flight).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import spec
from accel.fold import DEFAULT_FOLD, HELP as FOLD_HELP
from spec.model import ModelError

__all__ = ["main", "read_images"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".npy"}


class UsageError(cli.CliError):
    """A problem with the command line or the inputs: one ``error:`` line, exit status 1."""


def read_images(path: Path) -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, C) uint8 image) for a file or every image file of a folder."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise UsageError(f"{path}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    elif path.exists():
        files = [path]
    else:
        raise UsageError(f"{path}: no such file or folder")
    if any(f.suffix.lower() != ".npy" for f in files):
        import imageio.v3 as iio  # [dev]; outside the try below: missing, it is named as such
    out = []
    for f in files:
        try:
            if f.suffix.lower() == ".npy":
                img = np.load(f, allow_pickle=False)
            else:
                img = iio.imread(f)
        except Exception as e:  # noqa: BLE001 - any reader failure is the file's problem
            raise UsageError(f"{f}: cannot read the image ({e})") from None
        img = np.asarray(img)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.dtype != np.uint8 or img.ndim != 3:
            raise UsageError(f"{f}: expected 8-bit pixels (H, W, C), got {img.dtype} {img.shape}")
        out.append((f.name, img))
    return out


def fit_channels(model, img: np.ndarray, name: str) -> np.ndarray:
    """Drop an alpha channel; grey to RGB or RGB to grey is refused (say what the model takes)."""
    c = model.image_channels
    if img.shape[2] == c:
        return img
    if img.shape[2] == 4 and c == 3:
        return np.ascontiguousarray(img[:, :, :3])
    raise UsageError(f"{name}: image has {img.shape[2]} channels, model {model.name!r} takes {c}")


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m sim.check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="model file (.gamir)")
    ap.add_argument("images", help="an image file, a .npy array, or a folder of them")
    ap.add_argument("--fold", default=DEFAULT_FOLD, help=FOLD_HELP)
    ap.add_argument("--max-width", type=cli.positive_int, default=None,
                    help="line buffer width to generate (default: power of two >= widest frame)")
    ap.add_argument("--frames", type=cli.positive_int, default=1,
                    help="send each image N times back to back")
    ap.add_argument("--stall", type=_probability, default=0.0,
                    help="probability in [0, 1) of a valid gap (input) and of a ready stall "
                         "(output) per cycle; cycles then include the stalls")
    ap.add_argument("--waves", action="store_true",
                    help="record a VCD of the run (sim_build/waves/); large for big frames")
    ap.add_argument("--quick-build", action="store_true",
                    help="compile the C++ model at -O0: builds faster, simulates slower")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    return cli.run(lambda: _check(args), errors=(OSError,))


def _probability(text: str) -> float:
    """``--stall``: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be in [0, 1)")
    return value


def default_max_width(frames) -> int:
    """The line-buffer width to generate: a power of two >= the widest frame, at least 16, so
    nearby frame sizes share one cached build."""
    widest = max(x.shape[1] for x in frames)
    return max(16, 1 << (widest - 1).bit_length())


def _check(args) -> int:
    from accel.fold import resolve_fold
    from accel.regmap import FoldError

    from .runner import SimFailure
    from .top import TopSim

    try:
        model = spec.load(args.model)
    except (OSError, ModelError) as e:
        raise UsageError(str(e)) from None
    if args.json is not None and not args.json.parent.is_dir():
        raise UsageError(f"--json: folder {str(args.json.parent)!r} does not exist")
    named = []
    for name, img in read_images(Path(args.images)):
        try:
            x = spec.model_input(model, fit_channels(model, img, name))
        except ModelError as e:
            raise UsageError(f"{name}: {e}") from None
        named.append((name, x))
    frames = [x for _, x in named]
    max_width = args.max_width or default_max_width(frames)
    if max(x.shape[1] for x in frames) > max_width:
        raise UsageError(f"--max-width {max_width} is narrower than the widest frame")
    try:
        fold = resolve_fold(model, args.fold, max_width=max_width)  # before anything is built
        sim = TopSim(model, max_width=max_width, fold=fold, optimize=not args.quick_build)
    except (FoldError, ValueError) as e:
        raise UsageError(f"--fold {args.fold}: {e}") from None
    sc = sim.scenario(seed=0)
    for name, x in named:
        sc.frames([x] * args.frames, gap=args.stall, stall=args.stall)
    try:
        res = sc.run(fail_fast=False, waves=args.waves)
        ok = True
    except SimFailure as e:
        res, ok = e.result, False
        if res.get("status") is None:  # the bench did not finish: a hang or a crash
            print(f"sim.check: simulation failed: {e}", file=sys.stderr)
            return 1
    cycles = res.get("frame_cycles", [])
    report = {"model": str(args.model), "fold": sim.manifest.fold.as_json(), "max_width": max_width,
              "frames": [], "pixels_checked": res.get("pixels_checked", 0),
              "mismatched_pixels": res.get("mismatched_pixels", 0),
              "first_error": res.get("first_error"),
              "cycles_simulated": res.get("cycles_simulated", 0),
              "simulated_cycles_per_second": res.get("cycles_per_second", 0.0),
              "bit_exact": ok, "waves": res.get("waves")}
    k = 0
    for name, x in named:
        h, w = x.shape[:2]
        for _ in range(args.frames):
            report["frames"].append({"image": name, "tensor": [h, w, x.shape[2]],
                                     "cycles": cycles[k] if k < len(cycles) else None,
                                     "predicted_cycles": sim.predicted_cycles(h, w)})
            k += 1
    for f in report["frames"]:
        h, w, c = f["tensor"]
        print(f"{f['image']}: {w}x{h}x{c} tensor, {f['cycles']} cycles "
              f"(accel.perf predicts {f['predicted_cycles']})")
    print(f"pixels checked: {report['pixels_checked']}")
    print(f"mismatches: {report['mismatched_pixels']} pixels"
          + (f" -- {report['first_error']}" if report["first_error"] else ""))
    if cycles:
        print(f"cycles per frame: {', '.join(str(c) for c in cycles)}")
    print(f"simulated {report['cycles_simulated']} cycles at "
          f"{report['simulated_cycles_per_second']:.0f} cycles/s")
    if report["waves"]:
        print(f"waveform: {report['waves']}")
    print("bit-exact" if ok else "NOT bit-exact")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
