"""``python -m training.eval``: a PSNR/SSIM table on a folder of images, and the scoring it uses.

Each row is one restorer: a run checkpoint (``--checkpoint``, the torch network in eval mode),
an exported model file (``--model``, run through the integer spec) or a classical baseline
(``--baseline``, :data:`BASELINES`). Images come from a folder of clean images degraded
synthetically with a fixed seed (``--data``), or from paired folders (``--pairs``)::

    python -m training.eval --task denoise --data data/photos/val --sigma 25 \\
        --checkpoint runs/denoise_gam/final.pt --model models/denoise.gamir --baseline nlm

:func:`score`, :func:`torch_restore`, :func:`spec_restore` and :func:`net_costs` are shared
with ``training.export``.
"""

from __future__ import annotations

from gamir import cli

cli.catch_signals(__name__)  # before the heavy imports: Ctrl-C while they load is one line

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import spec

from .binary import conv_macs
from .checkpoint import load_run
from .data import read_pairs
from .errors import TrainingError
from .metrics import psnr, ssim
from .streamable import StreamNet
from .tasks import TASKS, crop_multiple, run_net, validation_pairs

__all__ = ["main", "table", "score", "torch_restore", "spec_restore", "net_costs", "classical",
           "BASELINES", "TASK_BASELINE"]


def score(restore, pairs) -> dict:
    """Mean PSNR/SSIM of ``restore(degraded, level)`` over [(name, degraded, clean, level)]."""
    rows = []
    for name, d, c, level in pairs:
        y = restore(d, level)
        rows.append((name, psnr(y, c), ssim(y, c)))
    return {"psnr": float(np.mean([r[1] for r in rows])), "ssim": float(np.mean([r[2] for r in rows])),
            "images": [{"name": n, "psnr": round(p, 3), "ssim": round(s, 4)} for n, p, s in rows]}


def torch_restore(net: StreamNet):
    return lambda d, level: run_net(net, d, level)


def spec_restore(model: spec.Model):
    def run(d, level):
        m = model.with_noise_level(int(level)) if model.steps.noise_channel else model
        return spec.restore(m, d)
    return run


def net_costs(net: StreamNet, task: str) -> dict:
    """Parameters and per-output-pixel cost: full-precision MACs and binary (XNOR) MACs.

    Counted at one output pixel of the restored image; FLOPs = 2 x MACs (the usual count),
    binary ops reported separately as the paper does.
    """
    cfg = net.config
    size = 8 * cfg["unshuffle"] * cfg["shuffle"]
    x = torch.zeros(1, cfg["image_channels"], size, size)
    fp, binary = conv_macs(net, x, torch.tensor([25.0]))
    out_px = (size * cfg["shuffle"] // cfg["unshuffle"]) ** 2
    params = sum(p.numel() for p in net.parameters())
    return {"params": params, "flops_per_px": 2 * fp / out_px, "binary_ops_per_px": 2 * binary / out_px}


#: Classical baselines, and the one each task's tables and gallery compare against.
BASELINES = ("nlm", "wavelet", "bicubic", "gamma", "opening", "input")
TASK_BASELINE = {"denoise": "nlm", "sr": "bicubic", "lowlight": "gamma", "derain": "opening"}


def classical(task: str, method: str, sigma: int = 25) -> list[tuple[str, object]]:
    """Classical baselines as [(setting, restore)]: a grid the caller tunes over.

    Denoising uses scikit-image's non-local means (``h`` from 0.3 to 0.8 sigma, 5x5 patches,
    13x13 search) or wavelet shrinkage (BayesShrink or VisuShrink, soft thresholds, in YCbCr,
    ``db2`` or ``sym8``, the true sigma); picking the best setting on the evaluation images
    themselves favours the baseline. SR uses the antialiased
    bicubic of :func:`training.data.bicubic` (a=-0.5, MATLAB convention). Low light uses a
    global gamma that lifts the mean brightness to 0.3..0.5, deraining a grey opening per
    channel (erosion then dilation, 3x3..7x7: it removes bright structures thinner than the
    window, which is what a rain streak is). ``input`` scores the degraded image itself
    (same-size tasks).
    """
    from skimage.restoration import denoise_nl_means

    def to_u8(x):
        return np.clip(np.floor(x * 255 + 0.5), 0, 255).astype(np.uint8)

    s = sigma / 255.0
    if method == "nlm":
        return [(f"h={f}*sigma", lambda d, level, f=f: to_u8(denoise_nl_means(
            d / 255.0, h=f * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True,
            channel_axis=2))) for f in (0.3, 0.4, 0.5, 0.6, 0.8)]
    if method == "wavelet":
        from skimage.restoration import denoise_wavelet
        return [(f"{rule} {wavelet}", lambda d, level, rule=rule, wavelet=wavelet: to_u8(
            denoise_wavelet(d / 255.0, sigma=s, wavelet=wavelet, mode="soft", method=rule,
                            convert2ycbcr=True, rescale_sigma=True, channel_axis=2)))
                for rule in ("BayesShrink", "VisuShrink") for wavelet in ("db2", "sym8")]
    if method == "gamma":  # low light: a global gamma that lifts the mean to a target
        def lift(d, target):
            y = d / 255.0
            mean = float(np.clip(y.mean(), 1e-3, 0.999))
            return to_u8(y ** (np.log(target) / np.log(mean)))
        return [(f"mean to {t}", lambda d, level, t=t: lift(d, t)) for t in (0.3, 0.4, 0.5)]
    if method == "opening":  # rain: bright streaks thinner than the window, removed per channel
        from scipy.ndimage import grey_opening
        return [(f"{k}x{k}", lambda d, level, k=k: grey_opening(d, size=(k, k, 1), mode="nearest"))
                for k in (3, 5, 7)]
    if method == "input":
        return [("degraded input", lambda d, level: d)]
    if method == "bicubic":
        from .data import bicubic, to_image, to_tensor
        return [("a=-0.5 antialiased", lambda d, level: to_image(bicubic(to_tensor(d), 2.0)))]
    raise ValueError(f"baseline {method!r} must be one of {', '.join(BASELINES)}")


def table(rows: list[dict]) -> str:
    """Markdown table of result rows (name, psnr, ssim and optional costs)."""
    head = "| model | PSNR (dB) | SSIM | params | FLOPs/px | binary ops/px |\n| --- | --- | --- | --- | --- | --- |"
    lines = [head]
    for r in rows:
        cost = [f"{r[k]:,.0f}" if k in r else "-" for k in ("params", "flops_per_px", "binary_ops_per_px")]
        lines.append(f"| {r['name']} | {r['psnr']:.2f} | {r['ssim']:.4f} | " + " | ".join(cost) + " |")
    return "\n".join(lines)


def _rows(a: argparse.Namespace) -> list[dict]:
    if a.sigma is not None and a.sigma > 255:
        raise TrainingError(f"--sigma {a.sigma}: must be 0..255")
    if a.json is not None and a.json.is_dir():
        raise TrainingError(f"--json {a.json} is a folder, not a file name")
    torch.set_num_threads(a.threads)
    sigma = TASKS[a.task]["val_sigma"] if a.sigma is None else a.sigma
    runs = [(path, *load_run(path, task=a.task)) for path in a.checkpoint]  # all checked first
    models = []
    for path in a.model:
        try:
            model = spec.load(path)
        except (FileNotFoundError, spec.ModelError) as e:
            raise TrainingError(str(e)) from None
        if model.task != a.task:
            raise TrainingError(f"model {path} is a {model.task} model, not {a.task}")
        models.append((path, model))
    try:
        if a.data:
            pairs = validation_pairs(a.task, a.data, sigma=sigma)
        else:
            m = 4 * TASKS[a.task]["scale"]
            pairs = [(n, crop_multiple(d, 4), crop_multiple(c, m), sigma)
                     for n, (d, c) in sorted(read_pairs(a.pairs).items())]
    except FileNotFoundError as e:
        raise TrainingError(str(e)) from None
    rows = []
    for path, net, state in runs:
        rows.append({"name": f"{state['method']} ({path})", **score(torch_restore(net), pairs),
                     **net_costs(net, a.task)})
    for path, model in models:
        try:
            rows.append({"name": f"spec ({path})", **score(spec_restore(model), pairs)})
        except spec.ModelError as e:
            raise TrainingError(f"{path}: {e}") from None
    for b in a.baseline:
        tried = [(setting, score(fn, pairs)) for setting, fn in classical(a.task, b, sigma)]
        setting, best = max(tried, key=lambda t: t[1]["psnr"])
        rows.append({"name": f"{b} ({setting}, best of {len(tried)})", **best})
    return rows


def parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m training.eval",
                           description="A PSNR/SSIM table of run checkpoints, model files and "
                                       "classical baselines on a folder of images.")
    p.add_argument("--task", choices=sorted(TASKS), required=True, help="the task the images are for")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="folder of clean images (synthetic degradation)")
    src.add_argument("--pairs", type=Path, help="folder with paired subfolders (e.g. rain/ norain/)")
    p.add_argument("--sigma", type=cli.natural_int, default=None,
                   help="denoising noise level (default: the task's, 25)")
    p.add_argument("--checkpoint", type=Path, action="append", default=[],
                   help="a training run checkpoint (final.pt); repeatable")
    p.add_argument("--model", type=Path, action="append", default=[],
                   help="an exported model file (.gamir), run through the spec; repeatable")
    p.add_argument("--baseline", action="append", default=[], choices=BASELINES,
                   help="a classical baseline, tuned on the images; repeatable")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON to this file")
    p.add_argument("--threads", type=cli.positive_int, default=1, help="torch CPU threads")
    return p


def main(argv=None) -> int:
    p = parser()
    a = p.parse_args(argv)
    if not (a.checkpoint or a.model or a.baseline):
        p.error("name at least one --checkpoint, --model or --baseline")

    def body() -> int:
        rows = _rows(a)
        print(table(rows))
        if a.json:
            a.json.write_text(json.dumps(rows, indent=1))
        return 0

    return cli.run(body)


if __name__ == "__main__":
    sys.exit(main())
