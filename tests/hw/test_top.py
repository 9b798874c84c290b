"""hw.top.Top end to end against spec.run_tensor: random models and frame sizes, random valid
gaps and ready stalls, back-to-back frames, TLAST, registers, reloading another model of the
same shape through AXI4-Lite, soft reset."""


import numpy as np
import pytest

import spec
from accel import regmap
from hw.top import Top
from spec.random_model import random_layer_params, random_same_shape
from axi import axil_read, axil_write, frame_beats, load_params, receive, send, to_image
from hwsim import run_to_completion

pytestmark = pytest.mark.slow  # minutes: left out of the fast loop (README: the fast loop)

REG = regmap.REG


def small_model(seed, **kw):
    kw = {"channels": 3, "n_binary": 2, "image_channels": 1, "unshuffle": 1, **kw}
    return spec.random_model(seed, kernels=(1, 3), **kw)


def run_frames(dut, frames, *, gap=0.0, stall=0.0, seed=0, before=None, after=None,
               beats=None):
    """Send ``frames`` back to back, return the output images, TLAST flags and registers."""
    rng = np.random.default_rng(seed)
    h, w = frames[0].shape[:2]
    res = {}

    async def tx(ctx):
        await axil_write(ctx, dut.s_axil, REG["WIDTH"], w)
        await axil_write(ctx, dut.s_axil, REG["HEIGHT"], h)
        if before is not None:
            await before(ctx)
        res["tx_ready"] = True
        for x in frames:
            await send(ctx, dut.s_axis, beats(x) if beats else frame_beats(x), rng, gap)

    async def rx(ctx):
        out = await receive(ctx, dut.m_axis, h * w * len(frames), rng, stall)
        res["images"] = [to_image(out[k * h * w:(k + 1) * h * w], h, w, dut.c_out)
                         for k in range(len(frames))]
        res["tlast"] = [t for _, t in out]
        for name in ("STATUS", "FRAMES", "CYCLES", "ID", "SHAPE", "CHANNELS", "MAX_WIDTH"):
            res[name] = await axil_read(ctx, dut.s_axil, REG[name])
        if after is not None:
            await after(ctx, res)

    n = h * w * len(frames)
    run_to_completion(dut, [tx, rx], deadline_cycles=400 * n + 20000)
    return res


def run_after_loading(model, other, fold, x, **run):
    """Build ``model``'s design, load ``other``'s parameters into it through the registers and
    run ``x`` (which the two models restore differently): ``other``'s output, bit for bit."""
    dut = Top(model, max_width=6, fold=fold)
    want = spec.run_tensor(other, x)
    assert not (want == spec.run_tensor(model, x)).all()

    async def load(ctx):
        assert await load_params(ctx, dut.s_axil, other, fold) is None

    res = run_frames(dut, [x], before=load, **run)
    assert (res["images"][0] == want).all()
    assert res["STATUS"] == 0


CASES = [  # seed, height, width, fold, mix (a fixed layer after the head and before the tail), act,
    # lut_inputs (6: the binary PE arrays register carry-save rows, as Xilinx builds do)
    (1, 4, 5, None, False, False, 6),
    (2, 1, 6, None, False, False, 4),
    (3, 5, 1, None, False, False, 4),
    (4, 1, 1, None, False, False, 4),
    (5, 3, 7, "fold", False, False, 4),
    (6, 2, 3, "fold", False, False, 6),
    (7, 3, 4, None, True, False, 4),
    (8, 2, 5, "fold", True, False, 6),
    (10, 3, 5, None, False, True, 4),  # every affine stage with the per-channel activation
    (9, 4, 3, "fold", True, True, 4),
]


@pytest.mark.parametrize("seed,h,w,fold,mix,act,lut_inputs", CASES)
def test_top_matches_spec(seed, h, w, fold, mix, act, lut_inputs):
    model = small_model(seed, mix_layers=mix, act_prob=1.0 if act else 0.0)
    assert any(getattr(l.stage, "act", None) for l in model.layers) == act
    if fold == "fold":  # fold the first two layers (the rest fully unfolded)
        l1, l2 = model.layers[:2]
        fold = [{"pe": 1, "simd": l1.c_in, "out_pe": 1}, {"pe": l2.c_out, "simd": l2.c_in, "out_pe": 1}]
        fold += [None] * (len(model.layers) - 2)
    dut = Top(model, max_width=8, fold=fold, lut_inputs=lut_inputs)
    frames = [spec.random_image(seed + k, h, w, model.input_channels) for k in range(2)]
    res = run_frames(dut, frames, gap=0.3, stall=0.3, seed=seed)
    for got, x in zip(res["images"], frames):
        assert (got == spec.run_tensor(model, x)).all()
    assert res["tlast"] == ([False] * (h * w - 1) + [True]) * 2
    assert res["STATUS"] == 0 and res["FRAMES"] == 2
    assert res["ID"] == regmap.ID_VALUE and res["SHAPE"] == regmap.shape_id(model)
    assert res["CHANNELS"] == model.input_channels | (model.layers[-1].c_out << 16)
    assert res["MAX_WIDTH"] == 8


@pytest.mark.parametrize("act", [False, True])
def test_reload_runs_another_model_without_rebuild(act):
    model = small_model(11, image_channels=3, act_prob=1.0 if act else 0.0)
    assert any(getattr(l.stage, "act", None) for l in model.layers) == act
    other = random_same_shape(model, 99)
    fold = [{"pe": 3, "simd": 3}] + [None] * (len(model.layers) - 1)
    run_after_loading(model, other, fold, spec.random_image(5, 3, 4, model.input_channels))


def test_noise_level_gain_loads_without_rebuild():
    """A noise level's gain (spec.PixelSteps.noise_gain) is the pixel stage's A and B scaled:
    a bitstream built at one level runs another after a parameter load, bit for bit."""
    import dataclasses

    model = small_model(13, image_channels=3, noise_channel=True)
    model = dataclasses.replace(model, steps=dataclasses.replace(
        model.steps, noise_gain=(0, 1500, 4096, 7000))).validate().with_noise_level(2)
    fold = [{"pe": 3, "simd": 2}] + [None] * (len(model.layers) - 1)
    run_after_loading(model, model.with_noise_level(1), fold,
                      spec.random_image(6, 3, 4, model.input_channels), stall=0.3, gap=0.3, seed=6)


def test_tlast_errors_and_soft_reset():
    model = small_model(12)
    dut = Top(model, max_width=8)
    h, w = 2, 3
    x = spec.random_image(3, h, w, model.input_channels)
    bad = [(d, k == 2) for k, (d, _) in enumerate(frame_beats(x))]  # TLAST early, then missing

    async def after(ctx, res):
        await axil_write(ctx, dut.s_axil, REG["CONTROL"], regmap.CONTROL_CLEAR_ERRORS)
        res["cleared"] = await axil_read(ctx, dut.s_axil, REG["STATUS"])
        # A soft reset in the middle of a frame, then a whole frame: its output is right.
        await send(ctx, dut.s_axis, frame_beats(x)[:4])
        await axil_write(ctx, dut.s_axil, REG["CONTROL"], regmap.CONTROL_SOFT_RESET)
        await send(ctx, dut.s_axis, frame_beats(x))
        out = await receive(ctx, dut.m_axis, h * w)
        res["after_reset"] = to_image(out, h, w, dut.c_out)

    res = run_frames(dut, [x], beats=lambda _: bad, after=after)
    assert res["STATUS"] == regmap.STATUS_ERR_TLAST_EARLY | regmap.STATUS_ERR_TLAST_LATE
    assert (res["images"][0] == spec.run_tensor(model, x)).all()  # processed by count
    assert res["cleared"] == 0
    assert (res["after_reset"] == spec.run_tensor(model, x)).all()


def test_bad_param_address_and_frame_size_set_errors():
    model = small_model(13)
    dut = Top(model, max_width=4)
    x = spec.random_image(3, 2, 2, model.input_channels)

    async def poke(ctx):
        await axil_write(ctx, dut.s_axil, REG["PARAM_ADDR"], 0xFFF00000)
        await axil_write(ctx, dut.s_axil, REG["PARAM_DATA"], 1)
        await axil_write(ctx, dut.s_axil, REG["WIDTH"], 5)  # > max_width: refused
        await axil_write(ctx, dut.s_axil, REG["HEIGHT"], 0)

    res = run_frames(dut, [x], before=poke)
    assert res["STATUS"] == regmap.STATUS_ERR_PARAM_ADDR | regmap.STATUS_ERR_FRAME_SIZE
    assert (res["images"][0] == spec.run_tensor(model, x)).all()


def test_bad_max_width_is_rejected():
    with pytest.raises(ValueError, match=r"^max_width=0 must be an integer in 1\.\.65535$"):
        Top(small_model(1), max_width=0)


@pytest.mark.parametrize("seed,depthwise", [(s, False) for s in range(30, 36)] +
                         [(s, True) for s in range(40, 44)])
def test_random_models_folds_and_frames(seed, depthwise, random_fold):
    """Any model of the family (residual spans, 1x1 kernels, noise channel, unshuffle), a random
    fold and a random small frame size, under stalls. ``depthwise``: depthwise-separable heads
    and tails (1x1 + depthwise, or a depthwise pixel layer), whose lanes read their channel
    through the (group, slice) mux."""
    rng = np.random.default_rng(seed)
    if depthwise:
        model = spec.random_model(seed, channels=int(rng.integers(2, 5)),
                                  n_binary=int(rng.integers(0, 3)),
                                  image_channels=1 if seed % 2 else 3, unshuffle=1, shuffle=1,
                                  kernels=(1, 3) if seed == 43 else (3,), depthwise_prob=1.0)
        assert any(layer.depthwise for layer in model.layers)
    else:
        model = spec.random_model(seed, channels=int(rng.integers(1, 5)),
                                  n_binary=int(rng.integers(0, 4)), image_channels=1,
                                  kernels=(1, 3), residual_prob=0.8)
    fold = random_fold(model, rng)
    h, w = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    dut = Top(model, max_width=w + int(rng.integers(0, 3)), fold=fold)
    frames = [spec.random_image(seed + k, h, w, model.input_channels) for k in range(2)]
    res = run_frames(dut, frames, gap=0.4, stall=0.4, seed=seed)
    for got, x in zip(res["images"], frames):
        assert (got == spec.run_tensor(model, x)).all(), (fold, h, w)
    assert res["STATUS"] == 0 and res["FRAMES"] == 2


def test_depthwise_pixel_tail():
    """The last layer itself depthwise (as wide as the image): a depthwise pixel stage, with
    its global residual, folded to one lane."""
    model = spec.random_model(5, channels=3, image_channels=3, unshuffle=1, shuffle=1,
                              n_binary=1, depthwise_prob=1.0)
    assert model.layers[-1].depthwise and model.layers[1].depthwise
    fold = [None] * (len(model.layers) - 1) + [{"pe": 1, "simd": 3, "out_pe": 1}]
    dut = Top(model, max_width=5, fold=fold)
    x = spec.random_image(5, 3, 5, model.input_channels)
    res = run_frames(dut, [x], gap=0.3, stall=0.3, seed=5)
    assert (res["images"][0] == spec.run_tensor(model, x)).all()


def test_dsp_budget_keeps_results_and_allocates_head_first():
    from accel.perf import dsp_allocation

    model = small_model(7, n_binary=1)
    fold = [{"pe": 1, "simd": model.layers[0].taps}, None, None]
    stage_mults = sum(f.out_pe for layer, f in zip(model.layers, regmap.normalize_fold(model, fold))
                      if layer.stage.multiplies)
    alloc = dsp_allocation(model, regmap.normalize_fold(model, fold), stage_mults + 2)
    assert alloc[0] == 2 and alloc[1] == 0 and alloc[2] == 0
    dut = Top(model, max_width=5, fold=fold, dsp=stage_mults + 2)
    x = spec.random_image(7, 3, 5, model.input_channels)
    res = run_frames(dut, [x], gap=0.2, stall=0.2, seed=7)
    assert (res["images"][0] == spec.run_tensor(model, x)).all()


def test_larger_denoiser_like_case():
    """One bigger case: 8 channels, 3 binary layers with residuals, the unshuffle + noise-channel
    input (13 channels here 5: 1 image channel x 4 + noise), auto fold for a rate."""
    from accel import perf

    model = spec.random_model(40, channels=8, n_binary=3, image_channels=1, unshuffle=2,
                              noise_channel=True, residual_prob=1.0)
    h, w = 4, 9
    fold = perf.choose_fold(model, pixels_per_second=0.25e6, clock_hz=4e6, height=h, width=w)
    assert perf.pixels_per_clock(model, fold) < 1
    dut = Top(model, max_width=12, fold=fold)
    x = spec.random_image(40, h, w, model.input_channels)
    res = run_frames(dut, [x], gap=0.2, stall=0.2, seed=40)
    assert (res["images"][0] == spec.run_tensor(model, x)).all()


@pytest.mark.parametrize("fold", [None, [{"pe": 1, "simd": 3}]])
def test_single_pixel_layer_model(fold):
    """The smallest model: one fixed 3x3 pixel layer with a partial global residual."""
    from spec.model import Layer, Model, PixelOutput

    layer = Layer("fixed", 3, 3, 3, None, PixelOutput(scale=None, bias=None, scale_bits=12,
                                                      residual_map=np.array([0, 1, -1])), w_bits=5)
    layer = random_layer_params(np.random.default_rng(0), layer, 0, 255)
    model = Model(layers=[layer], image_channels=3).validate()
    dut = Top(model, max_width=4, fold=fold)
    x = spec.random_image(1, 3, 4, 3)
    res = run_frames(dut, [x], gap=0.3, stall=0.3, seed=2)
    assert (res["images"][0] == spec.run_tensor(model, x)).all()


def test_residual_chains_survive_long_output_stalls():
    """Every binary layer adds a residual (spans 1 and 2); the output is ready 10 % of the time,
    so the forks and delay FIFOs fill: nothing deadlocks or drops."""
    model = spec.random_model(54, channels=2, n_binary=4, image_channels=1, unshuffle=1,
                              residual_prob=1.0, max_residual_span=2, kernels=(1, 3))
    assert sum(bool(layer.stage.joins()) for layer in model.layers[:-1]) >= 3
    dut = Top(model, max_width=3)
    frames = [spec.random_image(54 + k, 3, 3, model.input_channels) for k in range(2)]
    res = run_frames(dut, frames, stall=0.9, seed=54)
    for got, x in zip(res["images"], frames):
        assert (got == spec.run_tensor(model, x)).all()


def test_shipped_denoiser_with_its_720p30_fold():
    """The shipped denoiser (13 -> 40 depthwise-separable head, 8 binary residual layers,
    40 -> 12 depthwise-separable tail) with the
    fold accel.perf picks for 640x360 at 30 fps and 100 MHz, and a 140-multiplier budget: bit
    exact on a small frame, and the CYCLES register within the cycle model's 2 %."""
    from pathlib import Path

    from accel import perf

    path = Path(__file__).resolve().parents[2] / "models" / "denoise.gamir"
    if not path.exists():
        pytest.skip("models/denoise.gamir is not in this checkout")
    model = spec.load(path)
    fold = perf.choose_fold(model, pixels_per_second=640 * 360 * 30, clock_hz=100e6,
                            height=360, width=640, max_width=640)
    assert perf.frame_cycles(model, fold, height=360, width=640) <= 100e6 / 30
    h, w = 3, 4
    dut = Top(model, max_width=w, fold=fold, dsp=140)
    x = spec.random_image(3, h, w, model.input_channels)
    res = run_frames(dut, [x], seed=1)
    assert (res["images"][0] == spec.run_tensor(model, x)).all()
    # The cycle model is exact where every layer keeps up, within 2 % otherwise (accel.perf):
    # here the depthwise layers, folded to 12 cycles per pixel, wait on their neighbours.
    pred = perf.frame_cycles(model, fold, height=h, width=w)
    assert abs(res["CYCLES"] - pred) <= 0.02 * pred, (res["CYCLES"], pred)


def test_register_file_follows_the_register_table(monkeypatch):
    """The decoder is generated from accel.regmap.REGISTERS: a register the table gains without
    an implementation in Top stops elaboration, naming it."""
    from amaranth.hdl import Fragment

    model = small_model(3)
    monkeypatch.setitem(regmap.REGISTERS, "SPARE", (0x30, "rw", "not implemented"))
    with pytest.raises(NotImplementedError,
                       match=r"^register SPARE of accel.regmap.REGISTERS has no write action "
                             r"in hw.top.Top$"):
        Fragment.get(Top(model, max_width=4), None)
