"""The host's tiled restore equals whole-frame processing (the spec on the whole frame), for
every model shape."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import spec
from accel.manifest import Manifest as Design
from accel.tiling import radius
from host.backend import EmulateBackend
from host.manifest import Manifest
from host.pipeline import frame_plan, restore_frames


def _manifest(model, max_width, max_height):
    design = Design.describe(model, None, max_width=max_width)
    return Manifest(path=None, design=dataclasses.replace(design, max_height=max_height))


@pytest.mark.parametrize("seed", range(8))
def test_tiled_frames_equal_whole_frame_restore(seed):
    rng = np.random.default_rng(seed)
    model = spec.random_model(100 + seed, channels=int(rng.choice([2, 4, 8])),
                              kernels=(3, 3, 1))
    r = model.steps.unshuffle
    halo = radius(model)
    mw, mh = 2 * halo + int(rng.integers(1, 5)), 2 * halo + int(rng.integers(1, 8))
    h, w = (mh + int(rng.integers(1, 12))) * r, (mw + int(rng.integers(1, 20))) * r
    backend = EmulateBackend(model, _manifest(model, mw, mh))
    assert len(frame_plan(model, backend, h, w).tiles) >= 4
    frames = [spec.random_image(seed * 10 + k, h, w, model.image_channels) for k in range(2)]
    got = list(restore_frames(model, backend, frames))
    assert len(got) == 2
    for frame, out in zip(frames, got):
        np.testing.assert_array_equal(out, spec.restore(model, frame))


def test_partial_unshuffle_blocks_are_edge_padded_then_cropped():
    model = spec.random_model(7, image_channels=3, channels=4, n_binary=1, unshuffle=2)
    frame = spec.random_image(3, 15, 21, 3)
    (out,) = restore_frames(model, EmulateBackend(model), [frame])
    padded = np.pad(frame, ((0, 1), (0, 1), (0, 0)), mode="edge")
    np.testing.assert_array_equal(out, spec.restore(model, padded)[:15, :21])
