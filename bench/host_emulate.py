"""Host emulation speed: the native kernel vs the numpy spec vs torch float32, in one process.

    python -m bench.host_emulate [--model models/denoise.gamir] [--sizes 640x480,1280x720]
                                 [--frames 30] [--slow-frames 3] [--act]

The clip is the shipped ``samples/clip.mp4`` (real footage, 320x240, 30 frames) scaled to
each size, unless ``--clip`` names another, played again from its start to make ``--frames``.
For each size, on the same decoded frames:

- ``host.run --backend emulate`` end to end: decode, pixel steps, the bit-exact emulation
  (the native kernel by default), the grid and temporal filters, H.264 encode, overlapped as
  ``host.run`` runs them: what a user sees, with its CPU time per frame and the cores it kept
  busy; beside it the same stages one after another, each timed in wall clock and CPU time
  (the split per stage, :func:`stage_split`);
- the emulate backend alone (pixel steps + the emulation, no video I/O), with the native
  kernel (``impl="native"``: the frames in flight on one thread each, as ``host.run`` runs
  them; one frame alone, in the interleaved comparison, in strips) and with the numpy path
  (``impl="fast"``);
- the torch float32 implementation of the same layers (:class:`bench.torch_float.TorchFloatModel`,
  float conv2d, not bit-exact) with the same pixel steps.

The slow paths (numpy, torch) run ``--slow-frames`` frames, interleaved frame by frame with
the native path so that all three see the same machine load; the ratios are of median frame
times. The native output is checked equal to the numpy output on those frames. A second
native/torch ratio runs both on one thread (the layers alone, no pixel steps): on a loaded
machine torch's thread pool suffers more than two independent strips, so the one-thread
ratio is the fairer per-core comparison there. Prints fps and ratios and writes JSON (default
``bench/results/local/host_emulate.json``; ``--out bench/results/host_emulate.json`` replaces
the recorded one) with the load average before and after: on a shared
machine read fps with it, and compare ratios.

``--act`` runs the model with the affine stage's activation (``act="prelu"``) added to every
binary layer's affine stage, as training's ``--act rprelu`` unit has it (:func:`with_activation`:
seeded slopes and offsets, not trained values; the speed does not depend on them), and writes
``bench/results/local/host_emulate_act.json`` by default.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dataclasses

import av
import numpy as np
import torch

from bench import local_result, write_result
import spec
from bench.torch_float import TorchFloatModel
from host.backend import EmulateBackend
from host.media import open_sink, open_source
from host.pipeline import postprocessed, restore_frames
from host.run import MODELS_DIR
from host.run import main as host_main

REPO = Path(__file__).resolve().parent.parent


def scaled_clip(src: Path, dst: Path, width: int, height: int, frames: int) -> list[np.ndarray]:
    """Write ``frames`` frames of ``src`` scaled to ``width`` x ``height`` to ``dst`` (``src``
    played again from its start where it is shorter: the shipped clip has 30); return them."""
    out_frames = []
    with av.open(str(src)) as inp:
        vin = inp.streams.video[0]
        rate = vin.average_rate
        scaled = [f.reformat(width=width, height=height, format="yuv420p",
                             interpolation="BICUBIC") for f in inp.decode(vin)]
    with av.open(str(dst), "w") as out:
        v = out.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "12"}
        for k in range(frames):
            big = scaled[k % len(scaled)]
            big.pts = None
            out.mux(v.encode(big))
            out_frames.append(big.to_ndarray(format="rgb24"))
        out.mux(v.encode(None))
    return out_frames


def with_activation(model: spec.Model, seed: int = 0) -> spec.Model:
    """``model`` with the activation on every binary layer's affine stage: per-channel shifts
    0..7 (slopes 1 .. 2**-7) and offsets within an eighth of the output range, drawn from
    ``seed``."""
    rng = np.random.default_rng(seed)
    layers = []
    for layer in model.layers:
        st = layer.stage
        if layer.kind == "binary" and isinstance(st, spec.Affine):
            hi = spec.arith.signed_range(st.out_bits)[1]
            st = dataclasses.replace(
                st, act="prelu",
                act_shift=rng.integers(0, spec.arith.MAX_ACT_SHIFT + 1, layer.c_out),
                act_offset=rng.integers(-(hi // 8), hi // 8 + 1, layer.c_out))
        layers.append(dataclasses.replace(layer, stage=st))
    return dataclasses.replace(model, layers=layers, name=f"{model.name}+act").validate()


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t


def _timed_cpu(fn, *args):
    """(result, wall seconds, CPU seconds of every thread of this process)."""
    c, t = time.process_time(), time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t, time.process_time() - c


#: host.run's stages in the order a frame meets them, as :func:`stage_split` names them.
STAGES = ("decode", "pixel_steps", "kernel", "grid_filter", "temporal_filter", "encode")


def stage_split(model: spec.Model, backend: EmulateBackend, clip: Path, out: Path) -> dict:
    """Milliseconds per frame of each stage of ``host.run``, wall clock and CPU time (all
    threads), one after another on the same frames (``host.run`` overlaps them: decoding and
    encoding in threads of their own, frames in flight on one kernel thread each): decoding to
    RGB (PyAV), the pixel steps (``spec.model_input`` / ``model_output``, in C where the
    kernel runs), the kernel (``backend.run`` on the stream of frames, as ``host.run`` calls
    it), the filters after it (``spec.degrid`` and ``spec.temporal``, in C where the kernel
    runs, each alone, at the model's noise level; 0 for a model without one), and x264's
    encoding with the RGB to YUV conversion (``host.media.Sink``, the settings ``host.run``
    uses). CPU time is what a loaded machine changes least: on an idle one the stages share
    its cores."""
    source = open_source(clip, model.image_channels)
    t: dict[str, list[float]] = {}

    def timed(stage, fn):
        out, wall, cpu = _timed_cpu(fn)
        w, c = t.setdefault(stage, [0.0, 0.0])
        t[stage] = [w + wall, c + cpu]
        return out

    try:
        frames = timed("decode", lambda: [f for f, _ in source.frames()])
        tensors = timed("pixel_steps", lambda: [spec.model_input(model, f) for f in frames])
        ys = timed("kernel", lambda: list(backend.run(tensors)))
        imgs = timed("pixel_steps", lambda: [spec.model_output(model, y) for y in ys])
        timed("grid_filter", lambda: list(postprocessed(model, imgs)))
        timed("temporal_filter", lambda: list(postprocessed(model, imgs, grid=False,
                                                            temporal=True)))
        with open_sink(source, out, overwrite=True) as sink:
            def encode():
                for img in imgs:
                    sink.write(img)
                sink.commit()
            timed("encode", encode)
    finally:
        source.close()
    ms = 1000 / len(frames)
    split = {f"{k}_ms": t[k][0] * ms for k in STAGES}
    split.update({f"{k}_cpu_ms": t[k][1] * ms for k in STAGES})
    split["sum_ms"] = sum(split[f"{k}_ms"] for k in STAGES)
    split["sum_cpu_ms"] = sum(split[f"{k}_cpu_ms"] for k in STAGES)
    return split


def bench_size(model: spec.Model, model_path: Path, clip_src: Path, width: int, height: int,
               frames: int, slow_frames: int, without_act: spec.Model | None = None) -> dict:
    """All measurements at one frame size; returns the JSON record. With ``without_act`` (the
    model before :func:`with_activation`) also the activation's cost: the native kernel with
    and without it on one thread."""
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / f"clip_{width}x{height}.mp4"
        imgs = scaled_clip(clip_src, clip, width, height, frames)
        n = len(imgs)
        rc, t_cli, cpu_cli = _timed_cpu(host_main, ["--backend", "emulate", "--model",
                                                    str(model_path), "-o",
                                                    str(Path(tmp) / "out.mp4"), str(clip)])
        if rc != 0:
            raise SystemExit(f"host.run failed with status {rc}")
        split = stage_split(model, EmulateBackend(model, impl="native"), clip,
                            Path(tmp) / "split.mp4")
    if model.image_channels == 1:
        imgs = [f.mean(axis=2, keepdims=True).round().astype(np.uint8) for f in imgs]

    native_be = EmulateBackend(model, impl="native")
    numpy_be = EmulateBackend(model, impl="fast")
    tmodel = TorchFloatModel(model)

    def emulate(backend, img):
        return next(restore_frames(model, backend, [img]))

    def torch_restore(img):
        x0 = torch.from_numpy(spec.model_input(model, img).astype(np.float32))
        y = tmodel(x0.permute(2, 0, 1)[None].contiguous())
        y = y[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
        return spec.model_output(model, y)

    for fn in (lambda i: emulate(native_be, i), lambda i: emulate(numpy_be, i), torch_restore):
        fn(imgs[0])  # warm-up: thread pools, caches, torch's first call
    t_native, t_numpy, t_torch, same, diffs = [], [], [], True, []
    for img in imgs[:slow_frames]:  # interleaved: the three paths see the same load
        a, dt = _timed(emulate, native_be, img)
        t_native.append(dt)
        b, dt = _timed(emulate, numpy_be, img)
        t_numpy.append(dt)
        f, dt = _timed(torch_restore, img)
        t_torch.append(dt)
        same &= bool(np.array_equal(a, b))
        diffs.append(float(np.abs(a.astype(int) - f).mean()))
    _, t_all = _timed(lambda: list(restore_frames(model, native_be, imgs)))
    runner1 = spec.native.NativeRunner(model, n_threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t1_native, t1_torch = [], []
    for img in imgs[:slow_frames]:
        x0 = spec.model_input(model, img)
        xt = torch.from_numpy(x0.astype(np.float32)).permute(2, 0, 1)[None].contiguous()
        t1_native.append(_timed(runner1.run, x0)[1])
        t1_torch.append(_timed(tmodel, xt)[1])
    torch.set_num_threads(threads)
    med = statistics.median
    extra = {}
    if without_act:  # per frame with, without, without, with: drifting load cancels
        base1 = spec.native.NativeRunner(without_act, n_threads=1)
        t_with, t_without = [], []
        for img in imgs[:slow_frames]:
            x0 = spec.model_input(model, img)
            t = [_timed(r.run, x0)[1] for r in (runner1, base1, base1, runner1)]
            t_with.append(t[0] + t[3])
            t_without.append(t[1] + t[2])
        extra["native_with_over_without_act_one_thread"] = med(t_with) / med(t_without)
    return {
        "frame": [width, height],
        "frames": n,
        "slow_frames": len(t_native),
        "host_run_emulate_fps": n / t_cli,
        # CPU time of every thread per frame, and how many cores it kept busy on average
        "host_run_cpu_ms_per_frame": cpu_cli * 1000 / n,
        "host_run_cores_busy": cpu_cli / t_cli,
        "native_fps": n / t_all,
        "native_fps_interleaved": 1 / med(t_native),
        "numpy_fps": 1 / med(t_numpy),
        "torch_float32_fps": 1 / med(t_torch),
        "native_over_torch": med(t_torch) / med(t_native),
        "native_over_numpy": med(t_numpy) / med(t_native),
        "native_over_torch_one_thread_each": med(t1_torch) / med(t1_native),
        "native_equals_numpy": same,
        "mean_abs_diff_native_vs_torch_float": statistics.mean(diffs),
        "host_run_stages_sequential": split,
        # > 1: what overlapping the stages gains (host.run also loads the model and opens files)
        "host_run_over_sequential": n / t_cli * split["sum_ms"] / 1000,
        **extra,
    }


def main(argv=None) -> dict:
    ap = cli.ArgumentParser(prog="python -m bench.host_emulate",
                            description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=MODELS_DIR / "denoise.gamir",
                    help="model file to run")
    ap.add_argument("--clip", type=Path, default=REPO / "samples" / "clip.mp4",
                    help="video whose frames are scaled to each size")
    ap.add_argument("--sizes", type=cli.frame_sizes, default="640x480,1280x720",
                    help="comma-separated WxH frame sizes")
    ap.add_argument("--frames", type=cli.positive_int, default=30,
                    help="frames per size for host.run and the native path")
    ap.add_argument("--slow-frames", type=cli.positive_int, default=3,
                    help="frames for the numpy and torch paths (interleaved with native)")
    ap.add_argument("--act", action="store_true",
                    help="add the affine stage's activation to every binary layer's affine stage "
                         "(seeded constants; see the module docstring)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results JSON to write (default: bench/results/local/host_emulate.json, "
                         "host_emulate_act.json with --act; bench/results/ holds the recorded ones)")
    a = ap.parse_args(argv)
    out = a.out or local_result(f"host_emulate{'_act' if a.act else ''}.json")
    model = spec.load(a.model)
    with tempfile.TemporaryDirectory() as tmp:
        model_path, without_act = a.model, None
        if a.act:
            model, without_act = with_activation(model), model
            model_path = Path(tmp) / "model_act.gamir"
            spec.save(model, model_path)
        return _bench(a, model, model_path, out, without_act)


def _bench(a, model: spec.Model, model_path: Path, out: Path, without_act) -> dict:
    """Runs every size for ``model`` (stored at ``model_path``), prints, writes ``out``."""
    load_before = os.getloadavg()[0]
    path = EmulateBackend(model).path
    print(f"model {a.model.name} ({len(model.layers)} layers); emulation: {path}")
    records = []
    for height, width in a.sizes:
        r = bench_size(model, model_path, a.clip, width, height, a.frames, a.slow_frames,
                       without_act)
        records.append(r)
        print(f"{width}x{height}: host.run end to end {r['host_run_emulate_fps']:6.2f} fps | "
              f"native {r['native_fps']:6.2f} fps | numpy {r['numpy_fps']:5.2f} fps | "
              f"torch float32 {r['torch_float32_fps']:5.2f} fps | native/torch "
              f"{r['native_over_torch']:5.2f}x (one thread each "
              f"{r['native_over_torch_one_thread_each']:5.2f}x), native/numpy "
              f"{r['native_over_numpy']:5.2f}x | "
              f"native == numpy: {r['native_equals_numpy']}")
        st = r["host_run_stages_sequential"]
        names = {"pixel_steps": "pixel steps", "grid_filter": "grid filter",
                 "temporal_filter": "temporal filter", "encode": "x264 encode"}
        print("  host.run's stages one after another, ms per frame wall (CPU): " + ", ".join(
            f"{names.get(k, k)} {st[f'{k}_ms']:.1f} ({st[f'{k}_cpu_ms']:.1f})" for k in STAGES)
            + f" (sum {st['sum_ms']:.1f} ({st['sum_cpu_ms']:.1f}), {1000 / st['sum_ms']:.2f} "
              f"fps); host.run overlapping them: {r['host_run_over_sequential']:.2f}x that, "
              f"{r['host_run_cpu_ms_per_frame']:.1f} ms CPU per frame on "
              f"{r['host_run_cores_busy']:.2f} cores on average")
        if without_act:
            print(f"  native with / without the activation, one thread: "
                  f"{r['native_with_over_without_act_one_thread']:.3f}")
    result = {
        "model": str(a.model.resolve().relative_to(REPO) if a.model.resolve().is_relative_to(REPO)
                     else a.model),
        "model_name": model.name,
        "act_added": a.act,
        "model_digest": spec.digest(model),
        "layers": len(model.layers),
        "emulation": path,
        "sizes": records,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        # The machine may be shared: read fps with these; the ratios are same-process.
        "load_average_1min_before": load_before,
        "load_average_1min_after": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(),
        "numpy": np.__version__,
        "torch": torch.__version__,
    }
    print(f"load average {load_before:.1f} before, {result['load_average_1min_after']:.1f} after, "
          f"on {result['cpus']} CPUs")
    write_result(result, out)
    return result


if __name__ == "__main__":
    sys.exit(cli.run(main, errors=(OSError, ValueError)))
