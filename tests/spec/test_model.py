"""Model validation: each rule broken once, each with its message; validation never mutates."""

import copy
import dataclasses

import numpy as np
import pytest

import spec
from spec.model import ModelError


def _model():
    return spec.random_model(11, channels=4, n_binary=3, unshuffle=1, shuffle=1, image_channels=3)


def _expect(mutate, pattern):
    m = _model()
    mutate(m)
    with pytest.raises(ModelError, match=pattern):
        m.validate()


def _layer(m, i, **kw):
    m.layers[i] = dataclasses.replace(m.layers[i], **kw)


def _stage(m, i, **kw):
    _layer(m, i, stage=dataclasses.replace(m.layers[i].stage, **kw))


def test_rules():
    _expect(lambda m: setattr(m, "layers", []), r"^model has no layers$")
    _expect(lambda m: setattr(m, "task", "paint"), r"^task 'paint' is not one of")
    _expect(lambda m: _layer(m, 0, kernel=5), r"^layer 1: kernel=5 must be 1 or 3$")
    _expect(lambda m: _layer(m, 0, kind="binary"), r"^layer 1: a binary layer cannot read pixels")
    _expect(lambda m: _layer(m, 1, stage=m.layers[-1].stage),
            r"^layer 2: the last layer, and only the last, must have output 'pixel'")
    _expect(lambda m: _layer(m, 1, c_in=5), r"^layer 2: c_in=5 but its input tensor has 4 channels$")
    _expect(lambda m: _layer(m, 1, c_out=2000), r"^layer 2: c_out=2000 must be 1..1024$")
    _expect(lambda m: _layer(m, 0, w_bits=9), r"^layer 1: w_bits=9 must be 2..8$")
    _expect(lambda m: _layer(m, 0, stage="affine"),
            r"^layer 1: stage 'affine' must be one of threshold, affine, pixel")
    _expect(lambda m: _stage(m, -1, shift=31), r"^layer 5: shift=31 must be 0..30$")
    _expect(lambda m: _stage(m, -1, scale_bits=19), r"^layer 5: scale_bits=19 must be 2..18$")
    _expect(lambda m: setattr(m.steps, "unshuffle", 5), r"^pixel step unshuffle=5 must be 1, 2, 3 or 4$")
    _expect(lambda m: _stage(m, -1, residual_map=np.full(3, 7)),
            r"residual_map names channel 7, but the input has 3 channels$")


def test_validate_never_mutates():
    """validate() returns a normalized copy; the model it was called on stays as it was."""
    m = spec.random_model(11, channels=4, n_binary=3)
    _stage(m, -1, residual_map=None)  # a default the validation fills in
    _layer(m, 1, weights=m.layers[1].weights.astype(np.int32))  # normalized to uint8
    before = copy.deepcopy(m)
    v = m.validate()
    assert m.layers[-1].stage.residual_map is None and m.layers[1].weights.dtype == np.int32
    assert spec.to_bytes(m) == spec.to_bytes(before)
    assert (v.layers[-1].stage.residual_map == -1).all() and v.layers[1].weights.dtype == np.uint8


def test_residual_rules():
    m = spec.random_model(5, channels=4, n_binary=3, residual_prob=1.0)
    affine = [i for i, l in enumerate(m.layers, 1)
              if isinstance(l.stage, spec.Affine) and l.stage.residual]
    assert affine, "seed should give a residual layer"
    i = affine[0]
    _stage(m, i - 1, residual=i)
    with pytest.raises(ModelError, match=rf"^layer {i}: residual={i} must name an earlier"):
        m.validate()


def test_noise_level():
    m = spec.random_model(2, noise_channel=True)
    assert m.with_noise_level(50).steps.noise_level == 50
    with pytest.raises(ModelError, match=r"^noise level 300 must be in 0..255"):
        m.with_noise_level(300)
    with pytest.raises(ModelError, match=r"has no noise-level channel$"):
        spec.random_model(2, noise_channel=False).with_noise_level(3)


def test_image_checks():
    m = spec.random_model(4, unshuffle=2, image_channels=3)
    with pytest.raises(ModelError, match=r"^image size 5x4 must be a positive multiple of 2"):
        spec.restore(m, np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ModelError, match=r"^image has 1 channels"):
        spec.restore(m, np.zeros((4, 4, 1), np.uint8))
    with pytest.raises(ModelError, match=r"^image must be a uint8 array"):
        spec.restore(m, np.zeros((4, 4, 3), np.float32))


def _act_model():
    m = spec.random_model(11, channels=4, n_binary=3, unshuffle=1, shuffle=1, image_channels=3,
                          act_prob=1.0)
    i = next(i for i, l in enumerate(m.layers) if getattr(l.stage, "act", None))
    return m, i


def test_activation_rules():
    m, i = _act_model()
    ob = m.layers[i].stage.out_bits
    lo, hi = -(2 ** (ob - 1)), 2 ** (ob - 1) - 1
    cases = [
        (dict(act="relu"), rf"^layer {i + 1}: act='relu' must be one of prelu$"),
        (dict(act_shift=None), rf"^layer {i + 1}: act_shift is missing$"),
        (dict(act_shift=np.full(4, 8)), rf"^layer {i + 1}: act_shift value 8 is above 7$"),
        (dict(act_shift=np.full(4, -1)), rf"^layer {i + 1}: act_shift value -1 is below 0$"),
        (dict(act_offset=np.full(4, hi + 1)), rf"^layer {i + 1}: act_offset value {hi + 1} is above {hi}$"),
        (dict(act_offset=np.full(4, lo - 1)), rf"^layer {i + 1}: act_offset value {lo - 1} is below {lo}$"),
        (dict(act_offset=np.zeros(3, int)), rf"^layer {i + 1}: act_offset has shape \(3,\)"),
        (dict(act=None), rf"^layer {i + 1}: act_shift is given but the stage has no act$"),
    ]
    for change, pattern in cases:
        bad, _ = _act_model()
        _stage(bad, i, **change)
        with pytest.raises(ModelError, match=pattern):
            bad.validate()


def test_activation_is_part_of_the_shape_and_changes_the_output():
    m, i = _act_model()
    plain = dataclasses.replace(m, layers=list(m.layers))
    _stage(plain, i, act=None, act_shift=None, act_offset=None)
    plain = plain.validate()
    assert m.shape_hash() != plain.shape_hash()
    assert "act" not in plain.shape_dict()["layers"][i]
    x0 = spec.model_input(m, spec.random_image(4, 12, 12, 3))
    from spec import reference

    assert not np.array_equal(reference.run_layers(m, x0)[i + 1], reference.run_layers(plain, x0)[i + 1])


def _dw_model():
    m = spec.random_model(6, channels=4, n_binary=2, depthwise_prob=1.0)
    return m, next(i for i, l in enumerate(m.layers) if l.depthwise)


def test_depthwise_rules():
    m, i = _dw_model()
    c = m.layers[i].c_in
    cases = [
        (dict(groups=5), rf"^layer {i + 1}: groups=5 must be 1 or equal c_in={c} and c_out={c} \(depthwise\)$"),
        (dict(groups=2), rf"^layer {i + 1}: groups=2 must be 1 or equal c_in={c}"),
        (dict(groups=0), rf"^layer {i + 1}: groups=0 must be 1..1024$"),
        (dict(groups=True), rf"^layer {i + 1}: groups=True must be 1..1024$"),
        (dict(groups=1), rf"^layer {i + 1}: weights has shape \({c}, 3, 3, 1\)"),
    ]
    for change, pattern in cases:
        bad, _ = _dw_model()
        _layer(bad, i, **change)
        with pytest.raises(ModelError, match=pattern):
            bad.validate()
    b = next(j for j, l in enumerate(m.layers) if l.kind == "binary")
    bad, _ = _dw_model()
    _layer(bad, b, groups=c)
    with pytest.raises(ModelError, match=rf"^layer {b + 1}: groups={c} needs kind 'fixed'"):
        bad.validate()


def test_depthwise_is_a_diagonal_dense_layer():
    """A depthwise layer computes what the dense layer with the same weights on the diagonal
    (zero elsewhere) computes; its shape says groups, a dense layer's does not."""
    from spec import reference

    m, i = _dw_model()
    dw = m.layers[i]
    c, k = dw.c_in, dw.kernel
    dense_w = np.zeros((c, k, k, c), dtype=np.int64)
    for ch in range(c):
        dense_w[ch, :, :, ch] = dw.weights[ch, :, :, 0]
    dense = dataclasses.replace(m, layers=list(m.layers))
    _layer(dense, i, groups=1, weights=dense_w)
    dense = dense.validate()
    assert dw.taps == k * k and dense.layers[i].taps == k * k * c
    assert m.shape_dict()["layers"][i]["groups"] == c
    assert "groups" not in dense.shape_dict()["layers"][i]
    assert dw.acc_range(m.tensor_types()[i]) == dense.layers[i].acc_range(m.tensor_types()[i])
    x0 = spec.model_input(m, spec.random_image(2, 9, 10, m.image_channels))
    for a, b in zip(reference.run_layers(m, x0), reference.run_layers(dense, x0)):
        np.testing.assert_array_equal(a, b)


def test_depthwise_off_keeps_every_seed():
    """depthwise_prob=0 draws nothing more: every seed keeps its model (the golden test's)."""
    for seed in range(20):
        assert spec.to_bytes(spec.random_model(seed)) == spec.to_bytes(spec.random_model(seed, depthwise_prob=0.0))
        assert not any(l.depthwise for l in spec.random_model(seed).layers)


def _with_gain(m, gains):
    return dataclasses.replace(m, steps=dataclasses.replace(m.steps, noise_gain=tuple(gains))).validate()


def test_noise_gain_scales_the_restoration_by_the_level_entry():
    """At each level the model computes what a gain-free model computes with the pixel stage's
    A and B scaled by the table's entry (round half up, 12 fraction bits), worked out here."""
    m = spec.random_model(21, noise_channel=True, n_binary=2)
    gains = [0, 1024, 4096, 5000, 8192]
    g = _with_gain(m, gains)
    img = spec.random_image(3, 10, 12, m.image_channels)
    for level, gain in [(0, 0), (1, 1024), (3, 5000), (4, 8192), (200, 8192)]:
        at = g.with_noise_level(level)
        st = m.layers[-1].stage
        lo, hi = -(1 << (st.scale_bits - 1)), (1 << (st.scale_bits - 1)) - 1
        a = np.clip([(int(v) * gain + 2048) >> 12 for v in st.scale], lo, hi)
        b = np.clip([(int(v) * gain + 2048) >> 12 for v in st.bias], -(1 << 31), (1 << 31) - 1)
        by_hand = dataclasses.replace(m.with_noise_level(level), layers=[
            *m.layers[:-1], dataclasses.replace(m.layers[-1], stage=dataclasses.replace(st, scale=a, bias=b))])
        want = spec.restore(by_hand, img, "reference")
        for mode in ("reference", "fast", "native"):
            assert np.array_equal(spec.restore(at, img, mode), want), (level, mode)
        # What the board loads is the scaled pair too.
        values = at.layers[-1].stage.param_values(0, 1)
        assert np.array_equal(values["scale"], a) and np.array_equal(values["bias"], b)


def test_noise_gain_zero_passes_the_input_through():
    m = spec.random_model(22, noise_channel=True, unshuffle=2, shuffle=2, image_channels=3)
    m = dataclasses.replace(m, layers=[*m.layers[:-1], dataclasses.replace(m.layers[-1], stage=dataclasses.replace(
        m.layers[-1].stage, residual_map=np.arange(m.layers[-1].c_out)))])
    g = _with_gain(m, [0, 4096]).with_noise_level(0)
    img = spec.random_image(4, 8, 12, 3)
    assert np.array_equal(spec.restore(g, img), img)
    assert not np.array_equal(spec.restore(g.with_noise_level(1), img), img)


def test_noise_gain_is_set_from_the_table_not_kept_from_before():
    """Changing the level, or validating again, never compounds the gain."""
    g = _with_gain(spec.random_model(23, noise_channel=True), [100, 2000, 4096])
    assert g.with_noise_level(0).layers[-1].stage.gain == 100
    assert g.with_noise_level(0).with_noise_level(1).validate().layers[-1].stage.gain == 2000
    plain = spec.random_model(23, noise_channel=True)
    stale = copy.copy(plain)
    stale.layers = [*plain.layers[:-1], dataclasses.replace(
        plain.layers[-1], stage=dataclasses.replace(plain.layers[-1].stage, gain=7))]
    assert stale.validate().layers[-1].stage.gain == 4096  # no table: a gain of 1


def test_noise_gain_rules():
    m = spec.random_model(24, noise_channel=True)
    with pytest.raises(ModelError, match=r"^noise_gain\[1\]=9000 must be an integer in 0..8192$"):
        _with_gain(m, [0, 9000])
    with pytest.raises(ModelError, match=r"^noise_gain\[0\]=0.5 must be an integer"):
        _with_gain(m, [0.5])
    with pytest.raises(ModelError, match=r"^noise_gain has 257 levels, at most 256"):
        _with_gain(m, [4096] * 257)
    with pytest.raises(ModelError, match=r"^noise_gain needs a noise-level channel"):
        _with_gain(spec.random_model(24, noise_channel=False), [4096])
