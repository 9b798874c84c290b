"""The native kernel (spec.native) equals the plain reference bit for bit, in every build.

Each available variant (``avx512``, ``avx2`` and the plain-C ``generic`` on x86-64;
``generic`` elsewhere), and ``generic`` also with the avx512 build's sextet tables (so the
portable code of both table formats runs everywhere), runs random models of the streamable
family (depths, widths 1..70 channels, thresholds with flips, affine stages with residuals and
the per-channel activation, 1x1 and 3x3 kernels, depthwise fixed layers, pixel steps) on frames
from 1x1 up, and every shipped model, compared with ``spec.reference``; probe models show the
activation's whole output and a depthwise layer's accumulator at their edges. Strips (threads)
must not change a bit.
"""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import spec
from spec import native, reference
from spec._native import build
from spec.random_model import random_layer_params

SIZES = [(1, 1), (1, 7), (9, 1), (2, 2), (3, 5), (5, 3), (7, 11), (16, 9), (13, 33), (4, 70),
         (2, 300)]


def _variants():
    """(variant, sextets) pairs: every build with its own tables, plain C with the others."""
    out = []
    for v in build.VARIANTS:
        lib = native._library(v)
        skip = pytest.mark.skipif(isinstance(lib, str), reason=str(lib))
        out.append(pytest.param((v, None), marks=skip, id=v))
        if v == "generic":
            out.append(pytest.param((v, True), marks=skip, id="generic-sextets"))
    return out


VARIANTS = _variants()


def _x0(model, seed, h, w):
    r = model.steps.unshuffle
    return spec.model_input(model, spec.random_image(seed, h * r, w * r, model.image_channels))


def _check(model, x0, variant, n_threads=1):
    want = reference.run_layers(model, x0)[-1]
    name, sextets = variant
    got = native.NativeRunner(model, n_threads=n_threads, variant=name, sextets=sextets).run(x0)
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
    """70 channels: 18 nibble groups, 162 window nibbles (three u8 segments), 35 pairs; 35
    sextet groups, 105 window sextets (three u8 segments)."""
    model = spec.random_model(channels, channels=channels, n_binary=3, unshuffle=1, shuffle=1)
    _check(model, _x0(model, 5, 6, 45), variant)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_threads", [2, 3, 5])
def test_strips_equal_whole_frame(variant, n_threads):
    """Frames cut into strips (halo rows recomputed, residual rings) give the same bits."""
    for seed in (11, 12, 13):
        model = spec.random_model(seed, n_binary=4, residual_prob=1.0, channels=8)
        _check(model, _x0(model, seed, 83, 37), variant, n_threads)


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_stream_keeps_order_and_bits(n_threads):
    """run_stream (frames in flight, one thread each; one frame alone in strips) gives each
    tensor's output in order, for streams of 0, 1, 2 and 7 tensors of mixed sizes; an error
    of one tensor is raised in order, and closing the stream early stops it."""
    if not native.available():
        pytest.skip(native.why_unavailable())
    model = spec.random_model(21, n_binary=3, residual_prob=1.0, channels=8)
    runner = native.NativeRunner(model, n_threads=n_threads)
    sizes = [(40, 9), (1, 1), (33, 20), (40, 9), (2, 300), (17, 3), (5, 5)]
    xs = [_x0(model, k, h, w) for k, (h, w) in enumerate(sizes)]
    want = [reference.run_layers(model, x)[-1] for x in xs]
    for n in (0, 1, 2, 7):
        got = list(runner.run_stream(iter(xs[:n])))
        assert len(got) == n
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    bad = xs[:3] + [xs[0][:, :, :1]] + xs[3:]
    stream = runner.run_stream(bad)
    for k in range(3):
        np.testing.assert_array_equal(next(stream), want[k])
    with pytest.raises(spec.ModelError, match="channels"):
        next(stream)
    stream = runner.run_stream(xs)
    np.testing.assert_array_equal(next(stream), want[0])
    stream.close()


MODELS = sorted((Path(spec.__file__).parents[1] / "models").glob("*.gamir"))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_shipped_models(variant, path):
    model = spec.load(path)
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


def test_library_built_with_other_flags_is_refused(tmp_path, monkeypatch):
    """The hash covers the common flags too: an install built before a flag changed (the
    filters ran 3.5x slower built with Python's -fwrapv) is rebuilt, not loaded."""
    if build.compiler() is None:
        pytest.skip("no C compiler")
    lib = tmp_path / "old.so"
    monkeypatch.setattr(build, "COMMON_FLAGS", [f for f in build.COMMON_FLAGS if f != "-fno-wrapv"])
    build.compile_library("generic", lib)
    monkeypatch.undo()
    with pytest.raises(OSError, match="with other flags"):
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


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", range(40))
def test_random_models_depthwise(variant, seed):
    """Random models with depthwise-separable heads and tails (2..32 channels, 1x1 and 3x3,
    depthwise pixel layers, with and without the activation)."""
    h, w = SIZES[seed % len(SIZES)]
    model = spec.random_model(seed, channels=[2, 3, 5, 8, 16, 32][seed % 6], depthwise_prob=1.0,
                              act_prob=0.5 if seed % 2 else 0.0,
                              kernels=(1, 3) if seed % 3 == 2 else (3,))
    assert any(layer.depthwise for layer in model.layers)
    _check(model, _x0(model, seed, h, w), variant, n_threads=1 + seed % 3)


def depthwise_probe(r: int, seed: int, h: int, w: int):
    """(model, x0) with a depthwise 3x3 pixel layer of ``r*r`` channels at its widest: a 16-bit
    fixed head saturating at both ends, 8-bit weights including both ends, odd and even
    channels (the low and high half of a kernel pair).

    The output shows the accumulator (scaled to about +/-100 around 128 from its mean and
    spread on ``x0``: each product of extremes, 2**22, moves it by several levels); the
    reference must show the extremes and most of the accumulator (asserted here).
    """
    rng = np.random.default_rng(seed)
    c = r * r
    x0 = spec.random_image(seed, h, w, 1)
    head = random_layer_params(rng, spec.Layer("fixed", 3, 1, c, None, spec.Affine(
        scale=None, bias=None, out_bits=16), w_bits=8), 0, 255)
    acc1 = reference.conv_acc(head, x0, spec.TensorType("pixel", 1, 8))
    a1 = rng.choice([-2, -1, 1, 2], c)
    head = dataclasses.replace(head, stage=dataclasses.replace(
        head.stage, scale=a1, bias=-a1 * acc1.mean((0, 1)).round().astype(np.int64), shift=0))
    t1 = head.stage.reference(acc1, [x0])
    dw = random_layer_params(rng, spec.Layer("fixed", 3, c, c, None, spec.PixelOutput(
        scale=None, bias=None), w_bits=8, groups=c), -2**15, 2**15 - 1)
    weights = dw.weights.copy()
    weights[rng.random(weights.shape) < 0.3] = -128
    weights[rng.random(weights.shape) < 0.2] = 127
    acc = reference.conv_acc(dataclasses.replace(dw, weights=weights), t1,
                             spec.TensorType("fixed", c, 16))
    s, mean, std = 21, acc.mean((0, 1)), np.maximum(acc.std((0, 1)), 1)
    scale = np.maximum(np.round(100 / std * 2**s), 1).astype(np.int64)
    bias = np.round(128 * 2**s - scale * mean).astype(np.int64)
    dw = dataclasses.replace(dw, weights=weights, stage=dataclasses.replace(
        dw.stage, scale=scale, bias=bias, shift=s))
    model = spec.Model(layers=[head, dw], image_channels=1,
                       steps=spec.PixelSteps(shuffle=r)).validate()
    out = reference.run_layers(model, x0)[-1]
    inside = (out > 0) & (out < 255)
    assert (t1 == -2**15).any() and (t1 == 2**15 - 1).any(), "16-bit inputs at both ends"
    assert (weights == -128).any() and (weights == 127).any(), "8-bit weights at both ends"
    assert inside.mean() > 0.5, "the accumulator shown"
    return model, x0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("r", [2, 3, 4])
def test_depthwise_extremes(variant, r):
    """A depthwise layer at its widest (see :func:`depthwise_probe`); whole frame and strips."""
    model, x0 = depthwise_probe(r, r, 35, 29)
    for n_threads in (1, 2):
        _check(model, x0, variant, n_threads)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", range(60))
def test_random_models_with_activation(variant, seed):
    """Random models whose affine stages (fixed and binary layers) mostly carry the activation."""
    h, w = SIZES[seed % len(SIZES)]
    model = spec.random_model(seed, act_prob=0.7, mix_layers=seed % 3 == 0,
                              kernels=(1, 3) if seed % 4 == 1 else (3,))
    _check(model, _x0(model, seed, h, w), variant, n_threads=1 + seed % 3)


#: The probe's channels: centre and spread of the rounded value ``y`` before the activation on
#: the test frame, the activation's shift and offset. Slopes 1 and 2**-7 with values far past
#: both ends of the 8-bit range, the offset's extremes, and constants whose ``y`` lies beyond
#: every saturation (the kernel clamps them, which must respect the activation's shift).
PROBE = [(0, 300, 0, 0), (0, 300, 7, 0), (-2000, 1500, 7, 5), (-5000, 500, 7, 127),
         (0, 150, 1, -128), (50, 200, 2, 127), (0, 100, 3, -60), (-12000, 20, 7, 0),
         (0, 1000, 5, 20), (0, 2000, 6, -20), (-20000, 8000, 7, 0), (-40000, 2000, 7, -128),
         (-2**22, 1000, 7, 0), (2**22, 1000, 0, 0), (-2**22, 1000, 0, 127), (200, 100, 7, 0)]


def act_probe(kind: str, residual: bool, seed: int, h: int, w: int):
    """(model, x0) where one activated affine layer of ``kind`` is seen whole at the output.

    A random fixed head (8 bit), the probe layer (:data:`PROBE`'s 16 channels, 8 bit, plus the
    head as residual when ``residual``), a 1x1 tail copying it plus 128 into the pixels. The
    probe's constants are set from its accumulator on ``x0`` (mean and spread per channel), and
    the reference must show what the test is for (asserted here): slope 1 on unsaturated
    negatives, slope 2**-7 bringing values below the range back inside it (also where every
    accumulator value gives such a ``y``), saturation at both ends.
    """
    rng = np.random.default_rng(seed)
    c = len(PROBE)
    steps = spec.PixelSteps(shuffle=2)
    x0 = spec.random_image(seed, h, w, 4)
    head = random_layer_params(rng, spec.Layer("fixed", 3, 4, c, None, spec.Affine(
        scale=None, bias=None, out_bits=8), w_bits=6), 0, 255)
    t1 = head.stage.reference(reference.conv_acc(head, x0, spec.TensorType("pixel", 4, 8)), [x0])
    probe = random_layer_params(rng, spec.Layer(kind, 3, c, c, None, spec.Affine(
        scale=None, bias=None, out_bits=8, residual=1 if residual else None), w_bits=4), -128, 127)
    acc = reference.conv_acc(probe, t1, spec.TensorType("fixed", c, 8))
    centre, spread, k, off = (np.array(col) for col in zip(*PROBE))
    mean, std = acc.mean((0, 1)), np.maximum(acc.std((0, 1)), 1)
    s = 8
    scale = np.clip(np.round(spread / std * 2**s), 1, 2**17 - 1).astype(np.int64)
    bias = np.round(centre * 2**s - scale * mean).astype(np.int64)
    stage = dataclasses.replace(probe.stage, scale=scale, bias=bias, shift=s, act="prelu",
                                act_shift=k, act_offset=off)
    probe = dataclasses.replace(probe, stage=stage)
    tail = spec.Layer("fixed", 1, c, c, np.eye(c, dtype=np.int64).reshape(c, 1, 1, c),
                      spec.PixelOutput(scale=np.ones(c, np.int64), bias=np.full(c, 128),
                                       scale_bits=2), w_bits=2)
    model = spec.Model(layers=[head, probe, tail], image_channels=4, steps=steps).validate()
    tensors = reference.run_layers(model, x0)
    y, out = stage.scaled(acc), tensors[2]
    assert np.array_equal(tensors[3], out + 128), "the tail must show the probe's output"
    assert ((k == 0) & (y < 0) & (out > -128) & (out < 0)).any(), "slope 1 on negatives"
    assert ((k == 7) & (y < -128) & (out > -128)).any(), "slope 2**-7 below the range"
    assert (out == -128).any() and (out == 127).any(), "saturation at both ends"
    y_ends = stage.scaled(np.array(probe.acc_range(model.tensor_types()[1]))[:, None])
    assert ((k == 7) & (y_ends.max(0) < -128 - 127) & (out > -128).any((0, 1))).any(), \
        "slope 2**-7 where y is below the range plus any residual for every accumulator"
    return model, x0


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["binary", "fixed"])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_activation_extremes(variant, kind, residual, seed):
    """The activation's whole output equals the reference at its edges (see :func:`act_probe`);
    whole frame and strips."""
    model, x0 = act_probe(kind, residual, seed, 19 + seed, 37)
    for n_threads in (1, 3):
        _check(model, x0, variant, n_threads)
