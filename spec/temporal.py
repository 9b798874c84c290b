"""The temporal filter: a recursive blend of a restored video, guided by the noise level.

A denoiser that restores each frame on its own leaves a different residual in every frame, so
a still background shimmers. This filter blends each restored frame into the previous
*output*, strongly where the scene is still and not at all where it moves. Integer arithmetic
throughout and one frame of memory (the previous output frame, 8 bits per sample), so an
accelerator with access to a frame buffer can do the same bit for bit; the host runs it after
the accelerator's output for every backend.

For frame ``y`` (H, W, C) uint8, the previous output ``p`` and the noise level ``sigma``:

* ``d = y - p`` per sample; the **motion test** ``m`` is the sum of ``|d|`` over the channels
  and a 3 x 3 window (edge pixels replicated, the accelerator's border rule): ``N = 9 C``
  samples.
* The **new frame's weight** ``w`` (in 16ths): ``STILL_WEIGHT`` where the mean ``|d|`` is at
  most ``STILL`` x sigma (the restored residual of a still scene stays below that), 16 (the
  new frame alone) from ``MOVING`` x sigma on, a straight line between. In integers, with
  ``t = (N sigma STILL_16) >> 4`` and the ramp's gain ``g`` (:func:`thresholds`):
  ``w = min(16, STILL_WEIGHT + ((m - t) g >> 16))`` where ``m > t``, else ``STILL_WEIGHT``.
* The output ``p + sign(d) ((|d| w + 8) >> 4)``: the step rounds half away from zero, so it
  is symmetric, stays between ``p`` and ``y`` and is ``d`` itself at ``w = 16``.

The first frame, and a frame whose size differs from the last, pass unchanged (nothing to
blend with); at sigma 0 every frame passes unchanged. A scene cut moves every window past the
``MOVING`` threshold, so the new scene comes through at once. The constants were chosen on the
sample clip (docs/host.md, "Temporal filter").

The same rule runs in C where the native kernel is loaded (``gk_temporal`` in
``spec/_native/kernel.c``: one pass over the rows instead of a dozen numpy passes);
tests/spec/test_temporal.py checks that they agree.
"""

from __future__ import annotations

import functools

import numpy as np

from .arith import PIXEL_MAX

__all__ = ["WEIGHT_ONE", "STILL_WEIGHT", "STILL_16", "MOVING_16", "RADIUS", "thresholds",
           "weights", "blend", "TemporalFilter"]

#: Weights are in 16ths: 16 takes the new frame alone.
WEIGHT_SHIFT = 4
WEIGHT_ONE = 1 << WEIGHT_SHIFT
#: The new frame's weight in a still area (4/16: the residual's temporal variance falls to 1/7).
STILL_WEIGHT = 4
#: The motion test's thresholds on the mean |difference| per sample, in 16ths of sigma.
STILL_16 = 8  # sigma / 2: still at or below
MOVING_16 = 16  # sigma: moving at or above
#: The motion test's window: (2 RADIUS + 1)^2 pixels.
RADIUS = 1
#: The ramp's gain is a 16-bit fraction.
GAIN_SHIFT = 16
#: Let :func:`blend` use the native kernel's copy (tests turn it off to compare the two).
native_enabled = True


def thresholds(sigma: int, channels: int) -> tuple[int, int]:
    """``(t, g)`` for noise level ``sigma`` (1..255) and ``channels`` samples per pixel: the
    window sum ``m`` at or below ``t`` is still, and ``(m - t) * g >> 16`` is the weight the
    motion adds (at least 16 - STILL_WEIGHT from the ``MOVING`` threshold on). Constant per
    level, so hardware takes them as two registers."""
    if not 1 <= sigma <= PIXEL_MAX:
        raise ValueError(f"sigma {sigma} must be 1..{PIXEL_MAX} (0 passes frames unchanged)")
    n = (2 * RADIUS + 1) ** 2 * channels
    t = (n * sigma * STILL_16) >> WEIGHT_SHIFT
    span = (n * sigma * (MOVING_16 - STILL_16)) >> WEIGHT_SHIFT  # >= 9 * 8 >> 4 = 4
    # Rounded up, so that the weight reaches 16 at t + span (<= the MOVING threshold).
    return t, -(-((WEIGHT_ONE - STILL_WEIGHT) << GAIN_SHIFT) // span)


def weights(sigma: int, channels: int) -> np.ndarray:
    """The new frame's weight ``w`` for every window sum ``m`` (0..9 * channels * 255), as a
    table: the host looks it up rather than multiplying per pixel."""
    t, g = thresholds(sigma, channels)
    m = np.arange((2 * RADIUS + 1) ** 2 * channels * PIXEL_MAX + 1, dtype=np.int64)
    w = STILL_WEIGHT + ((np.maximum(m - t, 0) * g) >> GAIN_SHIFT)
    return np.minimum(w, WEIGHT_ONE).astype(np.int16)


def _window_sum(a: np.ndarray) -> np.ndarray:
    """Sum over the (2 RADIUS + 1)^2 window of each pixel of (H, W) ``a``, edges replicated,
    as shifted adds along each axis (one numpy pass per term, no padded copy)."""
    for axis in (0, 1):
        b = np.moveaxis(a, axis, 0)
        s = b.copy()
        for k in range(1, RADIUS + 1):
            s[k:] += b[:-k]
            s[:-k] += b[k:]
            for i in range(k):  # past the edge: the edge pixel again
                s[i] += b[0]
                s[-1 - i] += b[-1]
        a = np.moveaxis(s, 0, axis)
    return a


def blend(prev: np.ndarray, frame: np.ndarray, sigma: int) -> np.ndarray:
    """The filter's output for ``frame`` after the output ``prev`` (both (H, W, C) uint8)."""
    if sigma == 0:
        return frame
    if prev.shape != frame.shape or prev.dtype != np.uint8 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 of one shape, got {prev.dtype} {prev.shape} "
                         f"and {frame.dtype} {frame.shape}")
    if native_enabled:
        from . import native

        out = native.temporal(prev, frame, _weights(sigma, frame.shape[2]))
        if out is not None:
            return out
    d = frame.astype(np.int16)
    d -= prev  # -255..255
    a = np.abs(d)
    m = a[:, :, 0].copy()
    for c in range(1, a.shape[2]):
        m += a[:, :, c]
    w = np.take(_weights(sigma, frame.shape[2]), _window_sum(m))  # m <= 9 * C * 255
    # sign(d) * ((|d| w + 8) >> 4) without the sign: d >> 15 is -1 for d < 0, else 0, and
    # -((-x + 8) >> 4) == (x + 7) >> 4 for integers x.
    for c in range(d.shape[2]):  # a plane at a time: numpy broadcasts (H, W, 1) slowly
        d[:, :, c] *= w
    d += (d >> 15) + (WEIGHT_ONE >> 1)
    d >>= WEIGHT_SHIFT
    d += prev
    return d.astype(np.uint8)


_weights = functools.lru_cache(maxsize=8)(weights)


class TemporalFilter:
    """:func:`blend` over a stream: call it on each restored frame in order; it keeps the one
    frame of memory (the last output)."""

    def __init__(self, sigma: int):
        if not 0 <= sigma <= PIXEL_MAX:
            raise ValueError(f"sigma {sigma} must be 0..{PIXEL_MAX}")
        self.sigma = sigma
        self.prev: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        if self.prev is None or self.prev.shape != frame.shape or self.sigma == 0:
            out = frame
        else:
            out = blend(self.prev, frame, self.sigma)
        self.prev = out
        return out
