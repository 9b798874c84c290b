"""Shared Amaranth-simulator helpers for tests/hw: stream drivers with random stalls and
element packing (values <-> the flat integers of ArrayLayout payloads)."""

import numpy as np
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator


def _with_clock(dut):
    """Wrap ``dut`` so a ``sync`` domain exists even for purely combinational blocks."""
    m = Module()
    m.submodules.dut = dut
    toggle = Signal()
    m.d.sync += toggle.eq(~toggle)
    return m


def pack(values, bits: int) -> int:
    """Elements (any ints, two's complement for negatives) -> flat integer, element 0 lowest."""
    mask = (1 << bits) - 1
    out = 0
    for k, v in enumerate(np.asarray(values).reshape(-1).tolist()):
        out |= (int(v) & mask) << (k * bits)
    return out


def unpack(word: int, bits: int, n: int, signed: bool = False) -> list[int]:
    mask = (1 << bits) - 1
    vals = [(word >> (k * bits)) & mask for k in range(n)]
    if signed:
        vals = [v - (1 << bits) if v >> (bits - 1) else v for v in vals]
    return vals


def _flat(value):
    return value.as_value() if hasattr(value, "as_value") else value


def put(stream, items, rng=None, gap=0.0):
    """Testbench sending ``items`` (flat ints) on ``stream``, idle cycles with probability ``gap``."""
    async def bench(ctx):
        for item in items:
            while rng is not None and rng.random() < gap:
                await ctx.tick()
            ctx.set(_flat(stream.payload), item)
            ctx.set(stream.valid, 1)
            await ctx.tick().until(stream.ready)
            ctx.set(stream.valid, 0)
    return bench


def get(stream, n, out, rng=None, stall=0.0, times=None):
    """Testbench taking ``n`` beats from ``stream`` into ``out`` (ready low with probability
    ``stall``); ``times`` collects the cycle number of each beat."""
    async def bench(ctx):
        cycle = 0
        while len(out) < n:
            ready = not (rng is not None and rng.random() < stall)
            ctx.set(stream.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(stream.valid, _flat(stream.payload))
            if ready and valid:
                out.append(payload)
                if times is not None:
                    times.append(cycle)
            cycle += 1
        ctx.set(stream.ready, 0)
    return bench


def run_to_completion(dut, benches, deadline_cycles=200_000):
    """Simulate ``dut`` until every testbench returns; fail after ``deadline_cycles``."""
    sim = Simulator(_with_clock(dut))
    sim.add_clock(1e-8)

    async def watchdog(ctx):
        for _ in range(deadline_cycles):
            await ctx.tick()
        raise AssertionError(f"simulation did not finish within {deadline_cycles} cycles "
                             f"(deadlock?)")

    sim.add_testbench(watchdog, background=True)
    for b in benches:
        sim.add_testbench(b)
    sim.run()
    return sim

def layer_case(seed, k, fold=None, h=3, w=4, **model_kw):
    """A random model, its tensors on a random image (spec.reference), and layer ``k``'s
    regions, input tensor type and the reference accumulators."""
    import spec
    from accel import regmap
    from spec.reference import conv_acc, run_layers

    model = spec.random_model(seed, **model_kw)
    folds = [None] * len(model.layers)
    folds[k - 1] = fold
    x0 = spec.random_image(seed, h, w, model.input_channels)
    tensors = run_layers(model, x0)
    types = model.tensor_types()
    layer = model.layers[k - 1]
    regions = regmap.regions(model, folds)
    acc = conv_acc(layer, tensors[k - 1], types[k - 1])
    return model, layer, tensors, types, regions[2 * k - 2], regions[2 * k - 1], acc


def windows(x, kernel):
    """Flat windows (h*w, kernel*kernel*c) of tensor ``x`` by the spec's border rule."""
    from spec.reference import window_tap

    r = kernel // 2
    taps = [window_tap(x, ky - r, kx - r) for ky in range(kernel) for kx in range(kernel)]
    return np.concatenate(taps, axis=2).reshape(x.shape[0] * x.shape[1], -1)
