"""cocotb 2.1 bus models: AXI4-Stream / lib.stream source and sink, AXI4-Lite manager.

Why our own and not cocotbext-axi: with cocotb 2.1 and Verilator 5.48, cocotbext-axi 0.1.28's
``AxiStreamSource``/``AxiStreamSink`` with pause generators never delivered a 5000-beat frame
(the simulation ran 14 minutes without a received frame; it also warns about removed cocotb
APIs). These models are small and fast: one coroutine per clock serves every stream agent.

Timing rule (the whole point of a bus model): at a rising edge an agent first samples the
handshake (``valid & ready``) the edge completes -- cocotb runs the edge's callback before
Verilator evaluates the edge, so the values read are the ones the flip-flops sample -- then
drives its outputs for the coming cycle; cocotb applies those writes after the edge (inertial
writes), as a flip-flop output would change. One trigger per clock for all agents. The
scoreboards of ``sim/`` would catch a one-cycle slip at once (every handshake would move).

Random stalls: a source leaves ``valid`` low with probability ``gap`` before each beat (never
dropping ``valid`` once raised, AXI's rule), a sink leaves ``ready`` low with probability
``stall`` each cycle. Both draw from a seeded ``random.Random`` so a failure repeats exactly.
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from cocotb.triggers import Event, ReadOnly, RisingEdge, with_timeout

__all__ = ["StreamBus", "Clocked", "StreamSource", "StreamSink", "AxiLiteManager", "replay"]


class StreamBus:
    """The handles of one stream: ``data``, ``valid``, ``ready`` and optionally ``last``."""

    def __init__(self, data, valid, ready, last=None):
        self.data, self.valid, self.ready, self.last = data, valid, ready, last

    @classmethod
    def axis(cls, dut, prefix: str) -> "StreamBus":
        """AXI4-Stream ports as Amaranth names them: ``<prefix>__tdata`` etc."""
        get = lambda name: getattr(dut, f"{prefix}__{name}")  # noqa: E731
        return cls(get("tdata"), get("tvalid"), get("tready"), get("tlast"))

    @classmethod
    def amaranth(cls, dut, prefix: str) -> "StreamBus":
        """An ``amaranth.lib.stream`` port: ``<prefix>__payload``, ``__valid``, ``__ready``."""
        get = lambda name: getattr(dut, f"{prefix}__{name}")  # noqa: E731
        return cls(get("payload"), get("valid"), get("ready"))


class Clocked:
    """Runs ``sample(cycle)`` then ``drive()`` of every agent at each rising edge, in one
    coroutine (cheaper than one per agent, and one trigger per clock).

    ``cycle`` counts rising edges since :meth:`start`; ``sample(k)`` sees the handshake that
    the edge ending cycle ``k`` completed.
    """

    def __init__(self, clk):
        self.clk = clk
        self.agents = []
        self.cycle = 0

    def add(self, *agents) -> None:
        self.agents.extend(agents)

    def start(self) -> None:
        cocotb.start_soon(self._loop())

    async def _loop(self) -> None:
        edge = RisingEdge(self.clk)
        agents = self.agents
        while True:
            await edge
            for a in agents:
                a.sample(self.cycle)
            self.cycle += 1
            for a in agents:
                a.drive()

    async def wait_for(self, event: Event, cycles: int, what: str) -> None:
        """Wait for ``event`` at most ``cycles`` clock cycles, then for the next edge."""
        period = self.period_ns
        try:
            await with_timeout(event.wait(), cycles * period, "ns")
        except cocotb.triggers.SimTimeoutError:
            raise AssertionError(f"timeout after {cycles} cycles waiting for {what}") from None
        await RisingEdge(self.clk)

    period_ns = 10


class StreamSource:
    """Sends queued beats; ``valid`` low with probability ``gap`` before each beat.

    ``fired`` collects the cycle of every beat sent (its handshake cycle), in order.
    """

    def __init__(self, bus: StreamBus, rng: random.Random, gap: float = 0.0):
        self.bus, self.rng, self.gap = bus, rng, gap
        self.queue: deque = deque()
        self.fired: list[int] = []
        self._valid = False
        self._fire = False
        self._data = None
        self._last = None
        self.idle = Event()
        self.idle.set()
        bus.valid.value = 0

    def send(self, beats, lasts=None) -> None:
        """Queue ``beats`` (ints); ``lasts`` (bools) drive TLAST when the bus has one."""
        if lasts is None:
            lasts = [False] * len(beats)
        self.queue.extend(zip(beats, lasts))
        if self.queue:
            self.idle.clear()

    def abort(self) -> None:
        """Forget queued beats and drop ``valid`` (the design is being reset)."""
        self.queue.clear()
        self._valid = self._fire = False
        self.bus.valid.value = 0
        self.idle.set()

    def drive(self) -> None:
        if self._fire:
            self.queue.popleft()
            self._valid = False
            if not self.queue:
                self.idle.set()
        if not self._valid and self.queue and self.rng.random() >= self.gap:
            data, last = self.queue[0]
            if data != self._data:
                self.bus.data.value = self._data = data
            if self.bus.last is not None and last != self._last:
                self.bus.last.value = self._last = last
            self._valid = True
            self.bus.valid.value = 1
        elif not self._valid:
            self.bus.valid.value = 0

    def sample(self, cycle: int) -> None:
        self._fire = self._valid and self.bus.ready.value == 1
        if self._fire:
            self.fired.append(cycle)


class StreamSink:
    """Takes beats with ``ready`` low with probability ``stall`` each cycle.

    ``beats`` collects ``(data, last, cycle)``. :meth:`expect` waits for a number of beats.

    ``drop_after_stall`` is a deliberately corrupting shim for the scoreboard's own tests: the
    first beat accepted right after a stalled cycle, once that many beats have arrived, is
    thrown away, as a sink with a broken skid buffer would.
    """

    def __init__(self, bus: StreamBus, rng: random.Random, stall: float = 0.0, *,
                 drop_after_stall: int | None = None):
        self.bus, self.rng, self.stall = bus, rng, stall
        self.beats: list[tuple[int, bool, int]] = []
        self.drop_after_stall = drop_after_stall
        self.dropped: list[int] = []
        self._ready = False
        self._stalled = False
        self._target = None
        self._reached = Event()
        bus.ready.value = 0

    def drive(self) -> None:
        ready = self.stall == 0 or self.rng.random() >= self.stall
        if ready != self._ready:
            self.bus.ready.value = int(ready)
            self._ready = ready

    def sample(self, cycle: int) -> None:
        if not self._ready:
            self._stalled = True
            return
        if self.bus.valid.value == 1:
            data = int(self.bus.data.value)
            last = bool(self.bus.last.value == 1) if self.bus.last is not None else False
            if (self.drop_after_stall is not None and self._stalled and not self.dropped
                    and len(self.beats) >= self.drop_after_stall):
                self.dropped.append(cycle)
            else:
                self.beats.append((data, last, cycle))
                if self._target is not None and len(self.beats) >= self._target:
                    self._reached.set()
        self._stalled = False

    async def expect(self, clock: Clocked, total: int, timeout_cycles: int) -> None:
        """Wait until ``total`` beats have arrived (since creation or :meth:`clear`)."""
        if len(self.beats) >= total:
            return
        self._target = total
        self._reached.clear()
        await clock.wait_for(self._reached, timeout_cycles,
                             f"output beat {len(self.beats) + 1} of {total}")
        self._target = None

    def clear(self) -> None:
        self.beats.clear()


class AxiLiteManager:
    """AXI4-Lite manager for ``<prefix>__awaddr`` ... ports, one transaction at a time."""

    def __init__(self, dut, clk, prefix: str = "s_axil"):
        self.clk = clk
        self.s = {name: getattr(dut, f"{prefix}__{name}") for name in (
            "awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp",
            "bvalid", "bready", "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid",
            "rready")}
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            self.s[name].value = 0

    async def _handshake(self, valid: str, ready: str) -> None:
        """Hold ``valid`` high until a cycle where ``ready`` is high, then drop it."""
        s = self.s
        s[valid].value = 1
        while True:
            await ReadOnly()
            done = s[ready].value == 1
            await RisingEdge(self.clk)
            if done:
                s[valid].value = 0
                return

    async def write(self, address: int, data: int) -> None:
        s = self.s
        s["awaddr"].value = address
        s["wdata"].value = data & 0xFFFFFFFF
        s["wstrb"].value = 0xF
        s["bready"].value = 1
        # The register file takes address and data in the same cycle.
        s["wvalid"].value = 1
        await self._handshake("awvalid", "awready")
        s["wvalid"].value = 0
        (resp,) = await self._response("b", "bresp")
        if resp:
            raise AssertionError(f"AXI4-Lite write to 0x{address:x} answered BRESP={resp}")

    async def _response(self, channel: str, *fields: str) -> tuple[int, ...]:
        """Wait for the ``channel`` (b or r) response beat, take it (``ready`` is already
        high) and return its ``fields``."""
        s = self.s
        while True:
            await ReadOnly()
            done = s[f"{channel}valid"].value == 1
            values = tuple(int(s[f].value) for f in fields)
            await RisingEdge(self.clk)
            if done:
                break
        s[f"{channel}ready"].value = 0
        return values

    async def read(self, address: int) -> int:
        s = self.s
        s["araddr"].value = address
        s["rready"].value = 1
        await self._handshake("arvalid", "arready")
        data, resp = await self._response("r", "rdata", "rresp")
        if resp:
            raise AssertionError(f"AXI4-Lite read of 0x{address:x} answered RRESP={resp}")
        return data


async def replay(axil: AxiLiteManager, ops) -> str | None:
    """Execute :mod:`accel.protocol` operations in order; stop at the first read that returns
    a wrong value and say what is wrong (``None`` when all are right)."""
    for op in ops:
        if op.kind == "write":
            await axil.write(op.address, op.value)
        else:
            problem = op.mismatch(await axil.read(op.address))
            if problem:
                return problem
    return None
