"""The integer model: what one network is, layer by layer, and its validation.

A model is a chain of convolution layers over a raster image. Tensor 0 is the model input
(pixels, after the host's pixel steps); layer ``i`` (1-based) reads tensor ``i-1`` and writes
tensor ``i``. Each layer is a convolution (``binary`` XNOR-popcount or ``fixed`` integer
multiply-accumulate) followed by one output stage (``threshold`` -> bits, ``affine`` -> fixed,
``pixel`` -> 8-bit output, last layer only). An affine layer may add an earlier fixed tensor
(``residual``); the pixel layer may add channels of tensor 0 (``residual_map``). The arithmetic
of each piece is defined in :mod:`spec.arith`.

The hardware *shape* of a model is everything but its parameter arrays: two models of the same
shape run on the same bitstream, with arrays loaded through registers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import arith

__all__ = [
    "ModelError",
    "Layer",
    "PixelSteps",
    "Model",
    "TensorType",
    "KINDS",
    "OUTPUTS",
    "TASKS",
]

KINDS = ("binary", "fixed")
OUTPUTS = ("threshold", "affine", "pixel")
TASKS = ("denoise", "sr", "lowlight", "derain", "test")


class ModelError(ValueError):
    """A model (in memory or in a file) breaks a rule; the message names the rule."""


@dataclass(frozen=True)
class TensorType:
    """What flows on one stream between layers: ``pixel``, ``bit`` or ``fixed``."""

    kind: str
    channels: int
    bits: int  # 8 for pixel, 1 for bit, the signed width for fixed
    frac_bits: int = 0

    def value_range(self) -> tuple[int, int]:
        """Range of the values a conv reads from this tensor (bits read as +/-1)."""
        if self.kind == "pixel":
            return 0, arith.PIXEL_MAX
        if self.kind == "bit":
            return -1, 1
        return arith.signed_range(self.bits)


@dataclass(eq=False)
class Layer:
    """One convolution and its output stage.

    Parameters
    ----------
    kind : str
        ``"binary"`` (XNOR-popcount on sign bits) or ``"fixed"`` (integer weights).
    kernel : int
        1 or 3 (3x3 windows use the replicate border).
    c_in, c_out : int
        Channel counts.
    output : str
        ``"threshold"``, ``"affine"`` or ``"pixel"``.
    weights : ndarray
        Shape (c_out, kernel, kernel, c_in). Binary: uint8 0/1 (1 = +1). Fixed: int, within
        ``w_bits`` signed.
    w_bits : int
        Fixed weights' signed width (ignored for binary layers, stored as 1).
    threshold, flip : ndarray
        Threshold stage: ``bit = acc <= T`` where ``flip`` else ``acc >= T``.
    scale, bias : ndarray
        Affine / pixel stage constants ``A`` (``scale_bits`` signed) and ``B`` (32-bit signed).
    shift : int
        Rounding shift of the affine / pixel stage.
    scale_bits : int
        Signed width of ``A``.
    out_bits, frac_bits : int
        Affine output: signed width and its fraction bits (training's reading).
    residual : int or None
        Affine stage: index of an earlier fixed tensor (>= 1) to add.
    residual_map : ndarray
        Pixel stage: for each output channel, the channel of tensor 0 to add, or -1.
    """

    kind: str
    kernel: int
    c_in: int
    c_out: int
    output: str
    weights: np.ndarray
    w_bits: int = 1
    threshold: np.ndarray | None = None
    flip: np.ndarray | None = None
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None
    shift: int = 0
    scale_bits: int = 16
    out_bits: int = 8
    frac_bits: int = 0
    residual: int | None = None
    residual_map: np.ndarray | None = None

    #: Parameter arrays (loadable at run time) and their stored dtypes.
    ARRAYS = {
        "weights": None,  # uint8 packed bits (binary) or int8/int16 (fixed)
        "threshold": np.int32,
        "flip": np.uint8,
        "scale": np.int32,
        "bias": np.int32,
        "residual_map": np.int16,
    }

    @property
    def taps(self) -> int:
        """Number of inputs per output: kernel*kernel*c_in (N of the popcount)."""
        return self.kernel * self.kernel * self.c_in

    def shape_dict(self) -> dict[str, Any]:
        """The scalars of this layer: what a bitstream is generated for."""
        d = {
            "kind": self.kind,
            "kernel": self.kernel,
            "c_in": self.c_in,
            "c_out": self.c_out,
            "output": self.output,
            "w_bits": self.w_bits if self.kind == "fixed" else 1,
        }
        if self.output in ("affine", "pixel"):
            d.update(shift=self.shift, scale_bits=self.scale_bits)
        if self.output == "affine":
            d.update(out_bits=self.out_bits, frac_bits=self.frac_bits, residual=self.residual)
        return d

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameter arrays this layer's output stage uses, normalized."""
        out = {"weights": self.weights}
        if self.output == "threshold":
            out.update(threshold=self.threshold, flip=self.flip)
        else:
            out.update(scale=self.scale, bias=self.bias)
        if self.output == "pixel":
            out["residual_map"] = self.residual_map
        return out

    def acc_range(self, in_type: TensorType) -> tuple[int, int]:
        """Exact bounds of this layer's accumulator for any input of ``in_type``."""
        if self.kind == "binary":
            return 0, self.taps
        lo, hi = in_type.value_range()
        return arith.conv_acc_range(self.weights, lo, hi)

    def out_type(self) -> TensorType:
        if self.output == "threshold":
            return TensorType("bit", self.c_out, 1)
        if self.output == "affine":
            return TensorType("fixed", self.c_out, self.out_bits, self.frac_bits)
        return TensorType("pixel", self.c_out, 8)


@dataclass
class PixelSteps:
    """Host-side steps that only rearrange pixels around the accelerator.

    ``unshuffle`` r: the image (H, W, C) becomes (H/r, W/r, C*r*r) with torch's channel order
    ``c*r*r + i*r + j``. ``noise_channel``: a constant channel with value ``noise_level`` (the
    noise sigma in 0..255 pixel units) is appended last. ``shuffle`` r: the inverse of unshuffle
    on the output (super-resolution uses shuffle alone).
    """

    unshuffle: int = 1
    noise_channel: bool = False
    noise_level: int = 0
    shuffle: int = 1


@dataclass(eq=False)
class Model:
    """A whole network: pixel steps, layers and descriptive metadata."""

    layers: list[Layer]
    image_channels: int = 3
    steps: PixelSteps = field(default_factory=PixelSteps)
    task: str = "test"
    name: str = "model"
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def input_channels(self) -> int:
        """Channels of tensor 0, the accelerator's input stream."""
        return self.image_channels * self.steps.unshuffle**2 + int(self.steps.noise_channel)

    @property
    def output_image_channels(self) -> int:
        return self.layers[-1].c_out // self.steps.shuffle**2

    def tensor_types(self) -> list[TensorType]:
        """Type of tensor 0..len(layers)."""
        types = [TensorType("pixel", self.input_channels, 8)]
        types += [layer.out_type() for layer in self.layers]
        return types

    def shape_dict(self) -> dict[str, Any]:
        """Everything a bitstream is generated for (no parameter values)."""
        return {
            "image_channels": self.image_channels,
            "steps": {
                "unshuffle": self.steps.unshuffle,
                "noise_channel": self.steps.noise_channel,
                "shuffle": self.steps.shuffle,
            },
            "layers": [layer.shape_dict() for layer in self.layers],
        }

    def shape_hash(self) -> str:
        """SHA-256 of :meth:`shape_dict`: equal for models one bitstream can run."""
        text = json.dumps(self.shape_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def digest(self) -> str:
        """SHA-256 of the model file bytes (saving is deterministic)."""
        from .fileformat import to_bytes

        return hashlib.sha256(to_bytes(self)).hexdigest()

    def with_noise_level(self, level: int) -> "Model":
        """A copy whose noise channel holds ``level``; error if the model has none."""
        if not self.steps.noise_channel:
            raise ModelError(f"model {self.name!r} has no noise-level channel")
        if not 0 <= level <= arith.PIXEL_MAX:
            raise ModelError(f"noise level {level!r} must be in 0..255 (sigma in pixel units)")
        return dataclasses.replace(self, steps=dataclasses.replace(self.steps, noise_level=level))

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Model":
        """Check every rule; raise :class:`ModelError` naming the first one broken."""
        if not self.layers:
            raise ModelError("model has no layers")
        if self.task not in TASKS:
            raise ModelError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if not isinstance(self.image_channels, int) or not 1 <= self.image_channels <= 4:
            raise ModelError(f"image_channels={self.image_channels!r} must be 1..4")
        s = self.steps
        for key in ("unshuffle", "shuffle"):
            r = getattr(s, key)
            if not isinstance(r, int) or r not in (1, 2, 3, 4):
                raise ModelError(f"pixel step {key}={r!r} must be 1, 2, 3 or 4")
        if not 0 <= s.noise_level <= arith.PIXEL_MAX:
            raise ModelError(f"noise_level={s.noise_level!r} must be in 0..255")
        types = [TensorType("pixel", self.input_channels, 8)]
        for i, layer in enumerate(self.layers, 1):
            _validate_layer(layer, i, types, last=(i == len(self.layers)))
            types.append(layer.out_type())
        last = self.layers[-1]
        if last.c_out % (s.shuffle**2):
            raise ModelError(
                f"last layer c_out={last.c_out} is not divisible by shuffle**2={s.shuffle**2}"
            )
        rmap = last.residual_map
        if rmap.max(initial=-1) >= self.input_channels:
            raise ModelError(
                f"layer {len(self.layers)}: residual_map names channel {int(rmap.max())}, "
                f"but the input has {self.input_channels} channels"
            )
        return self


def _int_array(layer_no: int, name: str, a, shape, lo=None, hi=None) -> np.ndarray:
    if a is None:
        raise ModelError(f"layer {layer_no}: {name} is missing")
    a = np.asarray(a)
    if a.dtype.kind not in "iub":
        raise ModelError(f"layer {layer_no}: {name} must be integer, got dtype {a.dtype}")
    if a.shape != tuple(shape):
        raise ModelError(f"layer {layer_no}: {name} has shape {a.shape}, expected {tuple(shape)}")
    a = a.astype(np.int64)
    if a.size and lo is not None and int(a.min()) < lo:
        raise ModelError(f"layer {layer_no}: {name} value {int(a.min())} is below {lo}")
    if a.size and hi is not None and int(a.max()) > hi:
        raise ModelError(f"layer {layer_no}: {name} value {int(a.max())} is above {hi}")
    return a


def _validate_layer(layer: Layer, i: int, types: list[TensorType], last: bool) -> None:
    if layer.kind not in KINDS:
        raise ModelError(f"layer {i}: kind {layer.kind!r} must be one of {KINDS}")
    if layer.kernel not in (1, 3):
        raise ModelError(f"layer {i}: kernel={layer.kernel!r} must be 1 or 3")
    if layer.output not in OUTPUTS:
        raise ModelError(f"layer {i}: output {layer.output!r} must be one of {OUTPUTS}")
    for key in ("c_in", "c_out"):
        v = getattr(layer, key)
        if not isinstance(v, int) or not 1 <= v <= 1024:
            raise ModelError(f"layer {i}: {key}={v!r} must be an integer in 1..1024")
    src = types[i - 1]
    if layer.c_in != src.channels:
        raise ModelError(
            f"layer {i}: c_in={layer.c_in} but its input tensor has {src.channels} channels"
        )
    if layer.kind == "binary" and src.kind == "pixel":
        raise ModelError(f"layer {i}: a binary layer cannot read pixels (sign of 0..255 is +1)")
    if (layer.output == "pixel") != last:
        raise ModelError(
            f"layer {i}: the last layer, and only the last, must have output 'pixel'"
            f" (got {layer.output!r})"
        )
    wshape = (layer.c_out, layer.kernel, layer.kernel, layer.c_in)
    if layer.kind == "binary":
        layer.w_bits = 1
        layer.weights = _int_array(i, "weights", layer.weights, wshape, 0, 1).astype(np.uint8)
    else:
        if not isinstance(layer.w_bits, int) or not 2 <= layer.w_bits <= arith.MAX_WEIGHT_BITS:
            raise ModelError(f"layer {i}: w_bits={layer.w_bits!r} must be 2..8")
        lo, hi = arith.signed_range(layer.w_bits)
        layer.weights = _int_array(i, "weights", layer.weights, wshape, lo, hi)
    c = layer.c_out
    clo, chi = arith.signed_range(arith.CONST_BITS)
    if layer.output == "threshold":
        layer.threshold = _int_array(i, "threshold", layer.threshold, (c,), clo, chi)
        layer.flip = _int_array(i, "flip", layer.flip, (c,), 0, 1).astype(bool)
        layer.scale = layer.bias = None
    else:
        if not isinstance(layer.scale_bits, int) or not 2 <= layer.scale_bits <= arith.MAX_SCALE_BITS:
            raise ModelError(f"layer {i}: scale_bits={layer.scale_bits!r} must be 2..18")
        slo, shi = arith.signed_range(layer.scale_bits)
        layer.scale = _int_array(i, "scale", layer.scale, (c,), slo, shi)
        layer.bias = _int_array(i, "bias", layer.bias, (c,), clo, chi)
        if not isinstance(layer.shift, int) or not 0 <= layer.shift <= arith.MAX_SHIFT:
            raise ModelError(f"layer {i}: shift={layer.shift!r} must be 0..{arith.MAX_SHIFT}")
        layer.threshold = layer.flip = None
    if layer.output == "affine":
        if not isinstance(layer.out_bits, int) or not 2 <= layer.out_bits <= arith.MAX_OUT_BITS:
            raise ModelError(f"layer {i}: out_bits={layer.out_bits!r} must be 2..16")
        if not isinstance(layer.frac_bits, int) or not 0 <= layer.frac_bits < layer.out_bits:
            raise ModelError(f"layer {i}: frac_bits={layer.frac_bits!r} must be 0..out_bits-1")
        r = layer.residual
        if r is not None:
            if not isinstance(r, int) or not 1 <= r < i:
                raise ModelError(
                    f"layer {i}: residual={r!r} must name an earlier layer's output (1..{i - 1})"
                )
            rt = types[r]
            if rt.kind != "fixed":
                raise ModelError(f"layer {i}: residual tensor {r} is {rt.kind}, not fixed")
            if rt.channels != c:
                raise ModelError(
                    f"layer {i}: residual tensor {r} has {rt.channels} channels, layer has {c}"
                )
            if rt.frac_bits != layer.frac_bits:
                raise ModelError(
                    f"layer {i}: residual tensor {r} has frac_bits={rt.frac_bits}, "
                    f"layer has {layer.frac_bits}"
                )
    else:
        layer.residual = None
    if layer.output == "pixel":
        if layer.residual_map is None:
            layer.residual_map = np.full(c, -1)
        layer.residual_map = _int_array(i, "residual_map", layer.residual_map, (c,), -1, 1023)
    else:
        layer.residual_map = None
