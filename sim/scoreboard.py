"""The scoreboard: received frames against the spec's, failing loudly at the first difference.

A mismatch message names what a person debugging the waveform needs first: the frame, the
first differing pixel in raster order (x, y) -- which is also the first one the hardware got
wrong in time -- its channel, and the expected and received values, plus how many pixels
differ in all. A frame with the wrong number of beats or a misplaced TLAST is reported as such
(a lost or duplicated beat shows up that way before it shows up as shifted pixels).

Numpy only, so the same checks run in the cocotb bench and in host-side tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Mismatch", "Scoreboard", "first_mismatch"]


class Mismatch(AssertionError):
    """The hardware's output differs from the spec's; the message locates the first difference."""


def first_mismatch(expected: np.ndarray, actual: np.ndarray):
    """``None`` if equal, else ``(y, x, c, expected value, actual value, differing pixels)``."""
    if expected.shape != actual.shape:
        raise ValueError(f"shapes differ: expected {expected.shape}, actual {actual.shape}")
    diff = expected != actual
    if not diff.any():
        return None
    y, x, c = np.argwhere(diff)[0]
    return (int(y), int(x), int(c), int(expected[y, x, c]), int(actual[y, x, c]),
            int(diff.any(axis=2).sum()))


@dataclass
class Scoreboard:
    """Counts checked pixels and mismatches over a run; :meth:`check` raises on the first bad
    frame unless ``fail_fast`` is off (then :meth:`verdict` raises at the end)."""

    fail_fast: bool = True
    pixels: int = 0
    mismatched_pixels: int = 0
    frames: int = 0
    errors: list = field(default_factory=list)

    def check(self, name: str, expected: np.ndarray, actual: np.ndarray | None,
              *, beats: int | None = None, lasts=None) -> None:
        """Compare one frame. ``beats``/``lasts``: what arrived on the stream, when known."""
        h, w = expected.shape[:2]
        self.frames += 1
        self.pixels += h * w
        problem = None
        if beats is not None and beats != h * w:
            problem = f"{name} ({w}x{h}): received {beats} beats, the frame has {h * w}"
            self.mismatched_pixels += abs(h * w - beats)
        elif actual is not None:
            mm = first_mismatch(expected, actual)
            if mm is not None:
                y, x, c, e, a, n = mm
                self.mismatched_pixels += n
                problem = (f"{name} ({w}x{h}): {n} of {h * w} pixels differ; first mismatch at "
                           f"x={x}, y={y}, channel {c}: expected {e}, got {a}")
        if problem is None and lasts is not None:
            lasts = [bool(v) for v in lasts]
            want = [False] * (h * w - 1) + [True]
            if lasts != want:
                bad = next(k for k, (g, t) in enumerate(zip(lasts, want)) if g != t)
                problem = (f"{name} ({w}x{h}): TLAST {'high' if lasts[bad] else 'low'} on beat "
                           f"{bad} (x={bad % w}, y={bad // w}); it belongs on beat {h * w - 1} "
                           f"only")
        if problem is not None:
            self.errors.append(problem)
            if self.fail_fast:
                raise Mismatch(problem)

    def verdict(self) -> None:
        """Raise :class:`Mismatch` summarizing every bad frame, if any."""
        if self.errors:
            more = f" (and {len(self.errors) - 1} more bad frames)" if len(self.errors) > 1 else ""
            raise Mismatch(self.errors[0] + more)

    def summary(self) -> dict:
        return {"frames": self.frames, "pixels_checked": self.pixels,
                "mismatched_pixels": self.mismatched_pixels, "bad_frames": len(self.errors),
                "first_error": self.errors[0] if self.errors else None}
