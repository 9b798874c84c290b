"""The spec's conventions agree with torch's, so trained networks mean what the spec computes.

Window orientation, replicate border and weight layout against ``F.conv2d`` with
``padding_mode="replicate"``; the binary accumulator against the +/-1 dot product; pixel
(un)shuffle channel order against ``F.pixel_(un)shuffle``. Torch (float64) is an independent
implementation here.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import spec  # noqa: E402
from spec import reference  # noqa: E402
from spec.model import Affine, Layer, TensorType, Threshold  # noqa: E402


def _torch_conv(x_hwc, w_okkc):
    x = torch.tensor(x_hwc, dtype=torch.float64).permute(2, 0, 1)[None]
    w = torch.tensor(w_okkc, dtype=torch.float64).permute(0, 3, 1, 2)
    k = w.shape[-1]
    if k > 1:
        x = F.pad(x, (k // 2,) * 4, mode="replicate")
    return F.conv2d(x, w)[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("kernel", [1, 3])
def test_fixed_conv_matches_torch(seed, kernel):
    rng = np.random.default_rng(seed)
    h, w, ci, co = rng.integers(1, 9), rng.integers(1, 9), rng.integers(1, 6), rng.integers(1, 6)
    x = rng.integers(0, 256, (h, w, ci))
    wt = rng.integers(-128, 128, (co, kernel, kernel, ci))
    layer = Layer("fixed", kernel, int(ci), int(co), wt, Affine(scale=None, bias=None), w_bits=8)
    acc = reference.conv_acc(layer, x, TensorType("pixel", int(ci), 8))
    np.testing.assert_array_equal(acc, _torch_conv(x, wt))


@pytest.mark.parametrize("seed", range(6))
def test_binary_acc_is_half_the_pm1_dot_plus_n(seed):
    rng = np.random.default_rng(seed)
    h, w, ci, co = rng.integers(1, 9), rng.integers(1, 9), rng.integers(1, 40), rng.integers(1, 6)
    x = rng.integers(-50, 50, (h, w, ci))  # a fixed tensor: the conv reads sign(x)
    wb = rng.integers(0, 2, (co, 3, 3, ci))
    layer = Layer("binary", 3, int(ci), int(co), wb, Threshold(threshold=None, flip=None))
    acc = reference.conv_acc(layer, x, TensorType("fixed", int(ci), 8))
    dot = _torch_conv(np.where(x >= 0, 1, -1), wb * 2 - 1)
    np.testing.assert_array_equal(2 * acc - layer.taps, dot)


@pytest.mark.parametrize("r", [2, 3])
def test_pixel_steps_match_torch(r):
    img = np.random.default_rng(r).integers(0, 256, (4 * r, 2 * r, 3)).astype(np.uint8)
    t = torch.tensor(img).permute(2, 0, 1)[None]
    un = F.pixel_unshuffle(t, r)[0].permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(spec.pixel_unshuffle(img, r), un)
    np.testing.assert_array_equal(spec.pixel_shuffle(un, r), img)
