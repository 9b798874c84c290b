"""Threshold, Affine (with and without residual) and PixelOutput against
spec.reference.output_stage, fed the reference accumulators in out_pe groups, with stalls.
(Mirrors hw/output_stages.py.)"""

import dataclasses

import numpy as np
import pytest

import spec
from amaranth.hdl import Shape

from accel import regmap
from hw.folded_mvu import acc_shape_for
from hw.output_stages import Affine, PixelOutput, Threshold
from spec.reference import output_stage
from hwsim import get, layer_case, pack, put, run_to_completion, unpack


def run_stage(dut, acc, acc_shape, residual=None, r_bits=None, seed=0):
    rng = np.random.default_rng(seed)
    lanes = dut.lanes
    acc_w = Shape.cast(acc_shape).width
    flat = acc.reshape(-1, acc.shape[-1])
    groups = [pack(px[g * lanes:(g + 1) * lanes], acc_w) for px in flat
              for g in range(dut.groups)]
    benches = [put(dut.i, groups, rng, 0.3)]
    if residual is not None:
        benches.append(put(dut.r, [pack(v, r_bits) for v in residual.reshape(len(flat), -1)],
                           rng, 0.5))
    out = []
    benches.append(get(dut.o, len(groups), out, rng, 0.3))
    run_to_completion(dut, benches, deadline_cycles=40 * len(groups) + 200)
    o = Shape.cast(dut.out_elem)
    return np.array([unpack(v, o.width, lanes, o.signed) for v in out]).reshape(acc.shape)


def find_layer(pred, seeds=range(1, 200), **kw):
    """First (seed, k) whose layer k satisfies ``pred`` in spec.random_model(seed, **kw)."""
    import spec

    for seed in seeds:
        m = spec.random_model(seed, **kw)
        for k, layer in enumerate(m.layers, 1):
            if pred(layer):
                return seed, k
    raise AssertionError("no such layer in the seeds tried")


KW = dict(channels=4, n_binary=3, image_channels=1, unshuffle=1)


@pytest.mark.parametrize("out_pe", [4, 1, 2])
def test_threshold_matches_spec(out_pe):
    seed, k = find_layer(lambda l: isinstance(l.stage, spec.Threshold) and l.stage.flip.any(),
                         **KW)
    model, layer, tensors, types, _, oreg, acc = layer_case(
        seed, k, {"pe": 4, "simd": 1, "out_pe": out_pe}, **KW)
    shape = acc_shape_for(layer, types[k - 1])
    dut = Threshold(oreg, regmap.region_entries(model, oreg), acc_shape=shape)
    assert (run_stage(dut, acc, shape) == tensors[k]).all()


@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("act", [False, True])
def test_affine_matches_spec(with_residual, act):
    kw = dict(KW, act_prob=1.0) if act else KW
    seed, k = find_layer(lambda l: isinstance(l.stage, spec.Affine) and l.kind == "binary"
                         and (l.stage.residual is not None) == with_residual, **kw)
    model, layer, tensors, types, _, oreg, acc = layer_case(
        seed, k, {"pe": 4, "simd": 1, "out_pe": 2}, **kw)
    shape = acc_shape_for(layer, types[k - 1])
    stage = layer.stage
    assert (stage.act is not None) == act
    dut = Affine.for_stage(stage, oreg, regmap.region_entries(model, oreg), acc_shape=shape,
                           input_channels=model.input_channels)
    res = tensors[stage.residual] if with_residual else None
    got = run_stage(dut, acc, shape, res, stage.out_bits)
    assert (got == output_stage(layer, acc, tensors)).all()


@pytest.mark.parametrize("seed", range(6))
def test_affine_activation_extremes(seed):
    """Slopes 2**0 and 2**-7 on every lane, offsets at both ends of the output range, large
    negative and positive values (saturation on both sides), random stalls."""
    rng = np.random.default_rng(seed)
    kw = dict(KW, act_prob=1.0)
    s, k = find_layer(lambda l: isinstance(l.stage, spec.Affine) and l.kind == "binary", **kw)
    model, layer, tensors, types, _, _, acc = layer_case(s, k, {"pe": 4, "simd": 1, "out_pe": 4}, **kw)
    stage = layer.stage
    lo, hi = -(2 ** (stage.out_bits - 1)), 2 ** (stage.out_bits - 1) - 1
    c = layer.c_out
    stage = dataclasses.replace(
        stage, act_shift=np.array([0, 7, 7, 0][:c]) if seed % 2 else rng.integers(0, 8, c),
        act_offset=rng.choice([lo, hi, 0, -1], c),
        # Half the channels at the largest |A|: values far beyond both ends of the range.
        scale=np.where(rng.random(c) < 0.5, stage.scale,
                       np.sign(stage.scale) * (2 ** (stage.scale_bits - 1) - 1)))
    layers = list(model.layers)
    layers[k - 1] = dataclasses.replace(layer, stage=stage)
    model = dataclasses.replace(model, layers=layers).validate()
    layer = model.layers[k - 1]
    folds = [None] * len(model.layers)
    folds[k - 1] = {"pe": 4, "simd": 1, "out_pe": 4}
    oreg = regmap.regions(model, folds)[2 * k - 1]
    shape = acc_shape_for(layer, types[k - 1])
    dut = Affine.for_stage(layer.stage, oreg, regmap.region_entries(model, oreg), acc_shape=shape,
                           input_channels=model.input_channels)
    res = tensors[layer.stage.residual] if layer.stage.residual is not None else None
    want = output_stage(layer, acc, tensors)
    assert (want == lo).any() or (want == hi).any()
    got = run_stage(dut, acc, shape, res, layer.stage.out_bits, seed=seed)
    assert (got == want).all()


def test_pixel_output_matches_spec():
    seed, k = find_layer(lambda l: isinstance(l.stage, spec.PixelOutput)
                         and (l.stage.residual_map >= 0).any(),
                         channels=2, n_binary=1, image_channels=3, unshuffle=1)
    model, layer, tensors, types, _, oreg, acc = layer_case(
        seed, k, {"pe": 3, "simd": 1, "out_pe": 1}, channels=2, n_binary=1, image_channels=3,
        unshuffle=1)
    shape = acc_shape_for(layer, types[k - 1])
    dut = PixelOutput(oreg, regmap.region_entries(model, oreg), acc_shape=shape,
                      shift=layer.stage.shift, in_channels=model.input_channels)
    got = run_stage(dut, acc, shape, tensors[0], 8)
    assert (got == tensors[k]).all()
