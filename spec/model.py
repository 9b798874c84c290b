"""The integer model: what one network is, layer by layer, and its validation.

A model is a chain of convolution layers over a raster image. Tensor 0 is the model input
(pixels, after the host's pixel steps); layer ``i`` (1-based) reads tensor ``i-1`` and writes
tensor ``i``. Each layer is a convolution (``binary`` XNOR-popcount or ``fixed`` integer
multiply-accumulate, :mod:`spec.kinds`) followed by one output stage (:mod:`spec.stages`: threshold -> bits,
affine -> fixed, pixel -> 8-bit output, last layer only). An affine stage may add an earlier
fixed tensor (``residual``); the pixel stage may add channels of tensor 0 (``residual_map``).
The arithmetic of each piece is defined in :mod:`spec.arith`.

Validation is pure: :meth:`Model.validate` returns a normalized model (arrays as int64 or
uint8/bool, defaults filled in) or raises :class:`ModelError`; it never changes its input.

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
from .kinds import KINDS, Kind, kind_of
from .stages import STAGES, Affine, PixelOutput, Stage, Threshold, check_int
from .tensor import ModelError, TensorType

__all__ = [
    "ModelError",
    "Layer",
    "PixelSteps",
    "Model",
    "TensorType",
    "Stage",
    "Threshold",
    "Affine",
    "PixelOutput",
    "STAGES",
    "KINDS",
    "TASKS",
]

TASKS = ("denoise", "sr", "lowlight", "derain", "test")


@dataclass(frozen=True, eq=False)
class Layer:
    """One convolution and its output stage.

    Parameters
    ----------
    kind : str
        The file's kind (:data:`spec.kinds.KINDS`): ``"binary"`` (XNOR-popcount on sign bits)
        or ``"fixed"`` (integer weights); with ``groups`` it names the kind class that
        computes the layer, :attr:`conv` (:mod:`spec.kinds`).
    kernel : int
        1 or 3 (3x3 windows use the replicate border).
    c_in, c_out : int
        Channel counts.
    weights : ndarray
        Shape (c_out, kernel, kernel, c_in // groups). Binary: 0/1 (1 = +1). Fixed: int,
        within ``w_bits`` signed.
    stage : spec.stages.Stage
        The output stage (its arrays and scalars).
    w_bits : int
        Fixed weights' signed width (1 for binary layers).
    groups : int
        1 (dense: every output reads every input channel) or, for a *depthwise* fixed layer,
        ``c_in == c_out``: output channel ``c`` reads only input channel ``c``,
        ``acc[c] = sum_{ky,kx} w[c, ky, kx, 0] * v[ky, kx, c]`` (the cheap 3x3 half of a
        depthwise-separable head or tail: 9 products per channel instead of 9*c_in).
    """

    kind: str
    kernel: int
    c_in: int
    c_out: int
    weights: np.ndarray
    stage: Stage
    w_bits: int = 1
    groups: int = 1

    @property
    def conv(self) -> Kind:
        """The convolution's kind (:mod:`spec.kinds`), from ``kind`` and ``groups``."""
        return kind_of("layer", self.kind, self.groups)

    @property
    def depthwise(self) -> bool:
        """True for a depthwise layer (one input channel per output channel)."""
        return self.conv.per_channel

    @property
    def taps(self) -> int:
        """Number of inputs per output: kernel*kernel*c_in/groups (N of the popcount)."""
        _, kh, kw, ci = self.weight_shape
        return kh * kw * ci

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """(c_out, kernel, kernel, c_in // groups)."""
        return self.conv.weight_shape(self)

    def shape_dict(self) -> dict[str, Any]:
        """The scalars of this layer: what a bitstream is generated for."""
        conv = self.conv.file_fields(self)
        return {
            "kind": conv.pop("kind"),  # first: manifests keep their bytes
            "kernel": self.kernel,
            "c_in": self.c_in,
            "c_out": self.c_out,
            "output": self.stage.name,
            **conv,
            **self.stage.shape_dict(),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        """The parameter arrays of the convolution and the stage."""
        return {"weights": self.weights, **self.stage.arrays()}

    def acc_range(self, in_type: TensorType) -> tuple[int, int]:
        """Exact bounds of this layer's accumulator for any input of ``in_type``."""
        return self.conv.acc_range(self, *in_type.value_range())

    def out_type(self) -> TensorType:
        return self.stage.out_type(self.c_out)

    def validate(self, i: int, types: list[TensorType], last: bool) -> "Layer":
        """This layer normalized, or :class:`ModelError`; ``i`` is its 1-based position and
        ``types`` the tensor types 0..i-1."""
        where = f"layer {i}"
        if self.kind not in KINDS:
            raise ModelError(f"{where}: kind {self.kind!r} must be one of {KINDS}")
        if self.kernel not in (1, 3):
            raise ModelError(f"{where}: kernel={self.kernel!r} must be 1 or 3")
        if not isinstance(self.stage, Stage):
            raise ModelError(f"{where}: stage {self.stage!r} must be one of "
                             f"{', '.join(STAGES)} (a spec.stages.Stage)")
        for key in ("c_in", "c_out"):
            check_int(where, key, getattr(self, key), 1, arith.MAX_CHANNELS)
        src = types[i - 1]
        if self.c_in != src.channels:
            raise ModelError(
                f"{where}: c_in={self.c_in} but its input tensor has {src.channels} channels"
            )
        if self.stage.final != last:
            raise ModelError(
                f"{where}: the last layer, and only the last, must have output 'pixel'"
                f" (got {self.stage.name!r})"
            )
        check_int(where, "groups", self.groups, 1, arith.MAX_CHANNELS)
        conv = kind_of(where, self.kind, self.groups).validate(self, where, src)
        stage = self.stage.validate(where, self.c_out, types, i)
        return dataclasses.replace(self, stage=stage, **conv)


@dataclass
class PixelSteps:
    """Host-side steps that only rearrange pixels around the accelerator.

    ``unshuffle`` r: the image (H, W, C) becomes (H/r, W/r, C*r*r) with torch's channel order
    ``c*r*r + i*r + j``. ``noise_channel``: a constant channel with value ``noise_level`` (the
    noise sigma in 0..255 pixel units) is appended last. ``shuffle`` r: the inverse of unshuffle
    on the output (super-resolution uses shuffle alone).

    ``noise_gain`` (empty, or with a noise channel): per noise level 0, 1, ..., the strength of
    the restoration, ``arith.GAIN_FRAC_BITS`` fraction bits (4096 = 1); levels past its end
    take its last entry. The host scales the pixel stage's ``A`` and ``B`` by the gain of the
    chosen level before loading them (:class:`spec.stages.PixelOutput`), so a level's gain
    costs no hardware; a gain of 0 passes the input through (a clean frame at level 0).
    """

    unshuffle: int = 1
    noise_channel: bool = False
    noise_level: int = 0
    shuffle: int = 1
    noise_gain: tuple[int, ...] = ()

    def noise_levels(self) -> range:
        """The noise levels the model was made for: its noise-gain table's (levels past the
        table's end reuse its last gain while the noise channel keeps changing: untrained
        territory), else every level 0..255."""
        return range(len(self.noise_gain) or arith.PIXEL_MAX + 1)

    def gain(self) -> int:
        """The noise gain at ``noise_level`` (1.0 without a table)."""
        if not self.noise_gain:
            return arith.GAIN_ONE
        return self.noise_gain[min(self.noise_level, len(self.noise_gain) - 1)]


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

    def with_noise_level(self, level: int) -> "Model":
        """A copy whose noise channel holds ``level``; error if the model has none."""
        if not self.steps.noise_channel:
            raise ModelError(f"model {self.name!r} has no noise-level channel")
        if not 0 <= level <= arith.PIXEL_MAX:
            raise ModelError(f"noise level {level!r} must be in 0..{arith.PIXEL_MAX} (sigma in pixel units)")
        model = dataclasses.replace(self, steps=dataclasses.replace(self.steps, noise_level=level))
        return model._with_level_gain()

    def _with_level_gain(self) -> "Model":
        """This model with the pixel stage's gain set from the noise-gain table at its level."""
        last = self.layers[-1]
        gain = self.steps.gain()
        if not isinstance(last.stage, PixelOutput) or last.stage.gain == gain:
            return self
        stage = dataclasses.replace(last.stage, gain=gain)
        return dataclasses.replace(self, layers=[*self.layers[:-1], dataclasses.replace(last, stage=stage)])

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Model":
        """This model normalized (a new object; ``self`` is not changed), or
        :class:`ModelError` naming the first rule broken."""
        if not self.layers:
            raise ModelError("model has no layers")
        if self.task not in TASKS:
            raise ModelError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        check_int("", "image_channels", self.image_channels, 1, arith.MAX_IMAGE_CHANNELS)
        s = self.steps
        for key in ("unshuffle", "shuffle"):
            r = getattr(s, key)
            if not isinstance(r, int) or r not in arith.PIXEL_STEPS:
                raise ModelError(f"pixel step {key}={r!r} must be "
                                 f"{', '.join(map(str, arith.PIXEL_STEPS[:-1]))} or "
                                 f"{arith.PIXEL_STEPS[-1]}")
        if not 0 <= s.noise_level <= arith.PIXEL_MAX:
            raise ModelError(f"noise_level={s.noise_level!r} must be in 0..{arith.PIXEL_MAX}")
        gains = tuple(s.noise_gain)
        if gains:
            if not s.noise_channel:
                raise ModelError("noise_gain needs a noise-level channel (noise_channel=true)")
            if len(gains) > arith.MAX_GAIN_LEVELS:
                raise ModelError(f"noise_gain has {len(gains)} levels, at most "
                                 f"{arith.MAX_GAIN_LEVELS} (0..{arith.PIXEL_MAX})")
            for level, g in enumerate(gains):
                if not isinstance(g, (int, np.integer)) or isinstance(g, bool) or not 0 <= g <= arith.MAX_GAIN:
                    raise ModelError(f"noise_gain[{level}]={g!r} must be an integer in 0..{arith.MAX_GAIN}")
            s = dataclasses.replace(s, noise_gain=tuple(int(g) for g in gains))
        types = [TensorType("pixel", self.input_channels, 8)]
        layers = []
        for i, layer in enumerate(self.layers, 1):
            layers.append(layer.validate(i, types, last=(i == len(self.layers))))
            types.append(layers[-1].out_type())
        last = layers[-1]
        if last.c_out % (s.shuffle**2):
            raise ModelError(
                f"last layer c_out={last.c_out} is not divisible by shuffle**2={s.shuffle**2}"
            )
        return dataclasses.replace(self, layers=layers, steps=s)._with_level_gain()
