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
``complexify(binarize(model))`` is the complex network. :class:`ComplexBinaryConv2d` is a
:class:`~training.binary.BinaryConv2d`, so ``set_stage`` and the GAM trainer drive it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .binary import BinaryConv2d, replace_module, stage_quant

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
        # One real conv computes all four products: per group, the input channels are
        # [xr; xi] and the weights the real 2x2 block form [[wr, -wi], [wi, wr]] of wr + i wi.
        g, (n, c, h, w) = self.groups, xr.shape
        x = torch.stack([xr.reshape(n, g, c // g, h, w), xi.reshape(n, g, c // g, h, w)], 2)
        o, k = self.out_channels, wr.shape[1:]
        wr, wi = wr.reshape(g, o // g, *k), wi.reshape(g, o // g, *k)
        weight = torch.stack([torch.cat([wr, -wi], 2), torch.cat([wi, wr], 2)], 1)
        y = self._conv_forward(x.reshape(n, 2 * c, h, w), weight.reshape(2 * o, 2 * k[0], *k[1:]), None)
        y = y.reshape(n, g, 2, o // g, *y.shape[2:])
        return torch.complex(y[:, :, 0].reshape(n, o, *y.shape[4:]), y[:, :, 1].reshape(n, o, *y.shape[4:]))


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
        xr, xi = z.real, z.imag
        dims = [2, 3] if self.kind == "instance" else [0, 2, 3]
        if self.kind == "instance" or self.training:
            mr, mi = xr.mean(dims, keepdim=True), xi.mean(dims, keepdim=True)
            cr, ci = xr - mr, xi - mi
            rr, ii, ri = ((a * b).mean(dims, keepdim=True) for a, b in ((cr, cr), (ci, ci), (cr, ci)))
            if self.kind == "batch":
                with torch.no_grad():
                    m = self.momentum
                    self.running_mean.mul_(1 - m).add_(m * torch.cat([mr, mi]).reshape(2, -1))
                    self.running_cov.mul_(1 - m).add_(m * torch.cat([rr, ii, ri]).reshape(3, -1))
        else:
            mr, mi = (v.reshape(1, -1, 1, 1) for v in self.running_mean)
            rr, ii, ri = (v.reshape(1, -1, 1, 1) for v in self.running_cov)
        rr, ii = rr + self.eps, ii + self.eps
        # Inverse square root of [[rr, ri], [ri, ii]] in closed form (Trabelsi et al. 2018),
        # times the learned scale: one 2x2 matrix and one shift per channel, applied once.
        s = torch.sqrt(rr * ii - ri * ri)
        inv = 1.0 / (s * torch.sqrt(rr + ii + 2 * s))
        w00, w01, w11 = (ii + s) * inv, -ri * inv, (rr + s) * inv
        g = self.gamma.reshape(3, 1, -1, 1, 1)  # rr, ii, ri
        a00, a01 = g[0] * w00 + g[2] * w01, g[0] * w01 + g[2] * w11
        a10, a11 = g[2] * w00 + g[1] * w01, g[2] * w01 + g[1] * w11
        b = self.beta.reshape(2, 1, -1, 1, 1)
        b0 = b[0] - a00 * mr - a01 * mi
        b1 = b[1] - a10 * mr - a11 * mi
        return torch.complex(a00 * xr + a01 * xi + b0, a10 * xr + a11 * xi + b1)


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


def complexify(model: nn.Module) -> nn.Module:
    """Make a just-binarized ``model`` complex, in place.

    Its two full-precision convs (binarize keeps the first and the last) bound the complex
    part; every :class:`BinaryConv2d` becomes a
    :class:`ComplexBinaryConv2d` with the same real weights, every norm between the first and
    the last conv a :class:`ComplexNorm` of the same kind (batch or instance), the first conv
    gains an :class:`ImaginaryInput` and the last a
    :class:`RealPart` in front.
    """
    convs = [n for n, m in model.named_modules()
             if isinstance(m, nn.Conv2d) and not isinstance(m, BinaryConv2d)]
    if len(convs) != 2:
        raise ValueError(f"complexify needs a binarized model (two full-precision convs), this "
                         f"one has {len(convs)}")
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
            replace_module(model, name, c)
        elif name in between and isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)):
            kind = "instance" if isinstance(m, nn.InstanceNorm2d) else "batch"
            replace_module(model, name, ComplexNorm(m.num_features, kind))
    head = model.get_submodule(convs[0])
    tail = model.get_submodule(convs[-1])
    replace_module(model, convs[0], nn.Sequential(head, ImaginaryInput(head.out_channels)))
    replace_module(model, convs[-1], nn.Sequential(RealPart(), tail))
    return model

