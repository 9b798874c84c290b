"""The native kernel's builds against each other on one frame, in one process: which build
(avx512, avx2, plain C) runs a model how fast here.

    python -m bench.kernel_variants [--model models/denoise.gamir] [--size 640x480]
                                    [--repeats 9] [--variants avx512,avx2]

Every build the CPU runs gets ``spec.native.NativeRunner(model, n_threads=1)`` and one with
the threads ``host.run`` uses, on a seeded random image of the size (after the model's pixel
steps); their outputs must be equal. They run in turns, ``--repeats`` rounds, so all see the
same machine load; each reports its best round as CPU time (``time.process_time``, one thread:
what the machine's load changes least) and wall time (all threads). Prints ms per frame and
the ratio to the first build named, writes JSON (default
``bench/results/local/kernel_variants.json``) with the load average before and after.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)

import os
import sys
import time
from pathlib import Path

import numpy as np

import spec
from bench import write_result
from host.run import MODELS_DIR

#: This machine's builds with vector kernels (the plain C one alone where there are none).
VECTOR_BUILDS = [v for v in spec._native.build.VARIANTS if v != "generic"] or ["generic"]


def _seconds(runner, x0: np.ndarray, clock) -> float:
    t = clock()
    runner.run(x0)
    return clock() - t


def main(argv=None) -> dict:
    ap = cli.ArgumentParser(prog="python -m bench.kernel_variants",
                            description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "denoise.gamir",
                    help="model file to run")
    ap.add_argument("--size", type=cli.frame_size, default="640x480", help="WxH image size")
    ap.add_argument("--repeats", type=cli.positive_int, default=9, help="rounds of turns")
    ap.add_argument("--variants", default=",".join(VECTOR_BUILDS),
                    help="comma-separated builds to compare (those this CPU runs; generic is "
                         "plain C, far slower), the first being the reference of the ratios")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default: bench/results/local/kernel_variants.json)")
    a = ap.parse_args(argv)
    height, width = a.size
    model = spec.load(a.model)
    img = np.random.default_rng(0).integers(0, 256, (height, width, model.image_channels),
                                            np.uint8)
    x0 = spec.model_input(model, img)
    runners = {}
    for variant in a.variants.split(","):
        lib = spec.native._library(variant) if variant in spec._native.build.VARIANTS else \
            f"{variant}: not a build of this machine ({', '.join(spec._native.build.VARIANTS)})"
        if isinstance(lib, str):
            raise cli.CliError(f"cannot run {lib}")
        runners[variant] = (spec.native.NativeRunner(model, n_threads=1, variant=variant),
                            spec.native.NativeRunner(model, variant=variant))
    load_before = os.getloadavg()[0]
    want = None
    for one, _ in runners.values():
        got = one.run(x0)  # also the warm-up
        if want is not None and not np.array_equal(got, want):
            raise cli.CliError("the builds' outputs differ")
        want = got
    cpu = {v: float("inf") for v in runners}
    wall = dict(cpu)
    for _ in range(a.repeats):
        for v, (one, many) in runners.items():
            cpu[v] = min(cpu[v], _seconds(one, x0, time.process_time))
            wall[v] = min(wall[v], _seconds(many, x0, time.perf_counter))
    ref = next(iter(runners))
    threads = spec.native.threads()
    print(f"{a.model.name} at {width}x{height}, ms per frame (best of {a.repeats}); "
          f"ratios to {ref}:")
    for v in runners:
        print(f"  {v:8s} 1 thread CPU {cpu[v] * 1e3:7.1f} ({cpu[ref] / cpu[v]:.2f}x), "
              f"{threads} threads wall {wall[v] * 1e3:7.1f} ({wall[ref] / wall[v]:.2f}x)")
    result = {"model": str(a.model), "model_digest": spec.digest(model), "size": [width, height],
              "repeats": a.repeats, "threads": threads,
              "cpu_ms_one_thread": {v: t * 1e3 for v, t in cpu.items()},
              "wall_ms_threads": {v: t * 1e3 for v, t in wall.items()},
              "source_hash": spec._native.build.source_hash(), "cpus": os.cpu_count(),
              "load_average_1min_before": load_before,
              "load_average_1min_after": os.getloadavg()[0]}
    print(f"load average {load_before:.1f} before, {result['load_average_1min_after']:.1f} after")
    write_result(result, a.out, "kernel_variants.json")
    return result


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
