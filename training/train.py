"""``python -m training.train``: train a streamable network for one task with GAM or a baseline.

Example (the shipped denoiser)::

    python -m training.train --task denoise --method gam --steps 15000 --batch 32 \\
        --data /work/data/photos --out runs/denoise_gam

``--data`` holds ``train/`` and ``val/`` folders of clean photos (``python -m
training.gather_data`` makes them). Runs resume from ``OUT/last.pt``; under ``torchrun`` they
use DistributedDataParallel. ``OUT/final.pt`` is the trained network, ready for
``python -m training.eval`` and ``python -m training.export``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

import torch

from .data import PatchSampler, read_folder
from .gam import METHODS, Trainer
from .tasks import TASKS, build_net, validation_pairs

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), required=True)
    p.add_argument("--method", choices=METHODS, default="gam",
                   help="gam (4 stages), ste (plain BNN from scratch), fp (full precision)")
    p.add_argument("--steps", type=int, default=15000, help="total optimizer steps (the budget)")
    p.add_argument("--fracs", type=float, nargs=4, default=(0.3, 0.15, 0.15, 0.4),
                   metavar=("S1", "S2", "S3", "S4"), help="GAM stage lengths as fractions")
    p.add_argument("--data", type=Path, required=True, help="folder with train/ and val/")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--patch", type=int, default=None, help="clean patch size (task default)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--width", type=int, default=None, help="override the task's channel width")
    p.add_argument("--blocks", type=int, default=None, help="override the number of binary layers")
    p.add_argument("--unshuffle", type=int, default=None,
                   help="override the host pixel unshuffle (the body's resolution divisor; "
                        "tasks that shuffle back by the same factor follow it)")
    p.add_argument("--w-bits", type=int, default=None, help="override the head/tail weight bits")
    p.add_argument("--stream-bits", type=int, default=None, help="override the residual stream bits")
    p.add_argument("--frac-bits", type=int, default=None, help="override the stream's fraction bits")
    p.add_argument("--head-kernel", type=int, choices=(1, 3), default=None,
                   help="override the fixed head's kernel (1 cuts its multipliers by 9)")
    p.add_argument("--tail-kernel", type=int, choices=(1, 3), default=None,
                   help="override the fixed tail's kernel")
    p.add_argument("--head-mid", type=int, default=None,
                   help="channels of a linear bottleneck in the head (3x3 to MID, 1x1 to the stream)")
    p.add_argument("--tail-mid", type=int, default=None,
                   help="channels of a linear bottleneck in the tail (1x1 to MID, then the tail)")
    p.add_argument("--bn-batches", type=int, default=100,
                   help="batches that re-estimate the BatchNorm statistics after the last stage (0: off)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--device", default="cpu",
                   help="torch device: cpu, cuda, cuda:N (under torchrun: cuda means cuda:LOCAL_RANK)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--val-every", type=int, default=500)
    return p


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    rank = int(os.environ.get("RANK", "0"))
    torch.manual_seed(a.seed)
    t = TASKS[a.task]
    try:
        train = list(read_folder(a.data / "train").values())
        val = validation_pairs(a.task, a.data / "val", crop=128)
    except FileNotFoundError as e:
        print(f"error: {e} (make the photo folders with python -m training.gather_data)", file=sys.stderr)
        return 1
    overrides = {k: v for k, v in (("width", a.width), ("blocks", a.blocks), ("w_bits", a.w_bits),
                                   ("stream_bits", a.stream_bits), ("frac_bits", a.frac_bits),
                                   ("head_kernel", a.head_kernel), ("tail_kernel", a.tail_kernel),
                                   ("head_mid", a.head_mid), ("tail_mid", a.tail_mid))
                 if v is not None}
    if a.unshuffle is not None:
        overrides["unshuffle"] = a.unshuffle
        if t["net"]["shuffle"] == t["net"]["unshuffle"]:
            overrides["shuffle"] = a.unshuffle
    net = build_net(a.task, quant=True, **overrides)
    sampler = PatchSampler(train, a.task, a.patch or t["patch"], a.batch, seed=a.seed * 1000 + rank,
                           sigma_range=t["sigma_range"], scale=t["scale"])
    cmd = "python -m training.train " + " ".join(shlex.quote(s) for s in (argv or sys.argv[1:]))
    meta = {"task": a.task, "command": cmd, "data": str(a.data), "batch": a.batch,
            "patch": a.patch or t["patch"], "lr": a.lr, "seed": a.seed}
    device = torch.device(a.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {a.device}: this torch sees no CUDA device", file=sys.stderr)
        return 1
    trainer = Trainer(net, sampler, val, a.out, a.method, a.steps, lr=a.lr, fracs=tuple(a.fracs),
                      log_every=a.log_every, val_every=a.val_every,
                      name=f"{a.task} {a.method}", meta=meta, device=device,
                      bn_batches=a.bn_batches)
    state = trainer.run()
    if trainer.rank == 0 and state is not None:
        torch.save(state, a.out / "final.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
