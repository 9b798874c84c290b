"""spec.temporal: the blend against a per-pixel reference written from its docstring, and the
cases a video meets (first frame, scene cut, motion, a still scene, sigma 0, extremes)."""

from __future__ import annotations

import numpy as np
import pytest

import spec.temporal
from spec import native
from spec._native import build
from spec.temporal import TemporalFilter, blend, thresholds, weights


def _reference(prev: np.ndarray, frame: np.ndarray, sigma: int) -> np.ndarray:
    """The docstring's rule pixel by pixel: window sum with clamped indices, t and g from the
    thresholds' definition (mean |d| of sigma/2 still, sigma moving), the rounded step."""
    h, w, c = frame.shape
    n = 9 * c
    t = n * sigma * 8 // 16
    g = -(-(12 << 16) // (n * sigma * 8 // 16))  # rounded up
    d = frame.astype(int) - prev.astype(int)
    out = np.empty_like(frame)
    for y in range(h):
        for x in range(w):
            m = sum(abs(d[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1), k])
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1) for k in range(c))
            wt = 4 if m <= t else min(16, 4 + (m - t) * g // 65536)
            for k in range(c):
                step = (abs(d[y, x, k]) * wt + 8) // 16
                out[y, x, k] = prev[y, x, k] + (step if d[y, x, k] >= 0 else -step)
    return out


@pytest.mark.parametrize("use_native", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_blend_equals_the_reference_on_random_frames(seed, use_native, monkeypatch):
    if use_native and not native.available():
        pytest.skip(native.why_unavailable())
    monkeypatch.setattr(spec.temporal, "native_enabled", use_native)
    rng = np.random.default_rng(seed)
    c = (1, 3)[seed % 2]
    h, w = rng.integers(1, 9, 2)
    prev = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
    # Differences of every size: small (still), around the thresholds, large (moving).
    spread = (3, 20, 80, 255)[seed % 4]
    frame = np.clip(prev + rng.integers(-spread, spread + 1, prev.shape), 0, 255).astype(np.uint8)
    sigma = int(rng.integers(1, 60))
    assert np.array_equal(blend(prev, frame, sigma), _reference(prev, frame, sigma))


def test_weights_run_from_still_to_moving():
    t, g = thresholds(25, 3)
    assert t == 27 * 25 // 2  # mean |d| of sigma / 2 over the 27 samples of the window
    w = weights(25, 3)
    assert len(w) == 27 * 255 + 1
    assert (w[:t + 1] == 4).all() and (w[27 * 25:] == 16).all()  # sigma and past: new frame alone
    assert (np.diff(w) >= 0).all() and set(w[t + 1:27 * 25]) <= set(range(4, 17))
    for bad in (0, 256, -1):
        with pytest.raises(ValueError):
            thresholds(bad, 3)


def test_the_step_is_symmetric_and_stays_between_the_frames():
    rng = np.random.default_rng(7)
    prev = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    frame = np.clip(prev + rng.integers(-40, 41, prev.shape), 0, 255).astype(np.uint8)
    out = blend(prev, frame, 20)
    assert np.array_equal(blend(255 - prev, 255 - frame, 20), 255 - out)
    lo, hi = np.minimum(prev, frame), np.maximum(prev, frame)
    assert ((lo <= out) & (out <= hi)).all()
    # Extremes: no wrap-around at +-255, whatever the level.
    black, white = np.zeros((4, 5, 3), np.uint8), np.full((4, 5, 3), 255, np.uint8)
    for sigma in (1, 128, 255):
        assert np.array_equal(blend(black, white, sigma), white)  # moving at any level
    assert (blend(black, white, 255) <= 255).all() and (blend(white, black, 255) >= 0).all()


def test_first_frame_scene_cut_and_size_change_pass_unchanged():
    rng = np.random.default_rng(3)
    a, b = (rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2))
    f = TemporalFilter(25)
    assert f(a) is a  # nothing to blend with
    # A cut to another scene: every window differs by far more than sigma.
    assert np.array_equal(f(b), b)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert f(small) is small  # a new size starts again


def test_sigma_0_returns_every_frame_unchanged():
    rng = np.random.default_rng(4)
    base = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    f = TemporalFilter(0)
    for _ in range(5):
        frame = np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
        assert np.array_equal(f(frame), frame)
    with pytest.raises(ValueError):
        TemporalFilter(256)


def test_a_still_scene_calms_and_a_moving_square_comes_through():
    rng = np.random.default_rng(5)
    scene = rng.integers(60, 190, (1, 40, 48, 3))
    noisy = np.clip(scene + rng.normal(0, 6, (40, 40, 48, 3)).round(), 0, 255).astype(np.uint8)
    f = TemporalFilter(25)
    out = np.stack([f(x) for x in noisy])
    # Weight 4/16 in steady state: the variance falls to 4 / (32 - 4) = 1/7 (std 0.38x).
    assert out[10:].std(axis=0).mean() < 0.5 * noisy[10:].std(axis=0).mean()
    # A bright square moving 6 pixels a frame over the still scene: where it arrives, the
    # output is the new frame itself (no ghost of the background in the square).
    f = TemporalFilter(25)
    for t in range(5):
        frame = noisy[t].copy()
        frame[10:20, 4 + 6 * t:14 + 6 * t] = 250
        out = f(frame)
        if t:
            assert (out[11:19, 4 + 6 * t + 7:14 + 6 * t - 1] == 250).all()


@pytest.mark.parametrize("variant", build.VARIANTS)
def test_the_native_kernel_agrees_with_numpy(variant, monkeypatch):
    """Every compiled variant against the numpy rule: one pixel, one row, one column, gray,
    RGB and 2 channels (the general loop), a 640x480 frame; differences from still to moving
    and the extremes (0 against 255 both ways), at levels 1, 25 and 255."""
    lib = native._library(variant)
    if isinstance(lib, str):
        pytest.skip(lib)
    monkeypatch.setenv("GAMIR_NATIVE", variant)
    assert native._lib_or_none() is lib  # the C copy runs below, not numpy twice
    rng = np.random.default_rng(2)
    for shape in ((1, 1, 3), (1, 9, 3), (9, 1, 1), (2, 2, 2), (7, 9, 3), (5, 12, 1),
                  (480, 640, 3)):
        prev = rng.integers(0, 256, shape, dtype=np.uint8)
        for spread in (3, 30, 255):
            frame = np.clip(prev + rng.integers(-spread, spread + 1, shape), 0, 255)
            frame = frame.astype(np.uint8)
            extremes = (np.where(prev > 127, 0, 255).astype(np.uint8), prev)
            for a, b in ((prev, frame), extremes, extremes[::-1]):
                for sigma in (1, 25, 255):
                    monkeypatch.setattr(spec.temporal, "native_enabled", True)
                    got = blend(a, b, sigma)
                    monkeypatch.setattr(spec.temporal, "native_enabled", False)
                    np.testing.assert_array_equal(got, blend(a, b, sigma))
