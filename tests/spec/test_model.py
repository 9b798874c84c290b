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
