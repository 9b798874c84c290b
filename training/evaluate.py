"""Shared evaluation: load a run checkpoint, restore validation images through torch or the spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import spec

from .binary import conv_macs, set_stage
from .metrics import psnr, ssim
from .streamable import StreamNet
from .tasks import build_net, run_net

__all__ = ["load_run", "score", "net_costs", "classical"]


def load_run(path: Path) -> tuple[StreamNet, dict]:
    """The trained network of a run checkpoint (``final.pt``/``last.pt``) in eval mode."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist (train with python -m training.train)")
    cfg = dict(state["net_config"])
    task = state["meta"]["task"]
    net = build_net(task, **cfg)
    net.load_state_dict(state["model"])
    last_stage = state["plan"][-1][0]
    set_stage(net, last_stage)
    net.set_quant(state["method"] != "fp")
    net.eval()
    return net, state


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


def classical(task: str, method: str, sigma: int = 25) -> list[tuple[str, object]]:
    """Classical baselines as [(setting, restore)]: a grid the caller tunes over.

    Denoising uses scikit-image's non-local means (``h`` from 0.6 to 1.0 sigma, 5x5 patches,
    13x13 search) or wavelet shrinkage (BayesShrink or VisuShrink, soft thresholds, in YCbCr,
    ``db2`` or ``sym8``, the true sigma); picking the best setting on the evaluation images
    themselves favours the baseline. SR uses the antialiased
    bicubic of :func:`training.data.bicubic` (a=-0.5, MATLAB convention). ``input`` scores the
    degraded image itself (same-size tasks).
    """
    from skimage.restoration import denoise_nl_means

    def to_u8(x):
        return np.clip(np.floor(x * 255 + 0.5), 0, 255).astype(np.uint8)

    s = sigma / 255.0
    if method == "nlm":
        return [(f"h={f}*sigma", lambda d, level, f=f: to_u8(denoise_nl_means(
            d / 255.0, h=f * s, sigma=s, patch_size=5, patch_distance=6, fast_mode=True,
            channel_axis=2))) for f in (0.6, 0.8, 1.0)]
    if method == "wavelet":
        from skimage.restoration import denoise_wavelet
        return [(f"{rule} {wavelet}", lambda d, level, rule=rule, wavelet=wavelet: to_u8(
            denoise_wavelet(d / 255.0, sigma=s, wavelet=wavelet, mode="soft", method=rule,
                            convert2ycbcr=True, rescale_sigma=True, channel_axis=2)))
                for rule in ("BayesShrink", "VisuShrink") for wavelet in ("db2", "sym8")]
    if method == "input":
        return [("degraded input", lambda d, level: d)]
    if method == "bicubic":
        from .data import bicubic, to_image, to_tensor
        return [("a=-0.5 antialiased", lambda d, level: to_image(bicubic(to_tensor(d), 2.0)))]
    raise ValueError(f"baseline {method!r} must be nlm, wavelet, bicubic or input")
