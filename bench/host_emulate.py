"""Host emulation speed on a 640x480 clip vs the torch float32 model, in one process.

    python -m bench.host_emulate [--model models/denoise.gamir] [--frames 30]

The clip is the shipped ``samples/clip.mp4`` (real footage, 320x240) scaled to 640x480, unless
``--clip`` names another. Three numbers, all on the same decoded frames:

- ``host.run`` end to end with the emulate backend: decode, pixel steps, the bit-exact fast
  spec, encode H.264 (what a user sees);
- the emulate backend alone (pixel steps + :func:`spec.run_tensor`, no video I/O);
- the torch float32 implementation of the same layers (:class:`bench.torch_float.TorchFloatModel`,
  float conv2d, not bit-exact) with the same pixel steps.

Prints frames per second and writes JSON (default ``bench/results/host_emulate.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

import spec
from bench.torch_float import TorchFloatModel
from host.backend import EmulateBackend
from host.pipeline import restore_frames
from host.run import MODELS_DIR
from host.run import main as host_main

REPO = Path(__file__).resolve().parent.parent


def scaled_clip(src: Path, dst: Path, width: int, height: int, frames: int) -> list[np.ndarray]:
    """Write ``src`` scaled to ``width`` x ``height`` (first ``frames``) to ``dst``; return them."""
    out_frames = []
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        v = out.add_stream("libx264", rate=vin.average_rate)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "12"}
        for frame in inp.decode(vin):
            if len(out_frames) == frames:
                break
            big = frame.reformat(width=width, height=height, format="yuv420p",
                                 interpolation="BICUBIC")
            big.pts = None
            out.mux(v.encode(big))
            out_frames.append(big.to_ndarray(format="rgb24"))
        out.mux(v.encode(None))
    return out_frames


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "denoise.gamir")
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "clip.mp4")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "host_emulate.json")
    a = ap.parse_args(argv)
    width, height = (int(v) for v in a.size.split("x"))
    model = spec.load(a.model)

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / f"clip_{width}x{height}.mp4"
        frames = scaled_clip(a.clip, clip, width, height, a.frames)
        n = len(frames)
        if model.image_channels == 1:
            frames = [f.mean(axis=2, keepdims=True).round().astype(np.uint8) for f in frames]

        t = time.perf_counter()
        rc = host_main(["--backend", "emulate", "--model", str(a.model), "-o",
                        str(Path(tmp) / "out.mp4"), str(clip)])
        t_cli = time.perf_counter() - t
        if rc != 0:
            raise SystemExit(f"host.run failed with status {rc}")

    backend = EmulateBackend(model)
    list(restore_frames(model, backend, frames[:1]))  # warm-up (thread pool, caches)
    t = time.perf_counter()
    emulated = list(restore_frames(model, backend, frames))
    t_emu = time.perf_counter() - t

    tmodel = TorchFloatModel(model)

    def torch_restore(img):
        x0 = torch.from_numpy(spec.model_input(model, img).astype(np.float32))
        y = tmodel(x0.permute(2, 0, 1)[None].contiguous())
        y = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        return spec.model_output(model, y)

    torch_restore(frames[0])
    t = time.perf_counter()
    floats = [torch_restore(f) for f in frames]
    t_torch = time.perf_counter() - t
    diff = float(np.mean([np.abs(e.astype(int) - f).mean() for e, f in zip(emulated, floats)]))

    result = {
        "model": str(a.model.relative_to(REPO) if a.model.is_relative_to(REPO) else a.model),
        "model_name": model.name,
        "model_digest": model.digest(),
        "layers": len(model.layers),
        "frame": [width, height],
        "frames": n,
        "host_run_emulate_fps": n / t_cli,
        "emulate_backend_fps": n / t_emu,
        "torch_float32_fps": n / t_torch,
        "emulate_over_torch": t_torch / t_emu,
        "mean_abs_diff_emulate_vs_torch_float": diff,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],  # the machine may be shared: read with this
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    print(f"{n} frames {width}x{height}, model {result['model']} ({len(model.layers)} layers)")
    print(f"host.run --backend emulate (decode+emulate+encode) {result['host_run_emulate_fps']:7.2f} fps")
    print(f"emulate backend (bit-exact fast spec)            {result['emulate_backend_fps']:7.2f} fps")
    print(f"torch float32, same layers                       {result['torch_float32_fps']:7.2f} fps")
    print(f"emulate / torch speed: {result['emulate_over_torch']:.2f}x; mean |emulate - torch| "
          f"{diff:.3f} (float rounding); load average {result['load_average_1min']:.1f} on "
          f"{result['cpus']} CPUs")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
