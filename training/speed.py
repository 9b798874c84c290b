"""Training speed of the shipped denoiser's shape: patches per second of the trainer's own step.

    python -m training.speed [--device cpu|cuda] [--batch 32] [--precision auto] [--compile]
                             [--threads 1] [--data DIR] [--timed 10] [--out FILE]

The network is the shipped one's shape (the denoise preset with ``--width 40 --blocks 8
--unshuffle 2 --head-dw --tail-dw``), its batches drawn by :class:`training.data.PatchSampler`
on ``--device`` (denoise, sigma 0..50, 64 x 64 patches) from the photos of ``DIR/train`` (or
``DIR``), else scikit-image's bundled photos. Times, for each GAM stage, ``--warm`` steps
(``--compile``'s compilation included) and then ``--timed`` steps of
:meth:`training.gam.Trainer.calibrate`, the exact step ``python -m training.train`` runs
(batch, forward, L1, backward, Adam); and the sampler alone. Prints and writes JSON (default:
``gamir_train_speed_<device>.json`` in the system's temporary folder) with the load average
before and after: on a shared machine, read the times with it.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

SHAPE = dict(width=40, blocks=8, unshuffle=2, head_dw=True, tail_dw=True)


def _photos(data: Path | None) -> list:
    from .data import read_folder

    if data is None:
        from skimage import data as skdata

        names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
        return [getattr(skdata, n)() for n in names]
    folder = data / "train" if (data / "train").is_dir() else data
    try:
        return list(read_folder(folder).values())
    except FileNotFoundError as e:
        raise cli.CliError(f"--data: {e}") from None


def main(argv=None) -> int:
    from .gam import PRECISIONS

    ap = cli.ArgumentParser(prog="python -m training.speed", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    ap.add_argument("--batch", type=cli.positive_int, default=32, help="patches per step (default: 32)")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="training steps' arithmetic, as training.train's (default: auto)")
    ap.add_argument("--compile", action="store_true", help="torch.compile with CUDA graphs (CUDA only)")
    ap.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--data", type=Path, metavar="DIR",
                    help="training photos (DIR/train or DIR) (default: scikit-image's six photos)")
    ap.add_argument("--warm", type=cli.natural_int, default=3, help="untimed steps per stage first (default: 3)")
    ap.add_argument("--timed", type=cli.positive_int, default=10, help="timed steps per stage (default: 10)")
    ap.add_argument("--out", type=Path, help="JSON file (default: gamir_train_speed_<device>.json "
                                             "in the temporary folder)")
    a = ap.parse_args(argv)

    def body() -> int:
        import torch

        from .data import PatchSampler
        from .gam import Trainer
        from .tasks import build_net

        try:
            device = torch.device(a.device)
            if device.type == "cuda" and not torch.cuda.is_available():
                raise cli.CliError(f"--device {a.device}: this torch sees no CUDA device")
        except RuntimeError:
            raise cli.CliError(f"--device {a.device!r}: must be cpu, cuda or cuda:N") from None
        torch.set_num_threads(a.threads)
        torch.manual_seed(0)
        load_before = os.getloadavg()
        sampler = PatchSampler(_photos(a.data), "denoise", 64, a.batch, seed=(0, 0), sigma_range=(0, 50),
                               scale=1, device=device)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                trainer = Trainer(build_net("denoise", **SHAPE), sampler, [], Path(tmp), "gam", None,
                                  device=device, bn_batches=0, gain_batches=0, precision=a.precision,
                                  compile=a.compile)
            except ValueError as e:
                raise cli.CliError(str(e)) from None
            measured = trainer.calibrate(seconds=1e9, warm=a.warm, timed=a.timed)  # time only
        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        sampler.reseed(0)
        sampler()
        sync()
        t = time.perf_counter()
        for i in range(a.timed):
            sampler.reseed(i)
            sampler()
        sync()
        sampler_s = (time.perf_counter() - t) / a.timed
        per_step = sum(f * s for f, s in zip(trainer.fracs, measured["sec_per_step"].values()))
        result = {"shape": SHAPE, "batch": a.batch, "device": str(device),
                  "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                                  else platform.processor() or platform.machine()),
                  "precision": trainer.precision, "compile": a.compile, "threads": a.threads,
                  "torch": torch.__version__, "sec_per_step_by_stage": measured["sec_per_step"],
                  "sec_per_step": per_step, "patches_per_s": a.batch / per_step,
                  "sampler_sec_per_batch": sampler_s, "load_average_before": load_before,
                  "load_average_after": os.getloadavg()}
        stages = ", ".join(f"stage {k} {v * 1000:.1f}" for k, v in measured["sec_per_step"].items())
        print(f"{device} ({result['device_name']}), {trainer.precision}{', compiled' if a.compile else ''}, "
              f"batch {a.batch}: {per_step * 1000:.1f} ms/step ({stages} ms), "
              f"{result['patches_per_s']:.0f} patches/s; sampler {sampler_s * 1000:.1f} ms/batch; "
              f"load {load_before[0]:.1f} -> {result['load_average_after'][0]:.1f}")
        out = a.out or Path(tempfile.gettempdir()) / f"gamir_train_speed_{device.type}.json"
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(result, indent=1) + "\n")
        except OSError as e:
            raise cli.CliError(f"--out {out}: cannot write ({e.strerror or e})") from None
        print(f"wrote {out}")
        return 0

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
