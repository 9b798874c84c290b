"""The four networks the GAM paper binarizes, as plain full-precision torch modules.

Each is written as published (widths and depths are arguments so tests can shrink them);
:func:`training.binary.binarize` turns any of them into its binary form. They are not
streamable (recurrence, curve iteration, 9x9 convs, x4 upsampling chains), so the accelerator
runs :class:`training.streamable.StreamNet` instead; these exist to reproduce the method.

* :class:`ZeroDCEpp`: Li et al., "Learning to Enhance Low-Light Image via Zero-Reference Deep
  Curve Estimation" (TPAMI 2021): 7 depthwise-separable conv layers with symmetric
  concatenation, a tanh curve map applied 8 times as ``LE(x) = x + a x (1 - x)``.
* :class:`PRNr`: Ren et al., "Progressive Image Deraining Networks" (CVPR 2019), PRN_r: a
  progressive recursive network whose 5 residual blocks share weights (one ResBlock applied
  recursively), 6 stages each fed ``cat(rainy, previous estimate)``.
* :class:`SRResNet`: Ledig et al. (CVPR 2017): 9x9 head, 16 residual blocks (conv-BN-PReLU-
  conv-BN), global skip, 2 pixel-shuffle x2 upsamplers, 9x9 tail.
* :class:`FFDNetRes`: Zhang et al., "FFDNet" (TIP 2018) with residual shortcuts added around
  the middle conv-BN-ReLU layers as in the GAM paper: unshuffle 2 + noise map, shuffle 2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ZeroDCEpp", "PRNr", "SRResNet", "FFDNetRes"]


class _DSConv(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (Zero-DCE++'s cheap conv)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depth = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in)
        self.point = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x):
        return self.point(self.depth(x))


class ZeroDCEpp(nn.Module):
    """Zero-DCE++: ``forward(x, sigma=None)`` on images in 0..255 returns enhanced 0..255."""

    def __init__(self, width: int = 32, iterations: int = 8, scale: int = 1):
        super().__init__()
        self.iterations, self.scale = iterations, scale
        self.c1 = _DSConv(3, width)
        self.c2 = _DSConv(width, width)
        self.c3 = _DSConv(width, width)
        self.c4 = _DSConv(width, width)
        self.c5 = _DSConv(2 * width, width)
        self.c6 = _DSConv(2 * width, width)
        self.c7 = _DSConv(2 * width, 3)
        self.relu = nn.ReLU()

    def forward(self, x, sigma=None):
        x = x / 255.0
        small = F.interpolate(x, scale_factor=1 / self.scale, mode="bilinear") if self.scale > 1 else x
        x1 = self.relu(self.c1(small))
        x2 = self.relu(self.c2(x1))
        x3 = self.relu(self.c3(x2))
        x4 = self.relu(self.c4(x3))
        x5 = self.relu(self.c5(torch.cat([x3, x4], 1)))
        x6 = self.relu(self.c6(torch.cat([x2, x5], 1)))
        a = torch.tanh(self.c7(torch.cat([x1, x6], 1)))
        if self.scale > 1:
            a = F.interpolate(a, scale_factor=self.scale, mode="bilinear")
        for _ in range(self.iterations):
            x = x + a * (x - x * x)
        return x * 255.0


class _ResBlock(nn.Module):
    def __init__(self, width: int, norm: bool = False, act=nn.ReLU):
        super().__init__()
        layers = [nn.Conv2d(width, width, 3, padding=1)]
        layers += [nn.BatchNorm2d(width)] if norm else []
        layers += [act(), nn.Conv2d(width, width, 3, padding=1)]
        layers += [nn.BatchNorm2d(width)] if norm else []
        self.body = nn.Sequential(*layers)
        self.act = act() if not norm else nn.Identity()

    def forward(self, x):
        return self.act(x + self.body(x))


class PRNr(nn.Module):
    """PReNet's PRN_r: ``stages`` progressive passes of one recursively applied ResBlock."""

    def __init__(self, width: int = 32, stages: int = 6, recursions: int = 5):
        super().__init__()
        self.stages, self.recursions = stages, recursions
        self.head = nn.Sequential(nn.Conv2d(6, width, 3, padding=1), nn.ReLU())
        self.res = _ResBlock(width)
        self.tail = nn.Conv2d(width, 3, 3, padding=1)

    def forward(self, x, sigma=None):
        inp = x / 255.0
        est = inp
        for _ in range(self.stages):
            h = self.head(torch.cat([inp, est], 1))
            for _ in range(self.recursions):
                h = self.res(h)
            est = inp + self.tail(h)
        return est * 255.0


class SRResNet(nn.Module):
    """SRResNet (x4 by default, ``upscale`` a power of two)."""

    def __init__(self, width: int = 64, blocks: int = 16, upscale: int = 4):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(3, width, 9, padding=4), nn.PReLU())
        self.body = nn.Sequential(*[_ResBlock(width, norm=True, act=nn.PReLU) for _ in range(blocks)])
        self.body_tail = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        ups = []
        for _ in range(upscale.bit_length() - 1):
            ups += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.PReLU()]
        self.up = nn.Sequential(*ups)
        self.tail = nn.Conv2d(width, 3, 9, padding=4)

    def forward(self, x, sigma=None):
        h = self.head(x / 255.0)
        h = h + self.body_tail(self.body(h))
        return self.tail(self.up(h)) * 255.0


class FFDNetRes(nn.Module):
    """FFDNet (color: 96 channels, 12 layers) with residual shortcuts around the middle layers.

    ``noise_channels`` copies of the noise-level map join the unshuffled image: 1 by default,
    3 in the published colour FFDNet (one per colour, 15 input channels).
    """

    def __init__(self, width: int = 96, layers: int = 12, channels: int = 3, noise_channels: int = 1):
        super().__init__()
        self.noise_channels = noise_channels
        self.head = nn.Sequential(nn.Conv2d(4 * channels + noise_channels, width, 3, padding=1), nn.ReLU())
        self.body = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
            for _ in range(layers - 2))
        self.tail = nn.Conv2d(width, 4 * channels, 3, padding=1)

    def forward(self, x, sigma=None):
        t = F.pixel_unshuffle(x / 255.0, 2)
        level = 0.0 if sigma is None else torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        noise = torch.zeros_like(t[:, :self.noise_channels]) + level / 255.0
        h = self.head(torch.cat([t, noise], 1))
        for layer in self.body:
            h = h + layer(h)
        return F.pixel_shuffle(self.tail(h), 2) * 255.0
