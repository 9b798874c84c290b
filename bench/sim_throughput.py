"""Cycle-accurate throughput of the generated top on a 640x480 image vs ``accel.perf``'s prediction.

    python -m bench.sim_throughput [--model M] [--fold F] [--image-size 480x640]

One 640x480 image (``spec.random_image``, after the model's pixel steps) goes through the
Verilator model of ``gam_top`` with the input offered every cycle and the output always ready
(the conditions ``accel.perf.frame_cycles`` assumes). The bench counts the clock cycles from the
first input beat to the last output beat on the bus, checks the result against the spec (the
run fails on any mismatch) and against the CYCLES register, and prints them next to the
prediction, with pixels per clock and frames per second at 100 MHz. Also reports the
simulator's speed (simulated cycles per second of wall time) and the build time.

``--model`` defaults to a seeded random model of the streamable family (8 channels, two binary
layers, named in the output): the shipped 32-channel denoiser fully unfolded takes many minutes
just to convert to Verilog, and folded it needs millions of cycles per 640x480 frame at the
simulator's few thousand cycles per second (``--model models/denoise.gamir --fold lut:40000``
runs it). Writes JSON (default ``bench/results/local/sim_throughput.json``; the
recorded one: ``bench/results/``).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import platform
import sys
import time
from pathlib import Path

from bench import local_result, write_result
import spec
from sim.top import TopSim

REPO = Path(__file__).resolve().parent.parent
CLOCK_HZ = 100e6


def main(argv=None) -> int:
    ap = cli.ArgumentParser(prog="python -m bench.sim_throughput",
                            description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="model file (default: a random 8-channel model)")
    ap.add_argument("--fold", default="full", help="as hw.generate (full, auto, JSON, ...)")
    ap.add_argument("--image-size", default="480x640", help="HxW of the image (before unshuffle)")
    ap.add_argument("--quick-build", action="store_true",
                    help="compile the C++ model at -O0 (faster build, slower simulation)")
    ap.add_argument("--json", type=Path, default=local_result("sim_throughput.json"),
                    help="results JSON to write (the recorded one: bench/results/sim_throughput.json)")
    args = ap.parse_args(argv)

    if args.model is not None:
        model, model_name = spec.load(args.model), str(args.model)
    else:
        model = spec.random_model(3, image_channels=3, channels=8, n_binary=2, unshuffle=1,
                                  noise_channel=False)
        model_name = "spec.random_model(3, image_channels=3, channels=8, n_binary=2)"
    ih, iw = (int(v) for v in args.image_size.lower().split("x"))
    x = spec.model_input(model, spec.random_image(1, ih, iw, model.image_channels))
    h, w = x.shape[:2]

    t0 = time.time()
    sim = TopSim(model, max_width=w, fold=args.fold, optimize=not args.quick_build)
    build_s = time.time() - t0
    t0 = time.time()
    res = sim.scenario(seed=0).frames([x]).run()
    run_s = time.time() - t0
    measured = res["frame_cycles"][0]
    predicted = sim.predicted_cycles(h, w)
    out = {
        "model": model_name,
        "layers": [f"{layer.kind} {layer.kernel}x{layer.kernel} {layer.c_in}->{layer.c_out} "
                   f"{layer.stage.name}" for layer in model.layers],
        "fold": sim.manifest.fold.as_json(),
        "image": [ih, iw], "tensor": [h, w, model.input_channels],
        "cycles_measured": measured,
        "cycles_register": res["cycles_register"][0],
        "cycles_predicted": predicted,
        "prediction_error": (predicted - measured) / measured,
        "pixels_per_clock": h * w / measured,
        "fps_at_100MHz": CLOCK_HZ / measured,
        "bit_exact": res["mismatched_pixels"] == 0,
        "simulated_cycles": res["cycles_simulated"],
        "simulated_cycles_per_second": res["cycles_per_second"],
        "build_and_generate_seconds": build_s,
        "simulation_seconds": run_s,
        "machine": platform.processor() or platform.machine(),
    }
    print(f"model: {model_name}")
    print(f"fold: {out['fold']}")
    print(f"{iw}x{ih} image -> {w}x{h}x{model.input_channels} tensor: {measured} cycles measured "
          f"(CYCLES register {out['cycles_register']}), accel.perf predicts {predicted} "
          f"({100 * out['prediction_error']:+.2f} %)")
    print(f"{out['pixels_per_clock']:.3f} tensor pixels per clock, "
          f"{out['fps_at_100MHz']:.1f} frames/s at 100 MHz; bit-exact: {out['bit_exact']}")
    print(f"simulator: {out['simulated_cycles_per_second']:.0f} cycles/s "
          f"({res['cycles_simulated']} cycles in {run_s:.1f} s), "
          f"generate+build {build_s:.1f} s")
    write_result(out, args.json)
    print(json.dumps(out))
    return 0 if out["bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
