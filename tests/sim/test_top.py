"""The generated top (``hw.generate`` -> ``gam_top.v``) in Verilator equals the spec, bit for bit.

Three random model shapes (different channel counts, residuals, a noise channel, unshuffle with
128-bit streams, one randomly folded), each built once per module. Every run compares each
output frame with ``spec.run_tensor`` of the model loaded at that moment, checks TLAST, the
STATUS error bits and that the CYCLES register equals the cycles measured on the bus. The last
tests break things on purpose and require the scoreboard to fail loudly, with a waveform.
"""

import numpy as np
import pytest

import spec
from accel import regmap
from sim.runner import SimFailure
from sim.top import TopSim
from spec.random_model import random_same_shape

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

MAX_WIDTH = 16

DESIGNS = {
    # name: (random_model arguments, fold)
    "small": (dict(seed=11, channels=3, n_binary=2, image_channels=1, unshuffle=1,
                   noise_channel=False, kernels=(1, 3)), "full"),
    "residual-folded": (dict(seed=12, channels=4, n_binary=3, image_channels=3, unshuffle=1,
                             noise_channel=True, residual_prob=1.0, act_prob=0.7), "random"),
    "unshuffle-wide": (dict(seed=13, channels=2, n_binary=1, image_channels=3, unshuffle=2,
                            noise_channel=True), "full"),
}


@pytest.fixture(scope="module", params=sorted(DESIGNS))
def design(request, random_fold):
    kw, fold = DESIGNS[request.param]
    model = spec.random_model(**kw)
    if fold == "random":
        fold = random_fold(model, np.random.default_rng(kw["seed"]))
    return TopSim(model, max_width=MAX_WIDTH, fold=fold)


def frame(sim, seed, h, w):
    return spec.random_image(seed, h, w, sim.model.input_channels)


def test_sizes_and_stalls(design):
    """Edge sizes (1x1, one row, one column, odd, full width) back to back, each size two
    frames in flight, random valid gaps and ready stalls; the size registers change between."""
    rng = np.random.default_rng(5)
    sizes = [(1, 1), (1, 7), (6, 1), (3, 5), (5, MAX_WIDTH), (4, 2),
             (int(rng.integers(2, 8)), int(rng.integers(2, MAX_WIDTH + 1)) | 1)]
    sc = design.scenario(seed=1)
    for k, (h, w) in enumerate(sizes):
        sc.frames([frame(design, 100 * k + j, h, w) for j in range(2)], gap=0.3, stall=0.3)
    res = sc.run()
    assert res["mismatched_pixels"] == 0
    assert res["pixels_checked"] == sum(2 * h * w for h, w in sizes)


def test_no_stalls_cycles_match_perf_model(design):
    """Without stalls the measured frame time is accel.perf's prediction (within 2 %)."""
    h, w = 6, 11
    res = design.scenario(seed=2).frames([frame(design, 7, h, w)]).run()
    want = design.predicted_cycles(h, w)
    assert abs(res["frame_cycles"][0] - want) <= max(2, 0.02 * want), (res["frame_cycles"], want)


def test_reload_between_frames(design):
    """Another model of the same shape loaded over AXI4-Lite between frames, then the first
    one again; ID, SHAPE, CHANNELS, MAX_WIDTH and FRAMES read back right."""
    m = design.model
    other = random_same_shape(m, 3)
    x = frame(design, 9, 3, 4)
    sc = design.scenario(seed=3)
    sc.regs(ID=regmap.ID_VALUE, SHAPE=regmap.shape_id(m), MAX_WIDTH=MAX_WIDTH,
            CHANNELS=m.input_channels | (m.layers[-1].c_out << 16))
    sc.frames([x], stall=0.2)
    sc.load(other).frames([x, frame(design, 10, 3, 4)], gap=0.2)
    sc.load(m).frames([x], gap=0.1, stall=0.1)
    sc.regs(FRAMES=4)
    assert not np.array_equal(spec.run_tensor(m, x), spec.run_tensor(other, x))
    sc.run()


@pytest.mark.parametrize("how", ["rst", "soft"])
def test_reset_mid_frame(design, how):
    """A frame cut off by a reset (the rst pin, or CONTROL's soft reset) leaves nothing behind:
    the next frames, of another size, are right, with the reloaded parameters kept."""
    other = random_same_shape(design.model, 4)
    sc = design.scenario(seed=4)
    sc.load(other)
    big = frame(design, 20, 5, 9)
    sc.abort(big, beats=2 * 9 + 4, how=how, gap=0.2, stall=0.3)
    sc.frames([frame(design, 21, 4, 6)], gap=0.2, stall=0.2)
    sc.abort(big, beats=1, how=how)
    sc.frames([big])
    sc.run()


@pytest.fixture(scope="module")
def depthwise(random_fold):
    """Depthwise-separable head and tail (1x1 + depthwise 3x3 each side), the depthwise
    layers folded so that every lane muxes its channel over (group, slice)."""
    model = spec.random_model(14, channels=4, n_binary=1, image_channels=3, unshuffle=1,
                              noise_channel=True, depthwise_prob=1.0)
    fold = random_fold(model, np.random.default_rng(14))
    for i, layer in enumerate(model.layers):
        if layer.depthwise:
            fold[i] = {"pe": 2, "simd": 3, "out_pe": 1}
    return TopSim(model, max_width=MAX_WIDTH, fold=fold)


def test_depthwise_layers(depthwise):
    """Edge sizes under stalls, a reload of another model of the same shape (the depthwise
    weight layout over AXI4-Lite), and the perf model's frame time."""
    m = depthwise.model
    assert sum(layer.depthwise for layer in m.layers) == 2
    sc = depthwise.scenario(seed=7)
    sc.regs(SHAPE=regmap.shape_id(m))
    for k, (h, w) in enumerate([(1, 1), (3, 5), (5, MAX_WIDTH), (6, 1)]):
        sc.frames([frame(depthwise, 40 + k, h, w)], gap=0.3, stall=0.3)
    x = frame(depthwise, 45, 4, 6)
    sc.load(random_same_shape(m, 5)).frames([x], gap=0.2, stall=0.2)
    sc.load(m).frames([x])
    res = sc.run()
    assert res["mismatched_pixels"] == 0
    want = depthwise.predicted_cycles(4, 6)
    assert abs(res["frame_cycles"][-1] - want) <= max(2, 0.02 * want), (res["frame_cycles"], want)


# ------------------------------------------------------------------ broken on purpose

@pytest.fixture(scope="module")
def small():
    kw, fold = DESIGNS["small"]
    return TopSim(spec.random_model(**kw), max_width=MAX_WIDTH, fold=fold)


def flipped_weight(model, x):
    """A copy of ``model`` with one weight bit flipped that changes the output on ``x``."""
    want = spec.run_tensor(model, x)
    for k, layer in enumerate(model.layers):
        if layer.kind != "binary":
            continue
        for idx in np.ndindex(layer.weights.shape):
            bad = spec.from_bytes(spec.to_bytes(model))
            bad.layers[k].weights[idx] ^= 1
            if not np.array_equal(spec.run_tensor(bad, x), want):
                return bad
    raise AssertionError("no single weight bit changes this output")


def test_flipped_weight_bit_is_caught(small):
    """Loading parameters with one weight bit flipped (one parameter word differs) fails with
    the first mismatching pixel and a waveform."""
    m = small.model
    x = frame(small, 30, 4, 7)
    bad = flipped_weight(m, x)
    good_words = np.concatenate([w for _, w in regmap.param_writes(m, small.folds)])
    bad_words = np.concatenate([w for _, w in regmap.param_writes(bad, small.folds)])
    assert (good_words != bad_words).sum() == 1
    sc = small.scenario(seed=5).load(m, words_of=bad).frames([x])
    with pytest.raises(SimFailure, match=r"first mismatch at x=\d+, y=\d+, channel \d+: "
                                         r"expected \d+, got \d+") as e:
        sc.run()
    assert e.value.waves is not None and e.value.waves.stat().st_size > 0


def test_dropped_beat_under_stalls_is_caught(small):
    """A sink that loses the beat after a stall (the shim) makes the frame short: caught."""
    sc = small.scenario(seed=6).frames([frame(small, 31, 5, 6)], stall=0.5)
    with pytest.raises(SimFailure, match=r"received 29 beats, the frame has 30") as e:
        sc.run(drop_after_stall=3)
    assert e.value.waves is not None
