"""The streamable network family the accelerator runs, in torch, and its export to the spec.

``StreamNet`` is exactly the shape of a ``spec.Model``:

* host pixel steps: optional ``pixel_unshuffle(r)`` and a constant noise-level channel (sigma
  in 0..255 pixel units, appended last) before, optional ``pixel_shuffle`` after;
* head: a full-precision 3x3 conv on the pixels (``pixels / 255``), per-output-channel
  ``w_bits`` signed weights, written to the fixed-point residual stream (with ``head_mid``:
  a 3x3 conv to ``head_mid`` channels, then a 1x1 conv to the stream; with ``head_dw``: a 1x1
  conv to the stream, then a depthwise 3x3 conv on it);
* body: ``blocks`` binary residual layers ``x_i = q(x_{i-1} + BN(bconv(sign(x_{i-1}))))``;
* tail: a full-precision 3x3 conv to the image channels (times shuffle**2), plus the global
  residual with the input pixels (spec ``residual_map``), clamped to 0..255 (with
  ``tail_mid``: a 1x1 conv to ``tail_mid`` channels first; with ``tail_dw``: a depthwise 3x3
  conv on the stream, then a 1x1 conv to the image channels);
* with a noise channel, once measured at the end of training: the tail's restoration scaled
  per noise level by ``noise_gain`` (spec ``PixelSteps.noise_gain``), so the noise input
  means what it says where the binary body cannot (level 0 passes a clean image through).

The ``*_mid`` bottlenecks are linear (a low-rank 3x3 conv) with their middle tensor in the
stream's fixed point: they cut the fixed-point products per pixel, which set the hardware's
LUT count (130..170 ECP5 LUT4s per 8x6-bit product built from LUTs, docs/builds.md). The
depthwise-separable ends (``*_dw``, MobileNet's factorization) go further: 22 products per
stream channel in the head instead of 9 per input channel and stream channel (the denoiser's
13-channel input: 1,408 against 7,488 for a 64-channel stream), 21 in the tail.

Every conv uses ``padding_mode="replicate"`` (the spec's border rule). With ``quant=True`` the
model carries the deployed arithmetic as fake quantization: the residual stream is rounded
half-up to ``frac_bits`` and saturated to ``stream_bits`` (``q``), head/tail weights are
rounded per channel, the output is rounded to integer pixels. In eval mode (BatchNorm on
running statistics, GAM stage 4) the torch model then computes what :func:`export` writes,
up to float rounding of the folded constants (``scale_bits``-bit ``A``, see ``spec.arith``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import spec
from spec import arith

from .binary import BinaryConv2d, set_stage

__all__ = ["HEAD_GAIN", "StreamNet", "QuantConv2d", "round_ste", "export"]


#: Fixed gain on the head's output. The head alone writes the image into the 8-bit stream, whose
#: range (+/-2**(stream_bits-1-frac_bits)) must also hold the body's growing sum; without a gain
#: the head learns outputs of std ~0.1, under two stream LSBs, and the image detail the tail
#: needs is lost (measured: 0.7 dB on denoising). Folded into the head's affine ``A`` at export.
HEAD_GAIN = 8.0


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """The spec's round-half-up ``floor(x + 0.5)`` with an identity (straight-through) gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


class QuantConv2d(nn.Conv2d):
    """3x3 (or 1x1) full-precision conv whose weights are fake-quantized per output channel;
    ``depthwise``: each output channel filters its own input channel (spec ``groups``).

    ``w = s_c * round(w / s_c)`` with ``s_c = max|w_c| / (2**(w_bits-1) - 1)``: the integer
    weights the spec's fixed conv multiplies with, the scale folded into its affine ``A``.
    """

    def __init__(self, c_in: int, c_out: int, w_bits: int = 6, kernel: int = 3,
                 depthwise: bool = False):
        if kernel not in (1, 3):
            raise ValueError(f"kernel={kernel!r} must be 1 or 3")
        if depthwise and c_in != c_out:
            raise ValueError(f"a depthwise conv maps channels one to one (c_in={c_in}, c_out={c_out})")
        super().__init__(c_in, c_out, kernel, padding=kernel // 2, padding_mode="replicate",
                         groups=c_in if depthwise else 1)
        if not 2 <= w_bits <= arith.MAX_WEIGHT_BITS:
            raise ValueError(f"w_bits={w_bits!r} must be 2..{arith.MAX_WEIGHT_BITS}")
        self.w_bits = w_bits
        self.quant = True

    def weight_scale(self) -> torch.Tensor:
        top = 2 ** (self.w_bits - 1) - 1
        return self.weight.detach().abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-8) / top

    def int_weight(self) -> torch.Tensor:
        return torch.floor(self.weight / self.weight_scale() + 0.5)

    def forward(self, x):
        w = self.weight
        if self.quant:
            s = self.weight_scale()
            w = s * round_ste(w / s)
        return self._conv_forward(x, w, self.bias)

    def to_spec(self, in_scale: float, out_scale: float, stage: spec.Stage) -> spec.Layer:
        """This conv as a spec layer reading integers ``v = x * in_scale`` and writing
        ``y * out_scale`` through ``stage`` (its ``A``, ``B``, ``shift`` filled in): with
        ``w = s_c * w_int``, ``y * out_scale = s_c * out_scale / in_scale * acc + b * out_scale``."""
        s = self.weight_scale().flatten().cpu().double().numpy()
        b = self.bias.detach().cpu().double().numpy()
        return spec.Layer("fixed", self.kernel_size[0], self.in_channels, self.out_channels,
                          _spec_weights(self.int_weight()).astype(np.int64),
                          _folded(s * out_scale / in_scale, b * out_scale, stage),
                          w_bits=self.w_bits, groups=self.groups)


class PowerOfTwoRPReLU(nn.Module):
    """BBCU's RPReLU, ``prelu(z - gamma) + zeta``, with per-channel slopes ``2**-k``.

    The slope of the negative side is learned as ``2**-kappa``; with the deployed arithmetic
    (``frac_bits`` given) ``kappa`` is rounded to an integer shift ``k`` in
    ``0..arith.MAX_ACT_SHIFT`` (straight-through), and the whole unit is what the spec's affine
    activation computes on the integer ``y = round(z * 2**F)``::

        y -= round(gamma * 2**F)      # folds exactly into the affine stage's B
        y  = rshift_round(y, k) where y < 0
        y += round(zeta * 2**F)       # the stage's per-channel act_offset

    Without ``frac_bits`` (the full-precision twin) the slope is continuous. Slopes start at
    ``2**-init_shift`` (PReLU's usual start is 1/4, shift 2; shift 0 starts as the identity,
    the unit without activation); A&B-BNN (CVPR 2024) reports that power-of-two slopes lose
    almost nothing, and they make the hardware a comparator and a shifter.
    """

    def __init__(self, width: int, init_shift: float = 0.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(width))
        self.zeta = nn.Parameter(torch.zeros(width))
        self.kappa = nn.Parameter(torch.full((width,), float(init_shift)))

    def shifts(self) -> torch.Tensor:
        """The deployed per-channel shifts ``k`` (integers)."""
        return torch.floor(self.kappa.detach().clamp(0, arith.MAX_ACT_SHIFT) + 0.5)

    def to_stage(self, stage: spec.Affine, out_scale: float) -> spec.Affine:
        """``stage`` (its ``A``, ``B``, ``shift`` folded, output integers ``y * out_scale``)
        with this activation: ``gamma`` folded into ``B``, the shifts and ``zeta`` stored."""
        def integers(v: torch.Tensor) -> np.ndarray:  # round_ste's floor(x + 0.5)
            return np.floor(v.detach().cpu().double().numpy() * out_scale + 0.5).astype(np.int64)

        offset = integers(self.zeta)
        lo, hi = arith.signed_range(stage.out_bits)
        if offset.min() < lo or offset.max() > hi:
            raise spec.ModelError(f"RPReLU offsets {offset.min()}..{offset.max()} exceed the "
                                  f"{stage.out_bits}-bit stream")
        bias = stage.bias - (integers(self.gamma) << stage.shift)
        return dataclasses.replace(stage, bias=bias, act="prelu", act_offset=offset,
                                   act_shift=self.shifts().cpu().numpy().astype(np.int64))

    def forward(self, z: torch.Tensor, frac_bits: int | None = None) -> torch.Tensor:
        # Clamped with a straight-through gradient: a slope pushed past 1 (or 2**-7) must be
        # able to come back (a plain clamp would freeze it there).
        kappa = self.kappa + (self.kappa.clamp(0, arith.MAX_ACT_SHIFT) - self.kappa).detach()
        kappa = kappa.view(1, -1, 1, 1)
        gamma, zeta = self.gamma.view(1, -1, 1, 1), self.zeta.view(1, -1, 1, 1)
        if frac_bits is None:
            u = z - gamma
            return torch.where(u < 0, u * 2.0 ** -kappa, u) + zeta
        f = 2.0 ** frac_bits
        y = round_ste(z * f) - round_ste(gamma * f)
        y = torch.where(y < 0, round_ste(y * 2.0 ** -round_ste(kappa)), y)
        return (y + round_ste(zeta * f)) / f


class _Block(nn.Module):
    """One binary residual layer: ``act(BN(bconv(sign(x))))`` (the caller adds ``x`` and rounds).

    ``act`` is the identity, or with ``act="rprelu"`` a :class:`PowerOfTwoRPReLU`.
    """

    def __init__(self, width: int, act: str = "none"):
        super().__init__()
        self.conv = BinaryConv2d(width, width, 3, padding=1, bias=False, padding_mode="replicate")
        self.bn = nn.BatchNorm2d(width)
        self.act = PowerOfTwoRPReLU(width) if act == "rprelu" else None

    def forward(self, x, frac_bits: int | None = None):
        z = self.bn(self.conv(x))
        return z if self.act is None else self.act(z, frac_bits)

    def to_spec(self, out_scale: float, stage: spec.Stage) -> spec.Layer:
        """This layer as a spec binary layer writing ``BN(dot) * out_scale`` through ``stage``:
        ``BN(dot) = a*dot + c`` with ``dot = 2*acc - N``, so the output is
        ``2a * out_scale * acc + (c - a*N) * out_scale``."""
        bn, conv = self.bn, self.conv
        a = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).cpu().double().numpy()
        c = bn.bias.cpu().double().numpy() - a * bn.running_mean.cpu().double().numpy()
        n = conv.weight[0].numel()  # the popcount's N = c_in * k * k
        bits = (_spec_weights(conv.weight) >= 0).astype(np.uint8)
        stage = _folded(2 * a * out_scale, (c - a * n) * out_scale, stage)
        if self.act is not None:
            stage = self.act.to_stage(stage, out_scale)
        return spec.Layer("binary", conv.kernel_size[0], conv.in_channels, conv.out_channels,
                          bits, stage)


class StreamNet(nn.Module):
    """A streamable restoration network (see the module docstring).

    Parameters
    ----------
    image_channels : int
        Channels of the image (3 colour, 1 gray).
    width : int
        Channels of the residual stream and of every binary layer.
    blocks : int
        Number of binary residual layers.
    unshuffle, shuffle : int
        Host pixel (un)shuffle factors; SR x2 is ``unshuffle=1, shuffle=2``.
    noise_channel : bool
        Append the noise level (sigma, 0..255) as a constant input channel.
    frac_bits, stream_bits : int
        Fixed-point format of the residual stream (value = integer / 2**frac_bits).
    head_kernel, tail_kernel : int
        3 or 1. The fixed-point head and tail hold most of the hardware's multipliers (a 3x3
        head and tail: 7,200 products per pixel for the denoiser, 1x1: 800).
    head_mid, tail_mid : int
        0, or the channels of a linear bottleneck inside the head / tail (see above).
    head_dw, tail_dw : bool
        Depthwise-separable head / tail (see above; needs the 3x3 kernel and no bottleneck).
    w_bits : int
        Signed width of head and tail weights.
    quant : bool
        Carry the deployed fixed-point arithmetic (False gives the full-precision comparison
        network of the same architecture).
    act : str
        ``"none"``, or ``"rprelu"``: a per-channel :class:`PowerOfTwoRPReLU` after each binary
        layer's norm, before the residual add (the spec's affine-stage activation).
    """

    def __init__(self, image_channels: int = 3, width: int = 32, blocks: int = 8,
                 unshuffle: int = 1, shuffle: int = 1, noise_channel: bool = False,
                 frac_bits: int = 4, stream_bits: int = 8, w_bits: int = 6, quant: bool = True,
                 head_kernel: int = 3, tail_kernel: int = 3, head_mid: int = 0, tail_mid: int = 0,
                 head_dw: bool = False, tail_dw: bool = False, act: str = "none"):
        super().__init__()
        if act not in ("none", "rprelu"):
            raise ValueError(f"act={act!r} must be 'none' or 'rprelu'")
        for side, dw, kernel, mid in (("head", head_dw, head_kernel, head_mid),
                                      ("tail", tail_dw, tail_kernel, tail_mid)):
            if dw and (kernel != 3 or mid):
                raise ValueError(f"{side}_dw needs {side}_kernel=3 and no {side}_mid "
                                 f"(got kernel {kernel}, mid {mid})")
        if unshuffle not in (1, shuffle):
            raise ValueError(f"unshuffle={unshuffle!r} must be 1 or equal to shuffle={shuffle!r}")
        self.config = dict(image_channels=image_channels, width=width, blocks=blocks,
                           unshuffle=unshuffle, shuffle=shuffle, noise_channel=noise_channel,
                           frac_bits=frac_bits, stream_bits=stream_bits, w_bits=w_bits, quant=quant,
                           head_kernel=head_kernel, tail_kernel=tail_kernel, head_mid=head_mid,
                           tail_mid=tail_mid, head_dw=head_dw, tail_dw=tail_dw, act=act)
        c0 = image_channels * unshuffle**2 + int(noise_channel)
        c_out = image_channels * shuffle**2
        # The 1x1 halves of the bottlenecks (``head_mix`` after the head, ``tail_mix`` before the
        # tail) are the stream-side ones, so the 3x3 halves keep the narrow side.
        # A separable end keeps its 3x3 on the stream side: ``head_dw`` after the head's 1x1,
        # ``tail_dw`` before the tail's 1x1.
        self.head = QuantConv2d(c0, head_mid or width, w_bits, 1 if head_dw else head_kernel)
        self.head_mix = QuantConv2d(head_mid, width, w_bits, 1) if head_mid else None
        self.head_dw = QuantConv2d(width, width, w_bits, 3, depthwise=True) if head_dw else None
        self.blocks = nn.ModuleList(_Block(width, act) for _ in range(blocks))
        self.tail_dw = QuantConv2d(width, width, w_bits, 3, depthwise=True) if tail_dw else None
        self.tail_mix = QuantConv2d(width, tail_mid, w_bits, 1) if tail_mid else None
        self.tail = QuantConv2d(tail_mid or width, c_out, w_bits, 1 if tail_dw else tail_kernel)
        with torch.no_grad():  # start near the identity (the global residual) for a useful first loss
            self.tail.weight.mul_(0.1)
            self.tail.bias.zero_()
        # Global residual: output channel k adds input channel k when the layouts agree
        # (unshuffle == shuffle), else the LR pixel it upsamples (nearest neighbour).
        per = shuffle**2 // unshuffle**2
        self.register_buffer("residual_map", torch.arange(c_out) // per, persistent=False)
        #: Per noise level, the restoration's strength (``spec.PixelSteps.noise_gain``: integers,
        #: 4096 = 1), or None (1 at every level) until :meth:`calibrate_noise_gain` measures it.
        #: Not in the state dict: checkpoints carry it as ``noise_gain`` beside the weights.
        self.noise_gain: torch.Tensor | None = None
        self.set_quant(quant)
        set_stage(self, 1)

    def fixed_convs(self) -> list[QuantConv2d]:
        return [c for c in (self.head, self.head_mix, self.head_dw, self.tail_dw, self.tail_mix,
                            self.tail) if c is not None]

    def set_quant(self, quant: bool) -> None:
        self.quant = quant
        for conv in self.fixed_convs():
            conv.quant = quant

    def q(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream's fixed point: round half up, saturate (identity if not quant)."""
        if not self.quant:
            return x
        f = 2.0 ** self.config["frac_bits"]
        lo, hi = arith.signed_range(self.config["stream_bits"])
        return torch.clamp(round_ste(x * f), lo, hi) / f

    def tensor0(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """The accelerator's input stream (N, C0, H, W) from pixels (N, C, H, W) in 0..255."""
        r = self.config["unshuffle"]
        t0 = F.pixel_unshuffle(x, r) if r > 1 else x
        if self.config["noise_channel"]:
            if sigma is None:
                raise ValueError("this network has a noise-level channel: pass sigma")
            s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
            t0 = torch.cat([t0, s.expand(x.shape[0], 1, *t0.shape[2:])], dim=1)
        return t0

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Pixels (N, C, H, W) in 0..255 -> restored pixels in 0..255 (integers when quant)."""
        y, base = self.restoration(x, sigma)
        if self.noise_gain is not None:
            y = y * self.gain_at(sigma, y)
        if self.quant:
            y = round_ste(y)
        y = torch.clamp(y + base, 0, 255)
        r = self.config["shuffle"]
        return F.pixel_shuffle(y, r) if r > 1 else y

    def gain_at(self, sigma, like: torch.Tensor) -> torch.Tensor:
        """The noise gain of each sample's level, (N, 1, 1, 1), as ``like``'s dtype and device."""
        table = self.noise_gain.to(like.device, like.dtype) / arith.GAIN_ONE
        level = torch.as_tensor(sigma, device=like.device).reshape(-1).round().long()
        return table[level.clamp(0, len(table) - 1)].reshape(-1, 1, 1, 1)

    @torch.no_grad()
    def calibrate_noise_gain(self, batches, levels: int) -> torch.Tensor:
        """Measure :attr:`noise_gain` for levels ``0..levels-1`` and set it; returns it.

        ``batches`` yields (degraded, clean, sigma) with sigma over those levels. Per level the
        gain is the least-squares scale of the restoration towards the clean image (clipped to
        0..2): measured on the final network like the BatchNorm statistics, it makes the noise
        input mean what it says where the binary body cannot, e.g. level 0 (clean input) gets
        gain 0 and passes the frame through instead of smoothing it. Levels no batch drew take
        the nearest measured one.
        """
        if not self.config["noise_channel"]:
            raise ValueError("only a network with a noise-level channel has a noise gain")
        num = torch.zeros(levels, dtype=torch.float64)
        den = torch.zeros(levels, dtype=torch.float64)
        r = self.config["shuffle"]
        for x, clean, sigma in batches:
            y, base = self.restoration(x, sigma)
            target = (F.pixel_unshuffle(clean, r) if r > 1 else clean) - base
            level = sigma.reshape(-1).round().long().clamp(0, levels - 1).cpu()
            num.index_add_(0, level, (y * target).flatten(1).sum(1).double().cpu())
            den.index_add_(0, level, (y * y).flatten(1).sum(1).double().cpu())
        seen = torch.nonzero(den > 0).reshape(-1)
        if not len(seen):
            raise ValueError("no batch to measure the noise gain on")
        nearest = seen[(torch.arange(levels)[:, None] - seen[None]).abs().argmin(1)]
        gain = (num[nearest] / den[nearest]).clamp(0.0, arith.MAX_GAIN / arith.GAIN_ONE)
        self.noise_gain = torch.round(gain * arith.GAIN_ONE).long()
        return self.noise_gain

    def restoration(self, x: torch.Tensor, sigma=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Before the pixel shuffle: the tail's restoration in pixel units (not rounded, before
        the noise gain) and the global residual's input pixels it is added to."""
        t0 = self.tensor0(x, sigma)
        s = self.q(self.head(t0 / 255.0) * HEAD_GAIN)
        for conv in (self.head_mix, self.head_dw):
            if conv is not None:
                s = self.q(conv(s))
        frac = self.config["frac_bits"] if self.quant else None
        for blk in self.blocks:
            s = self.q(s + blk(s, frac))
        for conv in (self.tail_dw, self.tail_mix):
            if conv is not None:
                s = self.q(conv(s))
        return self.tail(s) * 255.0, t0[:, self.residual_map]


def _affine(a: np.ndarray, b: np.ndarray, scale_bits: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integers ``A, B, shift`` with ``(acc*A + B) / 2**shift ~= acc*a + b`` (largest shift that fits)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    amax = float(np.abs(a).max()) or 1.0
    bmax = float(np.abs(b).max()) or 1.0
    top_a = 2 ** (scale_bits - 1) - 1
    top_b = 2 ** (arith.CONST_BITS - 1) - 1
    shift = min(arith.MAX_SHIFT, math.floor(math.log2(top_a / amax)),
                math.floor(math.log2(top_b / (bmax + 1))) - 1)
    if shift < 0:
        raise spec.ModelError(f"affine constants too large to fold (|a|max={amax:.3g}, |b|max={bmax:.3g})")
    return np.round(a * 2**shift).astype(np.int64), np.round(b * 2**shift).astype(np.int64), shift


def _folded(a: np.ndarray, b: np.ndarray, stage: spec.Stage) -> spec.Stage:
    """``stage`` computing ``acc*a + b`` per channel: its ``A``, ``B``, ``shift`` from
    :func:`_affine` at the stage's ``scale_bits``."""
    A, B, shift = _affine(a, b, stage.scale_bits)
    return dataclasses.replace(stage, scale=A, bias=B, shift=shift)


def _spec_weights(w: torch.Tensor) -> np.ndarray:
    """torch (c_out, c_in, ky, kx) -> spec (c_out, ky, kx, c_in)."""
    return w.detach().cpu().numpy().transpose(0, 2, 3, 1)


@torch.no_grad()
def export(net: StreamNet, task: str, name: str, noise_level: int = 0,
           provenance: dict | None = None) -> spec.Model:
    """The integer ``spec.Model`` that ``net`` computes in eval mode (stage 4, quant on)."""
    cfg = net.config
    if not net.quant:
        raise ValueError("only a quant=True network has a deployed integer form")
    f = 2.0 ** cfg["frac_bits"]
    # Every fixed tensor is the stream: integers y * 2^F.
    stream = spec.Affine(scale=None, bias=None, out_bits=cfg["stream_bits"],
                         frac_bits=cfg["frac_bits"])
    # Head: pixels / 255 in, times HEAD_GAIN out.
    layers = [net.head.to_spec(255.0, f * HEAD_GAIN, stream)]
    layers += [conv.to_spec(f, f, stream) for conv in (net.head_mix, net.head_dw) if conv is not None]
    for i, blk in enumerate(net.blocks, start=len(layers)):
        layers.append(blk.to_spec(f, dataclasses.replace(stream, residual=i)))
    layers += [conv.to_spec(f, f, stream) for conv in (net.tail_dw, net.tail_mix) if conv is not None]
    # Tail: pixels = 255 * y, plus the input pixel of the global residual.
    layers.append(net.tail.to_spec(f, 255.0, spec.PixelOutput(
        scale=None, bias=None, residual_map=net.residual_map.cpu().numpy())))
    gain = () if net.noise_gain is None else tuple(int(g) for g in net.noise_gain)
    steps = spec.PixelSteps(unshuffle=cfg["unshuffle"], noise_channel=cfg["noise_channel"],
                            noise_level=int(noise_level), shuffle=cfg["shuffle"], noise_gain=gain)
    model = spec.Model(layers, image_channels=cfg["image_channels"], steps=steps, task=task,
                       name=name, provenance=provenance or {})
    return model.validate()
