"""GroupWindowGen against spec.reference.window_tap: a testbench in the PE array's place walks
every window's steps (n, s) in the sequencer's order, with random pauses, and reads each slice;
odd and 1-wide/high frames, back-to-back frames, random input gaps, every simd (1, 3, 9) and
group count (nf = 1 included)."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned

from hw.group_window import GroupWindowGen
from hwsim import pack, put, run_to_completion
from test_window import ref_windows


def step_slices(window, channels, pe, simd):
    """The slices of one flat window (9*channels elements, tap-major) in step order
    ``n*sf + s``: element ``[j][p]`` is channel ``n*pe + p`` of tap ``s*simd + j``."""
    w = np.asarray(window).reshape(9, channels)
    return [w[s * simd:(s + 1) * simd, n * pe:(n + 1) * pe]
            for n in range(channels // pe) for s in range(9 // simd)]


def read_windows(dut, n_windows, out, rng, pause):
    """The PE array's side: per window, every step's slice; ``o.ready`` on the last step."""
    async def bench(ctx):
        steps = dut.nf * dut.sf
        for _ in range(n_windows):
            got = []
            for c in range(steps):
                n, s = divmod(c, dut.sf)
                while True:
                    ctx.set(dut.step_n, n)
                    ctx.set(dut.step_s, s)
                    go = not rng.random() < pause
                    ctx.set(dut.o.ready, go and c == steps - 1)
                    _, _, valid, payload = await ctx.tick().sample(dut.o.valid,
                                                                   dut.o.payload.as_value())
                    if valid and go:
                        got.append(payload)
                        break
            out.append(got)
        ctx.set(dut.o.ready, 0)
    return bench


@pytest.mark.parametrize("h,w,channels,pe,simd", [
    (1, 1, 4, 2, 3), (1, 5, 4, 2, 3), (4, 1, 4, 1, 1), (3, 2, 6, 3, 9), (5, 7, 4, 2, 3),
    (3, 4, 3, 3, 1), (2, 3, 4, 4, 3)])
def test_group_window_matches_spec(h, w, channels, pe, simd):
    rng = np.random.default_rng(h * 100 + w * 10 + simd)
    bits = 4
    frames = [rng.integers(-8, 8, (h, w, channels)) for _ in range(2)]
    dut = GroupWindowGen(signed(bits), channels, pe, simd, max_width=8)
    items = [pack(px, bits) for f in frames for px in f.reshape(-1, channels)]
    n_out = 2 * h * w
    out = []

    async def setup(ctx):
        ctx.set(dut.width, w)
        ctx.set(dut.height, h)
        await put(dut.i, items, rng, 0.3)(ctx)

    run_to_completion(dut, [setup, read_windows(dut, n_out, out, rng, 0.3)],
                      deadline_cycles=40 * n_out * dut.nf * dut.sf + 1000)
    want = [[pack(sl, bits) for sl in step_slices(v, channels, pe, simd)]
            for f in frames for v in ref_windows(f, 3).reshape(h * w, -1)]
    assert out == want


def test_group_window_rejects_bad_fold():
    with pytest.raises(ValueError, match=r"^pe=3 must divide channels=4 and simd=2 must divide 9$"):
        GroupWindowGen(unsigned(1), 4, 3, 2, 8)
