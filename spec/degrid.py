"""The grid filter: removes the 2-pixel pattern a 2x2 pixel shuffle leaves on smooth areas.

A denoiser whose output is pixel-shuffled by 2 computes the four pixels of each 2x2 block in
four different channels, and on smooth areas they disagree by a fraction of a level in a way
that repeats from block to block: a faint grid locked to the pixels (stripes and checkers of
period 2). This filter estimates that pattern's local amplitude and subtracts it. It works on
the 2x2 blocks, i.e. on the accelerator's output tensor before the shuffle (each block one
pixel of it), with integer arithmetic and a 5 x 5 window of blocks, so the accelerator's tail
can do the same bit for bit; the host runs it after the accelerator for every backend. The
same rule runs in C where the native kernel is loaded (``gk_degrid`` in
``spec/_native/kernel.c``: numpy's passes cost a third to a half of the kernel's time, the C
rows a twentieth);
tests/spec/test_degrid.py checks that they agree.

Per colour channel, for the block (i, j) with pixels ``a b`` over ``c d`` and block sums ``M``:

* the pattern's three components, in 32nds of a level of amplitude (a pattern ``+-A`` gives
  ``32 A``), the ramps' share taken out with the neighbouring blocks' sums (a ramp of slope
  ``s`` gives ``a - b + c - d = -2 s`` and ``M[j+1] - M[j-1] = 16 s``):
  columns ``E_x = 8 (a - b + c - d) + M[i, j+1] - M[i, j-1]``,
  rows ``E_y = 8 (a + b - c - d) + M[i+1, j] - M[i-1, j]``,
  checker ``E_xy = 8 (a - b - c + d)``;
* each averaged over the blocks' window ``[1, 4, 6, 4, 1]`` by ``[1, 4, 6, 4, 1]`` (sum 256),
  so ``S`` is in 8192ths of a level: ``S = sum(w E)``, then limited to ``max(1, sigma / 25)``
  levels (:func:`limit`): what is subtracted never exceeds that, so a real fine texture loses
  at most that much of its period-2 part;
* the pixel at offset (y, x) in its block becomes
  ``clamp(p - round(S_x (-1)^x + S_y (-1)^y + S_xy (-1)^(x+y), 13))`` with the rounding
  half away from zero.

The window replicates the edge blocks (the accelerator's border rule); the ramp term of an
edge block, which lacks one neighbour, is twice the one-sided difference, so any plane
``p = p0 + sx x + sy y`` passes exactly. An odd height or width is completed by repeating the
last row or column and cropped back. At sigma 0 (clean input) the image passes unchanged. The
constants were chosen on the validation photos (docs/host.md).
"""

from __future__ import annotations

import numpy as np

from .arith import PIXEL_MAX

__all__ = ["CLIP_SIGMA", "SHIFT", "WINDOW", "limit", "degrid"]

#: The most the filter subtracts, per pattern: 1 level of amplitude, sigma / CLIP_SIGMA levels
#: past CLIP_SIGMA (the grid grows with the restoration's strength).
CLIP_SIGMA = 25
#: Let :func:`degrid` use the native kernel's copy (tests turn it off to compare the two).
native_enabled = True
#: Window of blocks, per axis (its 2-D weights sum to 256).
WINDOW = (1, 4, 6, 4, 1)
#: ``S`` is in ``2**-SHIFT`` levels: 32 (the components' scale) x 256 (the window's sum).
SHIFT = 13


def limit(sigma: int) -> int:
    """The most ``S`` may be (8192ths of a level) at noise level ``sigma``: a register."""
    return (max(sigma, CLIP_SIGMA) << SHIFT) // CLIP_SIGMA


def _along(a: np.ndarray, axis: int, start: int | None, stop: int | None) -> np.ndarray:
    """``a[start:stop]`` along ``axis`` (a view: numpy's loops stay on the contiguous axis)."""
    return a[(slice(None),) * axis + (slice(start, stop),)]


def _neighbours(m: np.ndarray, axis: int) -> np.ndarray:
    """``m[k+1] - m[k-1]`` along ``axis``; at the two ends, where one neighbour is missing,
    twice the one-sided difference (the ramp continued), so a plane passes exactly."""
    if m.shape[axis] == 1:
        return np.zeros_like(m)
    inner = _along(m, axis, 2, None) - _along(m, axis, 0, -2)
    first = _along(m, axis, 1, 2) - _along(m, axis, 0, 1)
    last = _along(m, axis, -1, None) - _along(m, axis, -2, -1)
    return np.concatenate([first << 1, inner, last << 1], axis=axis)


def _window(e: np.ndarray, axis: int) -> np.ndarray:
    """``e`` filtered by ``WINDOW`` along ``axis``, edges replicated: ``[1, 2, 1]`` twice on
    the array padded by two (no multiplies)."""
    r = len(WINDOW) // 2
    p = np.concatenate([_along(e, axis, 0, 1)] * r + [e] + [_along(e, axis, -1, None)] * r,
                       axis=axis)
    for _ in range(r):
        q = _along(p, axis, 0, -2) + _along(p, axis, 2, None)
        q += _along(p, axis, 1, -1) << 1
        p = q
    return p


def degrid(image: np.ndarray, sigma: int) -> np.ndarray:
    """``image`` (H, W, C) uint8 without its period-2 pattern, for noise level ``sigma``."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"image must be (height, width, channels) uint8, got {image.dtype} "
                         f"{image.shape}")
    if not 0 <= sigma <= PIXEL_MAX:
        raise ValueError(f"sigma {sigma} must be 0..{PIXEL_MAX}")
    if sigma == 0:
        return image
    h, w, ch = image.shape
    x = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else image
    if native_enabled:
        from . import native

        out = native.degrid(x, limit(sigma))
        if out is not None:
            return out[:h, :w]
    # Planar blocks (2, 2, C, H/2, W/2): numpy is several times faster on whole planes than on
    # the interleaved pixels, and [py, px] is the block offset (the shuffle's channel).
    x = x.reshape(x.shape[0] // 2, 2, x.shape[1] // 2, 2, ch).transpose(1, 3, 4, 0, 2)
    x = x.astype(np.int32, order="C")  # a copy in the planar order
    a, b, c, d = x[0, 0], x[0, 1], x[1, 0], x[1, 1]
    m = a + b + c + d
    ab, cd = a - b, c - d
    e = np.stack([8 * (ab + cd) + _neighbours(m, 2),
                  8 * ((a + b) - (c + d)) + _neighbours(m, 1),
                  8 * (ab - cd)])
    s = _window(_window(e, 3), 2)
    top = limit(sigma)
    np.clip(s, -top, top, out=s)
    sx, sy, sxy = s
    u, v = sx + sy, sx - sy
    # Offsets (0, 0): u + sxy; (0, 1): -(v + sxy); (1, 0): v - sxy; (1, 1): -(u - sxy). The
    # rounding is odd-symmetric, so the negated ones are added instead of subtracted.
    for part, corr, sign in ((a, u + sxy, 1), (b, v + sxy, -1), (c, v - sxy, 1),
                             (d, u - sxy, -1)):
        corr += corr >> 31  # -1 where negative: round half away from zero
        corr += 1 << (SHIFT - 1)
        corr >>= SHIFT
        if sign > 0:
            part -= corr
        else:
            part += corr
    np.clip(x, 0, PIXEL_MAX, out=x)
    out = x.astype(np.uint8).transpose(3, 0, 4, 1, 2).reshape(x.shape[3] * 2, x.shape[4] * 2, ch)
    return out[:h, :w]
