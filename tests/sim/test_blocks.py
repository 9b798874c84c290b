"""Every hardware block, converted alone to Verilog and run in Verilator against the spec.

Each block is built with small parameters (``amaranth.back.verilog.convert``), fed random
frames with random valid gaps, drained with random ready stalls by
:mod:`tests.sim.blocks_tests` (the bench, run inside the simulator), and its output beats are
compared with what the spec says they must be: windows from ``spec.reference.window_tap``,
accumulators from ``spec.reference.conv_acc``, output stages from
``spec.reference.output_stage``, sign bits from ``spec.arith.sign_bit``. Folding puts several
beats (channel groups) per pixel through the PE arrays and output stages.
"""

import os

import numpy as np
import pytest

import spec
from accel import regmap
from spec import reference
from spec.model import TensorType
from sim import runner

os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")

from amaranth.back import verilog  # noqa: E402
from amaranth.hdl import Shape, signed, unsigned  # noqa: E402
from amaranth.lib import stream, wiring  # noqa: E402
from amaranth.lib.wiring import In, Out  # noqa: E402

from hw.fixed_conv import FixedConv  # noqa: E402
from hw.folded_mvu import acc_shape_for  # noqa: E402
from hw.output_stages import Affine, PixelOutput, Threshold  # noqa: E402
from hw.stream_util import DelayFIFO, Fork, Gather, SignBits, Split, pixel_layout  # noqa: E402
from hw.window import WindowGen  # noqa: E402
from hw.xnor_engine import XnorEngine  # noqa: E402

pytestmark = pytest.mark.tools  # runs Verilator or an FPGA toolchain (README: the fast loop)

GAP, STALL = 0.3, 0.3


def pack(values, bits: int) -> int:
    """Elements -> flat payload (two's complement, element 0 lowest), as ArrayLayout packs."""
    out = 0
    for k, v in enumerate(np.asarray(values).reshape(-1).tolist()):
        out |= (int(v) & ((1 << bits) - 1)) << (k * bits)
    return out


def elem_of(block, port: str):
    """(element bits, signed) of an ArrayLayout stream port of ``block``."""
    layout = block.signature.members[port].signature.members["payload"].shape
    shape = Shape.cast(layout.elem_shape)
    return shape.width, shape.signed


def build(block, name: str) -> runner.Build:
    return runner.build(verilog.convert(block, name=name, emit_src=False), name)


def run_block(b, block, *, inputs, outputs, consts=None, seed=0, timeout=20000):
    """Drive ``inputs`` ({port: beats}) and check ``outputs`` ({port: (beats, labels)})."""
    job = {"seed": seed, "consts": consts or {}, "timeout_cycles": timeout,
           "inputs": {p: {"beats": beats, "gap": GAP} for p, beats in inputs.items()},
           "outputs": {}}
    for port, (beats, labels) in outputs.items():
        bits, sgn = elem_of(block, port)
        job["outputs"][port] = {"expect": beats, "labels": labels, "stall": STALL,
                                "elem_bits": bits, "signed": sgn}
    return runner.run(b, "tests.sim.blocks_tests", job)


def pixel_labels(h, w, groups=1):
    return [f"pixel (x={x}, y={y})" + (f" group {g}" if groups > 1 else "")
            for y in range(h) for x in range(w) for g in range(groups)]


def windows(x):
    """(h, w, 9*c): window element (ky*3 + kx)*c + ch, from the spec's tap rule."""
    taps = [reference.window_tap(x, ky - 1, kx - 1) for ky in range(3) for kx in range(3)]
    return np.concatenate(taps, axis=2)


def groups(a, lanes):
    """(h, w, c) -> beats of ``lanes`` channels, channel group order within each pixel."""
    h, w, c = a.shape
    return a.reshape(h * w * (c // lanes), lanes)


# ---------------------------------------------------------------- window generator

@pytest.fixture(scope="module")
def window():
    block = WindowGen(unsigned(8), 2, 3, max_width=8)
    return block, build(block, "blk_window")


@pytest.mark.parametrize("h,w", [(1, 1), (1, 5), (4, 1), (3, 7), (5, 8), (2, 2)])
def test_window(window, h, w):
    block, b = window
    x = spec.random_image(h * 10 + w, h, w, 2)
    run_block(b, block, consts={"width": w, "height": h}, seed=h * w,
              inputs={"i": [pack(p, 8) for p in x.reshape(h * w, 2)]},
              outputs={"o": ([pack(v, 8) for v in windows(x).reshape(h * w, -1)],
                             pixel_labels(h, w))})


# ---------------------------------------------------------------- PE arrays

def layer_setup(model, k, fold_k):
    """Region/init of layer ``k`` (1-based) with ``fold_k``, other layers unfolded."""
    fold = [None] * len(model.layers)
    fold[k - 1] = fold_k
    regs = regmap.regions(model, fold)
    w_region, o_region = regs[2 * k - 2], regs[2 * k - 1]
    return (w_region, regmap.region_entries(model, w_region),
            o_region, regmap.region_entries(model, o_region))


BIN_MODEL = dict(seed=21, channels=3, n_binary=2, image_channels=1, unshuffle=1,
                 noise_channel=False, residual_prob=1.0)


@pytest.mark.parametrize("lut_inputs", [4, 6])
def test_xnor_engine(lut_inputs):
    """Binary 3x3 conv folded pe=1, simd=taps/3: accumulators = popcount(XNOR) of the spec,
    with either first logic level (XNOR bits or carry-save rows registered)."""
    model = spec.random_model(**BIN_MODEL)
    k = 2
    layer = model.layers[k - 1]
    assert layer.kind == "binary"
    w_region, w_init, _, _ = layer_setup(model, k, {"pe": 1, "simd": layer.taps // 3})
    block = XnorEngine(w_region, w_init, taps=layer.taps, c_out=layer.c_out,
                       lut_inputs=lut_inputs)
    h, w = 3, 5
    bits = np.random.default_rng(1).integers(0, 2, (h, w, layer.c_in), dtype=np.uint8)
    acc = reference.conv_acc(layer, bits, TensorType("bit", layer.c_in, 1))
    run_block(build(block, f"blk_xnor{lut_inputs}"), block, consts={"bus__en": 0},
              inputs={"i": [pack(v, 1) for v in windows(bits).reshape(h * w, -1)]},
              outputs={"o": ([pack(v, elem_of(block, "o")[0]) for v in groups(acc, 1)],
                             pixel_labels(h, w, layer.c_out))})


def test_fixed_conv():
    """The fixed head conv on 8-bit pixels, folded pe=c_out/... simd=taps/2."""
    model = spec.random_model(**BIN_MODEL)
    layer = model.layers[0]
    pe = 1 if layer.c_out == 1 else layer.c_out // [d for d in (3, 2, 1) if layer.c_out % d == 0][0]
    w_region, w_init, _, _ = layer_setup(model, 1, {"pe": pe, "simd": layer.taps // 3})
    acc_shape = acc_shape_for(layer, model.tensor_types()[0])
    block = FixedConv(w_region, w_init, elem=unsigned(8), bit_input=False, taps=layer.taps,
                      c_out=layer.c_out, acc_shape=acc_shape, w_bits=layer.w_bits)
    h, w = 4, 3
    x = spec.random_image(3, h, w, layer.c_in)
    acc = reference.conv_acc(layer, x, model.tensor_types()[0])
    bits = elem_of(block, "o")[0]
    run_block(build(block, "blk_fixed"), block, consts={"bus__en": 0},
              inputs={"i": [pack(v, 8) for v in windows(x).reshape(h * w, -1)]},
              outputs={"o": ([pack(v, bits) for v in groups(acc, pe)],
                             pixel_labels(h, w, layer.c_out // pe))})


# ---------------------------------------------------------------- output stages

def stage_case(kind):
    """A model and the index of a layer whose output stage is ``kind`` (``affine-act``: an
    affine stage with the per-channel activation)."""
    for seed in range(40, 200):
        model = spec.random_model(seed, channels=4, n_binary=3, image_channels=1, unshuffle=1,
                                  noise_channel=False, residual_prob=1.0,
                                  act_prob=1.0 if kind == "affine-act" else 0.0)
        for k, layer in enumerate(model.layers, 1):
            stage = layer.stage
            if kind == "threshold" and isinstance(stage, spec.Threshold):
                return model, k
            if kind.startswith("affine") and isinstance(stage, spec.Affine) \
                    and stage.residual is not None and layer.kind == "binary":
                return model, k
            if kind == "pixel" and isinstance(stage, spec.PixelOutput) and \
                    (stage.residual_map >= 0).any():
                return model, k
    raise AssertionError(f"no random model with a {kind} stage")


def random_acc(rng, layer, in_type, n):
    lo, hi = regmap.acc_bounds(layer, in_type)
    return rng.integers(lo, hi + 1, (1, n, layer.c_out))


@pytest.mark.parametrize("kind", ["threshold", "affine", "affine-act", "pixel"])
def test_output_stage(kind):
    """Threshold, affine + residual (plain and with the activation) and pixel + global
    residual stages, two lanes per beat, against ``spec.reference.output_stage`` on random
    accumulators (extremes included)."""
    model, k = stage_case(kind)
    layer = model.layers[k - 1]
    stage = layer.stage
    types = model.tensor_types()
    fold = {"pe": layer.c_out, "simd": layer.taps, "out_pe": 2 if layer.c_out % 2 == 0 else 1}
    _, _, o_region, o_init = layer_setup(model, k, fold)
    lanes = o_region.lanes
    acc_shape = acc_shape_for(layer, types[k - 1])
    if layer.kind == "binary":
        acc_shape = unsigned(layer.taps.bit_length())  # as the XNOR engine emits it
    rng = np.random.default_rng(k)
    n = 40
    acc = random_acc(rng, layer, types[k - 1], n)
    lo, hi = regmap.acc_bounds(layer, types[k - 1])
    acc[0, :2] = [[lo] * layer.c_out, [hi] * layer.c_out]
    tensors = [None] * k
    inputs = {"i": [pack(v, Shape.cast(acc_shape).width) for v in groups(acc, lanes)]}
    if kind == "threshold":
        block = Threshold(o_region, o_init, acc_shape=acc_shape)
    elif kind.startswith("affine"):
        assert (stage.act is not None) == (kind == "affine-act")
        block = Affine.for_stage(stage, o_region, o_init, acc_shape=acc_shape,
                                 input_channels=model.input_channels)
        lo_r, hi_r = types[stage.residual].value_range()
        res = rng.integers(lo_r, hi_r + 1, (1, n, layer.c_out))
        tensors[stage.residual] = res
        inputs["r"] = [pack(v, stage.out_bits) for v in res.reshape(n, -1)]
    else:
        block = PixelOutput(o_region, o_init, acc_shape=acc_shape, shift=stage.shift,
                            in_channels=model.input_channels)
        x0 = rng.integers(0, 256, (1, n, model.input_channels))
        tensors[0] = x0
        inputs["r"] = [pack(v, 8) for v in x0.reshape(n, -1)]
    y = reference.output_stage(layer, acc, tensors)
    bits = elem_of(block, "o")[0]
    run_block(build(block, f"blk_{kind.replace('-', '_')}"), block, consts={"bus__en": 0}, inputs=inputs,
              outputs={"o": ([pack(v, bits) for v in groups(y, lanes)],
                             pixel_labels(1, n, layer.c_out // lanes))})


# ---------------------------------------------------------------- stream plumbing

class Plumbing(wiring.Component):
    """Fork -> {Split, Split->Gather, DelayFIFO, SignBits}: each output stalls on its own, so
    the eager fork must deliver every beat exactly once to each."""

    LANES, N = 2, 3

    def __init__(self):
        elem = signed(6)
        full = pixel_layout(elem, self.LANES * self.N)
        self.parts = {"split": Split(elem, self.LANES, self.N),
                      "gather_split": Split(elem, self.LANES, self.N),
                      "gather": Gather(elem, self.LANES, self.N),
                      "delay": DelayFIFO(full, 5), "sign": SignBits(elem, self.LANES * self.N)}
        self.fork = Fork(full, 4)
        super().__init__({
            "i": In(stream.Signature(full)),
            "split": Out(self.parts["split"].o.signature),
            "gather": Out(self.parts["gather"].o.signature),
            "delay": Out(self.parts["delay"].o.signature),
            "sign": Out(self.parts["sign"].o.signature),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module

        m = Module()
        m.submodules.fork = f = self.fork
        for name, part in self.parts.items():
            m.submodules[name] = part
        wiring.connect(m, wiring.flipped(self.i), f.i)
        p = self.parts
        wiring.connect(m, f.o0, p["split"].i)
        wiring.connect(m, f.o1, p["gather_split"].i)
        wiring.connect(m, p["gather_split"].o, p["gather"].i)
        wiring.connect(m, f.o2, p["delay"].i)
        wiring.connect(m, f.o3, p["sign"].i)
        for name in ("split", "gather", "delay", "sign"):
            wiring.connect(m, p[name].o, wiring.flipped(getattr(self, name)))
        return m


def test_stream_plumbing():
    block = Plumbing()
    n, c = 60, Plumbing.LANES * Plumbing.N
    v = np.random.default_rng(7).integers(-32, 32, (1, n, c))
    v[0, :2] = [[-32] * c, [31] * c]
    beats = [pack(p, 6) for p in v.reshape(n, c)]
    labels = pixel_labels(1, n)
    run_block(build(block, "blk_plumbing"), block, inputs={"i": beats},
              outputs={"split": ([pack(g, 6) for g in groups(v, Plumbing.LANES)],
                                 pixel_labels(1, n, Plumbing.N)),
                       "gather": (beats, labels), "delay": (beats, labels),
                       "sign": ([pack(b, 1) for b in spec.arith.sign_bit(v).reshape(n, c)],
                                labels)})
