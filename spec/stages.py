"""The output stages: what a layer does with its accumulator, one class per stage.

A layer is a convolution (:class:`spec.model.Layer`) followed by one stage. Each stage class
owns everything about itself, so adding a stage is one class here (plus its hardware block in
:mod:`hw.output_stages` and its torch twin in training):

* its per-channel arrays and scalars (frozen dataclass fields) and their file names
  (:attr:`Stage.name` is the file's ``output`` value, :attr:`Stage.ARRAYS`, :attr:`Stage.SCALARS`);
* its validation, pure: :meth:`Stage.validate` returns a normalized copy or raises
  :class:`ModelError`, with limits from :mod:`spec.arith`;
* its arithmetic, twice: :meth:`Stage.reference` (plain, :mod:`spec.reference`) and
  :meth:`Stage.fast` (the bands of :mod:`spec.fast`), which must agree bit for bit;
* what the hardware stores per channel (:meth:`Stage.param_fields` / :meth:`Stage.param_values`,
  packed by :mod:`accel.regmap`) and whether each lane needs a multiplier (:attr:`Stage.multiplies`).

The stages (rules in :mod:`spec.arith`):

* :class:`Threshold` -- norm + sign folded: ``bit = acc >= T``, or ``acc <= T`` where ``flip``;
* :class:`Affine` -- norm folded: ``y = saturate(rshift_round(acc*A + B, shift) + r, out_bits)``
  with ``r`` an earlier fixed tensor (``residual``) or 0, optionally with a per-channel
  power-of-two PReLU and offset (``act``) before the residual;
* :class:`PixelOutput` -- the last layer: ``y = clamp(rshift_round(acc*A + B, shift) + p, 0, 255)``
  with ``p`` channel ``residual_map[c]`` of the model input (global residual) or 0.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import arith
from .tensor import ModelError, TensorType, pack_channels

__all__ = ["Stage", "Threshold", "Affine", "PixelOutput", "STAGES", "ACTIVATIONS", "check_int",
           "int_array"]


def check_int(where: str, name: str, value, lo: int, hi: int) -> None:
    """Raise unless ``value`` is an int in ``lo..hi``; the message is ``where: name=value must
    be lo..hi`` (without ``where: `` when ``where`` is empty)."""
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        prefix = f"{where}: " if where else ""
        raise ModelError(f"{prefix}{name}={value!r} must be {lo}..{hi}")


def int_array(where: str, name: str, a, shape, lo=None, hi=None) -> np.ndarray:
    """``a`` as an int64 array of ``shape`` within ``lo..hi`` (a new array), or raise."""
    if a is None:
        raise ModelError(f"{where}: {name} is missing")
    a = np.asarray(a)
    if a.dtype.kind not in "iub":
        raise ModelError(f"{where}: {name} must be integer, got dtype {a.dtype}")
    if a.shape != tuple(shape):
        raise ModelError(f"{where}: {name} has shape {a.shape}, expected {tuple(shape)}")
    a = a.astype(np.int64)
    if a.size and lo is not None and int(a.min()) < lo:
        raise ModelError(f"{where}: {name} value {int(a.min())} is below {lo}")
    if a.size and hi is not None and int(a.max()) > hi:
        raise ModelError(f"{where}: {name} value {int(a.max())} is above {hi}")
    return a


@dataclass(frozen=True, eq=False, kw_only=True)
class Stage:
    """Base of the output stages (see the module docstring for the contract)."""

    #: The file's ``output`` value and the hardware region's name.
    name: ClassVar[str]
    #: Per-channel arrays: field name -> dtype stored in the model file.
    ARRAYS: ClassVar[dict[str, Any]]
    #: Scalars: field name -> accepted types in the model file.
    SCALARS: ClassVar[dict[str, tuple]]
    #: Scalars written to the file only when not at their default (options added after
    #: version 1, so that models without them keep their bytes and older readers read them).
    OPTIONAL_SCALARS: ClassVar[tuple[str, ...]] = ()
    #: Whether each hardware lane holds a multiplier (counted against the DSP budget).
    multiplies: ClassVar[bool]
    #: Whether the stage writes the model output (the last layer, and only the last, has it).
    final: ClassVar[bool] = False

    # ------------------------------------------------------------------ description
    def out_type(self, c_out: int) -> TensorType:
        """The tensor this stage writes."""
        raise NotImplementedError

    def shape_dict(self) -> dict[str, Any]:
        """The stage's scalars that a bitstream is generated for (part of the shape hash)."""
        raise NotImplementedError

    def arrays(self) -> dict[str, np.ndarray]:
        """The stage's parameter arrays (loadable at run time), by file name; an optional
        array that is ``None`` (after :meth:`validate`) is left out."""
        return {k: getattr(self, k) for k in self.ARRAYS if getattr(self, k) is not None}

    def scalars(self) -> dict[str, Any]:
        """The stage's scalars, by file name (:attr:`OPTIONAL_SCALARS` only when set)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: getattr(self, k) for k in self.SCALARS
                if k not in self.OPTIONAL_SCALARS or getattr(self, k) != defaults[k]}

    def joins(self) -> tuple[int, ...]:
        """Earlier tensors (indices) this stage reads besides its accumulator."""
        return ()

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> "Stage":
        """The stage from its file fields: unknown keys are ignored, missing scalars take their
        defaults and missing arrays are ``None`` (which :meth:`validate` reports)."""
        return cls(**{k: fields.get(k) for k in cls.ARRAYS},
                   **{k: fields[k] for k in cls.SCALARS if k in fields})

    # ------------------------------------------------------------------ validation
    def validate(self, where: str, c_out: int, types: list[TensorType], index: int) -> "Stage":
        """A normalized copy, or :class:`ModelError` naming the first rule broken.

        ``where`` prefixes messages (``"layer 3"``), ``types`` are the tensor types before
        this layer's output (``types[0]`` is the model input), ``index`` is the layer's
        1-based position."""
        raise NotImplementedError

    # ------------------------------------------------------------------ arithmetic
    def reference(self, acc: np.ndarray, tensors: list[np.ndarray]) -> np.ndarray:
        """The output (H, W, c_out) for accumulator ``acc`` (int64) and earlier ``tensors``
        (unpacked: bits one uint8 per channel). Plain numpy, for trust."""
        raise NotImplementedError

    def fast(self, tensors: list[np.ndarray], out: np.ndarray, mismatch_taps: int | None):
        """The fast spec's stage: a function ``(r0, r1, acc)`` that writes rows ``r0:r1`` of
        ``out`` (bits packed by :func:`spec.tensor.pack_channels`, fixed int32, pixels uint8)
        from a band of the accumulator. Binary layers pass ``mismatch_taps = N`` and the
        function receives ``m = N - acc`` (uint16) instead of ``acc``. ``tensors`` are the
        earlier tensors in the fast spec's storage."""
        raise NotImplementedError

    def randomized(self, rng: np.random.Generator, acc_lo: int, acc_hi: int,
                   c_out: int) -> "Stage":
        """A copy with random arrays for an accumulator in ``acc_lo..acc_hi`` that keep the
        output from being degenerate (for :func:`spec.random_model`)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ hardware storage
    def param_fields(self, acc_lo: int, acc_hi: int, input_channels: int) -> tuple:
        """Per lane of the hardware's parameter memory: ``((name, bits, signed), ...)``, for
        any model of this shape (``acc_lo..acc_hi`` bound the accumulator of every one)."""
        raise NotImplementedError

    def param_values(self, acc_lo: int, acc_hi: int) -> dict[str, np.ndarray]:
        """Per field of :meth:`param_fields`, the c_out int64 values stored."""
        raise NotImplementedError


@dataclass(frozen=True, eq=False, kw_only=True)
class Threshold(Stage):
    """Norm + sign folded into one comparison per channel: ``bit = acc >= T``, or
    ``acc <= T`` where ``flip`` (a negative norm scale). Writes a bit tensor.

    Parameters
    ----------
    threshold : ndarray
        ``T`` per channel, ``CONST_BITS`` signed.
    flip : ndarray
        Per channel, 1 where the comparison is ``<=``.
    """

    name: ClassVar[str] = "threshold"
    ARRAYS: ClassVar[dict] = {"threshold": np.int32, "flip": np.uint8}
    SCALARS: ClassVar[dict] = {}
    multiplies: ClassVar[bool] = False

    threshold: np.ndarray
    flip: np.ndarray

    def out_type(self, c_out):
        return TensorType("bit", c_out, 1)

    def shape_dict(self):
        return {}

    def validate(self, where, c_out, types, index):
        clo, chi = arith.signed_range(arith.CONST_BITS)
        return Threshold(threshold=int_array(where, "threshold", self.threshold, (c_out,), clo, chi),
                         flip=int_array(where, "flip", self.flip, (c_out,), 0, 1).astype(bool))

    def randomized(self, rng, acc_lo, acc_hi, c_out):
        # Thresholds near the accumulator's middle, some channels flipped.
        mid, spread = _middle(acc_lo, acc_hi)
        threshold = np.round(rng.normal(mid, spread, c_out)).astype(np.int64)
        return dataclasses.replace(self, threshold=threshold, flip=rng.random(c_out) < 0.3)

    def reference(self, acc, tensors):
        ge = acc >= self.threshold
        le = acc <= self.threshold
        return np.where(self.flip, le, ge).astype(np.uint8)

    def fast(self, tensors, out, mismatch_taps):
        # flip: acc <= T  ==  not (acc >= T + 1). For binary layers, with m = N - acc,
        # acc >= T'  ==  m <= N - T'.
        t_ge = self.threshold + self.flip
        flip = self.flip
        if mismatch_taps is not None:
            m_le = (mismatch_taps - t_ge).astype(np.int32)

            def stage(r0, r1, mism):
                out[r0:r1] = pack_channels((mism <= m_le) ^ flip)
        else:

            def stage(r0, r1, acc):
                out[r0:r1] = pack_channels((acc >= t_ge) ^ flip)

        return stage

    def param_fields(self, acc_lo, acc_hi, input_channels):
        # T clamped to the accumulator range +/- 1 changes no comparison and bounds its width.
        return (("threshold", arith.bits_for_range(acc_lo - 1, acc_hi + 1), True),
                ("flip", 1, False))

    def param_values(self, acc_lo, acc_hi):
        return {"threshold": np.clip(np.asarray(self.threshold, dtype=np.int64), acc_lo - 1, acc_hi + 1),
                "flip": np.asarray(self.flip, dtype=np.int64)}


@dataclass(frozen=True, eq=False, kw_only=True)
class _Scaled(Stage):
    """The common front of the affine and pixel stages: ``rshift_round(acc*A + B, shift)``.

    Parameters
    ----------
    scale, bias : ndarray
        ``A`` (``scale_bits`` signed) and ``B`` (``CONST_BITS`` signed) per channel.
    shift : int
        The rounding shift, 0..``MAX_SHIFT``.
    scale_bits : int
        Signed width of ``A``; the hardware's multiplier operand (default the widest, what
        the training export writes).
    """

    SCALARS: ClassVar[dict] = {"shift": (int,), "scale_bits": (int,)}
    multiplies: ClassVar[bool] = True

    scale: np.ndarray
    bias: np.ndarray
    shift: int = 0
    scale_bits: int = arith.MAX_SCALE_BITS

    def shape_dict(self):
        return {"shift": self.shift, "scale_bits": self.scale_bits}

    def _validated_scaling(self, where, c_out) -> dict[str, Any]:
        check_int(where, "scale_bits", self.scale_bits, arith.MIN_BITS, arith.MAX_SCALE_BITS)
        clo, chi = arith.signed_range(arith.CONST_BITS)
        slo, shi = arith.signed_range(self.scale_bits)
        scale = int_array(where, "scale", self.scale, (c_out,), slo, shi)
        bias = int_array(where, "bias", self.bias, (c_out,), clo, chi)
        check_int(where, "shift", self.shift, 0, arith.MAX_SHIFT)
        return {"scale": scale, "bias": bias}

    def applied(self) -> tuple[np.ndarray, np.ndarray]:
        """``(A, B)`` as the stage computes with them and the hardware loads them (the pixel
        stage scales them by its noise gain)."""
        return self.scale, self.bias

    def scaled(self, acc: np.ndarray) -> np.ndarray:
        """``rshift_round(acc*A + B, shift)`` (int64), the reference's first step."""
        a, b = self.applied()
        return arith.rshift_round(acc * a + b, self.shift)

    def fast_scaled(self, mismatch_taps: int | None):
        """``rshift_round(acc*A + B, shift)`` as one multiply-add and a shift, its constants
        folded (from the mismatch count ``m`` for binary layers)."""
        (a, b), s = self.applied(), self.shift
        if mismatch_taps is not None:  # acc*A + B = (N - m)*A + B = m*(-A) + (N*A + B)
            a, b = -a, mismatch_taps * a + b
        if s:
            b = b + (1 << (s - 1))  # rshift_round's constant, folded into B
        a, b = a.astype(np.int64), b.astype(np.int64)
        return lambda acc: (acc * a + b) >> s

    def param_values(self, acc_lo, acc_hi):
        a, b = self.applied()
        return {"scale": np.asarray(a, dtype=np.int64), "bias": np.asarray(b, dtype=np.int64)}

    def with_shift(self, shift: int) -> "_Scaled":
        """A copy computing about the same with rounding shift ``shift`` (``A``, ``B`` scaled by
        ``2**(shift - self.shift)``, rounded and clipped to their widths)."""
        f = 2.0 ** (shift - self.shift)
        slo, shi = arith.signed_range(self.scale_bits)
        blo, bhi = arith.signed_range(arith.CONST_BITS)
        return dataclasses.replace(
            self, shift=shift,
            scale=np.clip(np.round(self.scale * f), slo, shi).astype(np.int64),
            bias=np.clip(np.round(self.bias * f), blo, bhi).astype(np.int64))

    def _random_scaling(self, rng, acc_lo, acc_hi, c_out, out_hi: float, centre: float) -> dict:
        """Random ``A``, ``B``, ``shift`` mapping the accumulator's middle to ``centre`` and
        about three spreads to +/- ``out_hi``."""
        mid, spread = _middle(acc_lo, acc_hi)
        smax = arith.signed_range(self.scale_bits)[1]
        gain = out_hi / max(spread * 3, 1.0)
        for shift in range(arith.MAX_SHIFT + 1):
            if gain * (1 << shift) >= smax / 4 or shift == arith.MAX_SHIFT:
                break
        a = gain * (1 << shift) * rng.uniform(0.5, 1.5, c_out) * rng.choice([-1, 1], c_out)
        scale = np.clip(np.round(a), -smax - 1, smax).astype(np.int64)
        b = -scale * mid + (centre + rng.normal(0, out_hi / 8, c_out)) * (1 << shift)
        lo, hi = arith.signed_range(arith.CONST_BITS)
        return {"scale": scale, "bias": np.clip(np.round(b), lo, hi).astype(np.int64),
                "shift": shift}


#: The activations an :class:`Affine` stage may apply (``act``): ``"prelu"`` is BBCU's RPReLU
#: with power-of-two slopes (``spec.arith``'s affine activation rule).
ACTIVATIONS = ("prelu",)


@dataclass(frozen=True, eq=False, kw_only=True)
class Affine(_Scaled):
    """Norm folded into ``acc*A + B``, rounded, optionally activated, plus an optional
    residual, saturated once to ``out_bits``: writes a fixed tensor.

    Parameters
    ----------
    scale, bias, shift, scale_bits : see :class:`_Scaled`.
    out_bits, frac_bits : int
        The output's signed width and its fraction bits (training's reading of it).
    residual : int or None
        Index of an earlier fixed tensor (>= 1) of the same channels and ``frac_bits`` to add
        before the saturation.
    act : str or None
        ``"prelu"``: per channel, negative values are shifted right by ``act_shift`` (slope
        ``2**-k``, rounded half up), then ``act_offset`` is added, before the residual.
    act_shift, act_offset : ndarray or None
        The activation's per-channel shift (0..``MAX_ACT_SHIFT``) and offset (``out_bits``
        signed); ``None`` without ``act``.
    """

    name: ClassVar[str] = "affine"
    ARRAYS: ClassVar[dict] = {"scale": np.int32, "bias": np.int32,
                              "act_shift": np.uint8, "act_offset": np.int32}
    SCALARS: ClassVar[dict] = {**_Scaled.SCALARS, "out_bits": (int,), "frac_bits": (int,),
                               "residual": (int, type(None)), "act": (str, type(None))}
    OPTIONAL_SCALARS: ClassVar[tuple] = ("act",)

    out_bits: int = 8
    frac_bits: int = 0
    residual: int | None = None
    act: str | None = None
    act_shift: np.ndarray | None = None
    act_offset: np.ndarray | None = None

    def out_type(self, c_out):
        return TensorType("fixed", c_out, self.out_bits, self.frac_bits)

    def shape_dict(self):
        d = {**super().shape_dict(), "out_bits": self.out_bits, "frac_bits": self.frac_bits,
             "residual": self.residual}
        if self.act is not None:  # only when set: shapes without it keep their hashes
            d["act"] = self.act
        return d

    def _validated_act(self, where, c_out) -> dict[str, Any]:
        if self.act is None:
            for name in ("act_shift", "act_offset"):
                if getattr(self, name) is not None:
                    raise ModelError(f"{where}: {name} is given but the stage has no act")
            return {}
        if self.act not in ACTIVATIONS:
            raise ModelError(f"{where}: act={self.act!r} must be one of {', '.join(ACTIVATIONS)}")
        olo, ohi = arith.signed_range(self.out_bits)
        return {"act_shift": int_array(where, "act_shift", self.act_shift, (c_out,),
                                       0, arith.MAX_ACT_SHIFT),
                "act_offset": int_array(where, "act_offset", self.act_offset, (c_out,), olo, ohi)}

    def joins(self):
        return () if self.residual is None else (self.residual,)

    def validate(self, where, c_out, types, index):
        arrays = self._validated_scaling(where, c_out)
        check_int(where, "out_bits", self.out_bits, arith.MIN_BITS, arith.MAX_OUT_BITS)
        if not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits < self.out_bits:
            raise ModelError(f"{where}: frac_bits={self.frac_bits!r} must be 0..out_bits-1")
        r = self.residual
        if r is not None:
            if not isinstance(r, int) or not 1 <= r < index:
                raise ModelError(
                    f"{where}: residual={r!r} must name an earlier layer's output (1..{index - 1})"
                )
            rt = types[r]
            if rt.kind != "fixed":
                raise ModelError(f"{where}: residual tensor {r} is {rt.kind}, not fixed")
            if rt.channels != c_out:
                raise ModelError(
                    f"{where}: residual tensor {r} has {rt.channels} channels, layer has {c_out}"
                )
            if rt.frac_bits != self.frac_bits:
                raise ModelError(
                    f"{where}: residual tensor {r} has frac_bits={rt.frac_bits}, "
                    f"layer has {self.frac_bits}"
                )
        return dataclasses.replace(self, **arrays, **self._validated_act(where, c_out))

    def randomized(self, rng, acc_lo, acc_hi, c_out):
        out_hi = arith.signed_range(self.out_bits)[1]
        new = dataclasses.replace(
            self, **self._random_scaling(rng, acc_lo, acc_hi, c_out, out_hi, centre=0))
        if self.act is None:  # draw nothing more, so seeds without the option keep their models
            return new
        # Every shift occurs, 0 (slope 1) and the largest included; small offsets, some at
        # the range's ends (saturation is tested separately by the scaling's spread).
        shifts = rng.integers(0, arith.MAX_ACT_SHIFT + 1, c_out)
        shifts[rng.random(c_out) < 0.2] = arith.MAX_ACT_SHIFT
        offsets = rng.integers(-(out_hi // 8) - 1, out_hi // 8 + 1, c_out)
        offsets[rng.random(c_out) < 0.1] = rng.choice([-out_hi - 1, out_hi])
        return dataclasses.replace(new, act_shift=shifts, act_offset=offsets)

    def activated(self, y: np.ndarray) -> np.ndarray:
        """The activation (if any) of the rounded values ``y`` (int64, channels last)."""
        if self.act is None:
            return y
        return arith.prelu_shift(y, self.act_shift) + self.act_offset

    def reference(self, acc, tensors):
        y = self.activated(self.scaled(acc))
        if self.residual is not None:
            y = y + tensors[self.residual]
        return arith.saturate(y, self.out_bits)

    def fast(self, tensors, out, mismatch_taps):
        scaled = self.fast_scaled(mismatch_taps)
        res = tensors[self.residual] if self.residual is not None else None
        lo, hi = arith.signed_range(self.out_bits)

        def stage(r0, r1, acc):
            y = scaled(acc)
            y = self.activated(y)
            if res is not None:
                y += res[r0:r1]
            np.clip(y, lo, hi, out=out[r0:r1], casting="unsafe")

        return stage

    def param_fields(self, acc_lo, acc_hi, input_channels):
        fields = (("scale", self.scale_bits, True), ("bias", arith.CONST_BITS, True))
        if self.act is not None:
            fields += (("act_shift", arith.MAX_ACT_SHIFT.bit_length(), False),
                       ("act_offset", self.out_bits, True))
        return fields

    def param_values(self, acc_lo, acc_hi):
        values = super().param_values(acc_lo, acc_hi)
        if self.act is not None:
            values.update(act_shift=np.asarray(self.act_shift, dtype=np.int64),
                          act_offset=np.asarray(self.act_offset, dtype=np.int64))
        return values


@dataclass(frozen=True, eq=False, kw_only=True)
class PixelOutput(_Scaled):
    """The last layer's stage: ``acc*A + B`` rounded, plus a channel of the model input
    (global residual), clamped to 0..255: writes the output pixels.

    Parameters
    ----------
    scale, bias, shift, scale_bits : see :class:`_Scaled`.
    residual_map : ndarray or None
        Per output channel, the channel of tensor 0 to add, or -1 (``None``: all -1).
    gain : int
        The noise gain at the model's noise level (``arith.GAIN_FRAC_BITS`` fraction bits; set
        by :meth:`spec.Model.validate` from ``PixelSteps.noise_gain``, not stored in the file).
        The stage computes with ``A' = rshift_round(A*gain, GAIN_FRAC_BITS)`` and ``B'``
        likewise, clipped to their widths: the restoration (everything but the global
        residual) scaled by the gain, so a gain of 0 returns the residual input unchanged.
    """

    name: ClassVar[str] = "pixel"
    ARRAYS: ClassVar[dict] = {"scale": np.int32, "bias": np.int32, "residual_map": np.int16}
    final: ClassVar[bool] = True

    residual_map: np.ndarray | None = None
    gain: int = arith.GAIN_ONE

    def applied(self):
        if self.gain == arith.GAIN_ONE:
            return self.scale, self.bias
        g = np.int64(self.gain)
        a = arith.rshift_round(np.asarray(self.scale, np.int64) * g, arith.GAIN_FRAC_BITS)
        b = arith.rshift_round(np.asarray(self.bias, np.int64) * g, arith.GAIN_FRAC_BITS)
        return (np.clip(a, *arith.signed_range(self.scale_bits)),
                np.clip(b, *arith.signed_range(arith.CONST_BITS)))

    def out_type(self, c_out):
        return TensorType("pixel", c_out, 8)

    def joins(self):
        # Always wired: residual_map is a loadable array, not part of the shape.
        return (0,)

    def validate(self, where, c_out, types, index):
        arrays = self._validated_scaling(where, c_out)
        rmap = np.full(c_out, -1) if self.residual_map is None else self.residual_map
        rmap = int_array(where, "residual_map", rmap, (c_out,), -1, arith.MAX_CHANNELS - 1)
        if rmap.max(initial=-1) >= types[0].channels:
            raise ModelError(
                f"{where}: residual_map names channel {int(rmap.max())}, "
                f"but the input has {types[0].channels} channels"
            )
        return dataclasses.replace(self, residual_map=rmap, **arrays)

    def randomized(self, rng, acc_lo, acc_hi, c_out):
        # Mid-grey output without a global residual, the input's pixel plus a little with one.
        centre = 0 if self.residual_map is not None else 128
        return dataclasses.replace(
            self, **self._random_scaling(rng, acc_lo, acc_hi, c_out, 127, centre))

    def reference(self, acc, tensors):
        y = self.scaled(acc)
        x0 = tensors[0].astype(np.int64)
        for c, src in enumerate(self.residual_map):
            if src >= 0:
                y[:, :, c] += x0[:, :, src]
        return arith.clamp_pixel(y)

    def fast(self, tensors, out, mismatch_taps):
        scaled = self.fast_scaled(mismatch_taps)
        x0 = tensors[0]
        rmap = self.residual_map
        used = rmap >= 0

        def stage(r0, r1, acc):
            y = scaled(acc)
            y[:, :, used] += x0[r0:r1][:, :, rmap[used]]
            np.clip(y, 0, arith.PIXEL_MAX, out=out[r0:r1], casting="unsafe")

        return stage

    def param_fields(self, acc_lo, acc_hi, input_channels):
        # The stored map is residual_map + 1 (0 = no global residual).
        return (("scale", self.scale_bits, True), ("bias", arith.CONST_BITS, True),
                ("map", max(1, input_channels.bit_length()), False))

    def param_values(self, acc_lo, acc_hi):
        return {**super().param_values(acc_lo, acc_hi),
                "map": np.asarray(self.residual_map, dtype=np.int64) + 1}


def _middle(acc_lo: int, acc_hi: int) -> tuple[float, float]:
    """The accumulator range's middle and a twelfth of its width (at least 1)."""
    return (acc_lo + acc_hi) / 2, max(1.0, (acc_hi - acc_lo) / 12)


#: Every stage class by its file name.
STAGES: dict[str, type[Stage]] = {cls.name: cls for cls in (Threshold, Affine, PixelOutput)}
