"""spec.arith: each rule checked against its definition written another way."""

import math

import numpy as np
import pytest

from spec import arith


@pytest.mark.parametrize("shift", [0, 1, 2, 5, 13, 30])
def test_rshift_round_is_round_half_up(shift):
    rng = np.random.default_rng(shift)
    x = np.concatenate([rng.integers(-(2**40), 2**40, 2000), np.arange(-70, 70)])
    want = np.array([math.floor(v / 2**shift + 0.5) for v in x.tolist()])
    np.testing.assert_array_equal(arith.rshift_round(x, shift), want)


def test_rshift_round_exact_halves_go_up():
    assert arith.rshift_round(np.array([-3, -1, 1, 3]), 1).tolist() == [-1, 0, 1, 2]


def test_rshift_round_per_channel_shifts():
    rng = np.random.default_rng(7)
    x = rng.integers(-(2**20), 2**20, (50, 8))
    k = np.arange(8)
    want = [[math.floor(v / 2**s + 0.5) for v, s in zip(row, k.tolist())] for row in x.tolist()]
    np.testing.assert_array_equal(arith.rshift_round(x, k), want)


@pytest.mark.parametrize("k", range(arith.MAX_ACT_SHIFT + 1))
def test_prelu_shift_is_a_power_of_two_prelu_rounded_half_up(k):
    y = np.concatenate([np.arange(-300, 301), [-(2**31), -(2**15) - 1, 2**15, 2**31 - 1]])
    want = [v if v >= 0 else math.floor(v / 2**k + 0.5) for v in y.tolist()]
    np.testing.assert_array_equal(arith.prelu_shift(y, k), want)
    assert arith.prelu_shift(np.array([-1]), k).tolist() == [-1 if k == 0 else 0]


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_saturate(bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    x = np.arange(lo - 5, hi + 6)
    np.testing.assert_array_equal(arith.saturate(x, bits), [min(max(v, lo), hi) for v in x])


def test_clamp_pixel_and_sign_bit():
    assert arith.clamp_pixel(np.array([-9, 0, 17, 255, 256, 10**9])).tolist() == [0, 0, 17, 255, 255, 255]
    assert arith.sign_bit(np.array([-2, -1, 0, 1])).tolist() == [0, 0, 1, 1]  # sign(0) = +1
    assert arith.bit_to_pm1(np.array([0, 1])).tolist() == [-1, 1]


def test_conv_acc_range_is_tight_and_sound():
    rng = np.random.default_rng(0)
    w = rng.integers(-8, 8, (3, 1, 1, 2))
    lo, hi = arith.conv_acc_range(w, -3, 5)
    grid = np.array([(a, b) for a in range(-3, 6) for b in range(-3, 6)])
    accs = grid @ w.reshape(3, 2).T
    assert (lo, hi) == (accs.min(), accs.max())


def test_bits_for_range():
    assert arith.bits_for_range(0, 0) == 1
    assert arith.bits_for_range(-1, 0) == 1
    assert arith.bits_for_range(0, 1) == 2
    assert arith.bits_for_range(-128, 127) == 8
    assert arith.bits_for_range(-129, 0) == 9
    assert arith.bits_for_range(0, 288) == 10
