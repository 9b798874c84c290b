"""Instructions per frame of the native kernel, counted by callgrind: a speed measure that the
machine's load does not change (wall clock on a shared machine does).

    python -m bench.kernel_instructions [--model models/denoise.gamir] [--size 640x480]
                                        [--variant avx2]

Runs ``spec.native.NativeRunner(model, n_threads=1)`` on a seeded random image of the size
(after the model's pixel steps) under ``valgrind --tool=callgrind``, once for 1 frame and once
for 2; the difference of the two totals is one frame's kernel (Python's start-up cancels).
Prints it and writes JSON (default ``bench/results/local/kernel_instructions.json``).
Needs valgrind (Debian: ``apt-get install valgrind``); takes about a minute. Valgrind runs no
AVX-512 code, so the ``avx512`` build cannot be counted: the default is the ``avx2`` build
(``--variant generic`` counts the plain C one); time the avx512 build by wall clock.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import spec
from bench import write_result
from host.run import MODELS_DIR

#: The kernel builds valgrind can run, fastest first.
COUNTABLE = tuple(v for v in spec._native.build.VARIANTS if v != "avx512")


def run_frames(model_path: str, width: int, height: int, frames: int, variant: str) -> None:
    """The measured work (what callgrind runs): ``frames`` frames through the kernel."""
    from spec import native
    model = spec.load(model_path)
    img = np.random.default_rng(0).integers(0, 256, (height, width, model.image_channels),
                                            np.uint8)
    x0 = spec.model_input(model, img)
    runner = native.NativeRunner(model, n_threads=1, variant=variant)
    for _ in range(frames):
        runner.run(x0)


def _count(model: Path, width: int, height: int, frames: int, variant: str, tmp: Path) -> int:
    out = tmp / f"callgrind.{frames}"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c",
           f"from bench.kernel_instructions import run_frames; "
           f"run_frames({str(model)!r}, {width}, {height}, {frames}, {variant!r})"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise cli.CliError(f"callgrind failed: {r.stderr.strip().splitlines()[-1:]}")
    return int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1))


def main(argv=None) -> dict:
    ap = cli.ArgumentParser(prog="python -m bench.kernel_instructions",
                            description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "denoise.gamir",
                    help="model file to run")
    ap.add_argument("--size", type=cli.frame_size, default="640x480", help="WxH image size")
    ap.add_argument("--variant", default=COUNTABLE[0], choices=COUNTABLE,
                    help="kernel build to count (valgrind runs no AVX-512)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON (default: bench/results/local/kernel_instructions.json)")
    a = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise cli.CliError("valgrind is not installed (Debian: apt-get install valgrind)")
    height, width = a.size
    model = spec.load(a.model)
    variant = a.variant
    lib = spec.native._library(variant)
    if isinstance(lib, str):
        raise cli.CliError(f"the native kernel is unavailable: {lib}")
    with tempfile.TemporaryDirectory() as tmp:
        one, two = (_count(a.model, width, height, n, variant, Path(tmp)) for n in (1, 2))
    per_frame = two - one
    print(f"{a.model.name} at {width}x{height}, native kernel ({variant}, 1 thread): "
          f"{per_frame / 1e6:.1f} M instructions per frame")
    result = {"model": str(a.model), "model_digest": spec.digest(model), "size": [width, height],
              "variant": variant, "instructions_per_frame": per_frame,
              "source_hash": spec._native.build.source_hash(), "cpus": os.cpu_count()}
    write_result(result, a.out, "kernel_instructions.json")
    return result


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
