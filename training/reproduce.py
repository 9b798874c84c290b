"""``python -m training.reproduce``: the paper's four networks trained FP / GAM / STE / BCNN, one table.

Each run is one network (:data:`training.cost.NETWORKS`: Zero-DCE++ low light, PRN_r deraining,
SRResNet x4, FFDNet with residuals denoising), one method and one seed:

``fp``    the published full-precision network (GAM stage 1's optimizer schedule, no tanh);
``gam``   ``binarize`` + GAM's four stages (0.3/0.15/0.15/0.4 of the steps);
``ste``   ``binarize`` + the binary network trained directly (stage 4 for all the steps);
``bcnn``  ``complexify(binarize())`` at half the width + GAM's four stages: a complex channel
          is two real ones, so the complex network has the binary network's binary ops
          (4 x (C/2)^2 = C^2 per pixel and tap) and half its binary weights.

Binary convs get batch norm, PRN_r's instance norm (as the paper). Training uses the synthetic
degradations of :mod:`training.data` on the offline photos (``--data`` with ``train/`` and
``val/``), L1 loss, Adam; evaluation is PSNR/SSIM on the validation photos (centre crops of
``--val-crop`` pixels, fixed-seed degradations; denoising at sigma 25). ``--size`` picks the
networks' width and depth: ``paper`` (as published), ``reduced`` (what a CPU can train) or
``smoke`` (tests). Every run lives in ``OUT/<network>_<method>_s<seed>/``: an interrupted run
resumes from its checkpoint, a finished one (``result.json``) is skipped, and the table
(``OUT/results.md``, ``OUT/results.json``) is rewritten from all finished runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .binary import binarize
from .complex import complexify
from .cost import NETWORKS, _nets, count
from .data import PatchSampler, bicubic, degrade, read_folder, to_image, to_tensor
from .gam import Trainer
from .metrics import psnr, ssim

__all__ = ["SIZES", "TRAINING", "PAPER", "METHODS", "run_one", "results_table", "main"]

METHODS = ("fp", "gam", "ste", "bcnn")

#: network -> size -> constructor arguments (the published defaults spelled out for ``paper``).
SIZES = {
    "zerodce": {"paper": dict(width=32), "reduced": dict(width=16), "smoke": dict(width=4)},
    "prnr": {"paper": dict(width=32), "reduced": dict(width=16, stages=3, recursions=2),
             "smoke": dict(width=4, stages=2, recursions=1)},
    "srresnet": {"paper": dict(width=64), "reduced": dict(width=16, blocks=4),
                 "smoke": dict(width=4, blocks=1)},
    "ffdnet": {"paper": dict(width=96), "reduced": dict(width=32, layers=6),
               "smoke": dict(width=4, layers=3)},
}

#: network -> (task, SR scale, training sigma range, evaluation sigma).
TRAINING = {"zerodce": ("lowlight", 1, (0, 0), 0), "prnr": ("derain", 1, (0, 0), 0),
            "srresnet": ("sr", 4, (0, 0), 0), "ffdnet": ("denoise", 1, (15, 35), 25)}

#: The paper's published numbers that the text available here gives (PSNR dB, SSIM), by
#: network and method; the rest of its tables are not available here (docs/paper.md).
PAPER = {("ffdnet", "fp"): ("Kodak24 sigma 25", 32.28, None),
         ("ffdnet", "gam"): ("Kodak24 sigma 25", 29.93, None)}


def _net_args(name: str, method: str, size: str) -> dict:
    args = dict(SIZES[name][size])
    if method == "bcnn":
        args["width"] //= 2
    return args


def _build(name: str, method: str, size: str) -> torch.nn.Module:
    net = _nets()[name](**_net_args(name, method, size))
    if method != "fp":
        binarize(net, norm=NETWORKS[name][1], stage=1)
        if method == "bcnn":
            complexify(net)
    return net


def _val_pairs(name: str, images: dict, crop: int | None) -> list:
    task, scale, _, sigma = TRAINING[name]
    out = []
    for i, (stem, img) in enumerate(sorted(images.items())):
        if crop:
            y, x = max((img.shape[0] - crop) // 2, 0), max((img.shape[1] - crop) // 2, 0)
            img = img[y:y + crop, x:x + crop]
        m = 2 * scale  # FFDNet's unshuffle and the SR factor need whole blocks
        img = img[:img.shape[0] // m * m, :img.shape[1] // m * m]
        d, level = degrade(task, img, np.random.default_rng(1000 + i), sigma=sigma or None, scale=scale)
        out.append((stem, d, img, level))
    return out


@torch.no_grad()
def _evaluate(net: torch.nn.Module, pairs: list, device) -> dict:
    net.eval()
    ps, ss = [], []
    for _, d, c, level in pairs:
        y = to_image(net(to_tensor(d).to(device), torch.tensor([float(level)], device=device)).cpu())
        ps.append(psnr(y, c))
        ss.append(ssim(y, c))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


def input_scores(name: str, val: dict, crop: int | None) -> dict:
    """PSNR/SSIM of the degraded inputs themselves (SR: bicubic x4 upscaling), for reference."""
    scale = TRAINING[name][1]
    ps, ss = [], []
    for _, d, c, _ in _val_pairs(name, val, crop):
        y = d if scale == 1 else to_image(bicubic(to_tensor(d), scale))
        ps.append(psnr(y, c))
        ss.append(ssim(y, c))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}


def run_one(name: str, method: str, seed: int, a, train: list, val: dict) -> dict:
    """Train (or resume) one run and return its result; a finished run's result is read back."""
    folder = a.out / f"{name}_{method}_s{seed}"
    done = folder / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    task, scale, sigma_range, _ = TRAINING[name]
    torch.manual_seed(seed)
    net = _build(name, method, a.size)
    sampler = PatchSampler(train, task, a.patch, a.batch, seed=seed, sigma_range=sigma_range, scale=scale,
                           device=a.device)
    progress = _val_pairs(name, val, 64)
    t0 = time.time()
    trainer = Trainer(net, sampler, progress, folder, "fp" if method == "fp" else
                      "ste" if method == "ste" else "gam", a.steps, lr=a.lr,
                      log_every=a.log_every, val_every=a.steps, ckpt_every=a.ckpt_every,
                      name=f"{name} {method} s{seed}", device=a.device, bn_batches=a.bn_batches,
                      meta={"task": task, "size": a.size, "seed": seed})
    state = trainer.run()
    h, w = 64, 64
    c = count(net, torch.empty(1, 3, h // scale, w // scale), 25.0)
    result = {"network": name, "task": task, "method": method, "seed": seed, "size": a.size,
              "net_args": _net_args(name, method, a.size), "steps": a.steps, "batch": a.batch, "patch": a.patch,
              "val_crop": a.val_crop, "train_minutes": state["elapsed"] / 60,
              "wall_minutes": (time.time() - t0) / 60,
              "flops_per_px": c.flops / (h * w), "binary_ops_per_px": c.binary_ops / (h * w),
              "params": c.params,
              **_evaluate(net, _val_pairs(name, val, a.val_crop), trainer.device)}
    tmp = done.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    tmp.replace(done)
    return result


def _stat(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    mean = f"{np.mean(values):.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ± {np.std(values, ddof=1):.{digits}f} ({len(values)})"


def results_table(results: list[dict], inputs: dict | None = None) -> str:
    """Markdown: per network, PSNR and SSIM of each method (mean ± sample std (n) over seeds).

    ``inputs``: network -> :func:`input_scores`, the degraded input's column.
    """
    head = ("| network (task) | size | steps | metric | input | " + " | ".join(METHODS)
            + " | paper FP | paper binary |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for name in NETWORKS:
        mine = [r for r in results if r["network"] == name]
        if not mine:
            continue
        real = [r for r in mine if r["method"] != "bcnn"] or mine  # BCNN: half the width
        sizes = sorted({json.dumps(r["net_args"], sort_keys=True) for r in real})
        steps = sorted({r["steps"] for r in mine})
        for metric, digits in (("psnr", 2), ("ssim", 4)):
            cells = [_stat([r[metric] for r in mine if r["method"] == m], digits) for m in METHODS]
            paper = []
            for m in ("fp", "gam"):
                p = PAPER.get((name, m))
                v = None if p is None else (p[1] if metric == "psnr" else p[2])
                paper.append("n/a" if v is None else f"{v} ({p[0]})")
            base = (inputs or {}).get(name)
            base = "-" if base is None else f"{base[metric]:.{digits}f}"
            lines.append(f"| {name} ({mine[0]['task']}) | {'; '.join(sizes)} | "
                         f"{', '.join(map(str, steps))} | {metric.upper()} | {base} | " + " | ".join(cells)
                         + " | " + " | ".join(paper) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.reproduce", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="folder with train/ and val/ photos")
    p.add_argument("--out", type=Path, required=True, help="folder of the runs and the table")
    p.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--size", choices=("paper", "reduced", "smoke"), default="paper",
                   help="network width/depth: as published, reduced for a CPU, or tiny for tests")
    p.add_argument("--steps", type=int, default=15000, help="optimizer steps per run")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch", type=int, default=64, help="clean patch size (SR input: patch / 4)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--val-crop", type=int, default=None,
                   help="evaluate on centre crops of this size (default: whole photos)")
    p.add_argument("--bn-batches", type=int, default=100,
                   help="batches re-estimating BatchNorm statistics after training (0: off)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--report", action="store_true",
                   help="train nothing: rewrite the table from the finished runs in OUT")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--ckpt-every", type=int, default=200)
    return p


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.steps < 1 or a.batch < 1 or a.patch < 16 or a.patch % 8:
        print(f"error: --steps and --batch must be positive and --patch a multiple of 8 from 16 "
              f"(got {a.steps}, {a.batch}, {a.patch})", file=sys.stderr)
        return 1
    if torch.device(a.device).type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {a.device}: this torch sees no CUDA device", file=sys.stderr)
        return 1
    try:
        train = list(read_folder(a.data / "train").values())
        val = read_folder(a.data / "val")
    except FileNotFoundError as e:
        print(f"error: {e} (make the photo folders with python -m training.gather_data)", file=sys.stderr)
        return 1
    a.out.mkdir(parents=True, exist_ok=True)
    command = "python -m training.reproduce " + " ".join(shlex.quote(s) for s in (argv or sys.argv[1:]))
    grid = [] if a.report else [(n, m, s) for s in a.seeds for n in a.networks for m in a.methods]
    for i, (name, method, seed) in enumerate(grid):
        print(f"run {i + 1}/{len(grid)}: {name} {method} seed {seed}", flush=True)
        try:
            r = run_one(name, method, seed, a, train, val)
        except ValueError as e:  # a checkpoint of another budget in the run folder
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"  PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.4f}  ({r['train_minutes']:.1f} min)", flush=True)
    finished = [json.loads(p.read_text()) for p in sorted(a.out.glob("*/result.json"))]
    crops = {r["network"]: r["val_crop"] for r in finished}
    table = results_table(finished, {n: input_scores(n, val, c) for n, c in crops.items()})
    (a.out / "results.json").write_text(json.dumps(finished, indent=1))
    (a.out / "results.md").write_text(f"Made by `{command}`.\n\n{table}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
