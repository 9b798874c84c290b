"""WindowGen against spec.reference.window_tap: every tap of every pixel, odd and 1-wide/high
frames, back-to-back frames, random valid gaps and ready stalls."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hw.window import WindowGen
from spec.reference import window_tap
from hwsim import pack, put, get, run_to_completion


def ref_windows(x, kernel):
    r = kernel // 2
    taps = [window_tap(x, ky - r, kx - r) for ky in range(kernel) for kx in range(kernel)]
    return np.concatenate(taps, axis=2)  # (h, w, k*k*c) in flat tap order


def rtl_windows(frames, elem_bits, signed_, channels, kernel, max_width, seed, gap, stall):
    dut = WindowGen(signed(elem_bits) if signed_ else unsigned(elem_bits), channels, kernel,
                    max_width)
    rng = np.random.default_rng(seed)
    items = [pack(px, elem_bits) for f in frames for px in f.reshape(-1, channels)]
    n_out = sum(f.shape[0] * f.shape[1] for f in frames)
    out = []
    h, w = frames[0].shape[:2]

    async def setup(ctx):
        ctx.set(dut.width, w)
        ctx.set(dut.height, h)
        await put(dut.i, items, rng, gap)(ctx)

    run_to_completion(dut, [setup, get(dut.o, n_out, out, rng, stall)],
                      deadline_cycles=20 * n_out + 1000)
    return out


@pytest.mark.parametrize("h,w,kernel", [(1, 1, 3), (1, 5, 3), (4, 1, 3), (3, 2, 3), (5, 7, 3),
                                        (3, 4, 1)])
def test_window_matches_spec(h, w, kernel):
    rng = np.random.default_rng(h * 100 + w)
    c, bits = 3, 4
    frames = [rng.integers(-8, 8, (h, w, c)) for _ in range(2)]
    out = rtl_windows(frames, bits, True, c, kernel, max_width=8, seed=h + w, gap=0.3, stall=0.3)
    want = [pack(v, bits) for f in frames for v in ref_windows(f, kernel).reshape(h * w, -1)]
    assert out == want


def test_window_rejects_bad_kernel():
    with pytest.raises(ValueError, match=r"^kernel=5 must be 1 or 3$"):
        WindowGen(unsigned(1), 1, 5, 8)
