"""AXI4-Stream / AXI4-Lite testbench helpers for hw.top.Top in the Amaranth simulator."""

import numpy as np

from accel import protocol, regmap


async def axil_write(ctx, bus, addr, data):
    ctx.set(bus.awaddr, addr)
    ctx.set(bus.wdata, data)
    ctx.set(bus.wstrb, 0xF)
    ctx.set(bus.awvalid, 1)
    ctx.set(bus.wvalid, 1)
    ctx.set(bus.bready, 1)
    await ctx.tick().until(bus.awready)
    ctx.set(bus.awvalid, 0)
    ctx.set(bus.wvalid, 0)
    if not ctx.get(bus.bvalid):
        await ctx.tick().until(bus.bvalid)
    await ctx.tick()
    ctx.set(bus.bready, 0)


async def axil_read(ctx, bus, addr):
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    ctx.set(bus.rready, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    (data,) = await ctx.tick().sample(bus.rdata).until(bus.rvalid) if not ctx.get(bus.rvalid) \
        else (ctx.get(bus.rdata),)
    ctx.set(bus.rready, 0)
    await ctx.tick()
    return data


async def load_params(ctx, bus, model, fold):
    """Replay the board's parameter load (:func:`accel.protocol.load_ops`); return what a
    read check found wrong, or ``None``."""
    for op in protocol.load_ops(model, fold):
        if op.kind == "write":
            await axil_write(ctx, bus, op.address, op.value)
        elif (problem := op.mismatch(await axil_read(ctx, bus, op.address))):
            return problem
    return None


def frame_beats(x):
    """(H, W, C) uint8 -> list of (tdata, tlast)."""
    data = regmap.beats_to_ints(regmap.pack_pixels(x))
    return [(d, k == len(data) - 1) for k, d in enumerate(data)]


async def send(ctx, s_axis, beats, rng=None, gap=0.0):
    for tdata, tlast in beats:
        while rng is not None and rng.random() < gap:
            await ctx.tick()
        ctx.set(s_axis.tdata, tdata)
        ctx.set(s_axis.tlast, tlast)
        ctx.set(s_axis.tvalid, 1)
        await ctx.tick().until(s_axis.tready)
        ctx.set(s_axis.tvalid, 0)


async def receive(ctx, m_axis, n, rng=None, stall=0.0, times=None):
    out = []
    cycle = 0
    while len(out) < n:
        ready = not (rng is not None and rng.random() < stall)
        ctx.set(m_axis.tready, ready)
        _, _, valid, tdata, tlast = await ctx.tick().sample(m_axis.tvalid, m_axis.tdata,
                                                            m_axis.tlast)
        if ready and valid:
            out.append((tdata, tlast))
            if times is not None:
                times.append(cycle)
        cycle += 1
    ctx.set(m_axis.tready, 0)
    return out


def to_image(beats, h, w, c):
    return regmap.unpack_pixels([d for d, _ in beats], h, w, c)


__all__ = ["axil_write", "axil_read", "load_params", "frame_beats", "send", "receive",
           "to_image", "np"]
