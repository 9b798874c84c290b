"""The fast (packed XNOR-popcount) spec equals the plain reference bit for bit.

Over 240 random (model, image) pairs: random depths, channel counts, thresholds, flips, formats,
residual wiring and pixel steps, on images including 1xN, Nx1 and odd sizes. Every
intermediate tensor is compared, not just the output.
"""

import numpy as np
import pytest

import spec
from spec import fast, reference

SIZES = [(1, 1), (1, 7), (9, 1), (2, 2), (3, 5), (5, 3), (7, 11), (16, 9), (13, 32)]


def _cases():
    for seed in range(240):
        h, w = SIZES[seed % len(SIZES)]
        yield seed, h, w


@pytest.mark.parametrize("seed,h,w,mix", [c + (False,) for c in _cases()] + [(3, 5, 6, True), (4, 1, 7, True)])
def test_fast_equals_reference(seed, h, w, mix):
    _check_fast_equals_reference(spec.random_model(seed, mix_layers=mix), seed, h, w)


@pytest.mark.parametrize("seed,h,w", list(_cases())[:120])
def test_fast_equals_reference_with_activation(seed, h, w):
    """Affine stages with the per-channel power-of-two PReLU and offset (``act``)."""
    model = spec.random_model(seed, act_prob=0.8, mix_layers=seed % 4 == 0)
    _check_fast_equals_reference(model, seed, h, w)


@pytest.mark.parametrize("seed,h,w", list(_cases())[:200])
def test_fast_equals_reference_with_depthwise(seed, h, w):
    """Depthwise-separable heads and tails (``groups == c``), 1x1 and 3x3, every output stage."""
    # Every 7th: as wide as the image, so the tail itself may be a depthwise pixel layer.
    narrow = dict(channels=3, image_channels=3, unshuffle=1, shuffle=1) if seed % 7 == 0 else {}
    model = spec.random_model(seed, depthwise_prob=0.8, kernels=(1, 3) if seed % 5 == 0 else (3,),
                              mix_layers=seed % 4 == 0, act_prob=0.3 if seed % 3 == 0 else 0.0,
                              **narrow)
    _check_fast_equals_reference(model, seed, h, w)


def _check_fast_equals_reference(model, seed, h, w):
    r = model.steps.unshuffle
    x0 = spec.model_input(model, spec.random_image(seed, h * r, w * r, model.image_channels))
    want = reference.run_layers(model, x0)
    got = fast.run_layers(model, x0)
    assert len(got) == len(want)
    for i, (g, e) in enumerate(zip(got, want)):
        assert g.shape == e.shape, f"tensor {i}"
        mism = np.argwhere(g != e)
        assert mism.size == 0, f"tensor {i}: first mismatch at (y, x, c) = {tuple(mism[0])}"
    np.testing.assert_array_equal(fast.run_output(model, x0), want[-1])


def test_wide_channels_span_several_words():
    """c_in = 70 -> 9 taps x 9 bytes = 81 window bytes: 11 words with padding."""
    model = spec.random_model(1, channels=70, n_binary=3, unshuffle=1, shuffle=1)
    x0 = spec.model_input(model, spec.random_image(3, 6, 10, model.image_channels))
    np.testing.assert_array_equal(fast.run_output(model, x0), reference.run_layers(model, x0)[-1])


def test_outputs_are_not_degenerate():
    """Random models exercise both output values of thresholds and unsaturated pixels."""
    seen_bits, spreads = set(), []
    for seed in range(20):
        model = spec.random_model(seed, n_binary=2, channels=8)
        x0 = spec.model_input(model, spec.random_image(seed, 8, 8, model.image_channels))
        tensors = reference.run_layers(model, x0)
        for t, ty in zip(tensors, model.tensor_types()):
            if ty.kind == "bit":
                seen_bits.update(np.unique(t).tolist())
        spreads.append(int(tensors[-1].max()) - int(tensors[-1].min()))
    assert seen_bits == {0, 1}
    assert np.median(spreads) > 30
