"""The native kernel (spec.native) equals the plain reference bit for bit, in every build.

Each available variant (``avx2`` and the plain-C ``generic`` on x86-64; ``generic``
elsewhere) runs random models of the streamable family (depths, widths 1..70 channels,
thresholds with flips, affine stages with residuals, 1x1 and 3x3 kernels, pixel steps) on
frames from 1x1 up, compared with ``spec.reference``. Strips (threads) must not change a bit.
"""

import dataclasses

import numpy as np
import pytest

import spec
from spec import native, reference
from spec._native import build

SIZES = [(1, 1), (1, 7), (9, 1), (2, 2), (3, 5), (5, 3), (7, 11), (16, 9), (13, 33), (4, 70),
         (2, 300)]


def _variants():
    out = []
    for v in build.VARIANTS:
        lib = native._library(v)
        out.append(pytest.param(v, marks=pytest.mark.skipif(isinstance(lib, str), reason=str(lib))))
    return out


VARIANTS = _variants()


def _x0(model, seed, h, w):
    r = model.steps.unshuffle
    return spec.model_input(model, spec.random_image(seed, h * r, w * r, model.image_channels))


def _check(model, x0, variant, n_threads=1):
    want = reference.run_layers(model, x0)[-1]
    got = native.NativeRunner(model, n_threads=n_threads, variant=variant).run(x0)
    mism = np.argwhere(got != want)
    assert mism.size == 0, f"first mismatch at (y, x, c) = {tuple(mism[0])} of {len(mism)}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", range(120))
def test_random_models(variant, seed):
    h, w = SIZES[seed % len(SIZES)]
    model = spec.random_model(seed, mix_layers=seed % 5 == 4, kernels=(1, 3) if seed % 3 == 2 else (3,))
    _check(model, _x0(model, seed, h, w), variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("channels", [7, 70])
def test_wide_channels(variant, channels):
    """70 channels: 18 nibble groups, 162 window nibbles (three u8 segments), 35 pairs."""
    model = spec.random_model(channels, channels=channels, n_binary=3, unshuffle=1, shuffle=1)
    _check(model, _x0(model, 5, 6, 45), variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_threads", [2, 3, 5])
def test_strips_equal_whole_frame(variant, n_threads):
    """Frames cut into strips (halo rows recomputed, residual rings) give the same bits."""
    for seed in (11, 12, 13):
        model = spec.random_model(seed, n_binary=4, residual_prob=1.0, channels=8)
        _check(model, _x0(model, seed, 83, 37), variant, n_threads)


@pytest.mark.parametrize("variant", VARIANTS)
def test_shipped_denoiser(variant):
    model = spec.load(spec.fileformat.__file__.rsplit("/", 2)[0] + "/models/denoise.gamir")
    _check(model, _x0(model, 1, 40, 67), variant, n_threads=2)


def test_auto_uses_native_and_numpy_when_off(monkeypatch):
    model = spec.random_model(3)
    x0 = _x0(model, 3, 9, 8)
    want = reference.run_layers(model, x0)[-1]
    path, run = spec.tensor_runner(model)
    assert path.startswith("native C kernel" if native.available() else "numpy")
    np.testing.assert_array_equal(run(x0), want)
    monkeypatch.setenv("GAMIR_NATIVE", "0")
    path, run = spec.tensor_runner(model)
    assert path == "numpy (native kernel unavailable: disabled by GAMIR_NATIVE=0)"
    np.testing.assert_array_equal(run(x0), want)
    with pytest.raises(spec.ModelError, match="disabled by GAMIR_NATIVE=0"):
        spec.tensor_runner(model, "native")


def test_model_beyond_32_bits_falls_back_to_numpy():
    """A fixed conv whose sum |w| * max |x| exceeds int32 is refused, and auto runs numpy."""
    model = spec.random_model(8, n_binary=0, channels=64, unshuffle=1, shuffle=1)
    head, tail = model.layers
    head = dataclasses.replace(head, stage=dataclasses.replace(head.stage, out_bits=16, frac_bits=0))
    tail = dataclasses.replace(tail, weights=np.full(tail.weights.shape, -128), w_bits=8)
    model = dataclasses.replace(model, layers=[head, tail]).validate()
    assert "layer 2: sum |w| * max |x|" in native.supports(model)
    path, run = spec.tensor_runner(model)
    assert path.startswith("numpy (layer 2: sum |w| * max |x|")
    x0 = _x0(model, 8, 5, 6)
    np.testing.assert_array_equal(run(x0), reference.run_layers(model, x0)[-1])


def test_stale_library_is_refused(tmp_path):
    """A library built from another kernel.c (its compiled-in hash differs) is not loaded."""
    if build.compiler() is None:
        pytest.skip("no C compiler")
    lib = tmp_path / "old.so"
    src = tmp_path / "kernel.c"
    src.write_text(build.SOURCE.read_text() + "\n/* an older version */\n")
    orig = build.SOURCE
    try:
        build.SOURCE = src
        build.compile_library("generic", lib)
    finally:
        build.SOURCE = orig
    with pytest.raises(OSError, match="built from another kernel.c"):
        native._open(lib)


@pytest.mark.parametrize("r", [1, 2, 3, 4])
@pytest.mark.parametrize("noise", [False, True])
def test_pixel_steps_equal_numpy(monkeypatch, r, noise):
    """spec.model_input / model_output in C (used where the kernel loads) equal numpy's."""
    if not native.available():
        pytest.skip(native.why_unavailable())
    from spec import pixels

    for c in (1, 3, 4):
        model = spec.Model(layers=[], image_channels=c,
                           steps=spec.PixelSteps(unshuffle=r, noise_channel=noise, noise_level=37,
                                                 shuffle=r))
        img = spec.random_image(r + c, 5 * r, 7 * r, c)
        y = spec.random_image(c, 4, 6, c * r * r)
        got = pixels.model_input(model, img), pixels.model_output(model, y)
        monkeypatch.setattr(pixels, "native_enabled", False)
        want = pixels.model_input(model, img), pixels.model_output(model, y)
        monkeypatch.setattr(pixels, "native_enabled", True)
        for g, e in zip(got, want):
            assert g.dtype == e.dtype and g.flags.c_contiguous
            np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("seed", range(4))
def test_activation_runs_on_numpy(seed):
    """The kernel has no affine activation yet: it says so, and auto runs such models on the
    numpy path, bit-exact."""
    model = spec.random_model(seed, n_binary=3, act_prob=1.0)
    layers = [i for i, l in enumerate(model.layers, 1) if getattr(l.stage, "act", None)]
    assert layers
    assert native.supports(model) == \
        f"layer {layers[0]}: the native kernel has no affine activation (act)"
    path, run = spec.tensor_runner(model)
    assert path.startswith("numpy")
    x0 = _x0(model, seed, 6, 7)
    np.testing.assert_array_equal(run(x0), reference.run_layers(model, x0)[-1])


@pytest.mark.parametrize("seed", range(3))
def test_depthwise_runs_on_numpy(seed):
    """The kernel has no depthwise convolution: it says so, and auto runs such models on the
    numpy path, bit-exact."""
    model = spec.random_model(seed, channels=5, n_binary=2, depthwise_prob=1.0)
    first = next(i for i, l in enumerate(model.layers, 1) if l.depthwise)
    reason = native.supports(model)
    assert reason is not None and reason.startswith(f"layer {first}: the native kernel has no")
    path, run = spec.tensor_runner(model)
    assert path.startswith("numpy")
    x0 = _x0(model, seed, 6, 7)
    np.testing.assert_array_equal(run(x0), reference.run_layers(model, x0)[-1])
