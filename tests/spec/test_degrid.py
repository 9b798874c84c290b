"""spec.degrid: against a per-block reference written from its docstring, and what it must keep
(planes, sigma 0, a bound on the change) and remove (a planted 2-pixel pattern)."""

from __future__ import annotations

import numpy as np
import pytest

import spec.degrid
from spec import native
from spec._native import build
from spec.degrid import degrid


def _reference(image: np.ndarray, sigma: int) -> np.ndarray:
    """The docstring's rule block by block, in plain integers."""
    top = max(sigma, 25) * 8192 // 25  # max(1, sigma / 25) levels
    h, w, ch = image.shape
    x = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge").astype(int)
    bh, bw = x.shape[0] // 2, x.shape[1] // 2
    out = x.copy()
    win = (1, 4, 6, 4, 1)
    for k in range(ch):
        blk = x[:, :, k].reshape(bh, 2, bw, 2)
        a, b, c, d = blk[:, 0, :, 0], blk[:, 0, :, 1], blk[:, 1, :, 0], blk[:, 1, :, 1]
        m = a + b + c + d

        def ramp(i, j, di, dj):
            n = bh if di else bw
            pos = i if di else j
            if n == 1:
                return 0
            if pos == 0:
                return 2 * (m[i + di, j + dj] - m[i, j])
            if pos == n - 1:
                return 2 * (m[i, j] - m[i - di, j - dj])
            return m[i + di, j + dj] - m[i - di, j - dj]

        e = np.zeros((3, bh, bw), int)
        for i in range(bh):
            for j in range(bw):
                e[0, i, j] = 8 * (a[i, j] - b[i, j] + c[i, j] - d[i, j]) + ramp(i, j, 0, 1)
                e[1, i, j] = 8 * (a[i, j] + b[i, j] - c[i, j] - d[i, j]) + ramp(i, j, 1, 0)
                e[2, i, j] = 8 * (a[i, j] - b[i, j] - c[i, j] + d[i, j])
        for i in range(bh):
            for j in range(bw):
                s = [sum(win[u] * win[v] * e[p, min(max(i + u - 2, 0), bh - 1),
                                               min(max(j + v - 2, 0), bw - 1)]
                         for u in range(5) for v in range(5)) for p in range(3)]
                s = [min(max(v, -top), top) for v in s]
                for py in (0, 1):
                    for px in (0, 1):
                        corr = s[0] * (-1) ** px + s[1] * (-1) ** py + s[2] * (-1) ** (px + py)
                        q = (abs(corr) + 4096) // 8192
                        y, xx = 2 * i + py, 2 * j + px
                        out[y, xx, k] = min(max(x[y, xx, k] - (q if corr >= 0 else -q), 0), 255)
    return out[:h, :w].astype(np.uint8)


@pytest.mark.parametrize("use_native", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_degrid_equals_the_reference(seed, use_native, monkeypatch):
    if use_native and not native.available():
        pytest.skip(native.why_unavailable())
    monkeypatch.setattr(spec.degrid, "native_enabled", use_native)
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 15, 2)
    ch = (1, 3)[seed % 2]
    smooth = rng.integers(0, 200) + np.add.outer(np.arange(h), np.arange(w))[:, :, None] // 3
    pattern = rng.integers(-3, 4, (2, 2, ch))  # a grid of a few levels, as a shuffle leaves
    noise = rng.integers(-(seed % 3) * 20, (seed % 3) * 20 + 1, (h, w, ch))
    img = np.clip(smooth + np.tile(pattern, ((h + 1) // 2, (w + 1) // 2, 1))[:h, :w] + noise,
                  0, 255).astype(np.uint8)
    sigma = int(rng.integers(1, 80))
    assert np.array_equal(degrid(img, sigma), _reference(img, sigma))


def test_a_planted_grid_is_removed_and_planes_pass_exactly():
    yy, xx = np.mgrid[0:40, 0:48]
    plane = np.stack([30 + 2 * xx, 40 + yy, 200 - xx - 3 * yy], axis=2)
    assert np.array_equal(degrid(plane.astype(np.uint8), 25), plane)
    checker = np.where((xx + yy) % 2, -1, 1)[:, :, None]
    stripes = np.where(xx % 2, -1, 1)[:, :, None]
    rows = np.where(yy % 2, -1, 1)[:, :, None]
    for pattern in (checker, stripes, rows):
        out = degrid((plane + pattern).astype(np.uint8), 25)
        # Gone to the level away from the edges (the window's edge blocks see fewer of it).
        assert np.array_equal(out[4:-4, 4:-4], plane[4:-4, 4:-4])


def test_the_change_is_bounded_and_sigma_0_changes_nothing():
    rng = np.random.default_rng(9)
    img = rng.integers(0, 256, (30, 34, 3), dtype=np.uint8)
    for sigma, most in ((5, 3), (25, 3), (50, 6)):  # three patterns of max(1, sigma/25) levels
        assert np.abs(degrid(img, sigma).astype(int) - img).max() <= most
    assert degrid(img, 0) is img
    for bad_img, sigma in ((img.astype(np.int16), 25), (img[:, :, 0], 25), (img, 256)):
        with pytest.raises(ValueError):
            degrid(bad_img, sigma)


@pytest.mark.parametrize("variant", build.VARIANTS)
def test_the_native_kernel_agrees_with_numpy(variant, monkeypatch):
    """Every compiled variant against the numpy rule, on odd and even sizes, gray and RGB,
    frames of one block and a 640x480 frame, at levels below, at and past 25."""
    lib = native._library(variant)
    if isinstance(lib, str):
        pytest.skip(lib)
    monkeypatch.setenv("GAMIR_NATIVE", variant)
    rng = np.random.default_rng(1)
    for shape in ((1, 1, 3), (2, 2, 1), (7, 9, 3), (4, 10, 3), (10, 4, 1), (480, 640, 3)):
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        for sigma in (3, 25, 70):
            monkeypatch.setattr(spec.degrid, "native_enabled", True)
            got = degrid(img, sigma)
            monkeypatch.setattr(spec.degrid, "native_enabled", False)
            np.testing.assert_array_equal(got, degrid(img, sigma))
