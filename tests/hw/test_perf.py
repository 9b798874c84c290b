"""accel.perf against measurement: full unfolding sustains one pixel per clock after the fill
(measured on the output beats), and the cycle model matches the CYCLES register within 2 %
over folded and unfolded designs. Folding choice reaches the shipped denoiser's target."""

import dataclasses

import numpy as np
import pytest

import spec
from accel import perf, regmap
from hw.top import Top
from axi import axil_read, axil_write, frame_beats, receive, send
from hwsim import run_to_completion

REG = regmap.REG


def measure(model, fold, h, w):
    """CYCLES register and output beat times of one frame into an empty pipeline, input
    offered every cycle, output always ready."""
    dut = Top(model, max_width=w, fold=fold)
    x = spec.random_image(1, h, w, model.input_channels)
    res = {}

    async def tx(ctx):
        await axil_write(ctx, dut.s_axil, REG["WIDTH"], w)
        await axil_write(ctx, dut.s_axil, REG["HEIGHT"], h)
        await send(ctx, dut.s_axis, frame_beats(x))

    async def rx(ctx):
        times = []
        out = await receive(ctx, dut.m_axis, h * w, times=times)
        res["times"], res["cycles"] = times, await axil_read(ctx, dut.s_axil, REG["CYCLES"])
        res["ok"] = regmap.unpack_pixels([d for d, _ in out], h, w, dut.c_out)

    run_to_completion(dut, [tx, rx], deadline_cycles=200 * h * w + 5000)
    assert (res["ok"] == spec.run_tensor(model, x)).all()
    return res


def test_full_unfolding_sustains_one_pixel_per_clock():
    model = spec.random_model(21, channels=4, n_binary=3, image_channels=1, unshuffle=1)
    h, w = 6, 16
    res = measure(model, None, h, w)
    gaps = np.diff(res["times"])
    assert (gaps == 1).all(), f"output gaps {sorted(set(gaps.tolist()))}"
    assert perf.pixels_per_clock(model) == 1.0
    pred = perf.frame_cycles(model, None, height=h, width=w)
    assert abs(res["cycles"] - pred) <= 0.02 * res["cycles"]


@pytest.mark.parametrize("seed,fold", [
    (22, [{"pe": 1, "simd": 3}, {"pe": 2, "simd": 3, "out_pe": 1}, {"pe": 1, "simd": 18},
          {"pe": 1, "simd": 6}]),
    (23, [None, {"pe": 2, "simd": 6}, {"pe": 1, "simd": 2, "out_pe": 1}, None]),
    (24, [{"pe": 2, "simd": 1}, {"pe": 1, "simd": 1}, None, {"pe": 1, "simd": 1}]),
])
def test_cycle_model_within_two_percent(seed, fold):
    model = spec.random_model(seed, channels=2, n_binary=2, image_channels=1, unshuffle=1,
                              noise_channel=False)
    h, w = 5, 7
    res = measure(model, fold, h, w)
    pred = perf.frame_cycles(model, fold, height=h, width=w)
    assert abs(res["cycles"] - pred) <= 0.02 * res["cycles"], (res["cycles"], pred)


def denoiser_shape():
    """The shipped denoiser's shape: unshuffle 2 + noise channel (13 in), fixed head 13->32,
    8 binary residual layers of 32 channels, fixed tail 32->12."""
    return spec.random_model(0, image_channels=3, channels=32, n_binary=8, unshuffle=2,
                             noise_channel=True)


def test_auto_fold_reaches_720p30_on_the_denoiser():
    model = denoiser_shape()
    target = 640 * 360 * 30
    fold = perf.choose_fold(model, pixels_per_second=target, clock_hz=100e6, height=360,
                            width=640)
    cycles = perf.frame_cycles(model, fold, height=360, width=640)
    assert cycles <= 100e6 / 30
    # Real folding: far fewer lanes than fully unfolded, and a LUT budget fold fits it.
    assert perf.pixels_per_clock(model, fold) < 0.2
    cost = perf.estimate_cost(model, fold)
    assert cost["luts"] < perf.estimate_cost(model, None)["luts"] / 4
    budget = perf.choose_fold(model, lut_budget=60_000, height=360, width=640)
    assert perf.estimate_cost(model, budget, max_width=640)["luts"] <= 60_000


@pytest.mark.parametrize("budget", [45_000, 60_000, 120_000])  # the most folded: 39k LUT4
def test_lut_budget_fold_is_the_fastest_that_fits(budget):
    """Against every interval 1..4096 tried one by one (costs are not monotonic in it)."""
    model = denoiser_shape()
    got = perf.choose_fold(model, lut_budget=budget, max_width=320)
    assert perf.estimate_cost(model, got, max_width=320)["luts"] <= budget
    fits = []
    for ii in range(1, 4097):
        fold = perf.fold_within(model, ii)
        if perf.estimate_cost(model, fold, max_width=320)["luts"] <= budget:
            fits.append(perf.pixels_per_clock(model, fold))
    assert perf.pixels_per_clock(model, got) == max(fits)


@pytest.mark.parametrize("fps", [30, 300, 3000])
def test_rate_fold_is_the_slowest_that_meets_the_rate(fps):
    """Against every interval tried one by one, each predicted (fold_for_rate skips a fold it
    has seen miss)."""
    model = spec.random_model(3, image_channels=3, channels=8, n_binary=2, unshuffle=2,
                              noise_channel=True)
    h, w, clock = 12, 16, 1e6
    fold, cycles = perf.fold_for_rate(model, pixels_per_second=fps * h * w, clock_hz=clock,
                                      height=h, width=w)
    assert cycles == perf.frame_cycles(model, fold, height=h, width=w) <= clock / fps
    top = max(layer.c_out * layer.taps for layer in model.layers)
    naive = next(f for f in (perf.fold_within(model, ii) for ii in range(top, 0, -1))
                 if perf.frame_cycles(model, f, height=h, width=w) <= clock / fps)
    assert fold == naive


def test_choose_fold_errors():
    model = denoiser_shape()
    with pytest.raises(ValueError, match=r"^give either pixels_per_second"):
        perf.choose_fold(model)
    with pytest.raises(ValueError, match=r"out of reach even fully unfolded"):
        perf.choose_fold(model, pixels_per_second=1e9, clock_hz=100e6)


def test_block_ram_count_uses_the_best_primitive_shape():
    assert perf.block_rams(256, 704, "ecp5_ebr") == 15  # 1024x18: 15 wide, 1 deep
    assert perf.block_rams(256, 480, "ecp5_ebr") == 8  # 512x36: 8 wide, 1 deep
    assert perf.block_rams(64, 640, "xc7_bram36") == 2
    model = denoiser_shape()
    mems = perf.memories(model, max_width=640)
    assert mems[-1]["what"] == "global residual delay"
    assert mems[-1]["depth"] == perf.delay_depth(len(model.layers), 640)


def test_activation_adds_its_measured_lane_cost():
    """Each affine layer with ``act`` costs its measured act_lanes LUTs more per output lane
    (bench.stage_cost), and its parameter memory holds the activation's fields: nothing else."""
    m = spec.random_model(5, channels=8, n_binary=4, act_prob=1.0)
    plain = m.validate()
    layers = [l if not isinstance(l.stage, spec.Affine) else
              dataclasses.replace(l, stage=dataclasses.replace(l.stage, act=None, act_shift=None,
                                                              act_offset=None))
              for l in m.layers]
    plain = dataclasses.replace(m, layers=layers).validate()
    with_act = perf.estimate_cost(m, None, max_width=64)
    without = perf.estimate_cost(plain, None, max_width=64)
    folds = regmap.normalize_fold(m, None)
    lanes = sum(f.out_pe for l, f in zip(m.layers, folds) if getattr(l.stage, "act", None))
    assert lanes > 0
    for lut_key, family in (("luts", "ecp5"), ("xc7_luts", "xc7")):
        stage = perf.COSTS[family]["stage"]

        def param_bits(model):
            return sum(layer["stage"]["param_ram_bits"]
                       for layer in perf.block_features(model, None, family=family, max_width=64))

        extra = stage["param_ram_bits"][0] * (param_bits(m) - param_bits(plain))
        assert extra >= 0
        assert with_act[lut_key] - without[lut_key] == pytest.approx(
            stage["act_lanes"][0] * lanes + extra, abs=len(m.layers))
    assert with_act["ram_bits"] == without["ram_bits"] and with_act["mults"] == without["mults"]


@pytest.mark.parametrize("ii", [1, 9, 64, 100, 128])
def test_fold_ii_n_takes_the_fewest_lanes_within_the_interval(ii):
    """``--fold ii:N``: every layer within N cycles per pixel, with the fewest PE lanes any
    divisor pair allows (tried one by one here)."""
    from accel.fold import resolve_fold

    model = denoiser_shape()
    fold = resolve_fold(model, f"ii:{ii}")
    assert 1 / perf.pixels_per_clock(model, fold) <= ii
    for layer, f in zip(model.layers, fold):
        assert perf.layer_ii(layer, f) <= ii
        lanes = [pe * simd for pe in range(1, layer.c_out + 1) if layer.c_out % pe == 0
                 for simd in range(1, layer.taps + 1) if layer.taps % simd == 0
                 and (layer.c_out // pe) * (layer.taps // simd) <= ii]
        assert f.pe * f.simd == min(lanes)


def test_depthwise_cycle_model_within_two_percent():
    model = spec.random_model(25, channels=4, n_binary=1, image_channels=1, unshuffle=1,
                              noise_channel=False, depthwise_prob=1.0)
    dw = [i for i, l in enumerate(model.layers) if l.depthwise]
    assert dw
    fold = [None] * len(model.layers)
    for i in dw:
        fold[i] = {"pe": 2, "simd": 3, "out_pe": 1}  # nf*sf = 2*3 cycles per pixel
    h, w = 5, 7
    res = measure(model, fold, h, w)
    pred = perf.frame_cycles(model, fold, height=h, width=w)
    assert abs(res["cycles"] - pred) <= 0.02 * res["cycles"], (res["cycles"], pred)


def test_depthwise_fold_and_cost():
    """A depthwise 3x3 layer of c channels has taps = 9: its folds divide 9, it stores 9*c
    weights, and at the same interval it needs c times fewer products than the dense layer
    (plus each lane's own (group, slice) mux)."""
    model = spec.random_model(0, image_channels=3, channels=32, n_binary=2, unshuffle=2,
                              noise_channel=True, depthwise_prob=1.0)
    i = next(i for i, l in enumerate(model.layers) if l.depthwise and l.kernel == 3)
    layer = model.layers[i]
    assert layer.taps == 9 and layer.c_in == layer.c_out == 32
    fold = [None] * len(model.layers)
    fold[i] = {"pe": 32, "simd": 2}
    with pytest.raises(regmap.FoldError, match=rf"^layer {i + 1}: taps=9 must be a multiple of simd=2$"):
        regmap.normalize_fold(model, fold)
    fold[i] = {"pe": 8, "simd": 3, "out_pe": 8}  # nf = 4, sf = 3: 12 cycles per pixel
    dense = dataclasses.replace(model, layers=list(model.layers))
    dense.layers[i] = dataclasses.replace(layer, groups=1, weights=np.ones((32, 3, 3, 32), int))
    dense = dense.validate()
    dense_fold = list(fold)
    dense_fold[i] = {"pe": 8, "simd": 96, "out_pe": 8}  # the same 12 cycles per pixel
    got = perf.estimate_cost(model, fold, max_width=64)["layers"][i]
    ref = perf.estimate_cost(dense, dense_fold, max_width=64)["layers"][i]
    assert got["ii"] == ref["ii"] == 12
    assert got["weight_bits"] == 32 * 9 * layer.w_bits and ref["weight_bits"] == 32 * got["weight_bits"]
    assert got["conv_mults"] == 8 * 3 and ref["conv_mults"] == 8 * 96
    assert got["luts"] < ref["luts"] / 5  # the output stage (8 lanes) is the same in both
    wreg = regmap.regions(model, fold)[2 * i]  # nf*sf = 12 rows of pe*simd = 24 weights
    assert (wreg.entries, wreg.lanes) == (12, 24)
