"""XnorEngine and FixedConv (the folded PE array) against spec.reference.conv_acc, over folds
from fully unfolded to pe=1/simd=1, with random valid gaps and ready stalls."""

import numpy as np
import pytest
from amaranth.hdl import Shape

from accel import regmap
from hw.fixed_conv import FixedConv
from hw.folded_mvu import acc_shape_for
from hw.pipeline import CONV_BLOCKS, tensor_elem
from hw.xnor_engine import XnorEngine
from spec import arith, kinds
from hwsim import get, layer_case, pack, put, run_to_completion, unpack, windows


def test_every_layer_kind_has_a_block():
    """hw.pipeline.CONV_BLOCKS names a block for each spec layer kind."""
    assert set(CONV_BLOCKS) == {type(k) for k in kinds.LAYER_KINDS.values()}


def run_mvu(dut, wins, in_bits, n_pixels, seed):
    rng = np.random.default_rng(seed)
    items = [pack(v, in_bits) for v in wins]
    out = []
    run_to_completion(dut, [put(dut.i, items, rng, 0.3),
                            get(dut.o, n_pixels * dut.nf, out, rng, 0.3)],
                      deadline_cycles=50 * len(items) * dut.nf * dut.sf + 200)
    acc = Shape.cast(dut.acc_shape)
    groups = [unpack(v, acc.width, dut.pe, acc.signed) for v in out]
    return np.array(groups).reshape(n_pixels, -1)


@pytest.mark.parametrize("lut_inputs", [4, 6])
@pytest.mark.parametrize("fold", [None, {"pe": 1, "simd": 1}, {"pe": 2, "simd": 9},
                                  {"pe": 4, "simd": 4}])
def test_xnor_engine_matches_spec(fold, lut_inputs):
    """Both shapes of the first logic level: XNOR bits registered (LUT4) or the popcount's
    carry-save rows (LUT6)."""
    model, layer, tensors, types, wreg, _, acc = layer_case(5, 2, fold, channels=4, n_binary=1,
                                                            image_channels=1, unshuffle=1)
    t_in = types[1]
    bits = tensors[1] if t_in.kind == "bit" else arith.sign_bit(tensors[1])
    dut = XnorEngine(wreg, regmap.region_entries(model, wreg), taps=layer.taps, c_out=layer.c_out,
                     lut_inputs=lut_inputs)
    got = run_mvu(dut, windows(bits, layer.kernel), 1, acc.shape[0] * acc.shape[1], 1)
    assert (got == acc.reshape(got.shape)).all()


@pytest.mark.parametrize("k,fold,seed", [(1, None, 7), (1, {"pe": 1, "simd": 3}, 8),
                                         (3, {"pe": 1, "simd": 2}, 9), (3, None, 10)])
def test_fixed_conv_matches_spec(k, fold, seed):
    # Layer 1 reads pixels; layer 3 (the tail) reads bits or fixed values, per the model.
    model, layer, tensors, types, wreg, _, acc = layer_case(seed, k, fold, channels=2,
                                                            n_binary=1, image_channels=1,
                                                            unshuffle=1)
    t_in = types[k - 1]
    elem = tensor_elem(t_in)
    dut = FixedConv(wreg, regmap.region_entries(model, wreg), elem=elem,
                    bit_input=t_in.kind == "bit", taps=layer.taps, c_out=layer.c_out,
                    acc_shape=acc_shape_for(layer, t_in), w_bits=layer.w_bits)
    got = run_mvu(dut, windows(tensors[k - 1], layer.kernel), Shape.cast(elem).width,
                  acc.shape[0] * acc.shape[1], seed)
    assert (got == acc.reshape(got.shape)).all()


def test_fold_mismatch_is_rejected():
    model, layer, *_ = layer_case(5, 2, None, channels=4, n_binary=1)
    wreg = regmap.regions(model)[2]
    with pytest.raises(ValueError, match=r"^taps=35 must be a multiple of simd=36 and c_out=5"):
        XnorEngine(wreg, regmap.region_entries(model, wreg), taps=35, c_out=5)


@pytest.mark.parametrize("dsp_terms", [0, 2])
def test_fixed_conv_lut_products_match_spec(dsp_terms):
    """Products outside the DSP budget come from LutProducts submodules; same accumulators."""
    for k, seed in ((1, 7), (2, 11)):  # pixels (unsigned) in; the tail reads signed fixed
        model, layer, tensors, types, wreg, _, acc = layer_case(
            seed, k, {"pe": 1, "simd": 3}, channels=2, n_binary=0, image_channels=1, unshuffle=1)
        t_in = types[k - 1]
        assert t_in.kind == ("pixel" if k == 1 else "fixed")
        elem = tensor_elem(t_in)
        dut = FixedConv(wreg, regmap.region_entries(model, wreg), elem=elem,
                        bit_input=t_in.kind == "bit", taps=layer.taps, c_out=layer.c_out,
                        acc_shape=acc_shape_for(layer, t_in), w_bits=layer.w_bits,
                        dsp_terms=dsp_terms)
        got = run_mvu(dut, windows(tensors[k - 1], layer.kernel), Shape.cast(elem).width,
                      acc.shape[0] * acc.shape[1], seed)
        assert (got == acc.reshape(got.shape)).all()
