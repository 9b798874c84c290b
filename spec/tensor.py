"""What flows between layers: the tensor types, the bit packing of the fast spec, the error.

Kept apart from :mod:`spec.model` so that the output stages (:mod:`spec.stages`), which the
model is made of, can name the tensors they read and write.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import arith

__all__ = ["ModelError", "TensorType", "pack_channels", "unpack_channels"]


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


def pack_channels(bits: np.ndarray) -> np.ndarray:
    """(..., C) 0/1 -> (..., ceil(C/8)) uint8, channel c at bit c%8 of byte c//8."""
    return np.packbits(bits.astype(np.uint8, copy=False), axis=-1, bitorder="little")


def unpack_channels(packed: np.ndarray, c: int) -> np.ndarray:
    """Inverse of :func:`pack_channels` for ``c`` channels."""
    return np.unpackbits(packed, axis=-1, count=c, bitorder="little")
