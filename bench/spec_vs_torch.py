"""Fast spec vs torch float32 on the same layers and frame, in one process.

    python -m bench.spec_vs_torch [--channels 32] [--binary-layers 8] [--width 640 --height 480]

Prints Mpx/s for each and their ratio (fast spec / torch), checks the fast spec is bit-exact
against the plain reference on a crop, and writes the numbers as JSON
(default ``bench/results/local/spec_vs_torch.json``; the recorded one: ``bench/results/``). Each
side gets a warm-up run, then the best of
``--repeat`` runs is kept (best-of filters out other load on a shared machine).
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench import local_result, write_result
import spec
from bench.torch_float import TorchFloatModel


def _best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv=None) -> dict:
    ap = cli.ArgumentParser(prog="python -m bench.spec_vs_torch",
                            description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=cli.positive_int, default=32,
                    help="channels of the random model's layers")
    ap.add_argument("--binary-layers", type=cli.natural_int, default=8,
                    help="binary 3x3 layers of the random model")
    ap.add_argument("--width", type=cli.positive_int, default=640, help="image width")
    ap.add_argument("--height", type=cli.positive_int, default=480, help="image height")
    ap.add_argument("--seed", type=int, default=0, help="random model and image seed")
    ap.add_argument("--repeat", type=cli.positive_int, default=3,
                    help="timed runs of each implementation (the best counts)")
    ap.add_argument("--out", type=Path, default=local_result("spec_vs_torch.json"),
                    help="results JSON to write (the recorded one: bench/results/spec_vs_torch.json)")
    args = ap.parse_args(argv)

    model = spec.random_model(args.seed, channels=args.channels, n_binary=args.binary_layers,
                              unshuffle=1, shuffle=1, noise_channel=False, image_channels=3)
    x0 = spec.model_input(model, spec.random_image(args.seed, args.height, args.width, 3))
    crop = x0[:24, :40]
    exact = np.array_equal(spec.run_tensor(model, crop, "fast"),
                           spec.run_tensor(model, crop, "reference"))

    tmodel = TorchFloatModel(model)
    xt = torch.from_numpy(x0.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
    t_spec = _best(lambda: spec.run_tensor(model, x0, "fast"), args.repeat)
    t_torch = _best(lambda: tmodel(xt), args.repeat)
    px = args.width * args.height
    result = {
        "model": {"channels": args.channels, "binary_layers": args.binary_layers,
                  "layers": len(model.layers), "seed": args.seed},
        "frame": [args.width, args.height],
        "fast_spec_s": t_spec,
        "torch_float32_s": t_torch,
        "fast_spec_mpx_s": px / t_spec / 1e6,
        "torch_float32_mpx_s": px / t_torch / 1e6,
        "ratio_spec_over_torch": t_torch / t_spec,
        "fast_spec_bit_exact_on_crop": exact,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    print(f"frame {args.width}x{args.height}, {args.channels} channels, "
          f"{args.binary_layers} binary layers ({len(model.layers)} layers)")
    print(f"fast spec      {result['fast_spec_mpx_s']:8.3f} Mpx/s  ({t_spec * 1e3:.0f} ms/frame)"
          f"  bit-exact vs reference: {exact}")
    print(f"torch float32  {result['torch_float32_mpx_s']:8.3f} Mpx/s  ({t_torch * 1e3:.0f} ms/frame)")
    print(f"ratio (fast spec / torch float32): {result['ratio_spec_over_torch']:.2f}")
    write_result(result, args.out)
    return result


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
