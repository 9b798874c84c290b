"""cocotb 2.1 AXI3 bus models for the open-flow design: a memory (the PS7's DDR behind
S_AXI_HP0) that polices the protocol, and a manager (the CPU behind M_AXI_GP0).

Both follow :mod:`sim.drivers`' timing rule (sample the handshake an edge completes, then drive
the next cycle's outputs) and the memory runs in the same :class:`sim.drivers.Clocked` loop.

:class:`Axi3Memory` stalls every channel at random (``ready`` low on AR/AW/W, ``valid`` low on
R/B with probability ``stall``) and records the first broken rule in ``violation``; the bench
fails with it. Rules checked: a ``valid`` held until its handshake with its payload unchanged
(AR, AW, W); INCR bursts of full-width beats from aligned addresses; no burst across a 4 KiB
boundary (``page``: the tests shrink it to see the check fire); ``len`` within AXI3's 16
beats; WID equal to the burst's AWID and WLAST on exactly the burst's last beat; reads only
inside the windows the bench declared readable and written bytes (strobes) only inside the
writable ones. W beats may come before their AW (AXI3 allows
it); write data is applied in AW order.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["Axi3Memory", "Axi3Manager", "PAGE"]

#: AXI's boundary no burst may cross.
PAGE = 4096
_ADDR = ("id", "addr", "len", "size", "burst")
_INCR = 1


class Axi3Memory:
    """An AXI3 slave memory of ``size`` bytes at ``base`` on ``<prefix>__*`` ports."""

    def __init__(self, dut, prefix: str, rng, *, base: int, size: int, data_bytes: int = 8,
                 stall: float = 0.0, page: int = PAGE):
        get = lambda name: getattr(dut, f"{prefix}__{name}")  # noqa: E731
        self.s = {name: get(name) for name in (
            *(a + f for a in ("ar", "aw") for f in (*_ADDR, "valid", "ready")),
            "wid", "wdata", "wstrb", "wlast", "wvalid", "wready",
            "bid", "bresp", "bvalid", "bready", "rid", "rdata", "rresp", "rlast", "rvalid",
            "rready")}
        self.rng, self.stall, self.data_bytes = rng, stall, data_bytes
        self.base, self.page = base, page
        self.mem = np.zeros(size, np.uint8)
        self.readable: list[tuple[int, int]] = []
        self.writable: list[tuple[int, int]] = []
        self.violation: str | None = None
        self.bursts = {"ar": [], "aw": []}  # (addr, beats) of every accepted burst
        self.read_beats = 0
        self._ready = {"ar": False, "aw": False, "w": False}
        self._held = {"ar": None, "aw": None, "w": None}
        self._reads: deque = deque()  # [id, addr, beats, next beat]
        self._writes: deque = deque()  # [id, addr, beats, next beat]
        self._wdata: deque = deque()  # (id, data, strb, last)
        self._resps: deque = deque()  # bid
        self._rvalid = self._bvalid = False
        for name in ("arready", "awready", "wready", "rvalid", "bvalid"):
            self.s[name].value = 0

    # ------------------------------------------------------------------ bench side
    def write(self, addr: int, data: np.ndarray) -> None:
        self.mem[addr - self.base:addr - self.base + len(data)] = data

    def read(self, addr: int, n: int) -> np.ndarray:
        return self.mem[addr - self.base:addr - self.base + n].copy()

    def quiet(self) -> bool:
        """No burst in flight on any channel."""
        return not (self._reads or self._writes or self._wdata or self._resps
                    or self._rvalid or self._bvalid)

    def _fail(self, message: str) -> None:
        if self.violation is None:
            self.violation = message

    # ------------------------------------------------------------------ checks
    def _inside(self, lo: int, hi: int, windows) -> bool:
        return any(a <= lo and hi <= b for a, b in windows)

    def _burst(self, ch: str, payload) -> list:
        bid, addr, length, size, burst = payload
        beats = length + 1
        what = f"{ch.upper()} burst at 0x{addr:x} ({beats} beats)"
        if burst != _INCR:
            self._fail(f"{what}: burst type {burst}, the DMA must use INCR")
        if 1 << size != self.data_bytes:
            self._fail(f"{what}: size {1 << size} bytes per beat, the bus has {self.data_bytes}")
        if addr % self.data_bytes:
            self._fail(f"{what}: address not aligned to the beat")
        if not 1 <= beats <= 16:
            self._fail(f"{what}: AXI3 bursts are 1..16 beats")
        if addr // self.page != (addr + beats * self.data_bytes - 1) // self.page:
            self._fail(f"{what} crosses a {self.page}-byte boundary")
        if ch == "ar" and not self._inside(addr, addr + beats * self.data_bytes, self.readable):
            self._fail(f"{what} reads outside the input buffers")
        self.bursts[ch].append((addr, beats))
        return [bid, addr, beats, 0]

    def _apply_writes(self) -> None:
        """Match W beats to AW bursts in order; write strobed bytes; queue the responses."""
        while self._writes and self._wdata:
            burst = self._writes[0]
            bid, addr, beats, k = burst
            wid, data, strb, last = self._wdata.popleft()
            at = addr + k * self.data_bytes
            if wid != bid:
                self._fail(f"W beat {k} of the burst at 0x{addr:x}: WID {wid} != AWID {bid}")
            if last != (k == beats - 1):
                self._fail(f"W beat {k} of {beats} of the burst at 0x{addr:x}: WLAST="
                           f"{int(last)}")
            for j in range(self.data_bytes):
                if strb >> j & 1:
                    if not self._inside(at + j, at + j + 1, self.writable):
                        self._fail(f"write to 0x{at + j:x}, outside the output buffers")
                        continue
                    self.mem[at + j - self.base] = data >> (8 * j) & 0xFF
            burst[3] = k + 1
            if k + 1 == beats:
                self._writes.popleft()
                self._resps.append(bid)

    # ------------------------------------------------------------------ clock
    def sample(self, cycle: int) -> None:
        s = self.s
        for ch, fields in (("ar", _ADDR), ("aw", _ADDR), ("w", ("id", "data", "strb", "last"))):
            valid = s[ch + "valid"].value == 1
            payload = tuple(int(s[ch + f].value) for f in fields) if valid else None
            held = self._held[ch]
            if held is not None and payload != held:
                self._fail(f"{ch.upper()}VALID dropped or its payload changed before "
                           f"{ch.upper()}READY")
            self._held[ch] = None
            if not valid:
                continue
            if not self._ready[ch]:
                self._held[ch] = payload
            elif ch == "ar":
                self._reads.append(self._burst(ch, payload))
            elif ch == "aw":
                self._writes.append(self._burst(ch, payload))
            else:
                self._wdata.append(payload)
        self._apply_writes()
        if self._rvalid and s["rready"].value == 1:
            self._rvalid = False
            self.read_beats += 1
            burst = self._reads[0]
            burst[3] += 1
            if burst[3] == burst[2]:
                self._reads.popleft()
        if self._bvalid and s["bready"].value == 1:
            self._bvalid = False
            self._resps.popleft()

    def drive(self) -> None:
        s, rng = self.s, self.rng
        for ch in ("ar", "aw", "w"):
            ready = rng.random() >= self.stall
            if ready != self._ready[ch]:
                s[ch + "ready"].value = int(ready)
                self._ready[ch] = ready
        if not self._rvalid:
            if self._reads and rng.random() >= self.stall:
                bid, addr, beats, k = self._reads[0]
                at = addr + k * self.data_bytes - self.base
                s["rdata"].value = int.from_bytes(self.mem[at:at + self.data_bytes].tobytes(),
                                                  "little")
                s["rid"].value = bid
                s["rresp"].value = 0
                s["rlast"].value = int(k == beats - 1)
                self._rvalid = True
            s["rvalid"].value = int(self._rvalid)
        if not self._bvalid:
            if self._resps and rng.random() >= self.stall:
                s["bid"].value = self._resps[0]
                s["bresp"].value = 0
                self._bvalid = True
            s["bvalid"].value = int(self._bvalid)


class Axi3Manager:
    """AXI3 manager for register access on ``<prefix>__*`` (GP0), one transaction at a time.

    :meth:`write`/:meth:`read` are single beats (what PYNQ's ``MMIO`` makes), so
    :func:`sim.drivers.replay` runs :mod:`accel.protocol` operations through it;
    :meth:`read_burst` reads consecutive registers in one burst. Every response must carry the
    request's ID (a new one per transaction) and, on reads, RLAST on the last beat only.
    """

    def __init__(self, dut, clk, prefix: str = "s_axi_gp"):
        self.clk = clk
        self.s = {name: getattr(dut, f"{prefix}__{name}") for name in (
            *(a + f for a in ("ar", "aw") for f in (*_ADDR, "valid", "ready")),
            "wid", "wdata", "wstrb", "wlast", "wvalid", "wready",
            "bid", "bresp", "bvalid", "bready", "rid", "rdata", "rresp", "rlast", "rvalid",
            "rready")}
        self.tid = 0
        for name in ("awvalid", "wvalid", "bready", "arvalid", "rready"):
            self.s[name].value = 0
        for a in ("ar", "aw"):
            self.s[a + "size"].value = 2  # 4-byte beats
            self.s[a + "burst"].value = _INCR

    async def _handshake(self, *channels: str) -> None:
        """Raise ``valid`` on ``channels`` together; drop each after its handshake."""
        s = self.s
        waiting = set(channels)
        for ch in waiting:
            s[ch + "valid"].value = 1
        while waiting:
            await ReadOnly()
            done = {ch for ch in waiting if s[ch + "ready"].value == 1}
            await RisingEdge(self.clk)
            for ch in done:
                s[ch + "valid"].value = 0
            waiting -= done

    def _next_id(self) -> int:
        self.tid = (self.tid + 1) % (1 << len(self.s["awid"]))
        return self.tid

    async def _beat(self, ch: str, *fields: str) -> tuple[int, ...]:
        """Wait for and take one ``ch`` (b or r) beat; ``ready`` is already high."""
        s = self.s
        while True:
            await ReadOnly()
            done = s[ch + "valid"].value == 1
            values = tuple(int(s[ch + f].value) for f in fields)
            await RisingEdge(self.clk)
            if done:
                return values

    async def write(self, address: int, data: int) -> None:
        s, tid = self.s, self._next_id()
        s["awaddr"].value, s["awid"].value, s["awlen"].value = address, tid, 0
        s["wdata"].value, s["wstrb"].value, s["wid"].value, s["wlast"].value = \
            data & 0xFFFFFFFF, 0xF, tid, 1
        s["bready"].value = 1
        await self._handshake("aw", "w")
        bid, resp = await self._beat("b", "id", "resp")
        s["bready"].value = 0
        assert bid == tid, f"write to 0x{address:x}: BID {bid} != AWID {tid}"
        assert resp == 0, f"write to 0x{address:x} answered BRESP={resp}"

    async def read_burst(self, address: int, beats: int) -> list[int]:
        s, tid = self.s, self._next_id()
        s["araddr"].value, s["arid"].value, s["arlen"].value = address, tid, beats - 1
        s["rready"].value = 1
        await self._handshake("ar")
        out = []
        for k in range(beats):
            rid, data, resp, last = await self._beat("r", "id", "data", "resp", "last")
            assert rid == tid, f"read of 0x{address:x}: RID {rid} != ARID {tid}"
            assert resp == 0, f"read of 0x{address:x} answered RRESP={resp}"
            assert last == (k == beats - 1), f"read of 0x{address:x}: RLAST={last} on beat {k}"
            out.append(data)
        s["rready"].value = 0
        return out

    async def read(self, address: int) -> int:
        return (await self.read_burst(address, 1))[0]
