"""The complex-valued binary variant (BCNN) of the GAM paper's binary networks.

Between the first and the last full-precision layer a complex network carries complex feature
maps (torch's complex dtype, so concatenation, shortcuts and pixel shuffles need no change):

* :class:`ImaginaryInput` follows the first layer: the real features become the real part and a
  small full-precision block (depthwise 3x3, batch norm, pointwise 1x1) makes the imaginary
  part, as deep complex networks do for real-valued images (Trabelsi et al., ICLR 2018, 3.7).
* :class:`ComplexBinaryConv2d`: ``(Wr + i Wi) * (xr + i xi)``; the real and imaginary parts of
  weights and inputs pass through the GAM quantizers separately, so in the deployed form it
  is four XNOR-popcount convolutions: ``Re = Wr*xr - Wi*xi``, ``Im = Wi*xr + Wr*xi``.
* :class:`ComplexNorm`: complex batch (or instance) norm: each channel's (re, im) pairs are
  centred and whitened by the inverse square root of their 2x2 covariance, then a learned 2x2
  scale (symmetric, initialised to I / sqrt 2) and a complex shift; the norm absorbs the
  scaling, as the real norm does in the real binary networks.
* :class:`RealPart` precedes the last layer, which reads the real part.

:func:`complexify` rewrites a network that :func:`training.binary.binarize` has just binarized;
``binarize(model, complex=True)`` calls it. :class:`ComplexBinaryConv2d` is a
:class:`~training.binary.BinaryConv2d`, so ``set_stage`` and the GAM trainer drive it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .binary import BinaryConv2d, stage_quant

__all__ = ["ComplexBinaryConv2d", "ComplexNorm", "ImaginaryInput", "RealPart", "complexify"]


class ComplexBinaryConv2d(BinaryConv2d):
    """A :class:`BinaryConv2d` on complex inputs with complex weights (``weight`` + i ``weight_imag``).

    Real and imaginary parts of weights and inputs are quantized separately
    (``weight_quant``/``input_quant``); the output is complex. No bias (a norm follows).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_imag = nn.Parameter(torch.empty_like(self.weight))
        nn.init.kaiming_uniform_(self.weight_imag, a=math.sqrt(5))  # nn.Conv2d's own init

    def forward(self, z):
        wr = stage_quant(self.weight_quant, self.weight)
        wi = stage_quant(self.weight_quant, self.weight_imag)
        xr = stage_quant(self.input_quant, z.real)
        xi = stage_quant(self.input_quant, z.imag)
        conv = self._conv_forward
        return torch.complex(conv(xr, wr, None) - conv(xi, wi, None),
                             conv(xr, wi, None) + conv(xi, wr, None))


class ComplexNorm(nn.Module):
    """Complex batch norm (``kind="batch"``, running statistics) or instance norm (``"instance"``).

    Whitening makes each channel's (re, im) covariance the identity, which centring and scaling
    the two parts separately would not (their correlation would remain).
    """

    def __init__(self, channels: int, kind: str = "batch", eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        if kind not in ("batch", "instance"):
            raise ValueError(f"kind={kind!r} must be 'batch' or 'instance'")
        self.kind, self.eps, self.momentum = kind, eps, momentum
        self.gamma = nn.Parameter(torch.tensor([1 / math.sqrt(2), 1 / math.sqrt(2), 0.0])[:, None]
                                  .repeat(1, channels))  # rr, ii, ri
        self.beta = nn.Parameter(torch.zeros(2, channels))  # re, im
        self.register_buffer("running_mean", torch.zeros(2, channels))
        self.register_buffer("running_cov", torch.tensor([1.0, 1.0, 0.0])[:, None].repeat(1, channels))

    def forward(self, z):
        x = torch.stack([z.real, z.imag])  # (2, N, C, H, W)
        dims = (3, 4) if self.kind == "instance" else (1, 3, 4)
        if self.kind == "instance" or self.training:
            mean = x.mean(dims, keepdim=True)
            xc = x - mean
            d = [k - 1 for k in dims]  # the same axes of one part (N, C, H, W)
            rr = (xc[0] * xc[0]).mean(d, keepdim=True)
            ii = (xc[1] * xc[1]).mean(d, keepdim=True)
            ri = (xc[0] * xc[1]).mean(d, keepdim=True)
            if self.kind == "batch" and self.training:
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean.mul_(1 - m).add_(m * mean.reshape(2, -1))
                    self.running_cov.mul_(1 - m).add_(m * torch.stack([rr, ii, ri]).reshape(3, -1))
        else:
            shape = (2, 1, -1, 1, 1)
            xc = x - self.running_mean.reshape(shape)
            rr, ii, ri = (v.reshape(1, -1, 1, 1) for v in self.running_cov)
        rr, ii = rr + self.eps, ii + self.eps
        # Inverse square root of [[rr, ri], [ri, ii]] in closed form (Trabelsi et al. 2018).
        s = torch.sqrt(rr * ii - ri * ri)
        t = torch.sqrt(rr + ii + 2 * s)
        inv = 1.0 / (s * t)
        yr = (ii + s) * inv * xc[0] - ri * inv * xc[1]
        yi = -ri * inv * xc[0] + (rr + s) * inv * xc[1]
        g = self.gamma.reshape(3, 1, -1, 1, 1)
        b = self.beta.reshape(2, 1, -1, 1, 1)
        return torch.complex(g[0] * yr + g[2] * yi + b[0], g[2] * yr + g[1] * yi + b[1])


class ImaginaryInput(nn.Module):
    """Real features -> complex features whose imaginary part a small real block computes."""

    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return torch.complex(x, self.block(x))


class RealPart(nn.Module):
    """Complex -> real part (real inputs pass unchanged)."""

    def forward(self, z):
        return z.real if z.is_complex() else z


def complexify(model: nn.Module, convs: list[str]) -> nn.Module:
    """Make a just-binarized ``model`` complex, in place.

    ``convs`` are the names of its original ``nn.Conv2d``s in module order (the first and the
    last stayed full precision); every :class:`BinaryConv2d` becomes a
    :class:`ComplexBinaryConv2d` with the same real weights, every norm between the first and
    the last conv a :class:`ComplexNorm` of the same kind (batch or instance), the first conv
    gains an :class:`ImaginaryInput` and the last a
    :class:`RealPart` in front.
    """
    from .binary import _replace

    names = [n for n, _ in model.named_modules()]
    between = set(names[names.index(convs[0]) + 1:names.index(convs[-1])])
    for name, m in list(model.named_modules()):
        if isinstance(m, BinaryConv2d) and not isinstance(m, ComplexBinaryConv2d):
            c = ComplexBinaryConv2d(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride,
                                    padding=m.padding, dilation=m.dilation, groups=m.groups,
                                    bias=False, padding_mode=m.padding_mode,
                                    weight_quant=m.weight_quant, input_quant=m.input_quant)
            with torch.no_grad():
                c.weight.copy_(m.weight)
            _replace(model, name, c)
        elif name in between and isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            kind = "instance" if isinstance(m, nn.InstanceNorm2d) else "batch"
            _replace(model, name, ComplexNorm(m.num_features, kind))
    head = model.get_submodule(convs[0])
    tail = model.get_submodule(convs[-1])
    _replace(model, convs[0], nn.Sequential(head, ImaginaryInput(head.out_channels)))
    _replace(model, convs[-1], nn.Sequential(RealPart(), tail))
    return model

