"""Per-task presets: the streamable network, the degradation and the patch each task trains with.

All four follow the hardware budget of the shipped boards: 32 channels, 8 binary residual
layers, an 8-bit residual stream (4 fraction bits) and 6-bit head/tail weights. The denoiser
follows FFDNet (unshuffle 2 + a noise-level channel, 13 input channels) and carries a 10-bit
stream (6 fraction bits) with 8-bit head/tail weights: +0.46 dB on the validation photos for
9 % more LUTs on a Zynq-7020 at 640x480 and 30 fps (33 % more at the ECP5's 720p30 fold;
docs/training.md, docs/builds.md). SR x2 runs at the low
resolution and shuffles by 2; its global residual adds the nearest-neighbour upsampled input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .data import degrade, read_folder, to_image, to_tensor
from .streamable import StreamNet

__all__ = ["TASKS", "build_net", "validation_pairs", "crop_multiple", "run_net"]

_BODY = dict(width=32, blocks=8, frac_bits=4, stream_bits=8, w_bits=6)

TASKS = {
    "denoise": dict(net=dict(unshuffle=2, shuffle=2, noise_channel=True,
                             **dict(_BODY, stream_bits=10, frac_bits=6, w_bits=8)),
                    patch=64, sigma_range=(15, 35), val_sigma=25, scale=1),
    "sr": dict(net=dict(unshuffle=1, shuffle=2, **_BODY), patch=64, sigma_range=(0, 0),
               val_sigma=0, scale=2),
    "lowlight": dict(net=dict(unshuffle=2, shuffle=2, **_BODY), patch=64, sigma_range=(0, 0),
                     val_sigma=0, scale=1),
    "derain": dict(net=dict(unshuffle=2, shuffle=2, **_BODY), patch=64, sigma_range=(0, 0),
                   val_sigma=0, scale=1),
}


def build_net(task: str, quant: bool = True, **overrides) -> StreamNet:
    if task not in TASKS:
        raise ValueError(f"task={task!r} must be one of {', '.join(TASKS)}")
    cfg = dict(TASKS[task]["net"], quant=quant)
    cfg.update(overrides)
    return StreamNet(**cfg)


def crop_multiple(img: np.ndarray, m: int) -> np.ndarray:
    h, w = img.shape[0] // m * m, img.shape[1] // m * m
    return img[:h, :w]


def validation_pairs(task: str, folder: Path, crop: int | None = None, sigma: int | None = None,
                     seed: int = 0):
    """[(name, degraded uint8, clean uint8, noise level)] for the clean images of ``folder``.

    Each image gets its own fixed-seed degradation, so every run sees the same inputs. With
    ``crop`` the centre ``crop`` x ``crop`` is used (fast progress checks during training).
    """
    t = TASKS[task]
    sigma = t["val_sigma"] if sigma is None else sigma
    out = []
    for i, (name, img) in enumerate(sorted(read_folder(folder).items())):
        if crop:
            y, x = (img.shape[0] - crop) // 2, (img.shape[1] - crop) // 2
            img = img[max(y, 0):max(y, 0) + crop, max(x, 0):max(x, 0) + crop]
        img = crop_multiple(img, 4 * t["scale"])
        d, level = degrade(task, img, np.random.default_rng(seed + i), sigma=sigma, scale=t["scale"])
        out.append((name, d, img, level))
    return out


@torch.no_grad()
def run_net(net: StreamNet, degraded: np.ndarray, level: int) -> np.ndarray:
    """The torch network on one uint8 image (eval mode is the caller's choice)."""
    return to_image(net(to_tensor(degraded), torch.tensor([float(level)])))

