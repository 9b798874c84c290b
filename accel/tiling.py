"""Tiling of frames larger than the accelerator's line buffers, exact by construction.

Every layer of the streamable family is a 3x3 (or 1x1) convolution with the replicate border
rule, and residual adds are pointwise. A wrong value at a tile edge (where the tile's
replicated border differs from the real neighbouring pixels) therefore moves inward by at most
one pixel per 3x3 layer: with a halo of ``radius`` = number of 3x3 layers on each interior
edge, the tile's core equals whole-frame processing. Edges that are frame edges need no halo
(the replicate rule there is the frame's own). All coordinates here are in accelerator pixels
(tensor 0, after pixel unshuffle).

Every tile has the same size (the last one is shifted back to end at the frame edge, so it
overlaps its neighbour more), so one register setting serves a whole video; that size is the
smallest that covers the axis with the fewest tiles the limit allows, not the limit itself, so
the overlap the accelerator computes twice is no larger than the halos need.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from spec.model import Model

__all__ = ["TilingError", "radius", "Tile", "plan_1d", "plan"]


class TilingError(ValueError):
    """The accelerator's limits leave no room for a model's halo; the message says what to do."""


def radius(model: Model) -> int:
    """Receptive-field radius of ``model``: how far one output pixel sees, in tensor-0 pixels."""
    return sum((layer.kernel - 1) // 2 for layer in model.layers)


def plan_1d(size: int, limit: int | None, halo: int) -> list[tuple[int, int, int, int]]:
    """Windows ``(in_start, in_stop, out_start, out_stop)`` covering ``0..size`` exactly.

    The output ranges partition the axis. Every input window has the same length: with ``n``
    windows of length ``L`` the cores cover ``n * L - 2 * (n - 1) * halo`` pixels, so ``n`` is
    the fewest that fit under ``limit`` and ``L`` the shortest that then covers ``size``.
    """
    if limit is None or size <= limit:
        return [(0, size, 0, size)]
    if limit - 2 * halo < 1:
        raise TilingError(
            f"the bitstream's maximum of {limit} pixels leaves no room for the model's halo of "
            f"{halo} pixels on each side of a tile: regenerate the bitstream with a larger "
            f"max width"
        )
    count = -(-(size - 2 * halo) // (limit - 2 * halo))
    length = -(-(size + 2 * (count - 1) * halo) // count)
    out = []
    start, done = 0, 0
    while done < size:
        if start + length >= size:
            start = size - length
        stop = start + length
        valid = stop if stop == size else stop - halo
        out.append((start, stop, done, valid))
        done = valid
        start = done - halo
    return out


@dataclass(frozen=True)
class Tile:
    """One rectangle: ``ys``/``xs`` input window, ``out_ys``/``out_xs`` the exact core it gives."""

    ys: slice
    xs: slice
    out_ys: slice
    out_xs: slice

    def core(self) -> tuple[slice, slice]:
        """The core inside the tile's own output array."""
        return (slice(self.out_ys.start - self.ys.start, self.out_ys.stop - self.ys.start),
                slice(self.out_xs.start - self.xs.start, self.out_xs.stop - self.xs.start))


def plan(height: int, width: int, max_height: int | None, max_width: int | None,
         halo: int) -> list[Tile]:
    """Tiles (row-major) for a ``height`` x ``width`` tensor under the accelerator's limits."""
    rows = plan_1d(height, max_height, halo)
    cols = plan_1d(width, max_width, halo)
    return [Tile(slice(r[0], r[1]), slice(c[0], c[1]), slice(r[2], r[3]), slice(c[2], c[3]))
            for r, c in product(rows, cols)]
