"""Large frames go through the numpy emulation in bands: exact, and memory bounded by the band."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import spec
from host.backend import EmulateBackend
from host.pipeline import frame_plan, restore_frames


@pytest.mark.parametrize("seed", range(4))
def test_bands_equal_the_whole_frame(seed, monkeypatch):
    model = spec.random_model(seed, channels=4, n_binary=2)
    monkeypatch.setattr(EmulateBackend, "band_pixels", 600)
    img = spec.random_image(seed, 97, 31 + seed, model.image_channels)
    backend = EmulateBackend(model, impl="fast")  # the numpy spec: the path that bands
    fp = frame_plan(model, backend, *img.shape[:2])
    assert len(fp.tiles) > 2  # really banded
    (out,) = restore_frames(model, backend, [img])
    np.testing.assert_array_equal(out, spec.restore(model, img))


def _peak_bytes(model, height: int, width: int) -> int:
    img = spec.random_image(1, height, width, model.image_channels)
    tracemalloc.start()
    try:
        next(restore_frames(model, EmulateBackend(model, impl="fast"), [img]))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_is_bounded_by_the_band_not_the_image(monkeypatch):
    """An image 8x taller needs about the same peak memory (numpy reports to tracemalloc):
    only the uint8 input and output frames grow with it."""
    model = spec.random_model(3, image_channels=3, channels=16, n_binary=3, unshuffle=1)
    monkeypatch.setattr(EmulateBackend, "band_pixels", 64 * 64)
    small = _peak_bytes(model, 128, 64)
    large = _peak_bytes(model, 1024, 64)
    frames = 2 * 1024 * 64 * 3  # the large image in and out, uint8
    assert large < 1.5 * small + frames, (small, large)
    monkeypatch.setattr(EmulateBackend, "band_pixels", None)
    whole = _peak_bytes(model, 1024, 64)
    assert whole > 3 * large  # without bands the working set grows with the image
