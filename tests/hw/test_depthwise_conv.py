"""DepthwiseConv (lane p of group n reads channel n*pe+p) against spec.reference.conv_acc, over
folds from fully unfolded to pe=1/simd=1, on pixel, fixed and bit inputs, with random valid
gaps and ready stalls; fed whole windows, and (``grouped``) fed slices by a GroupWindowGen
from a pixel stream, as the pipeline builds folded 3x3 depthwise layers."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, Shape

import spec
from accel import regmap
from hw.depthwise_conv import DepthwiseConv
from hw.folded_mvu import acc_shape_for
from hw.group_window import GroupWindowGen
from hw.pipeline import tensor_elem
from spec.random_model import random_layer_params
from spec.reference import conv_acc, run_layers
from hwsim import windows
from test_xnor_engine import run_mvu


def pixel_head_model(seed, kernel):
    """A model whose first layer is a depthwise conv reading the pixels (3 channels)."""
    model = spec.random_model(seed, channels=3, image_channels=3, unshuffle=1, shuffle=1,
                              noise_channel=False, n_binary=1)
    head = dataclasses.replace(model.layers[0], kernel=kernel, groups=3)
    head = random_layer_params(np.random.default_rng(seed), head, 0, spec.arith.PIXEL_MAX)
    return dataclasses.replace(model, layers=[head, *model.layers[1:]]).validate()


def depthwise_case(seed, in_kind, kernel=3, channels=4):
    """(model, 1-based index of its depthwise layer reading ``in_kind``)."""
    if in_kind == "pixel":
        return pixel_head_model(seed, kernel), 1
    for s in range(seed, seed + 200):
        model = spec.random_model(s, channels=channels, depthwise_prob=1.0, kernels=(kernel,),
                                  image_channels=1, unshuffle=1)
        types = model.tensor_types()
        for k, layer in enumerate(model.layers, 1):
            if layer.depthwise and layer.kernel == kernel and types[k - 1].kind == in_kind:
                return model, k
    raise AssertionError(f"no depthwise layer reading {in_kind} near seed {seed}")


class GroupedDepthwise(Elaboratable):
    """GroupWindowGen feeding a grouped DepthwiseConv (pipeline.Pipeline's wiring): pixels in
    on ``i``, accumulator groups out on ``o``, as ``run_mvu`` drives a PE array."""

    def __init__(self, dut, elem, max_width, h, w):
        self.mvu, self.h, self.w = dut, h, w
        self.win = GroupWindowGen(elem, dut.channels, dut.pe, dut.simd, max_width)
        self.i, self.o, self.nf, self.sf = self.win.i, dut.o, dut.nf, dut.sf
        self.pe, self.acc_shape = dut.pe, dut.acc_shape

    def elaborate(self, platform):
        m = Module()
        m.submodules.win, m.submodules.mvu = self.win, self.mvu
        m.d.comb += [self.win.width.eq(self.w), self.win.height.eq(self.h),
                     self.win.step_n.eq(self.mvu.step_n), self.win.step_s.eq(self.mvu.step_s),
                     self.mvu.i.valid.eq(self.win.o.valid), self.win.o.ready.eq(self.mvu.i.ready),
                     self.mvu.i.payload.eq(self.win.o.payload)]
        return m


def check(model, k, fold, seed, h=3, w=4, dsp_terms=None, grouped=False):
    layer = model.layers[k - 1]
    folds = [None] * len(model.layers)
    folds[k - 1] = fold
    wreg = regmap.regions(model, folds)[2 * k - 2]
    x0 = spec.random_image(seed, h, w, model.input_channels)
    tensors, types = run_layers(model, x0), model.tensor_types()
    t_in = types[k - 1]
    acc = conv_acc(layer, tensors[k - 1], t_in)
    elem = tensor_elem(t_in)
    dut = DepthwiseConv(wreg, regmap.region_entries(model, wreg), elem=elem,
                        bit_input=t_in.kind == "bit", kernel=layer.kernel, channels=layer.c_out,
                        acc_shape=acc_shape_for(layer, t_in), w_bits=layer.w_bits,
                        dsp_terms=dsp_terms, grouped=grouped)
    if grouped:
        x = tensors[k - 1]
        got = run_mvu(GroupedDepthwise(dut, elem, 8, h, w), x.reshape(h * w, -1),
                      Shape.cast(elem).width, h * w, seed)
    else:
        got = run_mvu(dut, windows(tensors[k - 1], layer.kernel), Shape.cast(elem).width, h * w,
                      seed)
    np.testing.assert_array_equal(got, acc.reshape(got.shape))


FOLDS = [None, {"pe": 1, "simd": 1}, {"pe": 2, "simd": 3}, {"pe": 4, "simd": 1},
         {"pe": 1, "simd": 9}, {"pe": 2, "simd": 9}]


@pytest.mark.parametrize("fold", FOLDS)
@pytest.mark.parametrize("in_kind", ["fixed", "bit"])
def test_depthwise_conv_matches_spec(in_kind, fold):
    model, k = depthwise_case(3, in_kind)
    check(model, k, fold, seed=5)


@pytest.mark.parametrize("fold", [None, {"pe": 1, "simd": 3}, {"pe": 3, "simd": 1}])
def test_depthwise_conv_on_pixels(fold):
    model, k = depthwise_case(8, "pixel")
    check(model, k, fold, seed=8, h=4, w=3)


@pytest.mark.parametrize("fold", [None, {"pe": 2, "simd": 1}])
def test_depthwise_1x1(fold):
    """kernel 1: a per-channel scale (taps = 1)."""
    model, k = depthwise_case(4, "fixed", kernel=1)
    check(model, k, fold, seed=4)


@pytest.mark.parametrize("dsp_terms", [0, 3])
def test_depthwise_lut_products(dsp_terms):
    model, k = depthwise_case(6, "fixed")
    check(model, k, {"pe": 2, "simd": 3}, seed=6, dsp_terms=dsp_terms)


@pytest.mark.parametrize("fold", [{"pe": 1, "simd": 1}, {"pe": 2, "simd": 3}, {"pe": 4, "simd": 1},
                                  {"pe": 2, "simd": 9}, {"pe": 4, "simd": 3}])
@pytest.mark.parametrize("in_kind", ["fixed", "bit"])
def test_grouped_depthwise_matches_spec(in_kind, fold):
    model, k = depthwise_case(3, in_kind)
    check(model, k, fold, seed=5, grouped=True)


def test_grouped_depthwise_on_pixels():
    model, k = depthwise_case(8, "pixel")
    check(model, k, {"pe": 1, "simd": 3}, seed=8, h=4, w=3, grouped=True)
    check(model, k, {"pe": 3, "simd": 3}, seed=9, h=1, w=5, grouped=True, dsp_terms=2)
